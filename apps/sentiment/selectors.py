"""Reads of the ingestion and time-series half: entities, sources, items with their scores, series."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.sentiment.models import Bucket, Entity, Item, Source, Topic

MAX_SERIES_POINTS = 5000
DEFAULT_RANGE = {"hour": timedelta(days=7), "day": timedelta(days=90)}


def entities_list(*, active: bool | None = None) -> QuerySet[Entity]:
    qs = Entity.objects.annotate(item_count=Count("itementity"))
    return qs.filter(active=active) if active is not None else qs


def entity_by_ticker(ticker: str) -> Entity | None:
    return Entity.objects.filter(ticker=(ticker or "").strip().lstrip("$").upper()).first()


def topics_list() -> QuerySet[Topic]:
    return Topic.objects.all()


def sources_list(*, kind: str | None = None) -> QuerySet[Source]:
    qs = Source.objects.all()
    return qs.filter(kind=kind) if kind else qs


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
    end: datetime,
) -> QuerySet[Bucket]:
    """The stored buckets of one scope (no entity and no topic: everything) in [start, end), oldest first.

    Hours (or days) without items have no bucket: a missing period means a count of 0.
    """
    return Bucket.objects.filter(
        entity=entity, topic=topic, granularity=granularity, start__gte=start, start__lt=end
    ).order_by("start")


def items_recent(
    *,
    entity: Entity | None = None,
    topic: Topic | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
) -> QuerySet[Item]:
    """Items newest first, with their sources, entities and scores prefetched."""
    qs = Item.objects.select_related("source").prefetch_related("entities", "scores")
    if entity is not None:
        qs = qs.filter(itementity__entity=entity)
    if topic is not None:
        qs = qs.filter(item_topics__topic=topic)
    if start is not None:
        qs = qs.filter(published_at__gte=start)
    if end is not None:
        qs = qs.filter(published_at__lt=end)
    return qs.order_by("-published_at", "-id")[:limit]
