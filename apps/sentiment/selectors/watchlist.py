"""Reads of the watchlist overview and the entity pages: each active entity's recent score, change, volume
and open alerts, and an entity's series as chart points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.db.models import Count, Q, Sum
from django.utils import timezone

from apps.sentiment.models import Alert, Bucket, Entity
from apps.sentiment.selectors.alerting import OPEN
from apps.sentiment.selectors.series import bucket_series

SORTS = ("ticker", "score", "change", "volume", "alerts")
# A change needs this many items in each window: MSFT topped the default sort at -0.75 from one earlier item.
MIN_WINDOW_ITEMS = 3


@dataclass
class EntityRow:
    entity: Entity
    volume: int
    previous_volume: int
    score: float | None
    previous: float | None
    open_alerts: int
    min_window_items: ClassVar[int] = MIN_WINDOW_ITEMS

    @property
    def change(self) -> float | None:
        """The score's change from the 24 hours before; None unless both windows hold MIN_WINDOW_ITEMS items."""
        if (
            self.score is None
            or self.previous is None
            or min(self.volume, self.previous_volume) < MIN_WINDOW_ITEMS
        ):
            return None
        return self.score - self.previous


def overview(
    *, sort: str = "score", descending: bool = False, now: datetime | None = None
) -> list[EntityRow]:
    """Active entities with their mean score over the last 24 hours, the change from the 24 hours before
    (None unless both windows hold MIN_WINDOW_ITEMS items), the item count of each window and the open alerts;
    three queries."""
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
                previous_volume=pn,
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
    rows = bucket_series(entity=entity, granularity=granularity, start=now - timedelta(days=days), end=None)
    return granularity, [Point(r.start, r.count, r.mean_score) for r in rows]
