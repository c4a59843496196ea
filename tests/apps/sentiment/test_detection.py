"""Detection: z-scores of a window against its baseline, the std floor, min_count, and the backtest."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from apps.sentiment import detection, selectors
from apps.sentiment.detection import BucketRow, RuleSpec
from apps.sentiment.models import AlertRule
from tests.apps.sentiment import alert_factories as f

C = AlertRule.Condition
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def row(start: datetime, count: int, mean: float, negative: int, baseline: dict) -> BucketRow:
    return BucketRow(start, count, mean * count, negative, 0, baseline)


def base(mean=(0.1, 0.0004), neg=(0.2, 0.0025), count=(10.0, 4.0), n=24, pos=0.3) -> dict:
    return {
        "mean_score": {"ewma": mean[0], "ewmvar": mean[1], "n": n},
        "negative_share": {"ewma": neg[0], "ewmvar": neg[1], "n": n},
        "positive_share": {"ewma": pos, "ewmvar": 0.001, "n": n},
        "count": {"ewma": count[0], "ewmvar": count[1], "n": n},
    }


# base(): per-item score variance P(pos) + P(neg) - mean^2 = 0.3 + 0.2 - 0.01 = 0.49, usual bucket 10 items,
# so hourly means of 10 items spread by 0.049 from sampling alone; ewmvar 0.06 leaves 0.011 of real drift.
DRIFTING = (0.1, 0.06)


def test_a_window_of_the_usual_size_gets_the_history_spread_back():
    spec = RuleSpec(C.SCORE_DROP, threshold=3, window_minutes=60, min_count=5)
    found = detection.evaluate(spec, [row(T0, 10, -0.3, 6, base(mean=DRIFTING))], start=T0, end=T0 + f.HOUR)
    assert found.std == pytest.approx(math.sqrt(0.06))
    assert found.z == pytest.approx(-0.4 / math.sqrt(0.06))
    assert not found.fired  # 10 items averaging -0.3 is within the usual hourly swing


def test_the_same_move_over_more_items_is_more_significant():
    spec = RuleSpec(C.SCORE_DROP, threshold=3, window_minutes=60, min_count=5)
    found = detection.evaluate(spec, [row(T0, 200, -0.3, 90, base(mean=DRIFTING))], start=T0, end=T0 + f.HOUR)
    # sampling noise shrinks to 0.49 / 200; the drift 0.011 stays
    assert found.std == pytest.approx(math.sqrt(0.011 + 0.49 / 200))
    assert found.z == pytest.approx(-0.4 / math.sqrt(0.011 + 0.49 / 200))
    assert found.fired


def test_a_longer_window_averages_the_drift_down():
    spec = RuleSpec(C.SCORE_DROP, threshold=3, window_minutes=240, min_count=5)
    window = [row(T0 + i * f.HOUR, 10, -0.3, 6, base(mean=DRIFTING)) for i in range(4)]
    found = detection.evaluate(spec, window, start=T0, end=T0 + 4 * f.HOUR)
    assert found.std == pytest.approx(math.sqrt(0.011 / 4 + 0.49 / 40))


def test_flat_history_gives_a_finite_z():
    spec = RuleSpec(C.SCORE_DROP, threshold=3, window_minutes=60, min_count=1)
    flat = base(mean=(0.1, 0.0))
    found = detection.evaluate(spec, [row(T0, 10, 0.09, 2, flat)], start=T0, end=T0 + f.HOUR)
    assert math.isfinite(found.z) and found.z == pytest.approx(-0.01 / math.sqrt(0.049))
    neutral = base(mean=(0.0, 0.0), neg=(0.0, 0.0), pos=0.0)  # every past item exactly neutral
    found = detection.evaluate(spec, [row(T0, 10, 0.0, 0, neutral)], start=T0, end=T0 + f.HOUR)
    assert found.z == 0.0 and found.std > 0


def test_a_rise_does_not_fire_a_drop_rule_but_fires_a_rise_rule():
    window = [row(T0, 10, 0.6, 0, base(mean=(0.1, 0.01)))]  # std sqrt(0.49 / 10), z = +2.26
    drop = detection.evaluate(RuleSpec(C.SCORE_DROP, 2, 60, 5), window, start=T0, end=T0)
    rise = detection.evaluate(RuleSpec(C.SCORE_RISE, 2, 60, 5), window, start=T0, end=T0)
    assert drop.z == pytest.approx(0.5 / math.sqrt(0.049)) and not drop.fired
    assert rise.fired


def test_volume_spike_compares_items_per_hour_with_the_count_baseline():
    # count baseline 10/h with variance 4: the Poisson floor 10 wins, over a 2-hour window
    spec = RuleSpec(C.VOLUME_SPIKE, threshold=4, window_minutes=120, min_count=5)
    baseline = base(count=(10.0, 4.0))
    window = [row(T0, 30, 0.0, 3, baseline), row(T0 + f.HOUR, 50, 0.0, 5, base(count=(14.0, 20.0)))]
    found = detection.evaluate(spec, window, start=T0, end=T0 + 2 * f.HOUR)
    # 80 items over a 2-hour window = 40/h against the *first* bucket's baseline
    assert found.value == pytest.approx(40.0)
    assert found.z == pytest.approx(30 / math.sqrt(10 / 2))
    assert found.fired


def test_negative_share_over_a_multi_bucket_window():
    spec = RuleSpec(C.NEGATIVE_SHARE, threshold=3, window_minutes=180, min_count=5)
    b = base(neg=(0.2, 0.01))  # all sampling noise: 0.2 * 0.8 / 10 = 0.016 > 0.01
    window = [row(T0, 10, 0.0, 3, b), row(T0 + f.HOUR, 10, 0.0, 6, {}), row(T0 + 2 * f.HOUR, 10, 0.0, 9, {})]
    found = detection.evaluate(spec, window, start=T0, end=T0 + 3 * f.HOUR)
    assert found.value == pytest.approx(0.6)  # 18 negatives in 30 items
    assert found.z == pytest.approx(0.4 / math.sqrt(0.16 / 30))
    assert found.fired


def test_min_count_stops_one_item_from_firing():
    # a calm history (4 % of items non-neutral): one very negative item is a big move...
    calm = base(mean=(0.0, 0.004), neg=(0.02, 0.0), pos=0.02)
    spec = RuleSpec(C.SCORE_DROP, threshold=3, window_minutes=60, min_count=5)
    found = detection.evaluate(spec, [row(T0, 1, -0.95, 1, calm)], start=T0, end=T0)
    assert found.z == pytest.approx(-0.95 / math.sqrt(0.04))
    assert not found.fired and "fewer than 5" in found.reason  # ...that pages nobody
    assert detection.evaluate(
        RuleSpec(C.SCORE_DROP, 3, 60, 1), [row(T0, 1, -0.95, 1, calm)], start=T0, end=T0
    ).fired


def test_no_firing_without_enough_history():
    spec = RuleSpec(C.SCORE_DROP, threshold=3, window_minutes=60, min_count=1)
    found = detection.evaluate(spec, [row(T0, 10, -0.9, 9, base(n=2))], start=T0, end=T0)
    assert not found.fired and found.reason == "no baseline yet"


def test_window_covers_the_latest_hour_buckets():
    spec = RuleSpec(C.SCORE_DROP, threshold=3, window_minutes=150, min_count=1)  # 3 hour buckets
    at = T0 + timedelta(minutes=20)
    assert spec.window_buckets == 3
    assert detection.window_start(spec, at) == T0 - 2 * f.HOUR


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


def test_the_condition_names_match_the_rule_model() -> None:
    """The pure module names the conditions itself (it imports no models): they must stay the model's."""
    assert set(detection.STATISTIC) == set(AlertRule.Condition.values)
