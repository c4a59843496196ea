"""Reads of what the app watches and stores: entities, topics, sources, items and their scores."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Max, OuterRef, QuerySet, Subquery

from apps.core.models import ModelVersion
from apps.sentiment.models import Entity, Item, ItemEntity, ItemTopic, Score, Source, Topic


def entities_list(*, active: bool | None = None) -> QuerySet[Entity]:
    qs = Entity.objects.annotate(item_count=Count("itementity"))
    return qs.filter(active=active) if active is not None else qs


def entity_by_ticker(ticker: str) -> Entity | None:
    return Entity.objects.filter(ticker=(ticker or "").strip().lstrip("$").upper()).first()


def entities_active_ids() -> list[int]:
    return list(Entity.objects.filter(active=True).values_list("id", flat=True))


def entity_tickers(ids: Iterable[int]) -> dict[int, str]:
    return dict(Entity.objects.filter(pk__in=list(ids)).values_list("pk", "ticker"))


def topics_list() -> QuerySet[Topic]:
    return Topic.objects.all()


def topic_by_slug(slug: str) -> Topic | None:
    return Topic.objects.filter(slug=slug).first()


def sources_list(*, kind: str | None = None) -> QuerySet[Source]:
    """Sources with `last_item_at`, when their newest item was stored (pushes and uploads have no polls)."""
    qs = Source.objects.annotate(last_item_at=Max("items__ingested_at"))
    return qs.filter(kind=kind) if kind else qs


def items_recent(
    *,
    entity: Entity | None = None,
    topic: Topic | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = 50,
) -> QuerySet[Item]:
    """Items newest first, with their sources, entities and scores prefetched (`limit` None: all of them)."""
    qs = items_in(
        Item.objects.select_related("source").prefetch_related("entities", "scores"),
        entity=entity,
        topic=topic,
        start=start,
        end=end,
    )
    return qs.order_by("-published_at", "-id")[:limit]


def items_in(
    qs: QuerySet[Item],
    *,
    entity: Entity | None = None,
    topic: Topic | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[Item]:
    """`qs` narrowed to a scope and a publication range [start, end) (None: no bound)."""
    if entity is not None:
        qs = qs.filter(itementity__entity=entity)
    if topic is not None:
        qs = qs.filter(item_topics__topic=topic)
    if start is not None:
        qs = qs.filter(published_at__gte=start)
    if end is not None:
        qs = qs.filter(published_at__lt=end)
    return qs


def items_with_scores(qs: QuerySet[Item]) -> QuerySet[Item]:
    """`qs` with each item's latest score and label as `latest_score` / `latest_label`."""
    latest = Score.objects.filter(item=OuterRef("pk")).order_by("-created_at", "-id")
    return qs.select_related("source").annotate(
        latest_score=Subquery(latest.values("score")[:1]), latest_label=Subquery(latest.values("label")[:1])
    )


def latest_items(*, entity: Entity, limit: int = 20) -> list[Item]:
    qs = items_in(Item.objects.all(), entity=entity)
    return list(items_with_scores(qs).order_by("-published_at", "-id")[:limit])


def item_scope_ids(item_ids: Iterable[int]) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """Item id -> its entity ids, and item id -> its topic ids (two queries per 5,000 items)."""
    ids = list(item_ids)
    entities: dict[int, list[int]] = {}
    topics: dict[int, list[int]] = {}
    for chunk in range(0, len(ids), 5000):
        part = ids[chunk : chunk + 5000]
        links = ItemEntity.objects.filter(item_id__in=part).values_list("item_id", "entity_id")
        for item_id, entity_id in links:
            entities.setdefault(item_id, []).append(entity_id)
        for item_id, topic_id in ItemTopic.objects.filter(item_id__in=part).values_list(
            "item_id", "topic_id"
        ):
            topics.setdefault(item_id, []).append(topic_id)
    return entities, topics


def items_scored_by_others(*, item_ids: Iterable[int], version: ModelVersion) -> set[int]:
    """Those of `item_ids` that a version other than `version` has scored."""
    qs = Score.objects.filter(item_id__in=list(item_ids)).exclude(model_version=version)
    return set(qs.values_list("item_id", flat=True))
