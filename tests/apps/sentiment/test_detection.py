"""Detection maths without a database: z-scores of a window against its baseline, the std floor, min_count,
and the hour-by-hour replay behind backtests (the backtest over stored buckets is in test_selectors.py)."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from apps.sentiment import detection
from apps.sentiment.detection import BucketRow, RuleSpec
from apps.sentiment.models import AlertRule

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
    found = detection.evaluate(
        spec, [row(T0, 10, -0.3, 6, base(mean=DRIFTING))], start=T0, end=T0 + detection.HOUR
    )
    assert found.std == pytest.approx(math.sqrt(0.06))
    assert found.z == pytest.approx(-0.4 / math.sqrt(0.06))
    assert not found.fired  # 10 items averaging -0.3 is within the usual hourly swing


def test_the_same_move_over_more_items_is_more_significant():
    spec = RuleSpec(C.SCORE_DROP, threshold=3, window_minutes=60, min_count=5)
    found = detection.evaluate(
        spec, [row(T0, 200, -0.3, 90, base(mean=DRIFTING))], start=T0, end=T0 + detection.HOUR
    )
    # sampling noise shrinks to 0.49 / 200; the drift 0.011 stays
    assert found.std == pytest.approx(math.sqrt(0.011 + 0.49 / 200))
    assert found.z == pytest.approx(-0.4 / math.sqrt(0.011 + 0.49 / 200))
    assert found.fired


def test_a_longer_window_averages_the_drift_down():
    spec = RuleSpec(C.SCORE_DROP, threshold=3, window_minutes=240, min_count=5)
    window = [row(T0 + i * detection.HOUR, 10, -0.3, 6, base(mean=DRIFTING)) for i in range(4)]
    found = detection.evaluate(spec, window, start=T0, end=T0 + 4 * detection.HOUR)
    assert found.std == pytest.approx(math.sqrt(0.011 / 4 + 0.49 / 40))


def test_flat_history_gives_a_finite_z():
    spec = RuleSpec(C.SCORE_DROP, threshold=3, window_minutes=60, min_count=1)
    flat = base(mean=(0.1, 0.0))
    found = detection.evaluate(spec, [row(T0, 10, 0.09, 2, flat)], start=T0, end=T0 + detection.HOUR)
    assert math.isfinite(found.z) and found.z == pytest.approx(-0.01 / math.sqrt(0.049))
    neutral = base(mean=(0.0, 0.0), neg=(0.0, 0.0), pos=0.0)  # every past item exactly neutral
    found = detection.evaluate(spec, [row(T0, 10, 0.0, 0, neutral)], start=T0, end=T0 + detection.HOUR)
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
    window = [row(T0, 30, 0.0, 3, baseline), row(T0 + detection.HOUR, 50, 0.0, 5, base(count=(14.0, 20.0)))]
    found = detection.evaluate(spec, window, start=T0, end=T0 + 2 * detection.HOUR)
    # 80 items over a 2-hour window = 40/h against the *first* bucket's baseline
    assert found.value == pytest.approx(40.0)
    assert found.z == pytest.approx(30 / math.sqrt(10 / 2))
    assert found.fired


def test_negative_share_over_a_multi_bucket_window():
    spec = RuleSpec(C.NEGATIVE_SHARE, threshold=3, window_minutes=180, min_count=5)
    b = base(neg=(0.2, 0.01))  # all sampling noise: 0.2 * 0.8 / 10 = 0.016 > 0.01
    window = [
        row(T0, 10, 0.0, 3, b),
        row(T0 + detection.HOUR, 10, 0.0, 6, {}),
        row(T0 + 2 * detection.HOUR, 10, 0.0, 9, {}),
    ]
    found = detection.evaluate(spec, window, start=T0, end=T0 + 3 * detection.HOUR)
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
    assert detection.window_start(spec, at) == T0 - 2 * detection.HOUR


# --- backtest replay (the live state machine hour by hour) ---------------------------------------------
def _calm_hours(hours: int, drops: set[int]) -> list[BucketRow]:
    """`hours` hour rows from T0 with a settled baseline; the hours in `drops` carry 12 very negative items."""
    return [
        row(T0 + h * detection.HOUR, 12, -0.8, 12, base())
        if h in drops
        else row(T0 + h * detection.HOUR, 10, 0.1, 2, base())
        for h in range(hours)
    ]


def _opened(rows: list[BucketRow], cooldown_minutes: int = 0) -> list[datetime]:
    spec = RuleSpec(C.SCORE_DROP, 3, 60, 5, cooldown_minutes=cooldown_minutes)
    until = rows[-1].start + detection.HOUR
    return [d.window_end for d in detection.simulate_scope(spec, rows, since=T0, until=until)]


def test_a_drop_that_lasts_several_hours_opens_one_alert():
    assert _opened(_calm_hours(12, {5, 6, 7})) == [T0 + 6 * detection.HOUR]


def test_a_second_drop_after_the_alert_cleared_opens_another_unless_in_the_cooldown():
    rows = _calm_hours(12, {3, 8})  # the first alert resolves two clear hours after its last firing
    assert _opened(rows) == [T0 + 4 * detection.HOUR, T0 + 9 * detection.HOUR]
    assert _opened(rows, cooldown_minutes=4 * 60) == [T0 + 4 * detection.HOUR]


def test_a_rule_watches_its_entity_its_topic_or_every_active_entity():
    assert detection.rule_scopes(entity_id=4, topic_id=None, active_entity_ids=[1, 2]) == [(4, None)]
    assert detection.rule_scopes(entity_id=None, topic_id=9, active_entity_ids=[1, 2]) == [(None, 9)]
    assert detection.rule_scopes(entity_id=None, topic_id=None, active_entity_ids=[1, 2]) == [
        (1, None),
        (2, None),
    ]


def test_the_condition_names_match_the_rule_model() -> None:
    """The pure module names the conditions itself (it imports no models): they must stay the model's."""
    assert set(detection.STATISTIC) == set(AlertRule.Condition.values)


def test_the_domain_modules_load_without_django() -> None:
    """detection and series_math are plain Python: importing them loads no Django, DRF, Celery or models."""
    pure = ("apps.sentiment.detection", "apps.sentiment.series_math")
    code = (
        "import sys, apps.sentiment; before = set(sys.modules); "
        f"import {', '.join(pure)}; "
        "print(sorted(m for m in set(sys.modules) - before "
        "if m.split('.')[0] in ('apps', 'django', 'rest_framework', 'celery')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted(pure))
