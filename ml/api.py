"""The one door into the ML core: apps import `ml.api` and `ml.errors`, nothing else under `ml`.

Plain values in, plain values and frozen dataclasses out. Models load lazily into the per-process cache, so the
first call in a worker pays the load and later calls reuse it; a new artifact directory (a new active version)
is a new cache key. Importing this module imports no heavy library (torch, transformers, FAISS, onnxruntime,
llama.cpp): the backends are named in registries by dotted path and imported when first chosen.

Choosing a backend is the same for every kind (embedding, classifier, generator, index, training): a backend
named in the call wins; otherwise ML_BACKEND=fake picks the deterministic fakes of `ml.fake`; otherwise the
kind's setting (ML_EMBED_BACKEND, ML_CLASSIFIER_BACKEND, ML_GENERATOR_BACKEND, ML_INDEX_BACKEND), whose
default `auto` gives an ordered list of candidates. A candidate that fails to load (MLError other than bad
input, ImportError, KeyError) is logged as a warning, remembered for the process, and the next one is used.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from ml.artifacts import ArtifactMeta, new_version_dir, read_meta, update_meta, write_meta
from ml.cache import INDEXES, MODELS
from ml.classify import CLASSIFIERS, Classifier, Prediction, to_predictions
from ml.config import MLConfig, load_config
from ml.datasets import (
    LabelledTexts,
    load_banking77,
    load_dataset,
    load_phrasebank,
    load_tfns,
    stratified_sample,
)
from ml.embeddings import EMBEDDERS, Embedder
from ml.errors import ArtifactError, InvalidInput, MLError
from ml.generation import GENERATORS, GenerationChunk, GenerationRequest, GenerationResult, Generator
from ml.metrics import accuracy, hit_at_k, macro_f1, mrr_at_k, ndcg_at_k, recall_at_k
from ml.packaged import resolve_model
from ml.prompts import Passage, approx_tokens, check_template, fence, fit_passages, render
from ml.search.common import VECTOR_STORES, Filter
from ml.search.hybrid import HybridHit, HybridSearcher
from ml.search.named import HybridIndex, IndexVersion, check_name, find_version, list_versions
from ml.text import clean_texts, strip_links
from ml.training import CLASSIFIER_TRAINERS, EMBEDDING_TRAINERS
from ml.training.classifier import ClassifierSpec, TrainResult
from ml.training.embedding import EmbeddingSpec, EmbeddingTrainResult, PairData
from ml.training.runner import Progress, SilentCallbacks, TqdmCallbacks, TrainingCallbacks

__all__ = [
    "ArtifactMeta",
    "Classifier",
    "ClassifierSpec",
    "Embedder",
    "EmbeddingSpec",
    "EmbeddingTrainResult",
    "Filter",
    "GenerationChunk",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "HybridHit",
    "HybridIndex",
    "IndexVersion",
    "LabelledTexts",
    "PairData",
    "Passage",
    "Prediction",
    "Progress",
    "SilentCallbacks",
    "TqdmCallbacks",
    "TrainResult",
    "TrainingCallbacks",
    "accuracy",
    "apply_thread_setting",
    "approx_tokens",
    "backend_candidates",
    "check_template",
    "choose_backend",
    "classifier",
    "classify",
    "default_generator_backend",
    "embed",
    "embedder",
    "fence",
    "fit_passages",
    "generate",
    "generator",
    "hit_at_k",
    "index_create",
    "index_load",
    "index_save",
    "index_versions",
    "load_banking77",
    "load_dataset",
    "load_phrasebank",
    "load_tfns",
    "macro_f1",
    "mrr_at_k",
    "ndcg_at_k",
    "new_version_dir",
    "read_meta",
    "recall_at_k",
    "render",
    "run_training",
    "stratified_sample",
    "stream",
    "strip_links",
    "train_classifier",
    "train_embedder",
    "update_artifact_meta",
    "update_artifact_metrics",
    "write_meta",
]

logger = logging.getLogger(__name__)
R = TypeVar("R")
Kind = Literal["embedding", "classifier", "generator", "index", "training"]


# --- choosing a backend: one pattern for every kind -------------------------------------------------------
def _auto_embedding(cfg: MLConfig, model: str) -> tuple[str, ...]:
    """int8 on CPU only when the stored quality gate for this model's export passed (see
    ml.embeddings.quality, written by benchmarks/bench_embeddings.py); otherwise fp32."""
    from ml.embeddings.quality import int8_gate_passed

    path = resolve_model(model or cfg.embed_model, default=cfg.embed_model)
    if cfg.device == "cpu" and int8_gate_passed(cfg.model_store, path):
        return ("onnx-int8", "torch-fp32")
    return ("torch-fp32",)


def _auto_classifier(cfg: MLConfig, _: str) -> tuple[str, ...]:
    """int8 on onnxruntime when it is installed, torch fp32 when it is not (or when int8 fails to load)."""
    if importlib.util.find_spec("onnxruntime") is None:
        _warn_once("onnxruntime is not installed: classifiers run on torch-fp32")
        return ("torch-fp32",)
    return ("onnx-int8", "torch-fp32")


def _auto_generator(cfg: MLConfig, _: str) -> tuple[str, ...]:
    """llama.cpp on the GGUF weights on a CPU (see ml.generation.gguf) unless a setting needs transformers
    (an HF model, a LoRA adapter, a dtype or 8/4-bit quantization, a GPU), or llama-cpp-python is not
    installed; then "local"."""
    if (
        cfg.generator_needs_transformers
        or cfg.device != "cpu"
        or importlib.util.find_spec("llama_cpp") is None
    ):
        return ("local",)
    return ("llama-cpp", "local")


def _auto_index(cfg: MLConfig, _: str) -> tuple[str, ...]:
    """FAISS (exact up to 10k vectors, HNSW above), plain numpy exact search when FAISS is missing."""
    return ("faiss", "numpy")


@dataclass(frozen=True)
class _BackendKind:
    configured: Callable[[MLConfig], str]  # the kind's setting ("auto" unless the environment names one)
    auto: Callable[
        [MLConfig, str], tuple[str, ...]
    ]  # (settings, model or artifact) -> candidates, best first


_KINDS: dict[str, _BackendKind] = {
    "embedding": _BackendKind(lambda cfg: cfg.embed_backend, _auto_embedding),
    "classifier": _BackendKind(lambda cfg: cfg.classifier_backend, _auto_classifier),
    "generator": _BackendKind(lambda cfg: cfg.generator_backend, _auto_generator),
    "index": _BackendKind(lambda cfg: cfg.index_backend, _auto_index),
    "training": _BackendKind(lambda cfg: "torch", lambda cfg, _: ("torch",)),
}
_FAILED: set[tuple[str, str, str]] = set()  # (kind, backend, model or artifact) that failed in this process
_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


def backend_candidates(
    kind: Kind, backend: str | None = None, *, model: str | None = None
) -> tuple[str, ...]:
    """The backends a call for `kind` would try, best first (see the module docstring for the order).

    `model` is the embedding model (or classifier artifact) the choice is for: the embedder's `auto` depends
    on the quality gate of that model's int8 export.
    """
    try:
        choice = _KINDS[kind]
    except KeyError:
        raise InvalidInput(f"unknown backend kind {kind!r}; known: {', '.join(sorted(_KINDS))}") from None
    cfg = load_config()
    if backend and backend != "auto":
        return (backend,)
    if cfg.fake:
        return ("fake",)
    name = backend or choice.configured(cfg)
    return choice.auto(cfg, model or "") if name == "auto" else (name,)


def choose_backend(kind: Kind, backend: str | None = None, *, model: str | None = None) -> str:
    """The backend a call for `kind` would use first now: `backend_candidates` less those that failed here."""
    names = backend_candidates(kind, backend, model=model)
    key = model or ""
    return next((n for n in names if (kind, n, key) not in _FAILED), names[-1])


def _first_working(kind: str, names: Sequence[str], key: str, attempt: Callable[[str], R]) -> R:
    """`attempt(name)` for the first candidate that works; the last one's error is the caller's."""
    untried = [n for n in names if (kind, n, key) not in _FAILED] or list(names[-1:])
    for position, name in enumerate(untried[:-1]):
        try:
            return attempt(name)
        except InvalidInput:
            raise  # bad input fails on every backend alike
        except (MLError, ImportError, KeyError) as exc:
            _FAILED.add((kind, name, key))
            logger.warning(
                "%s backend %s is unavailable (%s); using %s", kind, name, exc, untried[position + 1]
            )
    return attempt(untried[-1])


def default_generator_backend() -> str:
    """What `auto` picks for generation here: "llama-cpp" on a CPU with llama-cpp-python installed and no
    setting that needs transformers, else "local"."""
    return _auto_generator(load_config(), "")[0]


# --- embeddings -----------------------------------------------------------------------------------------
def embedder(backend: str | None = None, model: str | None = None) -> Embedder:
    """The embedder for `backend` and `model` (defaults: the backend choice above, ML_EMBED_MODEL), cached
    per process."""
    cfg = load_config()
    name_or_path = model or cfg.embed_model

    def load(name: str) -> Embedder:
        path = name_or_path if name == "fake" else resolve_model(name_or_path, default=cfg.embed_model)
        return MODELS.get(
            ("embedding", name, path, cfg.device),
            lambda: EMBEDDERS.create(name, model_path=path, device=cfg.device, store=cfg.model_store),
        )

    names = backend_candidates("embedding", backend, model=name_or_path)
    return _first_working("embedding", names, name_or_path, load)


def embed(texts: Sequence[object], *, backend: str | None = None, model: str | None = None) -> np.ndarray:
    """384-d (for MiniLM) L2-normalised float32 vectors for `texts`; bytes are decoded, huge texts truncated."""
    return embedder(backend, model).encode(clean_texts(texts))


# --- classification -------------------------------------------------------------------------------------
def _classifier_artifact(artifact_dir: str | Path, backend: str | None) -> tuple[Path, int, tuple[str, ...]]:
    """The artifact's path, its meta.json stamp (the cache key's version) and the backends to try.

    An artifact the fake trainer wrote has no weights: only the fake backend can serve it, whatever was asked.
    """
    path = Path(artifact_dir)
    meta = read_meta(path)  # fails with the path named when the directory is missing or corrupt
    if meta.kind != "sequence-classifier":
        raise ArtifactError(f"{path} holds a {meta.kind!r} artifact, not a sequence classifier")
    names = ("fake",) if meta.base_model == "fake" else backend_candidates("classifier", backend)
    return path, (path / "meta.json").stat().st_mtime_ns, names


def _load_classifier(name: str, path: Path, stamp: int) -> Classifier:
    cfg = load_config()
    return MODELS.get(
        ("classifier", name, str(path.resolve()), stamp, cfg.device),
        lambda: CLASSIFIERS.create(name, artifact_dir=path, device=cfg.device, store=cfg.model_store),
    )


def classifier(artifact_dir: str | Path, *, backend: str | None = None) -> Classifier:
    """A loaded classifier for a model version's artifact directory, cached per process.

    `backend`: "onnx-int8", "torch-fp32" or "fake"; None or "auto" chooses (ML_CLASSIFIER_BACKEND, default
    auto: int8 when onnxruntime is installed and the model loads on it, else fp32 with a logged warning).
    """
    path, stamp, names = _classifier_artifact(artifact_dir, backend)
    return _first_working("classifier", names, str(path), lambda name: _load_classifier(name, path, stamp))


def classify(
    artifact_dir: str | Path, texts: Sequence[object], *, backend: str | None = None
) -> list[Prediction]:
    """Calibrated class probabilities for each text, from the backend `classifier` describes (a backend
    that fails while loading or predicting hands over to the next candidate)."""
    cleaned = clean_texts(texts)
    path, stamp, names = _classifier_artifact(artifact_dir, backend)

    def predict(name: str) -> list[Prediction]:
        model = _load_classifier(name, path, stamp)
        return to_predictions(model.labels, model.predict_proba(cleaned))

    return _first_working("classifier", names, str(path), predict)


# --- generation -----------------------------------------------------------------------------------------
def generator(backend: str | None = None) -> Generator:
    """The text generator for `backend` ("llama-cpp", "local", "openai" or "fake"; None or "auto" chooses:
    ML_GENERATOR_BACKEND, default auto, see `default_generator_backend`).

    Weights load once per process; the model, adapter, dtype and quantization come from the ML_GENERATOR_*
    settings (see `ml.generation.local` and `ml.generation.gguf`), the HTTP backend's URL and key likewise.
    """
    device = load_config().device
    names = backend_candidates("generator", backend)
    return _first_working("generator", names, "", lambda name: GENERATORS.create(name, device=device))


def generate(request: GenerationRequest, backend: str | None = None) -> GenerationResult:
    """The whole answer to `request`, with its finish reason, timings and the model that wrote it."""
    return generator(backend).generate(request)


def stream(request: GenerationRequest, backend: str | None = None) -> Iterator[GenerationChunk]:
    """Text deltas of the answer as they are generated; the last chunk carries the finish reason and result."""
    return generator(backend).stream(request)


# --- training -------------------------------------------------------------------------------------------
def train_classifier(
    spec: ClassifierSpec,
    out_dir: str | Path,
    callbacks: TrainingCallbacks | None = None,
    *,
    backend: str | None = None,
) -> TrainResult:
    """Train a classifier version into `out_dir` (weights, tokenizer, meta.json; see
    `ml.training.classifier`). With ML_BACKEND=fake (or backend="fake") a tiny artifact is written at once."""
    name = choose_backend("training", backend)
    return CLASSIFIER_TRAINERS.create(
        name, spec=spec, out_dir=Path(out_dir), callbacks=callbacks or SilentCallbacks()
    )


def run_training(spec: ClassifierSpec, out_dir: str | Path, callbacks: TrainingCallbacks) -> TrainResult:
    """`train_classifier` under the name the jobs call."""
    return train_classifier(spec, out_dir, callbacks)


def train_embedder(
    spec: EmbeddingSpec,
    out_dir: str | Path,
    callbacks: TrainingCallbacks | None = None,
    *,
    backend: str | None = None,
) -> EmbeddingTrainResult:
    """Fine-tune the sentence encoder on (query, passage) pairs into `out_dir` and score retrieval on a
    held-aside split before and after (see `ml.training.embedding`); fake as `train_classifier` is."""
    name = choose_backend("training", backend)
    return EMBEDDING_TRAINERS.create(
        name, spec=spec, out_dir=Path(out_dir), callbacks=callbacks or SilentCallbacks()
    )


def apply_thread_setting() -> int:
    """Cap torch's threads at ML_THREADS in this process (when set): on a busy small machine one thread
    trains several times faster than two fighting over the cores. Returns the cap applied, 0 for none (not
    set, the fake backend, or torch not installed); torch is imported only when there is a cap to apply."""
    cfg = load_config()
    if not cfg.threads or cfg.fake or importlib.util.find_spec("torch") is None:
        return 0
    import torch

    torch.set_num_threads(cfg.threads)
    return cfg.threads


# --- artifacts ------------------------------------------------------------------------------------------
def update_artifact_meta(artifact_dir: str | Path, **fields: object) -> ArtifactMeta:
    """Replace fields of a complete artifact's meta.json (metrics, hyperparameters, labels, ...), each
    validated (InvalidInput), written atomically; returns the new meta."""
    return update_meta(artifact_dir, **fields)


def update_artifact_metrics(artifact_dir: str | Path, metrics: Mapping[str, Any]) -> ArtifactMeta:
    """Merge `metrics` into the artifact's recorded metrics (a key given replaces the stored one) and write
    meta.json back atomically; returns the new meta."""
    if not isinstance(metrics, Mapping):
        raise InvalidInput(f"metrics must be a dict, got {type(metrics).__name__}")
    meta = read_meta(artifact_dir)
    return update_meta(artifact_dir, metrics={**meta.metrics, **metrics})


# --- named, versioned hybrid indexes --------------------------------------------------------------------
class _CachedEmbedder:
    """An embedder looked up in the model cache on every call, so a cached index never pins a second copy
    of a model the cache has let go."""

    def __init__(self, backend: str | None, model: str) -> None:
        first = embedder(backend, model)
        self.name, self.dimension, self.model = first.name, first.dimension, model

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return embedder(self.name, self.model).encode(texts, batch_size)


def _store(store: str | Path | None) -> Path:
    return Path(store) if store is not None else load_config().model_store


def index_create(
    name: str,
    *,
    embed_model: str | None = None,
    fusion: str = "rrf",
    weights: tuple[float, float] = (1.0, 1.0),
    backend: str | None = None,
) -> HybridIndex:
    """A new, empty hybrid index (dense vectors fused with BM25) called `name` (letters, digits, - and _).

    `embed_model` defaults to ML_EMBED_MODEL; `fusion` is "rrf" (reciprocal rank fusion) or "weighted"
    (min-max normalised scores, `weights` = (dense, lexical)); `backend` is the vector store, "faiss",
    "numpy" or "fake" (numpy with the fake embedder), chosen like any backend when None. Nothing is written
    until `index_save`.
    """
    check_name(name)
    model = embed_model or load_config().embed_model

    def build(store_name: str) -> HybridIndex:
        emb = _CachedEmbedder("fake" if store_name == "fake" else None, model)
        vectors = VECTOR_STORES.create(store_name, dimension=emb.dimension, model=model)
        searcher = HybridSearcher(emb, vectors, fusion=fusion, weights=weights)
        return HybridIndex(name, searcher, embed_backend=emb.name, embed_model=model)

    return _first_working("index", backend_candidates("index", backend), "", build)


def index_save(index: HybridIndex, *, store: str | Path | None = None) -> IndexVersion:
    """Save `index` as a new version directory `MODEL_STORE/indexes/<name>/<version>/` (meta.json last) and
    return that version; earlier versions stay as they were."""
    if not isinstance(index, HybridIndex):
        raise InvalidInput(f"expected an index from index_create or index_load, got {type(index).__name__}")
    return index.save_to(_store(store))


def index_versions(name: str, *, store: str | Path | None = None) -> list[IndexVersion]:
    """The saved versions of index `name`, oldest first (an empty list when none was saved)."""
    return list_versions(_store(store), name)


def _index_embedder(found: IndexVersion) -> _CachedEmbedder:
    """The embedder to query a saved index with: the kind that built its vectors."""
    if found.embed_backend == "fake":
        return _CachedEmbedder("fake", found.embed_model)
    emb = _CachedEmbedder(None, found.embed_model)
    if emb.name == "fake":
        raise ArtifactError(
            f"{found.path} holds vectors of the real {found.embed_model} embedder; the fake one "
            "(ML_BACKEND=fake) cannot search it"
        )
    return emb


def index_load(name: str, version: str | None = None, *, store: str | Path | None = None) -> HybridIndex:
    """The saved `version` of index `name` (None: the latest), loaded once per process and shared; a handle
    takes its own copy on its first add or delete. A bad name or version string raises InvalidInput, a
    version that does not exist ArtifactError."""
    found = find_version(_store(store), name, version)
    emb = _index_embedder(found)
    stamp = (found.path / "meta.json").stat().st_mtime_ns
    searcher = INDEXES.get(
        ("index", str(found.path.resolve()), stamp, emb.name, found.embed_model),
        lambda: HybridSearcher.load(found.path, emb),
    )
    return HybridIndex(
        name,
        searcher,
        embed_backend=found.embed_backend or emb.name,
        embed_model=found.embed_model,
        version=found,
        shared=True,
    )
