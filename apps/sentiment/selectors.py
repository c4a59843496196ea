"""Reads of the sentiment app: entities, sources, items and scores, series, alerts, rules, notifications,
and what the periodic tasks find due (feeds to poll, deliveries to send, items to score)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.core.models import ModelVersion
from apps.core.selectors import active_version
from apps.sentiment import detection
from apps.sentiment.detection import HOUR, BacktestFire, BacktestResult, BucketRow, RuleSpec, Scope
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
    Topic,
)

TASK = "sentiment"  # the model registry task whose active version scores items

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
    end: datetime | None,
) -> QuerySet[Bucket]:
    """The stored buckets of one scope (no entity and no topic: everything) in [start, end), oldest first.

    Hours (or days) without items have no bucket: a missing period means a count of 0.
    """
    qs = Bucket.objects.filter(entity=entity, topic=topic, granularity=granularity, start__gte=start)
    return (qs.filter(start__lt=end) if end is not None else qs).order_by("start")


def items_recent(
    *,
    entity: Entity | None = None,
    topic: Topic | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
) -> QuerySet[Item]:
    """Items newest first, with their sources, entities and scores prefetched."""
    qs = _items_in(
        Item.objects.select_related("source").prefetch_related("entities", "scores"),
        entity,
        topic,
        start,
        end,
    )
    return qs.order_by("-published_at", "-id")[:limit]


def _items_in(
    qs: QuerySet[Item],
    entity: Entity | None,
    topic: Topic | None,
    start: datetime | None,
    end: datetime | None,
) -> QuerySet[Item]:
    if entity is not None:
        qs = qs.filter(itementity__entity=entity)
    if topic is not None:
        qs = qs.filter(item_topics__topic=topic)
    if start is not None:
        qs = qs.filter(published_at__gte=start)
    if end is not None:
        qs = qs.filter(published_at__lt=end)
    return qs


# --- the dashboard and alerts ---------------------------------------------------------------------------
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
    rows = bucket_series(entity=entity, granularity=granularity, start=now - timedelta(days=days), end=None)
    return granularity, [Point(r.start, r.count, r.mean_score) for r in rows]


def items_with_scores(qs: QuerySet[Item]) -> QuerySet[Item]:
    latest = Score.objects.filter(item=OuterRef("pk")).order_by("-created_at", "-id")
    return qs.select_related("source").annotate(
        latest_score=Subquery(latest.values("score")[:1]), latest_label=Subquery(latest.values("label")[:1])
    )


def latest_items(*, entity: Entity, limit: int = 20) -> list[Item]:
    qs = _items_in(Item.objects.all(), entity, None, None, None)
    return list(items_with_scores(qs).order_by("-published_at", "-id")[:limit])


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


# --- what is due ----------------------------------------------------------------------------------------
def feeds_due(now: datetime | None = None) -> list[int]:
    """Enabled feeds whose next poll time has come (or that were never polled)."""
    now = now or timezone.now()
    due = Source.objects.filter(kind=Source.Kind.FEED, enabled=True).filter(
        Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now)
    )
    return list(due.values_list("pk", flat=True))


DELIVERY_WAITING = (Delivery.Status.PENDING, Delivery.Status.RETRYING)


def deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Deliveries waiting to be (re)sent whose time has come, oldest first."""
    now = now or timezone.now()
    qs = Delivery.objects.filter(status__in=DELIVERY_WAITING, next_attempt_at__lte=now).order_by(
        "next_attempt_at", "pk"
    )
    return list(qs.values_list("pk", flat=True)[:limit])


def items_unscored(
    *, version: ModelVersion, start: datetime | None = None, end: datetime | None = None
) -> list[int]:
    """Ids of items (published in [start, end)) that `version` has not scored yet."""
    qs = Item.objects.exclude(scores__model_version=version)
    if start is not None:
        qs = qs.filter(published_at__gte=start)
    if end is not None:
        qs = qs.filter(published_at__lt=end)
    return list(qs.order_by("published_at").values_list("pk", flat=True))


STRAGGLER_AGE = timedelta(minutes=15)
STRAGGLER_WINDOW = timedelta(hours=24)
STRAGGLER_LIMIT = 2000


def items_stragglers(*, now: datetime | None = None) -> list[int]:
    """Items ingested 15 min to 24 h ago that the active version has not scored (a lost scoring task).

    Younger items are probably still queued; older ones are left to an explicit re-score job.
    """
    version = active_version(TASK)
    if version is None:
        return []
    now = now or timezone.now()
    qs = Item.objects.filter(ingested_at__lt=now - STRAGGLER_AGE, ingested_at__gte=now - STRAGGLER_WINDOW)
    qs = qs.exclude(scores__model_version=version)
    return list(qs.order_by("ingested_at").values_list("pk", flat=True)[:STRAGGLER_LIMIT])


def items_in_range(start: datetime, end: datetime) -> list[int]:
    return list(
        Item.objects.filter(published_at__gte=start, published_at__lt=end).values_list("pk", flat=True)
    )


# --- detection: the hour buckets rules read, and backtests ---------------------------------------------
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


def backtest(
    spec: RuleSpec,
    *,
    entity_id: int | None,
    topic_id: int | None,
    active_entity_ids: Iterable[int] = (),
    days: int = 30,
    now: datetime | None = None,
) -> BacktestResult:
    """How often a rule (saved or not) would have fired over the last `days` days, and where."""
    until = now or timezone.now()
    since = detection.floor_hour(until) - timedelta(days=days)
    scopes = detection.rule_scopes(
        entity_id=entity_id, topic_id=topic_id, active_entity_ids=active_entity_ids
    )
    loaded = load_hour_buckets(
        since=since - (spec.window_buckets - 1) * HOUR,
        until=until,
        entity_ids=[e for e, _ in scopes if e is not None] if entity_id is not None else None,
        topic_ids=[t for _, t in scopes if t is not None],
        entities=topic_id is None,
        topics=topic_id is not None,
    )
    result = BacktestResult(days=days, since=since, until=until, scopes=len(scopes))
    for scope in scopes:
        for det in detection.simulate_scope(spec, loaded.get(scope, []), since=since, until=until):
            result.fires.append(BacktestFire(det.window_end, scope[0], scope[1], det.z or 0.0, det.count))
    result.fires.sort(key=lambda f: f.at)
    return result


def active_scope_filter(entity_id: int | None, topic_id: int | None) -> Q:
    """The Item filter for a scope (used to find the items that drove an alert)."""
    if entity_id is not None:
        return Q(entities__id=entity_id)
    if topic_id is not None:
        return Q(item_topics__topic_id=topic_id)
    return Q()
