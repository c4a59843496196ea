"""Fusing several ranked lists (dense, lexical, ...) into one: reciprocal rank fusion or weighted scores."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ml.errors import InvalidInput

RRF_K = 60


class Scored(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class Fused:
    """An id in the fused ranking: fused score and 1-based rank in each input list (None if absent)."""

    id: str
    score: float
    ranks: tuple[int | None, ...]


def _weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    out = [float(w) for w in weights]
    if len(out) != n:
        raise InvalidInput(f"got {n} rankings but {len(out)} weights")
    if any(not math.isfinite(w) or w < 0 for w in out) or not any(out):
        raise InvalidInput(f"weights must be finite, non-negative and not all zero, got {out}")
    return out


def _ranks(rankings: Sequence[Sequence[str]]) -> dict[str, list[int | None]]:
    """For each id, its 1-based rank in each list (first occurrence wins), in order of first appearance."""
    table: dict[str, list[int | None]] = {}
    for li, ranking in enumerate(rankings):
        if isinstance(ranking, str):
            raise InvalidInput("each ranking must be a list of ids, got a single string")
        for pos, item in enumerate(ranking, start=1):
            row = table.setdefault(item, [None] * len(rankings))
            if row[li] is None:
                row[li] = pos
    return table


def _ordered(scores: dict[str, float], table: dict[str, list[int | None]], limit: int | None) -> list[Fused]:
    # Ties keep the order of first appearance (lists in the order given, best rank first): fusion is stable.
    first_seen = {item: i for i, item in enumerate(table)}
    order = sorted(scores, key=lambda item: (-scores[item], first_seen[item]))
    if limit is not None:
        if limit <= 0:
            raise InvalidInput(f"limit must be positive, got {limit}")
        order = order[:limit]
    return [Fused(item, scores[item], tuple(table[item])) for item in order]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]],
    *,
    k: int = RRF_K,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[Fused]:
    """Score each id by sum over lists of weight / (k + rank) (Cormack et al., 2009), best first."""
    if k < 0:
        raise InvalidInput(f"RRF k must be >= 0, got {k}")
    w = _weights(weights, len(rankings))
    table = _ranks(rankings)
    scores = {
        item: sum(wi / (k + r) for wi, r in zip(w, ranks, strict=True) if r is not None)
        for item, ranks in table.items()
    }
    return _ordered(scores, table, limit)


def weighted_fusion(
    results: Sequence[Sequence[Scored]],
    *,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[Fused]:
    """Score each id by the weighted sum of its min-max normalised scores (0 where a list lacks it).

    Normalising per list puts cosine similarities and unbounded BM25 scores on one [0, 1] scale; a list whose
    scores are all equal gives each of its items 1.
    """
    w = _weights(weights, len(results))
    table = _ranks([[hit.id for hit in hits] for hits in results])
    scores = dict.fromkeys(table, 0.0)
    for wi, hits in zip(w, results, strict=True):
        values = [float(hit.score) for hit in hits]
        if any(not math.isfinite(v) for v in values):
            raise InvalidInput("scores must be finite")
        if not values:
            continue
        low, high = min(values), max(values)
        seen: set[str] = set()
        for hit, value in zip(hits, values, strict=True):
            if hit.id in seen:
                continue
            seen.add(hit.id)
            scores[hit.id] += wi * ((value - low) / (high - low) if high > low else 1.0)
    return _ordered(scores, table, limit)
