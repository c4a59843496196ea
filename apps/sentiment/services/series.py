"""Time series: per scope (an entity, a topic, or "all") and per hour and day, a Bucket row with the count,
score sum, negative and positive counts, the mean score and the two shares, plus a rolling EWMA baseline.

Scopes. `entity` set and `topic` null: one ticker; `topic` set and `entity` null: one topic; both null: every
item ("all"). An item with two entities and one topic adds to five buckets per granularity... no: to four
(all, entity A, entity B, the topic), once per granularity. Buckets start at the UTC hour or day of the
item's `published_at`.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from apps.core.db import update_rows
from apps.sentiment.models import Bucket, ItemEntity, ItemTopic, Score

GRANULARITIES = ("hour", "day")
PERIOD = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
SPAN = {"hour": 24, "day": 14}
ALPHA = {g: 2.0 / (SPAN[g] + 1) for g in GRANULARITIES}
STATS = ("count", "mean_score", "negative_share", "positive_share")
MAX_GAP_FOLD = 24 * 14
# Variance floors for z-scores, so a flat history does not turn a tiny move into a huge z.
VAR_FLOOR = {"mean_score": 0.1**2, "negative_share": 0.05**2, "positive_share": 0.05**2}

Scope = tuple[int | None, int | None]  # (entity_id, topic_id)


@dataclass(frozen=True)
class ScoredItem:
    published_at: datetime
    label: str
    score: float
    entity_ids: tuple[int, ...] = ()
    topic_ids: tuple[int, ...] = ()


# --- pure arithmetic ------------------------------------------------------------------------------------
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


def next_baseline(prev_baseline: dict[str, Any], prev: Bucket, gap: int, granularity: str) -> dict[str, Any]:
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


def zscore(bucket: Bucket, stat: str, *, min_n: int = 3) -> float | None:
    """How many baseline standard deviations the bucket's `stat` is from its baseline (None: too little history).

    The count's variance is at least its mean (a Poisson floor), the others at least VAR_FLOOR.
    """
    state = (bucket.baseline or {}).get(stat)
    if not state or int(state.get("n", 0)) < min_n:
        return None
    mean, var = float(state["ewma"]), float(state["ewmvar"])
    floor = max(mean, 1.0) if stat == "count" else VAR_FLOOR[stat]
    return (float(getattr(bucket, stat)) - mean) / math.sqrt(max(var, floor))


def _refresh_derived(bucket: Bucket) -> None:
    n = bucket.count
    bucket.mean_score = bucket.score_sum / n if n else 0.0
    bucket.negative_share = bucket.negative / n if n else 0.0
    bucket.positive_share = bucket.positive / n if n else 0.0


def _periods_between(earlier: datetime, later: datetime, granularity: str) -> int:
    return max(0, round((later - earlier) / PERIOD[granularity]) - 1)


def _scope(scope: Scope) -> dict[str, Any]:
    return {"entity_id": scope[0], "topic_id": scope[1]}


# --- writes ---------------------------------------------------------------------------------------------
def _deltas(items: Iterable[ScoredItem]) -> dict[tuple[Scope, str, datetime], list[float]]:
    out: dict[tuple[Scope, str, datetime], list[float]] = {}
    for item in items:
        scopes: list[Scope] = [(None, None)]
        scopes += [(e, None) for e in dict.fromkeys(item.entity_ids)]
        scopes += [(None, t) for t in dict.fromkeys(item.topic_ids)]
        neg, pos = float(item.label == "negative"), float(item.label == "positive")
        for granularity in GRANULARITIES:
            start = floor_time(item.published_at, granularity)
            for scope in scopes:
                acc = out.setdefault((scope, granularity, start), [0.0, 0.0, 0.0, 0.0])
                acc[0] += 1
                acc[1] += item.score
                acc[2] += neg
                acc[3] += pos
    return out


COUNT_FIELDS = [
    "count",
    "score_sum",
    "negative",
    "positive",
    "mean_score",
    "negative_share",
    "positive_share",
]
LOOKBACK_PERIODS = (
    6  # fetched with the touched buckets, so the previous bucket usually comes in the same query
)


def _scopes_q(scopes: Iterable[Scope]) -> Q:
    scopes = set(scopes)
    entities = [e for e, t in scopes if e is not None]
    topics = [t for e, t in scopes if t is not None]
    q = Q(pk__in=[])
    if entities:
        q |= Q(entity_id__in=entities, topic__isnull=True)
    if topics:
        q |= Q(topic_id__in=topics, entity__isnull=True)
    if (None, None) in scopes:
        q |= Q(entity__isnull=True, topic__isnull=True)
    return q


def _key(bucket: Bucket) -> tuple[Scope, datetime]:
    return (bucket.entity_id, bucket.topic_id), bucket.start


def _locked_buckets(
    granularity: str, keys: Iterable[tuple[Scope, datetime]]
) -> dict[tuple[Scope, datetime], Bucket]:
    """The buckets for `keys`, locked, creating the missing ones (one query to read, one to create)."""
    keys = set(keys)
    qs = Bucket.objects.select_for_update().filter(
        _scopes_q(scope for scope, _ in keys), granularity=granularity, start__in={start for _, start in keys}
    )
    found = {_key(b): b for b in qs if _key(b) in keys}
    missing = [k for k in keys if k not in found]
    if not missing:
        return found
    try:
        with transaction.atomic():
            created = Bucket.objects.bulk_create(
                [Bucket(**_scope(scope), granularity=granularity, start=start) for scope, start in missing]
            )
        found.update((_key(b), b) for b in created)
    except IntegrityError:  # another worker created some of them meanwhile: take them one by one
        for scope, start in missing:
            bucket, _ = Bucket.objects.get_or_create(**_scope(scope), granularity=granularity, start=start)
            found[(scope, start)] = Bucket.objects.select_for_update().get(pk=bucket.pk)
    return found


@transaction.atomic
def series_apply(*, items: Sequence[ScoredItem]) -> int:
    """Add scored items to their buckets and refresh the baselines; returns the number of buckets touched.

    A handful of queries per granularity whatever the batch size: read the touched buckets, create the
    missing ones, update them, then read each touched scope's recent buckets once to re-derive baselines.
    """
    deltas = _deltas(items)
    for granularity in GRANULARITIES:
        keys = {(scope, start): acc for (scope, g, start), acc in deltas.items() if g == granularity}
        if not keys:
            continue
        buckets = _locked_buckets(granularity, keys)
        for key, (count, score_sum, neg, pos) in keys.items():
            bucket = buckets[key]
            bucket.count += int(count)
            bucket.score_sum += score_sum
            bucket.negative += int(neg)
            bucket.positive += int(pos)
            _refresh_derived(bucket)
        update_rows(list(buckets.values()), COUNT_FIELDS)
        earliest: dict[Scope, datetime] = {}
        for scope, start in keys:
            earliest[scope] = min(start, earliest.get(scope, start))
        recompute_baselines_many(granularity=granularity, since=earliest)
    return len(deltas)


def recompute_baselines(*, scope: Scope, granularity: str, since: datetime) -> int:
    """Re-derive the baselines of one scope's buckets starting at or after `since`; returns rows changed."""
    return recompute_baselines_many(granularity=granularity, since={scope: since})


def recompute_baselines_many(*, granularity: str, since: dict[Scope, datetime]) -> int:
    """Re-derive baselines from each scope's `since` onwards (the previous bucket seeds the chain)."""
    if not since:
        return 0
    window = min(since.values()) - LOOKBACK_PERIODS * PERIOD[granularity]
    rows: dict[Scope, list[Bucket]] = {}
    qs = Bucket.objects.select_for_update().filter(
        _scopes_q(since), granularity=granularity, start__gte=window
    )
    for bucket in qs.order_by("start"):
        rows.setdefault((bucket.entity_id, bucket.topic_id), []).append(bucket)
    quiet = [scope for scope, first in since.items() if not any(b.start < first for b in rows.get(scope, []))]
    previous = _previous_many(quiet, granularity, window)
    changed: list[Bucket] = []
    for scope, first in since.items():
        chain = rows.get(scope, [])
        before = [b for b in chain if b.start < first]
        prev = before[-1] if before else previous.get(scope)
        for bucket in chain[len(before) :]:
            if prev is None:
                baseline = initial_baseline(granularity)
            else:
                gap = _periods_between(prev.start, bucket.start, granularity)
                baseline = next_baseline(
                    prev.baseline or initial_baseline(granularity), prev, gap, granularity
                )
            if baseline != bucket.baseline:
                bucket.baseline = baseline
                changed.append(bucket)
            prev = bucket
    update_rows(changed, ["baseline"])
    return len(changed)


def _previous_many(scopes: list[Scope], granularity: str, before: datetime) -> dict[Scope, Bucket]:
    """Each scope's last bucket before `before` (quiet scopes, or new ones with none): two queries in all."""
    if not scopes:
        return {}
    wanted = set(scopes)
    base = Bucket.objects.filter(_scopes_q(wanted), granularity=granularity, start__lt=before)
    latest: dict[Scope, datetime] = {
        (row["entity_id"], row["topic_id"]): row["last"]
        for row in base.values("entity_id", "topic_id").annotate(last=Max("start"))
    }
    latest = {scope: when for scope, when in latest.items() if scope in wanted}
    if not latest:
        return {}
    rows = base.filter(_scopes_q(latest), start__in=set(latest.values()))
    return {_key(b)[0]: b for b in rows if latest.get(_key(b)[0]) == b.start}


@transaction.atomic
def series_rebuild(*, version_id: int, start: datetime, end: datetime) -> dict[str, int]:
    """Recompute every bucket in [start, end) (widened to whole UTC days) from `version`'s scores."""
    start, day_end = floor_time(start, "day"), floor_time(end, "day")
    end = day_end if day_end == end else day_end + PERIOD["day"]
    end = max(end, start + PERIOD["day"])
    old = Bucket.objects.filter(start__gte=start, start__lt=end)
    touched: set[tuple[Scope, str]] = {
        ((e, t), g) for e, t, g in old.values_list("entity_id", "topic_id", "granularity")
    }
    deleted, _ = old.delete()
    items = list(_scored_items(version_id, start, end))
    created = series_apply(items=items) if items else 0
    for item in items:
        for scope in [
            (None, None),
            *((e, None) for e in item.entity_ids),
            *((None, t) for t in item.topic_ids),
        ]:
            touched.update((scope, g) for g in GRANULARITIES)
    for granularity in GRANULARITIES:
        scopes = {scope: start for scope, g in touched if g == granularity}
        recompute_baselines_many(granularity=granularity, since=scopes)
    return {"deleted": deleted, "buckets": created, "items": len(items)}


def _scored_items(version_id: int, start: datetime, end: datetime) -> Iterable[ScoredItem]:
    rows = list(
        Score.objects.filter(
            model_version_id=version_id, item__published_at__gte=start, item__published_at__lt=end
        ).values_list("item_id", "label", "score", "item__published_at")
    )
    ids = [r[0] for r in rows]
    entities: dict[int, list[int]] = {}
    topics: dict[int, list[int]] = {}
    for chunk in range(0, len(ids), 5000):
        part = ids[chunk : chunk + 5000]
        for item_id, entity_id in ItemEntity.objects.filter(item_id__in=part).values_list(
            "item_id", "entity_id"
        ):
            entities.setdefault(item_id, []).append(entity_id)
        for item_id, topic_id in ItemTopic.objects.filter(item_id__in=part).values_list(
            "item_id", "topic_id"
        ):
            topics.setdefault(item_id, []).append(topic_id)
    for item_id, label, score, published in rows:
        yield ScoredItem(
            published, label, score, tuple(entities.get(item_id, ())), tuple(topics.get(item_id, ()))
        )
