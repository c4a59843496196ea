"""Retrieval for support answers: hybrid search over a knowledge base's passages, grouped by document (pure).

No ORM here: the caller hands in an `ml.api` hybrid index (one per knowledge base, its passages written with
`passage_text` / `passage_metadata`) and gets back `Candidate` documents, best first, each with the features
the decision in `apps.support.answering` reads. The widget, the inbox and `manage.py support_eval` all go
through `retrieve`, so what is evaluated is what is served.

How a document is scored. The index returns its fused dense + BM25 passages; each carries its cosine
similarity and BM25 score, and here they are fused again by fixed weights (`DENSE_WEIGHT`, `LEXICAL_WEIGHT`:
min-max normalised scores, as `ml.search.fusion.weighted_fusion` does), so the ranking and the calibrated
confidence do not depend on the fusion the index was created with. A document's score is its best passage's
(max, not sum: a thread with twenty answers must not beat the one with the right two). Weighted fusion with a
small lexical weight beat reciprocal rank fusion by 3-7 points of hit@1 on StackFAQ (docs/support.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from apps.support.passages import PASSAGE, QA, passage_metadata, passage_text

__all__ = [
    "PASSAGE",
    "QA",
    "Candidate",
    "PassageHit",
    "group_by_document",
    "passage_metadata",
    "passage_text",
    "retrieve",
]

# Chosen on the tuning half of the StackFAQ queries among lexical weights 0, 0.05, 0.1, 0.2 (and RRF);
# docs/support.md has the grid.
DENSE_WEIGHT = 1.0
LEXICAL_WEIGHT = 0.1
# Passages asked of the index per query: the dense and the BM25 lists are each this deep (the searcher's
# default candidate depth), so a document needs only one good passage in either list to be seen.
PASSAGE_DEPTH = 50
PUBLIC = "public"


class Searchable(Protocol):
    """What `retrieve` needs of an index: `ml.api.HybridIndex.search`."""

    def search(self, query: object, k: int = ..., filter: Any = ...) -> Sequence[Any]: ...


@dataclass(frozen=True)
class PassageHit:
    """One retrieved passage: its index id, kind and heading, and its scores (cosine None when only BM25
    found it; BM25 None when only the dense list did)."""

    id: str
    document: int
    kind: str
    title: str
    heading: str
    fused: float
    cosine: float | None
    bm25: float | None


@dataclass(frozen=True)
class Candidate:
    """A document that answers the query, with the features the decision uses.

    cosine: the best dense cosine among its passages; margin: cosine minus the next document's;
    fused: its best passage's fused score (0-1 dense, plus up to LEXICAL_WEIGHT lexical); fused_margin: to the
    next document; lexical: its best BM25 score over the best BM25 score of the whole result (0-1, lexical
    agreement with the dense side). passages: best first.
    """

    document: int
    title: str
    fused: float
    cosine: float
    margin: float
    fused_margin: float
    lexical: float
    passages: tuple[PassageHit, ...]

    @property
    def best(self) -> PassageHit:
        return self.passages[0]


def _normalised(values: dict[str, float]) -> dict[str, float]:
    if not values:
        return {}
    low, high = min(values.values()), max(values.values())
    return {key: (v - low) / (high - low) if high > low else 1.0 for key, v in values.items()}


def fuse(hits: Sequence[Any]) -> list[PassageHit]:
    """Passages from `ml.api` hybrid hits, scored by the weighted fusion above, best first."""
    cosine = {h.id: float(h.dense_score) for h in hits if h.dense_score is not None}
    bm25 = {h.id: float(h.lexical_score) for h in hits if h.lexical_score is not None}
    dense_n, lexical_n = _normalised(cosine), _normalised(bm25)
    out = []
    for h in hits:
        meta = h.metadata
        score = DENSE_WEIGHT * dense_n.get(h.id, 0.0) + LEXICAL_WEIGHT * lexical_n.get(h.id, 0.0)
        out.append(
            PassageHit(
                id=h.id,
                document=int(meta["document"]),
                kind=str(meta.get("kind", PASSAGE)),
                title=str(meta.get("title", "")),
                heading=str(meta.get("heading", "")),
                fused=score,
                cosine=cosine.get(h.id),
                bm25=bm25.get(h.id),
            )
        )
    out.sort(key=lambda p: -p.fused)  # stable: ties keep the index's order
    return out


def group_by_document(passages: Sequence[PassageHit], k: int) -> list[Candidate]:
    """The k best documents, each scored by its best passage, with margins to the next document."""
    groups: dict[int, list[PassageHit]] = {}
    for p in sorted(passages, key=lambda p: -p.fused):
        groups.setdefault(p.document, []).append(p)
    top_bm25 = max((p.bm25 for p in passages if p.bm25 is not None), default=0.0)
    rows = []
    for doc, group in groups.items():
        best_cos = max((p.cosine for p in group if p.cosine is not None), default=0.0)
        best_bm25 = max((p.bm25 for p in group if p.bm25 is not None), default=0.0)
        lexical = best_bm25 / top_bm25 if top_bm25 > 0 else 0.0
        rows.append((doc, group, group[0].fused, best_cos, lexical))
    out = []
    for i, (doc, group, fused, cos, lexical) in enumerate(rows[:k]):
        next_fused, next_cos = (rows[i + 1][2], rows[i + 1][3]) if i + 1 < len(rows) else (0.0, 0.0)
        out.append(
            Candidate(
                document=doc,
                title=group[0].title,
                fused=fused,
                cosine=cos,
                margin=cos - next_cos,
                fused_margin=fused - next_fused,
                lexical=lexical,
                passages=tuple(group),
            )
        )
    return out


def _allowed(public_only: bool) -> Any:
    return {"visibility": PUBLIC} if public_only else None


def retrieve(index: Searchable, query: str, *, public_only: bool, k: int) -> list[Candidate]:
    """The k best documents of `index` for `query`, best first.

    public_only (the widget): only passages whose metadata says visibility "public" are searched, in the dense
    and the BM25 list alike, and any other that came back would be dropped here as well.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if not query.strip():
        return []
    hits = index.search(query, max(PASSAGE_DEPTH, k), _allowed(public_only))
    if public_only:  # the filter already did this; a second lock on the door that matters most
        hits = [h for h in hits if h.metadata.get("visibility") == PUBLIC]
    return group_by_document(fuse(hits), k)
