"""Series maths (no database): what scored items add to each bucket, EWMA baselines of a scope's buckets, and
z-scores against them.

Each scope (an entity, a topic, or "all") has a Bucket per hour and per day (apps/sentiment/services/series.py
stores them); each bucket carries a rolling EWMA baseline of the buckets before it.

Bucket.baseline (the contract with detection), a JSON object:

    {
      "alpha": 0.08,                         # EWMA weight of the newest observation
      "count":          {"ewma": float, "ewmvar": float, "n": int},
      "mean_score":     {"ewma": float, "ewmvar": float, "n": int},
      "negative_share": {"ewma": float, "ewmvar": float, "n": int},
      "positive_share": {"ewma": float, "ewmvar": float, "n": int},
      "gap": int                             # empty periods between the previous bucket and this one
    }

- The baseline of bucket t is computed from the buckets BEFORE t only, so t can be compared with it
  (`zscore`). `n` is how many observations the state has seen (0 for a scope's first bucket: no baseline).
- alpha = 2 / (span + 1) with span 24 periods for hours and 14 for days (ALPHA).
- The variance is the exponentially weighted variance (West/Finch incremental form):
  diff = x - ewma; ewma += alpha * diff; ewmvar = (1 - alpha) * (ewmvar + alpha * diff ** 2).
- Empty periods: for `count`, an hour (or day) with no items is an observation of 0 -- a quiet ticker's usual
  volume is low, and a burst after silence must stand out. Only buckets are stored, so the zeros between two
  buckets are folded in when the later baseline is computed (at most MAX_GAP_FOLD of them: by then the
  state has decayed to nothing). For `mean_score` and the shares an empty period carries no information
  about sentiment, so it is skipped (not a zero): they are averages over buckets that had items.
- Updated incrementally: scoring adds each batch's items to their buckets and recomputes the baselines of
  the touched scope from the earliest touched bucket forward (normally just the newest one or two; a late
  item for an old hour re-derives the later baselines, so they never go stale).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

GRANULARITIES = ("hour", "day")
PERIOD = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
SPAN = {"hour": 24, "day": 14}
ALPHA = {g: 2.0 / (SPAN[g] + 1) for g in GRANULARITIES}
STATS = ("count", "mean_score", "negative_share", "positive_share")
MAX_GAP_FOLD = 24 * 14
# Variance floors for z-scores, so a flat history does not turn a tiny move into a huge z.
VAR_FLOOR = {"mean_score": 0.1**2, "negative_share": 0.05**2, "positive_share": 0.05**2}


Scope = tuple[int | None, int | None]  # (entity_id, topic_id); (None, None) is "all"


@dataclass(frozen=True)
class ScoredItem:
    """What the series reads of a scored item."""

    published_at: datetime
    label: str
    score: float
    entity_ids: tuple[int, ...] = ()
    topic_ids: tuple[int, ...] = ()


@dataclass
class Delta:
    """What a batch adds to one bucket."""

    count: int = 0
    score_sum: float = 0.0
    negative: int = 0
    positive: int = 0


def item_scopes(item: ScoredItem) -> list[Scope]:
    """The scopes an item counts in: all, each of its entities, each of its topics (each once)."""
    return [
        (None, None),
        *((e, None) for e in dict.fromkeys(item.entity_ids)),
        *((None, t) for t in dict.fromkeys(item.topic_ids)),
    ]


def bucket_deltas(items: Iterable[ScoredItem]) -> dict[tuple[Scope, str, datetime], Delta]:
    """What `items` add to each (scope, granularity, bucket start)."""
    out: dict[tuple[Scope, str, datetime], Delta] = {}
    for item in items:
        scopes = item_scopes(item)
        for granularity in GRANULARITIES:
            start = floor_time(item.published_at, granularity)
            for scope in scopes:
                acc = out.setdefault((scope, granularity, start), Delta())
                acc.count += 1
                acc.score_sum += item.score
                acc.negative += item.label == "negative"
                acc.positive += item.label == "positive"
    return out


class Period(Protocol):
    """What the maths reads of a bucket (a Bucket row has these fields)."""

    count: int
    mean_score: float
    negative_share: float
    positive_share: float
    baseline: dict[str, Any]


def floor_time(when: datetime, granularity: str) -> datetime:
    when = when.astimezone(UTC)
    if granularity == "hour":
        return when.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        return when.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown granularity {granularity!r}")


def empty_state() -> dict[str, float | int]:
    return {"ewma": 0.0, "ewmvar": 0.0, "n": 0}


def ewma_update(state: dict[str, Any], x: float, alpha: float) -> dict[str, float | int]:
    """One EWMA step; the first observation sets the mean and leaves the variance at 0."""
    n = int(state.get("n", 0))
    if n == 0:
        return {"ewma": float(x), "ewmvar": 0.0, "n": 1}
    mean, var = float(state["ewma"]), float(state["ewmvar"])
    diff = x - mean
    incr = alpha * diff
    return {"ewma": mean + incr, "ewmvar": (1 - alpha) * (var + diff * incr), "n": n + 1}


def initial_baseline(granularity: str) -> dict[str, Any]:
    return {"alpha": ALPHA[granularity], "gap": 0, **{stat: empty_state() for stat in STATS}}


def next_baseline(prev_baseline: dict[str, Any], prev: Period, gap: int, granularity: str) -> dict[str, Any]:
    """The baseline of the bucket that follows `prev` after `gap` empty periods."""
    alpha = ALPHA[granularity]
    base = {stat: dict(prev_baseline.get(stat) or empty_state()) for stat in STATS}
    out: dict[str, Any] = {"alpha": alpha, "gap": gap}
    if prev.count > 0:
        for stat in STATS:
            out[stat] = ewma_update(base[stat], float(getattr(prev, stat)), alpha)
    else:
        out.update(base)
    count = out["count"]
    for _ in range(min(gap, MAX_GAP_FOLD)):
        count = ewma_update(count, 0.0, alpha)
    out["count"] = count
    return out


def zscore(bucket: Period, stat: str, *, min_n: int = 3) -> float | None:
    """How many baseline standard deviations the bucket's `stat` is from its baseline (None: too little history).

    The count's variance is at least its mean (a Poisson floor), the others at least VAR_FLOOR.
    """
    state = (bucket.baseline or {}).get(stat)
    if not state or int(state.get("n", 0)) < min_n:
        return None
    mean, var = float(state["ewma"]), float(state["ewmvar"])
    floor = max(mean, 1.0) if stat == "count" else VAR_FLOOR[stat]
    return (float(getattr(bucket, stat)) - mean) / math.sqrt(max(var, floor))


def periods_between(earlier: datetime, later: datetime, granularity: str) -> int:
    return max(0, round((later - earlier) / PERIOD[granularity]) - 1)
