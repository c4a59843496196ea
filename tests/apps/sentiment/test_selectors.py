"""Reads: the hour buckets detection reads, backtests over stored buckets, the items behind an alert, the
scored items a rebuild starts from, and lookups by ticker and slug."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.core.errors import ServiceError
from apps.sentiment import detection, selectors
from apps.sentiment.detection import RuleSpec
from apps.sentiment.models import AlertRule, ItemTopic
from tests.apps.sentiment import alert_factories as f

C = AlertRule.Condition
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_load_hour_buckets_groups_scopes_in_one_query(django_assert_num_queries):
    a, b = f.entity("AAA"), f.entity("BBB")
    t = f.topic("earnings")
    f.series(f.calm(5), end=T0, ent=a)
    f.series(f.calm(3), end=T0, ent=b)
    f.series(f.calm(4), end=T0, top=t)
    with django_assert_num_queries(2):
        rows = selectors.load_hour_buckets(since=T0 - 2 * f.HOUR, until=T0)
    assert [len(rows[(a.pk, None)]), len(rows[(b.pk, None)]), len(rows[(None, t.pk)])] == [3, 3, 3]
    assert rows[(a.pk, None)][0].start == T0 - 2 * f.HOUR  # oldest first
    assert rows[(a.pk, None)][0].baseline["mean_score"]["n"] == 2


# --- backtest -----------------------------------------------------------------------------------------
def _history_with_drops(drop_hours: list[int], hours: int = 30 * 24) -> list[dict]:
    rows = f.calm(hours)
    for h in drop_hours:
        rows[h] = f.stats(12, -0.8, 10)
    return rows


@pytest.mark.django_db
def test_backtest_counts_each_episode_and_honours_cooldown():
    now = T0
    ent = f.entity("ACME")
    day = 24
    # drops on day 5 (twice, 10 hours apart), day 12 and day 20 of a 30-day history
    drops = [5 * day, 5 * day + 10, 12 * day, 20 * day]
    f.series(_history_with_drops(drops), end=now, ent=ent)
    first = now.replace(minute=0) - (30 * 24 - 1) * f.HOUR

    no_cooldown = selectors.backtest(
        RuleSpec(C.SCORE_DROP, 3, 60, 5, cooldown_minutes=0), entity_id=ent.pk, topic_id=None, now=now
    )
    day_cooldown = selectors.backtest(
        RuleSpec(C.SCORE_DROP, 3, 60, 5, cooldown_minutes=24 * 60), entity_id=ent.pk, topic_id=None, now=now
    )
    too_strict = selectors.backtest(
        RuleSpec(C.SCORE_DROP, 50, 60, 5, cooldown_minutes=0), entity_id=ent.pk, topic_id=None, now=now
    )

    assert no_cooldown.count == 4
    assert [fire.at for fire in no_cooldown.fires] == [first + (h + 1) * f.HOUR for h in drops]
    assert day_cooldown.count == 3  # the second drop on day 5 falls inside the cooldown
    assert too_strict.count == 0
    assert all(fire.z <= -3 for fire in no_cooldown.fires)


@pytest.mark.django_db
def test_backtest_of_an_all_entities_rule_reports_where_it_fired():
    now = T0
    quiet, loud = f.entity("QUIET"), f.entity("LOUD")
    f.series(f.calm(10 * 24), end=now, ent=quiet)
    f.series(_history_with_drops([100], hours=10 * 24), end=now, ent=loud)
    result = selectors.backtest(
        RuleSpec(C.SCORE_DROP, 3, 60, 5),
        entity_id=None,
        topic_id=None,
        active_entity_ids=[quiet.pk, loud.pk],
        now=now,
    )
    assert result.scopes == 2
    assert [(fire.entity_id, fire.count) for fire in result.fires] == [(loud.pk, 12)]


@pytest.mark.django_db
def test_a_rule_backtest_names_the_entities_it_fired_on():
    now = T0
    quiet, loud = f.entity("QUIET"), f.entity("LOUD")
    f.series(f.calm(5 * 24), end=now, ent=quiet)
    f.series(_history_with_drops([60], hours=5 * 24), end=now, ent=loud)
    result = selectors.rule_backtest(
        condition=C.SCORE_DROP, threshold=3, window_minutes=60, min_count=5, days=5, now=now
    )
    assert result.scopes == 2  # an "every entity" rule: every active entity
    assert [(fire.entity_id, label) for fire, label in result.rows()] == [(loud.pk, "LOUD")]


@pytest.mark.django_db
def test_a_rule_backtest_refuses_an_entity_and_a_topic_together():
    with pytest.raises(ServiceError, match="not both") as caught:
        selectors.rule_backtest(
            condition=C.SCORE_DROP,
            threshold=3,
            window_minutes=60,
            min_count=5,
            entity=f.entity("ACME"),
            topic=f.topic("earnings"),
        )
    assert caught.value.field == "topic"


# --- the items behind an alert ------------------------------------------------------------------------
def _window(start: datetime) -> detection.Detection:
    return detection.Detection(True, -4.0, -0.5, 0.1, 0.1, 3, start, start + f.HOUR)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (C.SCORE_DROP, ["bad", "meh", "good"]),  # the most negative first
        (C.NEGATIVE_SHARE, ["bad", "meh", "good"]),
        (C.SCORE_RISE, ["good", "meh", "bad"]),  # the most positive first
        (C.VOLUME_SPIKE, ["meh", "good", "bad"]),  # the latest first
    ],
)
def test_the_items_behind_an_alert_are_the_ones_that_moved_it(condition: str, expected: list[str]):
    ent, other = f.entity("ACME"), f.entity("OTHER")
    start = T0 - f.HOUR
    titles = {
        f.item(ent, start + timedelta(minutes=10), -0.9, "bad").pk: "bad",
        f.item(ent, start + timedelta(minutes=20), 0.9, "good").pk: "good",
        f.item(ent, start + timedelta(minutes=30), 0.0, "meh").pk: "meh",
    }
    f.item(other, start + timedelta(minutes=15), -1.0, "another entity")
    f.item(ent, start - timedelta(minutes=5), -1.0, "before the window")
    ids = selectors.alert_driving_items(
        condition=condition, entity_id=ent.pk, topic_id=None, found=_window(start)
    )
    assert [titles[i] for i in ids] == expected


# --- rebuilds and lookups ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_scored_items_carry_their_entities_and_topics():
    ent, top = f.entity("ACME"), f.topic("earnings")
    inside = f.item(ent, T0, -0.5)
    ItemTopic.objects.create(item=inside, topic=top, confidence=1.0)
    f.item(None, T0 - f.HOUR, 0.5)
    f.item(ent, T0 + timedelta(days=1), 0.5)  # outside [start, end)
    rows = selectors.scored_items(version_id=f.model_version().pk, start=T0 - f.HOUR, end=T0 + f.HOUR)
    assert sorted((r.published_at, r.label, r.entity_ids, r.topic_ids) for r in rows) == [
        (T0 - f.HOUR, "positive", (), ()),
        (T0, "negative", (ent.pk,), (top.pk,)),
    ]


@pytest.mark.django_db
def test_lookups_by_ticker_and_by_slug():
    ent, top = f.entity("AAPL"), f.topic("earnings")
    assert selectors.entity_by_ticker(" $aapl ") == ent
    assert selectors.entity_by_ticker("MSFT") is None
    assert selectors.topic_by_slug("earnings") == top
    assert selectors.topic_by_slug("guidance") is None


# --- the watchlist overview ---------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("descending", [False, True])
def test_overview_gives_no_change_when_a_window_holds_too_few_items(descending):
    # given MSFT with one item the 24 h before, NEWCO with two in the last 24 h, and ACME with plenty in both
    f.series([f.stats(1, 0.75, 0)] + [f.stats(10, 0.0, 2)] * 24, end=T0, ent=f.entity("MSFT"))
    f.series([f.stats(10, 0.1, 2)] * 24 + [f.stats(2, 0.9, 0)], end=T0 - 23 * f.HOUR, ent=f.entity("NEWCO"))
    f.series([f.stats(10, 0.0, 2)] * 24 + [f.stats(10, -0.2, 2)] * 24, end=T0, ent=f.entity("ACME"))

    # when the overview is sorted by change
    rows = selectors.overview(sort="change", descending=descending, now=T0)

    # then only ACME has a change, it comes first either way, and each row has the counts it compares
    changes = {r.entity.ticker: r.change for r in rows}
    assert changes["MSFT"] is None and changes["NEWCO"] is None and changes["ACME"] == pytest.approx(-0.2)
    assert rows[0].entity.ticker == "ACME"
    counts = {r.entity.ticker: (r.volume, r.previous_volume) for r in rows}
    assert counts == {"MSFT": (240, 1), "NEWCO": (2, 240), "ACME": (240, 240)}
