"""The alert state machine: fire, acknowledge, resolve, one open alert per rule and scope, cooldown, auto-resolve."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.sentiment.detection import RuleSpec
from apps.sentiment.models import Alert, AlertRule, Delivery, Notification
from apps.sentiment.services import alerts as svc
from tests.apps.sentiment import alert_factories as f

pytestmark = pytest.mark.django_db
C = AlertRule.Condition


def dropping_entity(ticker="ACME", *, now=None, items=12, item_scores=None):
    """48 calm hours, then the current hour full of negative news (with the items behind it)."""
    now = now or timezone.now()
    ent = f.entity(ticker)
    rows = [*f.calm(48), f.stats(items, -0.6, items - 1)]
    f.series(rows, end=now, ent=ent)
    hour = now.replace(minute=0, second=0, microsecond=0)
    scores = item_scores or [-0.9 + 0.05 * i for i in range(items)]
    step = (now - hour) / (len(scores) + 1)  # inside the current hour, never after `now`
    made = [f.item(ent, hour + step * (i + 1), s) for i, s in enumerate(scores)]
    return ent, made


def test_fire_acknowledge_resolve(make_user):
    now = timezone.now()
    ent, items = dropping_entity(now=now, items=25, item_scores=[-0.99 + 0.04 * i for i in range(25)])
    rule = f.rule(entity=ent, severity="critical")
    analyst = make_user("analyst", username="ana")

    summary = svc.alerts_evaluate(at=now)

    alert = Alert.objects.get()
    assert summary.fired == 1
    assert (alert.status, alert.severity, alert.entity) == ("fired", "critical", ent)
    assert alert.value <= -3 and alert.detail["count"] == 25
    # the items that drove it: the 20 most negative of the window
    assert set(alert.items.all()) == set(items[:20])
    note = Notification.objects.get(alert=alert)
    assert "ACME" in note.message and "CRITICAL" in note.message

    svc.alert_acknowledge(alert=alert, user=analyst)
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.acknowledged_by == analyst and alert.acknowledged_at
    with pytest.raises(ServiceError, match="already acknowledged by ana"):
        svc.alert_acknowledge(alert=alert, user=analyst)

    svc.alert_resolve(alert=alert, user=analyst)
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.resolved_by == analyst
    assert alert.detail["resolved_reason"] == "manual"
    with pytest.raises(ServiceError, match="already resolved"):
        svc.alert_resolve(alert=alert, user=analyst)
    with pytest.raises(ServiceError, match="nothing to acknowledge"):
        svc.alert_acknowledge(alert=alert, user=analyst)
    assert rule.alerts.count() == 1


def test_a_second_firing_updates_the_open_alert():
    now = timezone.now()
    ent, _ = dropping_entity(now=now)
    f.rule(entity=ent)
    svc.alerts_evaluate(at=now)
    second = svc.alerts_evaluate(at=now + timedelta(seconds=5))
    assert (second.fired, second.updated) == (0, 1)
    alert = Alert.objects.get()
    assert alert.detail["times_fired"] == 2
    assert Notification.objects.count() == 1  # one notification per alert, not per pass


def test_the_database_refuses_a_second_open_alert_per_rule_and_entity():
    ent = f.entity("ACME")
    rule = f.rule(entity=ent)
    now = timezone.now()
    Alert.objects.create(rule=rule, entity=ent, severity="warning", value=-4, fired_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule=rule, entity=ent, severity="warning", value=-5, fired_at=now)
    # a resolved alert does not count, and an "all items" scope (no entity, no topic) is unique too
    Alert.objects.create(rule=rule, entity=ent, severity="warning", value=-5, fired_at=now, status="resolved")
    Alert.objects.create(rule=rule, severity="warning", value=-5, fired_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule=rule, severity="warning", value=-5, fired_at=now)


def test_a_race_to_fire_updates_the_winner():
    now = timezone.now()
    ent, _ = dropping_entity(now=now)
    rule = f.rule(entity=ent)
    winner = Alert.objects.create(
        rule=rule, entity=ent, severity="warning", value=-1, fired_at=now, detail={}
    )
    # a pass that did not see the winner's alert tries to open its own
    from apps.sentiment import detection, selectors

    spec = RuleSpec.of(rule)
    start = detection.window_start(spec, now)
    rows = selectors.load_hour_buckets(since=start, until=now)[(ent.pk, None)]
    found = detection.evaluate(spec, rows, start=start, end=now)

    assert svc.alert_fire(rule=rule, entity_id=ent.pk, topic_id=None, found=found, at=now) is None
    winner.refresh_from_db()
    assert Alert.objects.count() == 1
    assert winner.value == pytest.approx(found.z, abs=1e-3) and winner.items.count() == 12


def test_min_count_keeps_one_item_from_paging_anyone():
    now = timezone.now()
    ent = f.entity("ACME")
    # a quiet history (about 5 % negatives, no positives): one very negative item is a large move
    f.series([*f.calm(48, mean=0.0, negative=0, wobble=0.005), f.stats(1, -0.95, 1)], end=now, ent=ent)
    f.rule(entity=ent, min_count=5)
    assert svc.alerts_evaluate(at=now).fired == 0
    assert not Alert.objects.exists()
    f.rule(entity=ent, min_count=1)  # the same move with min_count 1 does fire
    assert svc.alerts_evaluate(at=now).fired == 1


def test_cooldown_after_resolution(make_user):
    now = timezone.now()
    ent, _ = dropping_entity(now=now, items=30)  # enough to move a 3-hour window
    rule = f.rule(entity=ent, window_minutes=180, cooldown_minutes=60)
    svc.alerts_evaluate(at=now)
    alert = svc.alert_resolve(alert=Alert.objects.get(), user=make_user("analyst"))

    during = svc.alerts_evaluate(at=alert.resolved_at + timedelta(minutes=10))
    assert (during.fired, during.suppressed) == (0, 1)
    after = svc.alerts_evaluate(at=alert.resolved_at + timedelta(minutes=61))
    assert after.fired == 1
    assert list(rule.alerts.values_list("status", flat=True)) == ["fired", "resolved"]


def test_auto_resolve_after_a_clear_window():
    now = timezone.now()
    ent, _ = dropping_entity(now=now)
    f.rule(entity=ent, window_minutes=60, cooldown_minutes=0)
    svc.alerts_evaluate(at=now)
    later = now + timedelta(hours=2)  # the bad hour has left the window

    first = svc.alerts_evaluate(at=later)
    alert = Alert.objects.get()
    assert first.resolved == 0 and alert.status == "fired" and alert.detail["clear_since"]
    assert svc.alerts_evaluate(at=later + timedelta(minutes=30)).resolved == 0
    assert svc.alerts_evaluate(at=later + timedelta(minutes=60)).resolved == 1

    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.resolved_by is None
    assert alert.detail["resolved_reason"] == "auto"
    assert Notification.objects.filter(alert=alert, message__startswith="Resolved (automatically").exists()


def test_an_all_entities_rule_opens_one_alert_per_entity_that_turns():
    now = timezone.now()
    calm = [f.entity(t) for t in ("AAA", "BBB")]
    for ent in calm:
        f.series(f.calm(49), end=now, ent=ent)
    bad, _ = dropping_entity("BAD", now=now)
    f.entity("OFF", active=False)
    f.rule(name="any drop")

    summary = svc.alerts_evaluate(at=now)
    assert summary.fired == 1 and summary.scopes == 3
    assert Alert.objects.get().entity == bad
    # narrowing the pass to other entities leaves it alone
    assert svc.alerts_evaluate(entity_ids=[calm[0].pk], at=now).updated == 0


def test_topic_rules_watch_topic_buckets():
    now = timezone.now()
    top = f.topic("litigation")
    f.series([*f.calm(48, count=20), f.stats(90, 0.0, 10)], end=now, top=top)
    rule = f.rule(topic=top, condition=C.VOLUME_SPIKE, threshold=4)
    assert svc.alerts_evaluate(at=now).fired == 1
    alert = rule.alerts.get()
    assert alert.topic == top and alert.entity is None and alert.value > 4


def test_firing_creates_a_delivery_per_channel():
    now = timezone.now()
    ent, _ = dropping_entity(now=now)
    channels = [
        {"type": "email", "to": ["ops@example.com"]},
        {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret-value"},
    ]
    f.rule(entity=ent, channels=channels)
    svc.alerts_evaluate(at=now)
    assert sorted(Delivery.objects.values_list("channel_type", "event", "status")) == [
        ("email", "fired", "pending"),
        ("webhook", "fired", "pending"),
    ]


def test_an_evaluation_pass_is_a_few_queries_whatever_the_number_of_entities(django_assert_max_num_queries):
    now = timezone.now()
    for i in range(40):
        f.series(f.calm(3), end=now, ent=f.entity(f"E{i:02d}"))
    for condition in C.values:
        f.rule(condition=condition)
    with django_assert_max_num_queries(8):  # 6 reads, and the savepoint around the writes
        summary = svc.alerts_evaluate(at=now)
    assert summary.scopes == 160 and summary.fired == 0


def test_rule_validation_names_the_field():
    ent, top = f.entity("ACME"), f.topic("earnings")
    good = {"name": "r", "condition": C.SCORE_DROP, "threshold": 3, "window_minutes": 60, "min_count": 5}
    with pytest.raises(ServiceError) as both:
        svc.rule_create(user=None, entity=ent, topic=top, **good)
    assert both.value.field == "topic"
    with pytest.raises(ServiceError) as bad_channel:
        svc.rule_create(
            user=None, channels=[{"type": "webhook", "url": "ftp://x", "secret": "12345678"}], **good
        )
    assert bad_channel.value.field == "channels" and "channel 1" in bad_channel.value.message
    rule = svc.rule_create(user=None, channels=[{"type": "email", "to": "ops@example.com"}], **good)
    assert rule.channels == [{"type": "email", "to": ["ops@example.com"]}]
    svc.rule_update(rule=rule, threshold=4.5)
    rule.refresh_from_db()
    assert rule.threshold == 4.5 and rule.name == "r"


def test_alerts_fire_on_buckets_built_by_the_series_service():
    """The contract with services/series.py: its buckets and baselines drive detection as they are."""
    from apps.sentiment.series_math import ScoredItem
    from apps.sentiment.services.series import series_apply

    now = timezone.now()
    ent = f.entity("ACME")
    hour = now.replace(minute=0, second=0, microsecond=0)
    calm = [
        ScoredItem(hour - timedelta(hours=h, minutes=5 * k), "neutral", 0.1 + 0.02 * (k % 3 - 1), (ent.pk,))
        for h in range(1, 49)
        for k in range(8)
    ]
    series_apply(items=calm)
    rule = f.rule(entity=ent, condition=C.SCORE_DROP, threshold=3)
    volume = f.rule(entity=ent, condition=C.VOLUME_SPIKE, threshold=3)
    assert svc.alerts_evaluate(at=now).fired == 0  # a calm history and an empty current hour

    step = (now - hour) / 31
    series_apply(items=[ScoredItem(hour + step * (k + 1), "negative", -0.8, (ent.pk,)) for k in range(30)])
    assert svc.alerts_evaluate(at=now).fired == 2
    assert rule.alerts.get().value < -3 and volume.alerts.get().value > 3


def test_beat_runs_the_evaluation_and_the_delivery_sweeper():
    from apps.celery import app
    from apps.sentiment import tasks

    schedule = app.conf.beat_schedule
    assert schedule["sentiment-alerts-evaluate"]["task"] == tasks.evaluate_alerts.name
    assert schedule["sentiment-deliveries-sweep"]["task"] == tasks.sweep_deliveries.name
    assert schedule["sentiment-deliveries-sweep"]["schedule"] <= timedelta(minutes=1)
    # the task takes plain ids, as the ingestion side passes them after a batch
    now = timezone.now()
    ent, _ = dropping_entity(now=now)
    f.rule(entity=ent)
    assert tasks.evaluate_alerts.delay(entity_ids=[ent.pk]).get()["fired"] == 1
