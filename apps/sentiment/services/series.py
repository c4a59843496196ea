"""Time series: per scope (an entity, a topic, or "all") and per hour and day, a Bucket row with the count,
score sum, negative and positive counts, the mean score and the two shares, plus a rolling EWMA baseline.

Scopes. `entity` set and `topic` null: one ticker; `topic` set and `entity` null: one topic; both null: every
item ("all"). An item with two entities and one topic adds to four buckets per granularity (all, entity A,
entity B, the topic). Buckets start at the UTC hour or day of the item's `published_at`. The baseline
contract and its maths are in apps/sentiment/series_math.py.

Updated incrementally: scoring adds each batch's items to their buckets and recomputes the baselines of the
touched scope from the earliest touched bucket forward (normally just the newest one or two; a late item for
an old hour re-derives the later baselines, so they never go stale).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from apps.core.db import update_rows
from apps.core.live import publish
from apps.sentiment import selectors
from apps.sentiment.apps import LIVE_SERIES
from apps.sentiment.models import Bucket
from apps.sentiment.series_math import (
    GRANULARITIES,
    PERIOD,
    Scope,
    ScoredItem,
    bucket_deltas,
    floor_time,
    initial_baseline,
    item_scopes,
    next_baseline,
    periods_between,
)


def _refresh_derived(bucket: Bucket) -> None:
    n = bucket.count
    bucket.mean_score = bucket.score_sum / n if n else 0.0
    bucket.negative_share = bucket.negative / n if n else 0.0
    bucket.positive_share = bucket.positive / n if n else 0.0


def _scope(scope: Scope) -> dict[str, Any]:
    return {"entity_id": scope[0], "topic_id": scope[1]}


# --- writes ---------------------------------------------------------------------------------------------
COUNT_FIELDS = [
    "count",
    "score_sum",
    "negative",
    "positive",
    "mean_score",
    "negative_share",
    "positive_share",
]
# Fetched with the touched buckets, so the previous bucket usually comes in the same query.
LOOKBACK_PERIODS = 6


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
    deltas = bucket_deltas(items)
    for granularity in GRANULARITIES:
        keys = {(scope, start): acc for (scope, g, start), acc in deltas.items() if g == granularity}
        if not keys:
            continue
        buckets = _locked_buckets(granularity, keys)
        for key, delta in keys.items():
            bucket = buckets[key]
            bucket.count += delta.count
            bucket.score_sum += delta.score_sum
            bucket.negative += delta.negative
            bucket.positive += delta.positive
            _refresh_derived(bucket)
        update_rows(list(buckets.values()), COUNT_FIELDS)
        earliest: dict[Scope, datetime] = {}
        for scope, start in keys:
            earliest[scope] = min(start, earliest.get(scope, start))
        recompute_baselines_many(granularity=granularity, since=earliest)
    publish(LIVE_SERIES)
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
                gap = periods_between(prev.start, bucket.start, granularity)
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
    """Recompute every bucket in [start, end) (widened to whole UTC days) from `version`'s scores.

    The range is cut to the accepted publication window (EARLIEST_PUBLISHED on): an item outside it, stored
    before ingestion checked the window, is left out instead of failing the whole rebuild with an overflow.
    """
    from apps.sentiment.services.ingest import EARLIEST_PUBLISHED

    start = max(start, EARLIEST_PUBLISHED)
    start, day_end = floor_time(start, "day"), floor_time(max(end, start), "day")
    end = day_end if day_end == end else day_end + PERIOD["day"]
    end = max(end, start + PERIOD["day"])
    old = Bucket.objects.filter(start__gte=start, start__lt=end)
    touched: set[tuple[Scope, str]] = {
        ((e, t), g) for e, t, g in old.values_list("entity_id", "topic_id", "granularity")
    }
    deleted, _ = old.delete()
    items = selectors.scored_items(version_id=version_id, start=start, end=end)
    created = series_apply(items=items) if items else 0
    for item in items:
        for scope in item_scopes(item):
            touched.update((scope, g) for g in GRANULARITIES)
    for granularity in GRANULARITIES:
        scopes = {scope: start for scope, g in touched if g == granularity}
        recompute_baselines_many(granularity=granularity, since=scopes)
    publish(LIVE_SERIES)
    return {"deleted": deleted, "buckets": created, "items": len(items)}
