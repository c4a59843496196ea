"""Hybrid retrieval: dense vectors (an embedder and a VectorIndex) and BM25, fused into one ranking."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.artifacts import ArtifactMeta, write_meta
from ml.embeddings import Embedder
from ml.errors import ArtifactError, InvalidInput
from ml.search.common import (
    VECTOR_STORES,
    Filter,
    Hit,
    Metadata,
    VectorStore,
    check_ids,
    check_k,
    checksums,
    open_artifact,
)
from ml.search.fusion import Fused, reciprocal_rank_fusion, weighted_fusion
from ml.search.lexical import BM25Index
from ml.search.vector import VectorIndex
from ml.text import clean_text, clean_texts

KIND = "hybrid-index"
_FUSERS: dict[str, Callable[[list[list[Hit]], Sequence[float]], list[Fused]]] = {
    "rrf": lambda lists, w: reciprocal_rank_fusion([[h.id for h in hits] for hits in lists], weights=w),
    "weighted": lambda lists, w: weighted_fusion(lists, weights=w),
}


@dataclass(frozen=True)
class HybridHit:
    """A fused result with the 1-based rank it had in the dense and in the lexical list (None if absent),
    and its score there: the cosine similarity to the query and the BM25 score (None if absent)."""

    id: str
    score: float
    metadata: Metadata
    dense_rank: int | None
    lexical_rank: int | None
    dense_score: float | None = None
    lexical_score: float | None = None


class HybridSearcher:
    """Keeps a VectorIndex and a BM25Index in step and fuses their rankings (RRF by default)."""

    def __init__(
        self,
        embedder: Embedder,
        vectors: VectorStore | None = None,
        lexical: BM25Index | None = None,
        *,
        fusion: str = "rrf",
        weights: Sequence[float] = (1.0, 1.0),
        candidates: int = 50,
    ) -> None:
        if fusion not in _FUSERS:
            raise InvalidInput(f"unknown fusion {fusion!r}; known: {', '.join(sorted(_FUSERS))}")
        if len(weights) != 2:
            raise InvalidInput("weights are (dense, lexical)")
        self.embedder = embedder
        self.vectors: VectorStore = vectors if vectors is not None else VectorIndex(embedder.dimension)
        if self.vectors.dimension != embedder.dimension:
            raise InvalidInput(
                f"the index holds {self.vectors.dimension}-d vectors, "
                f"the embedder makes {embedder.dimension}-d"
            )
        self.lexical = lexical if lexical is not None else BM25Index()
        self.fusion = fusion
        self.weights = tuple(float(w) for w in weights)
        self.candidates = check_k(candidates)

    def __len__(self) -> int:
        return len(self.vectors)

    def add(
        self, ids: Sequence[str], texts: Sequence[object], metadata: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        """Embed and index documents in both indexes; an id already present is replaced."""
        ids = check_ids(ids)
        cleaned = clean_texts(texts)
        if len(cleaned) != len(ids):
            raise InvalidInput(f"got {len(ids)} ids but {len(cleaned)} texts")
        if not ids:
            return
        self.vectors.add(ids, self.embedder.encode(cleaned), metadata)
        self.lexical.add(ids, cleaned, metadata)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove documents from both indexes; returns how many were removed."""
        removed = self.vectors.delete(ids)
        self.lexical.delete(ids)
        return removed

    def search(self, query: object, k: int, filter: Filter | None = None) -> list[HybridHit]:
        """The k best documents for `query` by fused dense and lexical rank, all passing `filter`."""
        k = check_k(k)
        text = clean_text(query)
        depth = max(k, self.candidates)
        dense = self.vectors.search(self.embedder.encode([text]), depth, filter)[0]
        lexical = self.lexical.search(text, depth, filter)
        meta = {hit.id: hit.metadata for hit in [*lexical, *dense]}
        cosine = {hit.id: hit.score for hit in dense}
        bm25 = {hit.id: hit.score for hit in lexical}
        fused = _FUSERS[self.fusion]([dense, lexical], self.weights)[:k]
        return [
            HybridHit(f.id, f.score, meta[f.id], f.ranks[0], f.ranks[1], cosine.get(f.id), bm25.get(f.id))
            for f in fused
        ]

    def save(
        self, directory: Path | str, *, task: str = KIND, extra: Mapping[str, Any] | None = None
    ) -> Path:
        """Save both indexes under `directory` (vector/ and lexical/) and a meta.json over them; `extra`
        (JSON-safe) joins the recorded hyperparameters, for what the caller needs to reopen the index."""
        path = Path(directory)
        self.vectors.save(path / "vector", task=task)
        self.lexical.save(path / "lexical", task=task)
        write_meta(
            path,
            ArtifactMeta(
                task=task,
                kind=KIND,
                base_model=self.vectors.model,
                data=checksums(path, ["vector/meta.json", "lexical/meta.json"]),
                hyperparameters={
                    "fusion": self.fusion,
                    "weights": list(self.weights),
                    "candidates": self.candidates,
                    "vector_store": self.vectors.backend,
                    **(extra or {}),
                },
                metrics={"size": len(self)},
            ),
        )
        return path

    @classmethod
    def load(cls, directory: Path | str, embedder: Embedder) -> HybridSearcher:
        """Load a saved hybrid index; a bad directory raises ArtifactError naming the path."""
        path, meta = open_artifact(directory, KIND)
        # Indexes saved before there was a choice of store are FAISS ones.
        try:
            store: Any = VECTOR_STORES.resolve(str(meta.hyperparameters.get("vector_store", "faiss")))
        except InvalidInput as exc:
            raise ArtifactError(f"{path / 'meta.json'}: {exc}") from None
        vectors: VectorStore = store.load(path / "vector")
        lexical = BM25Index.load(path / "lexical")
        hp = meta.hyperparameters
        try:
            return cls(
                embedder,
                vectors,
                lexical,
                fusion=str(hp["fusion"]),
                weights=[float(w) for w in hp["weights"]],
                candidates=int(hp["candidates"]),
            )
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise ArtifactError(f"{path / 'meta.json'} has bad hyperparameters: {exc}") from None
