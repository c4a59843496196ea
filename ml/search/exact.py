"""Exact dense search in plain numpy: the same surface as the FAISS `VectorIndex`, without FAISS.

Every search is a matrix product over all live vectors, so it suits small indexes (a few thousand items) and
the fake backend, which must not import FAISS. Vectors are L2-normalised on the way in, scores are cosine
similarities, ties go to the item added first, and filters never return an item that fails them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.artifacts import ArtifactMeta, write_meta
from ml.errors import ArtifactError, InvalidInput
from ml.search.common import (
    Filter,
    Hit,
    Metadata,
    as_unit_matrix,
    check_ids,
    check_k,
    check_metadata,
    checksums,
    compile_filter,
    open_artifact,
    read_json,
    write_json,
)

KIND = "exact-vector-index"
VECTORS_FILE = "vectors.npy"
ITEMS_FILE = "items.json"


class NumpyVectorIndex:
    """Exact inner-product search over L2-normalised float32 vectors with string ids, metadata and filters."""

    backend = "numpy"

    def __init__(self, dimension: int, *, model: str = "") -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension <= 0:
            raise InvalidInput(f"dimension must be a positive integer, got {dimension!r}")
        self.dimension = dimension
        self.model = model
        self._ids: list[str] = []
        self._meta: list[Metadata] = []
        self._vectors = np.zeros((0, dimension), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._ids

    def add(
        self, ids: Sequence[str], vectors: object, metadata: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        """Add items; an id already present is replaced (and moves to the end, like a new one)."""
        ids = check_ids(ids)
        x = as_unit_matrix(vectors, self.dimension, "vectors")
        if len(x) != len(ids):
            raise InvalidInput(f"got {len(ids)} ids but {len(x)} vectors")
        metas = check_metadata(metadata, len(ids))
        if not ids:
            return
        self.delete(ids)
        self._ids += ids
        self._meta += metas
        self._vectors = np.concatenate([self._vectors, x])

    def delete(self, ids: Sequence[str]) -> int:
        """Remove items by id; unknown ids are ignored. Returns how many were removed."""
        gone = set(check_ids(ids)) & set(self._ids)
        if not gone:
            return 0
        keep = [i for i, item_id in enumerate(self._ids) if item_id not in gone]
        self._ids = [self._ids[i] for i in keep]
        self._meta = [self._meta[i] for i in keep]
        self._vectors = self._vectors[keep]
        return len(gone)

    def search(self, queries: object, k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """The k most similar items for each query row (a 1-d query counts as one row), best first."""
        q = as_unit_matrix(queries, self.dimension, "queries")
        k = check_k(k)
        predicate = compile_filter(filter)
        allowed = np.arange(len(self._ids))
        if predicate is not None:
            allowed = np.array([i for i in allowed.tolist() if predicate(self._meta[i])], dtype=np.int64)
        if not len(allowed):
            return [[] for _ in range(len(q))]
        scores = q @ self._vectors[allowed].T
        out = []
        for row in scores:
            order = np.lexsort((allowed, -row))[:k]  # best score first, then the item added first
            out.append([self._hit(int(allowed[j]), float(row[j])) for j in order.tolist()])
        return out

    def _hit(self, position: int, score: float) -> Hit:
        return Hit(self._ids[position], score, dict(self._meta[position]))

    def save(self, directory: Path | str, *, task: str = KIND) -> Path:
        """Write the vectors and items into `directory`; meta.json is written last."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        with (path / VECTORS_FILE).open("wb") as fh:
            np.save(fh, self._vectors, allow_pickle=False)
        write_json(path / ITEMS_FILE, {"items": [[i, m] for i, m in zip(self._ids, self._meta, strict=True)]})
        write_meta(
            path,
            ArtifactMeta(
                task=task,
                kind=KIND,
                base_model=self.model,
                data=checksums(path, [VECTORS_FILE, ITEMS_FILE]),
                hyperparameters={"dimension": self.dimension},
                metrics={"size": len(self)},
            ),
        )
        return path

    @classmethod
    def load(cls, directory: Path | str) -> NumpyVectorIndex:
        """Load a saved index; a missing, incomplete or corrupt directory raises ArtifactError naming it."""
        path, meta = open_artifact(directory, KIND)
        raw = read_json(path / ITEMS_FILE)
        try:
            index = cls(int(meta.hyperparameters["dimension"]), model=meta.base_model)
            vectors = np.load(path / VECTORS_FILE, allow_pickle=False)
            items = [(str(item_id), dict(item_meta)) for item_id, item_meta in raw["items"]]
        except (KeyError, TypeError, ValueError, OSError, InvalidInput) as exc:
            raise ArtifactError(f"{path} holds a malformed vector index: {exc}") from None
        if vectors.shape != (len(items), index.dimension):
            raise ArtifactError(f"{path / VECTORS_FILE} does not match {path / ITEMS_FILE}")
        index._ids = [item_id for item_id, _ in items]
        index._meta = [item_meta for _, item_meta in items]
        index._vectors = vectors.astype(np.float32)
        return index
