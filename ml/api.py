"""The typed interface apps call. Plain values in, plain values and frozen dataclasses out.

Everything here loads models lazily into the per-process cache, so the first call in a worker pays the load
and later calls reuse it; a new artifact directory (a new active version) is a new cache key.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ml.artifacts import read_meta
from ml.cache import MODELS
from ml.classify import CLASSIFIERS, Classifier, Prediction, to_predictions
from ml.config import load_config
from ml.embeddings import EMBEDDERS, Embedder
from ml.errors import ArtifactError
from ml.generation import GENERATORS, GenerationChunk, GenerationRequest, GenerationResult, Generator
from ml.packaged import resolve_model
from ml.text import clean_texts
from ml.training.classifier import ClassifierSpec, TrainResult, train_classifier
from ml.training.runner import TrainingCallbacks

__all__ = [
    "ClassifierSpec",
    "GenerationChunk",
    "GenerationRequest",
    "GenerationResult",
    "Prediction",
    "TrainResult",
    "classify",
    "embed",
    "embedder",
    "generate",
    "generator",
    "stream",
    "train_classifier",
]

# Backend modules register themselves on import; importing them here would pull torch into the web process.
_BACKEND_MODULES = {
    "embedding": {"torch-fp32": "ml.embeddings.torch_backend", "onnx-int8": "ml.embeddings.onnx_backend"},
    "classifier": {"torch-fp32": "ml.classify", "onnx-int8": "ml.onnx_classify"},
    "generator": {
        "local": "ml.generation.local",
        "llama-cpp": "ml.generation.gguf",
        "openai": "ml.generation.openai_http",
    },
}


def _load_backend_module(kind: str, name: str) -> None:
    module = _BACKEND_MODULES[kind].get(name)
    if module is not None:
        importlib.import_module(module)


def _default_embed_backend(model_path: str) -> str:
    """`auto`: int8 on CPU only when the stored quality gate for this model's export passed (see
    ml.embeddings.quality, written by benchmarks/bench_embeddings.py); otherwise fp32."""
    cfg = load_config()
    if cfg.embed_backend != "auto":
        return cfg.embed_backend
    from ml.embeddings.quality import int8_gate_passed

    if cfg.device == "cpu" and int8_gate_passed(cfg.model_store, model_path):
        return "onnx-int8"
    return "torch-fp32"


def embedder(backend: str | None = None, model: str | None = None) -> Embedder:
    """The embedder for `backend` and `model` (defaults from ML_EMBED_BACKEND / ML_EMBED_MODEL), cached."""
    cfg = load_config()
    path = resolve_model(model or cfg.embed_model, default=cfg.embed_model)
    name = backend or _default_embed_backend(path)
    _load_backend_module("embedding", name)
    return MODELS.get(
        ("embedding", name, path, cfg.device),
        lambda: EMBEDDERS.create(name, model_path=path, device=cfg.device, store=cfg.model_store),
    )


def embed(texts: Sequence[object], *, backend: str | None = None, model: str | None = None) -> np.ndarray:
    """384-d (for MiniLM) L2-normalised float32 vectors for `texts`; bytes are decoded, huge texts truncated."""
    return embedder(backend, model).encode(clean_texts(texts))


def classifier(artifact_dir: str | Path, *, backend: str = "torch-fp32") -> Classifier:
    """A loaded classifier for a model version's artifact directory, cached per process."""
    path = Path(artifact_dir)
    meta = read_meta(path)  # fails with the path named when the directory is missing or corrupt
    if meta.kind != "sequence-classifier":
        raise ArtifactError(f"{path} holds a {meta.kind!r} artifact, not a sequence classifier")
    cfg = load_config()
    _load_backend_module("classifier", backend)
    stamp = (path / "meta.json").stat().st_mtime_ns
    return MODELS.get(
        ("classifier", backend, str(path.resolve()), stamp, cfg.device),
        lambda: CLASSIFIERS.create(backend, artifact_dir=path, device=cfg.device, store=cfg.model_store),
    )


def classify(
    artifact_dir: str | Path, texts: Sequence[object], *, backend: str = "torch-fp32"
) -> list[Prediction]:
    """Calibrated class probabilities for each text."""
    model = classifier(artifact_dir, backend=backend)
    return to_predictions(model.labels, model.predict_proba(clean_texts(texts)))


def run_training(spec: ClassifierSpec, out_dir: Path, callbacks: TrainingCallbacks) -> TrainResult:
    """Train a classifier version into `out_dir`; see `ml.training.classifier.train_classifier`."""
    return train_classifier(spec, out_dir, callbacks)


def default_generator_backend() -> str:
    """`auto`: llama.cpp on the GGUF weights on a CPU (see ml.generation.gguf) unless a setting needs
    transformers (an HF model, a LoRA adapter, a dtype or 8/4-bit quantization, a GPU), or llama-cpp-python
    is not installed; then "local"."""
    env = os.environ
    needs_torch = any(
        env.get(name) for name in ("ML_GENERATOR_MODEL", "ML_GENERATOR_ADAPTER", "ML_GENERATOR_QUANT")
    ) or env.get("ML_GENERATOR_DTYPE", "auto") not in ("", "auto")
    if needs_torch or load_config().device != "cpu" or importlib.util.find_spec("llama_cpp") is None:
        return "local"
    return "llama-cpp"


def generator(backend: str | None = None) -> Generator:
    """The text generator for `backend` ("auto", "llama-cpp", "local" or "openai"; default
    ML_GENERATOR_BACKEND, else "auto", see `default_generator_backend`).

    Weights load once per process; the model, adapter, dtype and quantization come from the ML_GENERATOR_*
    settings (see `ml.generation.local` and `ml.generation.gguf`), the HTTP backend's URL and key likewise.
    """
    name = backend or os.environ.get("ML_GENERATOR_BACKEND") or "auto"
    if name == "auto":
        name = default_generator_backend()
    _load_backend_module("generator", name)
    return GENERATORS.create(name, device=load_config().device)


def generate(request: GenerationRequest, backend: str | None = None) -> GenerationResult:
    """The whole answer to `request`, with its finish reason, timings and the model that wrote it."""
    return generator(backend).generate(request)


def stream(request: GenerationRequest, backend: str | None = None) -> Iterator[GenerationChunk]:
    """Text deltas of the answer as they are generated; the last chunk carries the finish reason and result."""
    return generator(backend).stream(request)
