"""Reads of the time series: a scope's buckets, the hour buckets detection reads, and the scored items a
rebuild starts from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.sentiment.detection import BucketRow
from apps.sentiment.models import Bucket, Entity, Score, Topic
from apps.sentiment.selectors.catalogue import item_scope_ids
from apps.sentiment.series_math import Scope, ScoredItem

MAX_SERIES_POINTS = 5000
DEFAULT_RANGE = {"hour": timedelta(days=7), "day": timedelta(days=90)}


def series_range(granularity: str, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """Validate a series request's range (defaults: the last 7 days of hours, 90 of days)."""
    if granularity not in DEFAULT_RANGE:
        raise ServiceError("granularity must be hour or day", field="granularity")
    end = end or timezone.now()
    start = start or end - DEFAULT_RANGE[granularity]
    if end <= start:
        raise ServiceError("`to` must be after `from`", field="to")
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    if (end - start) / step > MAX_SERIES_POINTS:
        raise ServiceError(f"at most {MAX_SERIES_POINTS} {granularity}s per request", field="from")
    return start, end


def bucket_series(
    *,
    entity: Entity | None = None,
    topic: Topic | None = None,
    granularity: str,
    start: datetime,
    end: datetime | None,
) -> QuerySet[Bucket]:
    """The stored buckets of one scope (no entity and no topic: everything) in [start, end), oldest first.

    Hours (or days) without items have no bucket: a missing period means a count of 0.
    """
    qs = Bucket.objects.filter(entity=entity, topic=topic, granularity=granularity, start__gte=start)
    return (qs.filter(start__lt=end) if end is not None else qs).order_by("start")


def _row(values: tuple[Any, ...]) -> BucketRow:
    return BucketRow(values[2], values[3], values[4], values[5], values[6], values[7] or {})


def load_hour_buckets(
    *,
    since: datetime,
    until: datetime,
    entity_ids: Iterable[int] | None = None,
    topic_ids: Iterable[int] | None = None,
    entities: bool = True,
    topics: bool = True,
) -> dict[Scope, list[BucketRow]]:
    """Hour buckets per scope (entity-only and topic-only scopes) with start in [since, until], oldest first.

    One query per kind of scope; `entity_ids` / `topic_ids` narrow it (None = every one).
    """
    fields = ("entity_id", "topic_id", "start", "count", "score_sum", "negative", "positive", "baseline")
    base = Bucket.objects.filter(granularity=Bucket.Granularity.HOUR, start__gte=since, start__lte=until)
    out: dict[Scope, list[BucketRow]] = defaultdict(list)
    queries = []
    if entities:
        q = base.filter(topic__isnull=True, entity__isnull=False)
        queries.append(q if entity_ids is None else q.filter(entity_id__in=list(entity_ids)))
    if topics:
        q = base.filter(entity__isnull=True, topic__isnull=False)
        queries.append(q if topic_ids is None else q.filter(topic_id__in=list(topic_ids)))
    for qs in queries:
        for values in qs.order_by("start").values_list(*fields):
            out[(values[0], values[1])].append(_row(values))
    return out


def scored_items(*, version_id: int, start: datetime, end: datetime) -> list[ScoredItem]:
    """The items published in [start, end) as `version_id` scored them, with their entities and topics."""
    rows = list(
        Score.objects.filter(
            model_version_id=version_id, item__published_at__gte=start, item__published_at__lt=end
        ).values_list("item_id", "label", "score", "item__published_at")
    )
    entities, topics = item_scope_ids(r[0] for r in rows)
    return [
        ScoredItem(published, label, score, tuple(entities.get(pk, ())), tuple(topics.get(pk, ())))
        for pk, label, score, published in rows
    ]
