"""Series maths without a database: EWMA steps, baselines across empty periods, z-scores, bucket deltas."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.sentiment import series_math as series
from apps.sentiment.series_math import ScoredItem, bucket_deltas, ewma_update, next_baseline, zscore

H0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


@dataclass
class Period:
    """A bucket's numbers, as plain values (what the maths reads of a Bucket row)."""

    count: int = 0
    mean_score: float = 0.0
    negative_share: float = 0.0
    positive_share: float = 0.0
    baseline: dict[str, Any] = field(default_factory=dict)


def test_ewma_update_by_hand() -> None:
    alpha = 0.08
    s = ewma_update(series.empty_state(), 10.0, alpha)
    assert s == {"ewma": 10.0, "ewmvar": 0.0, "n": 1}
    s = ewma_update(s, 20.0, alpha)  # diff 10, incr 0.8
    assert s["ewma"] == pytest.approx(10.8) and s["ewmvar"] == pytest.approx(0.92 * 8.0) and s["n"] == 2
    s = ewma_update(s, 0.0, alpha)  # diff -10.8, incr -0.864
    assert s["ewma"] == pytest.approx(9.936)
    assert s["ewmvar"] == pytest.approx(0.92 * (7.36 + 10.8 * 0.864))


def test_alpha_follows_the_span() -> None:
    assert series.ALPHA["hour"] == pytest.approx(2 / 25) and series.ALPHA["day"] == pytest.approx(2 / 15)


def test_floor_time() -> None:
    when = datetime(2024, 5, 14, 9, 42, 7, tzinfo=UTC)
    assert series.floor_time(when, "hour") == H0
    assert series.floor_time(when, "day") == datetime(2024, 5, 14, tzinfo=UTC)
    with pytest.raises(ValueError, match="week"):
        series.floor_time(when, "week")


def test_zscore_uses_the_baseline_and_its_floors() -> None:
    bucket = Period(mean_score=-0.6, count=12, negative_share=0.5)
    bucket.baseline = {
        "mean_score": {"ewma": 0.0, "ewmvar": 0.04, "n": 5},
        "count": {"ewma": 4.0, "ewmvar": 1.0, "n": 5},
        "negative_share": {"ewma": 0.1, "ewmvar": 0.0, "n": 2},
    }
    assert zscore(bucket, "mean_score") == pytest.approx(-3.0)
    assert zscore(bucket, "count") == pytest.approx((12 - 4) / 2.0)  # variance floored at the mean (Poisson)
    assert zscore(bucket, "negative_share") is None  # only 2 buckets of history
    bucket.baseline["mean_score"]["ewmvar"] = 0.0001
    assert zscore(bucket, "mean_score") == pytest.approx(-6.0)  # std floored at 0.1


def test_empty_periods_count_as_zero_volume_but_not_as_sentiment() -> None:
    alpha = series.ALPHA["hour"]
    first = Period(count=10, mean_score=0.5, negative_share=0.1, positive_share=0.6)
    after_first = next_baseline(series.initial_baseline("hour"), first, gap=0, granularity="hour")
    assert after_first["count"] == {"ewma": 10.0, "ewmvar": 0.0, "n": 1}
    assert after_first["mean_score"]["ewma"] == 0.5

    second = Period(count=4, mean_score=-0.5, negative_share=0.5, positive_share=0.0)
    after_gap = next_baseline(after_first, second, gap=2, granularity="hour")  # two silent hours follow
    count = ewma_update(ewma_update(ewma_update(after_first["count"], 4.0, alpha), 0.0, alpha), 0.0, alpha)
    assert after_gap["count"] == count and after_gap["count"]["n"] == 4
    assert after_gap["mean_score"] == ewma_update(after_first["mean_score"], -0.5, alpha)  # gap skipped
    assert after_gap["gap"] == 2 and after_gap["alpha"] == alpha


def test_periods_between_counts_the_empty_ones() -> None:
    assert series.periods_between(H0, H0 + H, "hour") == 0
    assert series.periods_between(H0, H0 + 3 * H, "hour") == 2
    assert series.periods_between(H0, H0 + timedelta(days=3), "day") == 2


def test_an_item_adds_to_the_all_scope_and_each_of_its_entities_and_topics_once() -> None:
    items = [
        ScoredItem(H0 + timedelta(minutes=5), "negative", -0.8, entity_ids=(1, 2, 1), topic_ids=(7,)),
        ScoredItem(H0 + timedelta(minutes=50), "positive", 0.6, entity_ids=(1,)),
    ]
    deltas = bucket_deltas(items)
    day = datetime(2024, 5, 14, tzinfo=UTC)
    assert set(deltas) == {
        (scope, granularity, start)
        for granularity, start in (("hour", H0), ("day", day))
        for scope in ((None, None), (1, None), (2, None), (None, 7))
    }
    everything = deltas[((None, None), "hour", H0)]
    assert (everything.count, everything.negative, everything.positive) == (2, 1, 1)
    assert everything.score_sum == pytest.approx(-0.2)
    assert deltas[((1, None), "day", day)].count == 2  # entity 1 listed twice in the first item: counted once
    assert deltas[((2, None), "hour", H0)].score_sum == pytest.approx(-0.8)
