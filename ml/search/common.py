"""What the vector and lexical indexes share: result type, metadata filters, input checks, artifact files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ml.artifacts import ArtifactMeta, read_meta, sha256_file
from ml.errors import ArtifactError, InvalidInput
from ml.registry import Registry

Metadata = dict[str, Any]
# A filter is a predicate over an item's metadata, or a dict whose every key must equal the item's value.
Filter = Callable[[Mapping[str, Any]], bool] | Mapping[str, Any]


@dataclass(frozen=True)
class Hit:
    """One search result: the caller's id, a score (higher is better) and a copy of the item's metadata."""

    id: str
    score: float
    metadata: Metadata = field(default_factory=dict, compare=False)


class VectorStore(Protocol):
    """What a hybrid searcher needs from its dense index (FAISS's `VectorIndex`, numpy's `NumpyVectorIndex`)."""

    backend: str  # the name it is registered under in VECTOR_STORES, recorded in a saved hybrid index
    dimension: int
    model: str

    def __len__(self) -> int: ...

    def add(
        self, ids: Sequence[str], vectors: object, metadata: Sequence[Mapping[str, Any]] | None = None
    ) -> None: ...

    def delete(self, ids: Sequence[str]) -> int: ...

    def search(self, queries: object, k: int, filter: Filter | None = None) -> list[list[Hit]]: ...

    def save(self, directory: Path | str, *, task: str = ...) -> Path: ...


# Each entry is a class: called with (dimension, model=...) for a new index, `.load(directory)` for a saved one.
VECTOR_STORES: Registry[VectorStore] = Registry(
    "vector store",
    {
        "faiss": "ml.search.vector:VectorIndex",
        "numpy": "ml.search.exact:NumpyVectorIndex",
        "fake": "ml.search.exact:NumpyVectorIndex",  # the fake backend's index: no FAISS, fake embedder
    },
)


def compile_filter(where: Filter | None) -> Callable[[Mapping[str, Any]], bool] | None:
    """A predicate for `where`: a callable is used as is; a dict means equality on every key it names."""
    if where is None:
        return None
    if isinstance(where, Mapping):
        wanted = dict(where)
        missing = object()
        return lambda meta: all(meta.get(key, missing) == value for key, value in wanted.items())
    if callable(where):
        return where
    raise InvalidInput(f"filter must be a callable or a dict of metadata values, got {type(where).__name__}")


def as_unit_matrix(values: object, dimension: int, what: str) -> np.ndarray:
    """A C-contiguous float32 (n, dimension) copy, L2-normalised; NaN, inf and zero rows are refused."""
    try:
        x = np.array(values, dtype=np.float32, copy=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} must be numeric arrays: {exc}") from None
    if x.ndim == 1:
        x = x.reshape(0, dimension) if x.size == 0 else x[None, :]
    if x.ndim != 2 or x.shape[1] != dimension:
        raise InvalidInput(f"{what} must have shape (n, {dimension}), got {x.shape}")
    if not np.isfinite(x).all():
        raise InvalidInput(f"{what} contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidInput(f"{what} contain an all-zero vector, which has no direction")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidInput(f"k must be a positive integer, got {k!r}")
    return k


def check_ids(ids: Sequence[str]) -> list[str]:
    """Ids as a list of distinct, non-empty strings (a bare string is refused)."""
    if isinstance(ids, str | bytes):
        raise InvalidInput("ids must be a list of strings, got a single string")
    out = list(ids)
    bad = [i for i in out if not isinstance(i, str) or not i]
    if bad:
        raise InvalidInput(f"ids must be non-empty strings, got {bad[0]!r}")
    seen: set[str] = set()
    for i in out:
        if i in seen:
            raise InvalidInput(f"id {i!r} appears twice in one call")
        seen.add(i)
    return out


def check_metadata(metadata: Sequence[Mapping[str, Any]] | None, n: int) -> list[Metadata]:
    """JSON-safe dicts, one per item, copied by a JSON round trip so the caller's later changes stay out."""
    if metadata is None:
        return [{} for _ in range(n)]
    items = list(metadata)
    if len(items) != n:
        raise InvalidInput(f"got {n} items but {len(items)} metadata dicts")
    out = []
    for meta in items:
        if not isinstance(meta, Mapping):
            raise InvalidInput(f"metadata must be dicts, got {type(meta).__name__}")
        try:
            copy = json.loads(json.dumps(dict(meta), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"metadata must be JSON-serialisable: {exc}") from None
        out.append(copy)
    return out


def write_json(path: Path, payload: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)


def checksums(directory: Path, names: Iterable[str]) -> dict[str, str]:
    return {name: sha256_file(directory / name) for name in names}


def open_artifact(directory: Path | str, kind: str) -> tuple[Path, ArtifactMeta]:
    """Read meta.json, check the kind and each file's sha256; problems raise ArtifactError naming the path."""
    path = Path(directory)
    meta = read_meta(path)
    if meta.kind != kind:
        raise ArtifactError(f"{path} holds a {meta.kind!r} artifact, not a {kind!r}")
    if not meta.data:
        raise ArtifactError(f"{path / 'meta.json'} lists no files")
    for name, digest in meta.data.items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{file} is missing: {path} is not a complete {kind}")
        if sha256_file(file) != digest:
            raise ArtifactError(f"{file} does not match its sha256 in meta.json: {path} is corrupt")
    return path, meta


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not readable JSON: {exc}") from None
