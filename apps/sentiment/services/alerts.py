"""Alert rules and alerts: evaluation pass, the alert state machine, acknowledge / resolve, rule editing.

Entry point for other modules (scoring calls it after a batch, beat calls it periodically):

    alerts_evaluate(*, entity_ids=None, topic_ids=None, rule_ids=None, at=None) -> EvaluationSummary

`entity_ids` / `topic_ids` narrow the pass to those scopes (None = every one of that kind; [] = none of that
kind), `rule_ids` to those rules, `at` is the evaluation time (default now). The Celery task
`sentiment.alerts_evaluate` (apps/sentiment/tasks.py, `evaluate_alerts.delay(entity_ids=[...])`)
wraps it. A pass is a handful of queries whatever the number of entities: the enabled rules, the hour buckets of
every scope in the longest window (one query per kind of scope), the open alerts, the recent resolutions, the
active entities; it writes only for scopes that fire or have an open alert.

State machine, per rule and scope (an entity, a topic, or each active entity for an "all" rule):

- fired: the condition holds (see detection.py) and no alert is open. At most one alert is open per rule and
  scope (a conditional unique constraint; a concurrent pass that loses the race updates the winner's alert).
  Firing stores the z-score, the window's statistics and up to 20 items that drove it, creates the dashboard
  notification and one delivery per channel of the rule.
- while open (fired or acknowledged), a new firing updates value, detail and items; it never duplicates.
- acknowledged: by a person (`alert_acknowledge`), recorded with who and when; it stays open.
- resolved: by a person (`alert_resolve`), or automatically once the condition has been back under the
  threshold (or below min_count) for a whole window: the first clear pass records `detail["clear_since"]`, a
  pass at least `window_minutes` later resolves, a firing in between clears it.
- cooldown: after a resolution no new alert opens for that rule and scope before `cooldown_minutes` pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.core.errors import ServiceError
from apps.core.live import publish
from apps.sentiment import detection, selectors
from apps.sentiment.apps import LIVE_ALERTS
from apps.sentiment.detection import Detection, RuleSpec
from apps.sentiment.models import Alert, AlertRule, Notification
from apps.sentiment.selectors import OPEN, AlertKey
from apps.sentiment.series_math import Scope
from apps.sentiment.services import delivery as delivery_services

logger = logging.getLogger(__name__)


@dataclass
class EvaluationSummary:
    rules: int = 0
    scopes: int = 0
    fired: int = 0
    updated: int = 0
    suppressed: int = 0
    resolved: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# --- evaluation ---------------------------------------------------------------------------------------
def alerts_evaluate(
    *,
    entity_ids: Iterable[int] | None = None,
    topic_ids: Iterable[int] | None = None,
    rule_ids: Iterable[int] | None = None,
    at: datetime | None = None,
) -> EvaluationSummary:
    """Evaluate every enabled rule over its scopes at `at` and move alerts through their states."""
    at = at or timezone.now()
    entity_set = None if entity_ids is None else set(entity_ids)
    topic_set = None if topic_ids is None else set(topic_ids)
    rules = selectors.rules_enabled(rule_ids=rule_ids)
    summary = EvaluationSummary(rules=len(rules))
    if not rules:
        return summary
    plan = _plan(rules, entity_set, topic_set)
    longest = max(RuleSpec.of(r).window_buckets for r in rules)
    buckets = selectors.load_hour_buckets(
        since=detection.floor_hour(at) - (longest - 1) * detection.HOUR,
        until=at,
        entity_ids=entity_set,
        topic_ids=topic_set,
        entities=any(s[0] is not None for _, scopes in plan for s in scopes),
        topics=any(s[1] is not None for _, scopes in plan for s in scopes),
    )
    open_alerts = selectors.alerts_open_by_key(rules=rules)
    last_resolved = selectors.alerts_last_resolved(rules=rules, at=at)
    # One transaction for the pass's writes: on SQLite each commit is a disk sync, and a pass that fails
    # midway leaves nothing partly written (the next pass redoes it). Deliveries are enqueued after the commit.
    with transaction.atomic():
        for rule, scopes in plan:
            _evaluate_rule(rule, scopes, buckets, open_alerts, last_resolved, at, summary)
    return summary


def _plan(
    rules: list[AlertRule], entity_set: set[int] | None, topic_set: set[int] | None
) -> list[tuple[AlertRule, list[Scope]]]:
    needs_all = any(r.entity_id is None and r.topic_id is None for r in rules)
    active = selectors.entities_active_ids() if needs_all else []
    if entity_set is not None:
        active = [e for e in active if e in entity_set]
    plan = []
    for rule in rules:
        scopes = detection.rule_scopes(
            entity_id=rule.entity_id, topic_id=rule.topic_id, active_entity_ids=active
        )
        scopes = [
            (e, t)
            for e, t in scopes
            if (e is None or entity_set is None or e in entity_set)
            and (t is None or topic_set is None or t in topic_set)
        ]
        plan.append((rule, scopes))
    return plan


def _evaluate_rule(
    rule: AlertRule,
    scopes: list[Scope],
    buckets: dict[Scope, list[detection.BucketRow]],
    open_alerts: dict[AlertKey, Alert],
    last_resolved: dict[AlertKey, datetime],
    at: datetime,
    summary: EvaluationSummary,
) -> None:
    spec = RuleSpec.of(rule)
    start = detection.window_start(spec, at)
    for scope in scopes:
        key = (rule.pk, scope[0], scope[1])
        rows = detection.rows_in_window(buckets.get(scope, ()), start, at)
        alert = open_alerts.get(key)
        if not rows and alert is None:
            continue
        summary.scopes += 1
        found = detection.evaluate(spec, rows, start=start, end=at)
        if found.fired and alert is not None:
            _alert_refresh(alert=alert, spec=spec, found=found, at=at)
            summary.updated += 1
        elif found.fired:
            resolved = last_resolved.get(key)
            if resolved is not None and at < resolved + timedelta(minutes=rule.cooldown_minutes):
                summary.suppressed += 1
                continue
            created = alert_fire(rule=rule, entity_id=scope[0], topic_id=scope[1], found=found, at=at)
            summary.fired += int(created is not None)
        elif alert is not None and _alert_clear(alert=alert, at=at):
            summary.resolved += 1


def _detail(
    spec: RuleSpec, found: Detection, at: datetime, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    detail = found.as_detail(spec)
    detail["last_fired_at"] = at.isoformat()
    detail["clear_since"] = None
    detail["times_fired"] = int((previous or {}).get("times_fired", 0)) + 1
    return detail


def alert_fire(
    *, rule: AlertRule, entity_id: int | None, topic_id: int | None, found: Detection, at: datetime
) -> Alert | None:
    """Open an alert for the rule and scope, with its items, notification and deliveries.

    Returns None when another pass opened one at the same moment (that alert is updated instead)."""
    spec = RuleSpec.of(rule)
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=rule,
                entity_id=entity_id,
                topic_id=topic_id,
                severity=rule.severity,
                value=found.z or 0.0,
                detail=_detail(spec, found, at),
                fired_at=at,
            )
            items = selectors.alert_driving_items(
                condition=rule.condition, entity_id=entity_id, topic_id=topic_id, found=found
            )
            alert.items.set(items)
            delivery_services.deliveries_create(alert=alert, event="fired")
    except IntegrityError:
        scope: dict[str, Any] = {"entity_id": entity_id, "topic_id": topic_id}  # None matches IS NULL
        existing = Alert.objects.filter(rule=rule, status__in=OPEN, **scope).first()
        if existing is not None:
            existing.rule = rule
            _alert_refresh(alert=existing, spec=spec, found=found, at=at)
        return None
    logger.info(
        "alert %s fired: rule %s scope %s/%s z=%.2f", alert.pk, rule.pk, entity_id, topic_id, alert.value
    )
    publish(LIVE_ALERTS)
    return alert


def _alert_refresh(*, alert: Alert, spec: RuleSpec, found: Detection, at: datetime) -> None:
    """A firing while the alert is open: new value, window and items; no new notification."""
    window_moved = (alert.detail.get("window_start"), alert.detail.get("count")) != (
        found.window_start.isoformat(),
        found.count,
    )
    alert.value = found.z or 0.0
    alert.detail = _detail(spec, found, at, alert.detail)
    alert.save(update_fields=["value", "detail"])
    publish(LIVE_ALERTS)
    if window_moved:
        items = selectors.alert_driving_items(
            condition=alert.rule.condition, entity_id=alert.entity_id, topic_id=alert.topic_id, found=found
        )
        alert.items.set(items)


def _alert_clear(*, alert: Alert, at: datetime) -> bool:
    """The condition is not met: start (or continue) the clear period; resolve once it lasts a window."""
    since = parse_datetime(alert.detail.get("clear_since") or "")
    if since is None:
        alert.detail = {**alert.detail, "clear_since": at.isoformat()}
        alert.save(update_fields=["detail"])
        return False
    if at - since < timedelta(minutes=alert.rule.window_minutes):
        return False
    return _resolve(alert=alert, user=None, at=at, reason="auto") is not None


# --- people's actions ---------------------------------------------------------------------------------
def _real_user(user: AbstractBaseUser | AnonymousUser | None) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None


@transaction.atomic
def alert_acknowledge(*, alert: Alert, user: AbstractBaseUser | AnonymousUser | None) -> Alert:
    """Mark a fired alert as seen by `user`; it stays open until resolved."""
    now = timezone.now()
    claimed = Alert.objects.filter(pk=alert.pk, status=Alert.Status.FIRED).update(
        status=Alert.Status.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=_real_user(user)
    )
    alert.refresh_from_db()
    if not claimed:
        if alert.status == Alert.Status.ACKNOWLEDGED:
            raise ServiceError(
                f"Alert #{alert.pk} was already acknowledged by {alert.acknowledged_by or 'someone'}."
            )
        raise ServiceError(f"Alert #{alert.pk} is resolved; there is nothing to acknowledge.")
    publish(LIVE_ALERTS)
    return alert


def alert_resolve(*, alert: Alert, user: AbstractBaseUser | AnonymousUser | None) -> Alert:
    """Close an open alert by hand; the rule's cooldown starts now."""
    resolved = _resolve(alert=alert, user=_real_user(user), at=timezone.now(), reason="manual")
    if resolved is None:
        raise ServiceError(f"Alert #{alert.pk} is already resolved.")
    return resolved


@transaction.atomic
def _resolve(*, alert: Alert, user: AbstractBaseUser | None, at: datetime, reason: str) -> Alert | None:
    detail = {**alert.detail, "resolved_reason": reason}
    claimed = Alert.objects.filter(pk=alert.pk, status__in=OPEN).update(
        status=Alert.Status.RESOLVED, resolved_at=at, resolved_by=user, detail=detail
    )
    if not claimed:
        return None
    alert.refresh_from_db()
    delivery_services.deliveries_create(alert=alert, event="resolved")
    publish(LIVE_ALERTS)
    return alert


@transaction.atomic
def notifications_mark_read(*, user: AbstractBaseUser, notification_ids: Iterable[int] | None = None) -> int:
    """Mark notifications (all unread ones when no ids are given) as read by `user`."""
    qs = Notification.objects.exclude(read_by=user.pk)
    if notification_ids is not None:
        qs = qs.filter(pk__in=list(notification_ids))
    through = Notification.read_by.through
    rows = [through(notification_id=pk, user_id=user.pk) for pk in qs.values_list("pk", flat=True)]
    through.objects.bulk_create(rows, ignore_conflicts=True)
    publish(LIVE_ALERTS)
    return len(rows)


# --- rules --------------------------------------------------------------------------------------------
RULE_FIELDS = (
    "name", "enabled", "entity", "topic", "condition", "threshold", "window_minutes", "min_count",
    "cooldown_minutes", "severity", "channels",
)  # fmt: skip


def _clean_rule(data: dict[str, Any]) -> dict[str, Any]:
    unknown = set(data) - set(RULE_FIELDS)
    if unknown:
        raise ServiceError(f"Unknown rule fields: {', '.join(sorted(unknown))}.")
    if not str(data.get("name", "")).strip():
        raise ServiceError("Give the rule a name.", field="name")
    if data.get("entity") is not None and data.get("topic") is not None:
        raise ServiceError("A rule watches an entity or a topic (or every entity), not both.", field="topic")
    if data.get("condition") not in AlertRule.Condition.values:
        raise ServiceError(f"Unknown condition {data.get('condition')!r}.", field="condition")
    if not float(data.get("threshold", 0)) > 0:
        raise ServiceError("The threshold is a z-score above zero (3 is a common start).", field="threshold")
    if not 1 <= int(data.get("window_minutes", 0)) <= 7 * 24 * 60:
        raise ServiceError("The window is between 1 minute and 7 days.", field="window_minutes")
    if int(data.get("min_count", 0)) < 1:
        raise ServiceError("The minimum count is at least 1 item.", field="min_count")
    data["channels"] = delivery_services.channels_validate(data.get("channels") or [])
    return data


@transaction.atomic
def rule_create(*, user: AbstractBaseUser | AnonymousUser | None, **fields: Any) -> AlertRule:
    data = _clean_rule({**fields})
    author = _real_user(user)
    return AlertRule.objects.create(created_by_id=author.pk if author else None, **data)


@transaction.atomic
def rule_update(*, rule: AlertRule, **fields: Any) -> AlertRule:
    data = _clean_rule({**{f: getattr(rule, f) for f in RULE_FIELDS}, **fields})
    for name, value in data.items():
        setattr(rule, name, value)
    rule.save(update_fields=[*data, "updated_at"])
    return rule


def rule_delete(*, rule: AlertRule) -> None:
    rule.delete()
