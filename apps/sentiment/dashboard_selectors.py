"""Reads for the sentiment dashboard and the alerts API (the alerting half's selectors)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from apps.sentiment.models import (
    Alert,
    AlertRule,
    Bucket,
    Delivery,
    Entity,
    Item,
    Notification,
    Score,
    Source,
)

OPEN = (Alert.Status.FIRED, Alert.Status.ACKNOWLEDGED)
ALERT_FILTERS = ("open", "fired", "acknowledged", "resolved", "all")
SORTS = ("ticker", "score", "change", "volume", "alerts")


@dataclass
class EntityRow:
    entity: Entity
    volume: int
    score: float | None
    previous: float | None
    open_alerts: int

    @property
    def change(self) -> float | None:
        if self.score is None or self.previous is None:
            return None
        return self.score - self.previous


def overview(
    *, sort: str = "score", descending: bool = False, now: datetime | None = None
) -> list[EntityRow]:
    """Active entities with their mean score over the last 24 hours, the change from the 24 hours before,
    the volume and the open alerts; three queries."""
    now = now or timezone.now()
    day_ago = now - timedelta(hours=24)
    recent = Q(start__gt=day_ago)
    before = Q(start__lte=day_ago)
    sums = (
        Bucket.objects.filter(
            granularity=Bucket.Granularity.HOUR,
            topic__isnull=True,
            entity__isnull=False,
            start__gt=now - timedelta(hours=48),
        )
        .values("entity_id")
        .annotate(
            n=Sum("count", filter=recent),
            s=Sum("score_sum", filter=recent),
            pn=Sum("count", filter=before),
            ps=Sum("score_sum", filter=before),
        )
    )
    by_entity: dict[int, dict[str, Any]] = {row["entity_id"]: dict(row) for row in sums}
    alerts = dict(
        Alert.objects.filter(status__in=OPEN, entity__isnull=False)
        .values_list("entity_id")
        .annotate(c=Count("id"))
    )
    rows = []
    for entity in Entity.objects.filter(active=True):
        row = by_entity.get(entity.pk, {})
        n, pn = row.get("n") or 0, row.get("pn") or 0
        rows.append(
            EntityRow(
                entity=entity,
                volume=n,
                score=(row["s"] / n) if n else None,
                previous=(row["ps"] / pn) if pn else None,
                open_alerts=alerts.get(entity.pk, 0),
            )
        )
    return _sorted(rows, sort if sort in SORTS else "score", descending)


def _sorted(rows: list[EntityRow], sort: str, descending: bool) -> list[EntityRow]:
    def key(row: EntityRow) -> Any:
        value = {
            "ticker": row.entity.ticker,
            "score": row.score,
            "change": row.change,
            "volume": row.volume,
            "alerts": row.open_alerts,
        }[sort]
        return (value is None, value if value is not None else 0)

    with_values = sorted((r for r in rows if key(r)[0] is False), key=key, reverse=descending)
    return with_values + [r for r in rows if key(r)[0] is True]  # no data: always last


@dataclass(frozen=True)
class Point:
    start: datetime
    count: int
    mean_score: float


def entity_series(*, entity: Entity, days: int, now: datetime | None = None) -> tuple[str, list[Point]]:
    """Buckets of the entity over the last `days` days: hours up to a week, days beyond."""
    now = now or timezone.now()
    granularity = Bucket.Granularity.HOUR if days <= 7 else Bucket.Granularity.DAY
    rows = Bucket.objects.filter(
        entity=entity, topic__isnull=True, granularity=granularity, start__gte=now - timedelta(days=days)
    ).order_by("start")
    return granularity, [Point(r.start, r.count, r.mean_score) for r in rows]


def items_with_scores(qs: QuerySet[Item]) -> QuerySet[Item]:
    latest = Score.objects.filter(item=OuterRef("pk")).order_by("-created_at", "-id")
    return qs.select_related("source").annotate(
        latest_score=Subquery(latest.values("score")[:1]), latest_label=Subquery(latest.values("label")[:1])
    )


def latest_items(*, entity: Entity, limit: int = 20) -> list[Item]:
    return list(
        items_with_scores(Item.objects.filter(entities=entity)).order_by("-published_at", "-id")[:limit]
    )


def alerts(*, status: str = "open", entity: Entity | None = None) -> QuerySet[Alert]:
    qs = Alert.objects.select_related("rule", "entity", "topic", "acknowledged_by", "resolved_by")
    if status == "open":
        qs = qs.filter(status__in=OPEN)
    elif status in Alert.Status.values:
        qs = qs.filter(status=status)
    if entity is not None:
        qs = qs.filter(entity=entity)
    return qs


def alert_detail(*, pk: int) -> Alert:
    attempts = Prefetch(
        "deliveries", queryset=Delivery.objects.prefetch_related("attempt_log").order_by("pk")
    )
    return alerts(status="all").prefetch_related(attempts).get(pk=pk)


def alert_items(*, alert: Alert) -> list[Item]:
    return list(
        items_with_scores(alert.items.all()).order_by(F("latest_score").asc(nulls_last=True), "-published_at")
    )


def rules() -> QuerySet[AlertRule]:
    return AlertRule.objects.select_related("entity", "topic", "created_by").annotate(
        open_alerts=Count("alerts", filter=Q(alerts__status__in=OPEN)), total_alerts=Count("alerts")
    )


def notifications(*, user: Any, limit: int = 100) -> list[Notification]:
    read = Notification.read_by.through.objects.filter(notification_id=OuterRef("pk"), user_id=user.pk)
    qs = Notification.objects.select_related("alert__rule", "alert__entity").annotate(is_read=Exists(read))
    return list(qs[:limit])


def unread_notifications(*, user: Any) -> int:
    return Notification.objects.exclude(read_by=user).count()


def sources() -> QuerySet[Source]:
    return Source.objects.all()
