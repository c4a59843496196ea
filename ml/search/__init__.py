"""Retrieval: FAISS (or plain numpy) vector search, BM25 lexical search and rank fusion; FAISS and bm25s load on
first use. Named, versioned hybrid indexes for apps live in `ml.search.named` (through `ml.api.index_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ml.artifacts import new_version_dir
from ml.search.common import Filter, Hit
from ml.search.fusion import Fused, reciprocal_rank_fusion, weighted_fusion
from ml.search.lexical import BM25Index
from ml.search.vector import VectorIndex

__all__ = [
    "BM25Index",
    "Filter",
    "Fused",
    "Hit",
    "VectorIndex",
    "reciprocal_rank_fusion",
    "save_version",
    "weighted_fusion",
]


class _Saveable(Protocol):
    def save(self, directory: Path | str, *, task: str = ...) -> Path: ...


def save_version(index: _Saveable, store: Path, task: str) -> Path:
    """Save `index` as a new version directory of `task` under the model store and return that directory."""
    return index.save(new_version_dir(store, task), task=task)
