"""Reads of alerts, rules and notifications: the dashboard's lists, what an evaluation pass starts from
(open alerts, recent resolutions, the items behind a detection), and backtests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, Max, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.sentiment import detection
from apps.sentiment.detection import HOUR, BacktestFire, BacktestResult, Detection, RuleSpec
from apps.sentiment.models import Alert, AlertRule, Delivery, Entity, Item, Notification, Score, Topic
from apps.sentiment.selectors.catalogue import entities_active_ids, entity_tickers, items_with_scores
from apps.sentiment.selectors.series import load_hour_buckets

OPEN = (Alert.Status.FIRED, Alert.Status.ACKNOWLEDGED)
ALERT_FILTERS = ("open", "fired", "acknowledged", "resolved", "all")
MAX_ALERT_ITEMS = 20
AlertKey = tuple[int, int | None, int | None]  # (rule_id, entity_id, topic_id)


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


# --- what an evaluation pass reads ------------------------------------------------------------------------
def rules_enabled(*, rule_ids: Iterable[int] | None = None) -> list[AlertRule]:
    rows = list(AlertRule.objects.filter(enabled=True))
    if rule_ids is None:
        return rows
    wanted = set(rule_ids)
    return [r for r in rows if r.pk in wanted]


def alerts_open_by_key(*, rules: Iterable[AlertRule]) -> dict[AlertKey, Alert]:
    """The open alert of each (rule, scope), with its `rule` set to the given instance (no extra query)."""
    by_id = {r.pk: r for r in rules}
    out: dict[AlertKey, Alert] = {}
    for alert in Alert.objects.filter(rule_id__in=by_id, status__in=OPEN):
        alert.rule = by_id[alert.rule_id]
        out[(alert.rule_id, alert.entity_id, alert.topic_id)] = alert
    return out


def alerts_last_resolved(*, rules: Iterable[AlertRule], at: datetime) -> dict[AlertKey, datetime]:
    """When each (rule, scope) last resolved, for resolutions still inside the longest cooldown."""
    rules = list(rules)
    longest = max((r.cooldown_minutes for r in rules), default=0)
    if longest == 0:
        return {}
    rows = (
        Alert.objects.filter(
            rule_id__in=[r.pk for r in rules],
            status=Alert.Status.RESOLVED,
            resolved_at__gte=at - timedelta(minutes=longest),
        )
        .values("rule_id", "entity_id", "topic_id")
        .annotate(last=Max("resolved_at"))
    )
    return {(r["rule_id"], r["entity_id"], r["topic_id"]): r["last"] for r in rows}


def active_scope_filter(entity_id: int | None, topic_id: int | None) -> Q:
    """The Item filter for a scope (used to find the items that drove an alert)."""
    if entity_id is not None:
        return Q(entities__id=entity_id)
    if topic_id is not None:
        return Q(item_topics__topic_id=topic_id)
    return Q()


def alert_driving_items(
    *, condition: str, entity_id: int | None, topic_id: int | None, found: Detection
) -> list[int]:
    """The items of the window behind a detection: the most negative for a drop or a negative share, the
    most positive for a rise, the latest for a volume spike."""
    latest_score = (
        Score.objects.filter(item=OuterRef("pk")).order_by("-created_at", "-id").values("score")[:1]
    )
    qs = (
        Item.objects.filter(active_scope_filter(entity_id, topic_id))
        .filter(published_at__gte=found.window_start, published_at__lte=found.window_end)
        .annotate(latest_score=Subquery(latest_score))
    )
    order: list[Any]
    if condition in (AlertRule.Condition.SCORE_DROP, AlertRule.Condition.NEGATIVE_SHARE):
        order = [F("latest_score").asc(nulls_last=True), "-published_at"]
    elif condition == AlertRule.Condition.SCORE_RISE:
        order = [F("latest_score").desc(nulls_last=True), "-published_at"]
    else:
        order = ["-published_at"]
    return list(qs.order_by(*order).values_list("pk", flat=True)[:MAX_ALERT_ITEMS])


# --- backtests ------------------------------------------------------------------------------------------
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


def rule_backtest(
    *,
    condition: str,
    threshold: float,
    window_minutes: int,
    min_count: int,
    cooldown_minutes: int = 0,
    entity: Entity | None = None,
    topic: Topic | None = None,
    days: int = 30,
    now: datetime | None = None,
) -> BacktestResult:
    """How often a rule with these settings would have fired in the last `days` days (nothing is saved),
    with the tickers of the entities it fired on."""
    if entity is not None and topic is not None:
        raise ServiceError("A rule watches an entity or a topic (or every entity), not both.", field="topic")
    spec = RuleSpec(condition, threshold, window_minutes, min_count, cooldown_minutes)
    result = backtest(
        spec,
        entity_id=entity.pk if entity else None,
        topic_id=topic.pk if topic else None,
        active_entity_ids=[] if entity or topic else entities_active_ids(),
        days=days,
        now=now,
    )
    result.labels = entity_tickers({fire.entity_id for fire in result.fires if fire.entity_id is not None})
    return result
