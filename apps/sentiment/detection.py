"""Detecting turns: a window of hour buckets compared with its baseline as a z-score.

For a rule with `window_minutes`, the window is the k = ceil(window_minutes / 60) latest hour buckets up to and
including the hour being evaluated (the live pass evaluates at "now", so the current, still filling hour is
the window's last bucket; the backtest evaluates at the end of each past hour). Over the window:

- `score_drop` / `score_rise`: the window's mean score (sum of scores / items) against the `mean_score` baseline;
- `negative_share`: negatives / items in the window against the `negative_share` baseline;
- `volume_spike` ("buzz"): items per hour in the window (items / k) against the `count` baseline.

The baseline is `Bucket.baseline` of the window's first bucket, which services/series.py computes from the
buckets *before* it, so the window never dilutes its own baseline. Its layout (one entry per statistic):

    {"mean_score": {"ewma": float, "ewmvar": float, "n": int}, "negative_share": {...},
     "positive_share": {...}, "count": {...}, ...}

(series.py's docstring is the contract; there, hours without items count as zeros in the `count` baseline, so
the window's items per hour also counts its empty hours.)

    z = (value - ewma) / std_window

`std_window` is the spread the window's value would have under the baseline, so it depends on how many items
and hours the window holds (a mean over 500 items moves less by chance than one over 10):

- mean score and shares: the hourly values' variance `ewmvar` is split into sampling noise at the usual
  bucket size n = max(1, count baseline) and real hour-to-hour drift, drift = max(0, ewmvar - s2 / n), where
  s2 is the per-item variance under the baseline (p(1 - p) for a share; for the score, whose items lie in
  [-1, 1], P(positive) + P(negative) - mean^2 from the baseline shares, exact for hard labels). Then
  std_window^2 = drift / k + s2 / items. A window of the usual size over one hour gets sqrt(ewmvar) back.
- volume: the hourly count's variance, at least its mean (Poisson), over k hours: sqrt(max(ewmvar, ewma, 1) / k).

STD_FLOOR keeps a flat, label-free history (s2 = 0) from producing an infinite z. Nothing fires with fewer than
`min_count` items in the window, or with a baseline built from fewer than MIN_HISTORY buckets. A drop fires
when z <= -threshold, the other conditions when z >= threshold.

In the live pass the current hour is still filling, so early in an hour a volume spike reads low: detection is
late rather than wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apps.sentiment.series_math import Scope

HOUR = timedelta(hours=1)
MIN_HISTORY = 3
# Lowest window spread: only reached when the history carries no per-item variance (every item neutral).
STD_FLOOR = {"mean_score": 0.02, "negative_share": 0.01, "positive_share": 0.01}
MIN_ITEM_VAR = 0.01
# AlertRule.Condition's values (the model's choices), and the statistic each one watches.
SCORE_DROP, SCORE_RISE, NEGATIVE_SHARE, VOLUME_SPIKE = (
    "score_drop",
    "score_rise",
    "negative_share",
    "volume_spike",
)
STATISTIC = {
    SCORE_DROP: "mean_score",
    SCORE_RISE: "mean_score",
    NEGATIVE_SHARE: "negative_share",
    VOLUME_SPIKE: "count",
}


@dataclass(frozen=True, slots=True)
class BucketRow:
    start: datetime
    count: int
    score_sum: float
    negative: int
    positive: int
    baseline: dict[str, Any]


@dataclass(frozen=True)
class RuleSpec:
    """What detection needs from a rule; built from a saved rule or from the editor's unsaved form."""

    condition: str
    threshold: float
    window_minutes: int
    min_count: int
    cooldown_minutes: int = 0

    @classmethod
    def of(cls, rule: Any) -> RuleSpec:
        """From anything with a rule's fields (a saved AlertRule, the editor's cleaned form)."""
        return cls(rule.condition, rule.threshold, rule.window_minutes, rule.min_count, rule.cooldown_minutes)

    @property
    def window_buckets(self) -> int:
        return max(1, math.ceil(self.window_minutes / 60))

    @property
    def statistic(self) -> str:
        return STATISTIC[str(self.condition)]

    @property
    def direction(self) -> int:
        return -1 if self.condition == SCORE_DROP else 1


@dataclass(frozen=True)
class Detection:
    fired: bool
    z: float | None
    value: float | None
    expected: float | None
    std: float | None
    count: int
    window_start: datetime
    window_end: datetime
    reason: str = ""

    def as_detail(self, spec: RuleSpec) -> dict[str, Any]:
        return {
            "condition": spec.condition,
            "statistic": spec.statistic,
            "threshold": spec.threshold,
            "window_minutes": spec.window_minutes,
            "z": _round(self.z),
            "value": _round(self.value),
            "baseline_mean": _round(self.expected),
            "baseline_std": _round(self.std),
            "count": self.count,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def window_start(spec: RuleSpec, at: datetime) -> datetime:
    return floor_hour(at) - (spec.window_buckets - 1) * HOUR


def item_variance(statistic: str, baseline: dict[str, Any]) -> float:
    """The variance of one item's value under the baseline (see the module docstring)."""

    def ewma(name: str) -> float:
        return float((baseline.get(name) or {}).get("ewma") or 0.0)

    if statistic == "mean_score":
        mean = ewma("mean_score")
        return max(MIN_ITEM_VAR, ewma("positive_share") + ewma("negative_share") - mean * mean)
    p = min(max(ewma(statistic), 0.0), 1.0)
    return max(MIN_ITEM_VAR, p * (1.0 - p))


def window_std(statistic: str, baseline: dict[str, Any], *, items: int, hours: int) -> float:
    """How far the window's value spreads by chance under the baseline, for `items` items over `hours`."""
    state = baseline[statistic]
    ewma, ewmvar = float(state["ewma"]), max(float(state.get("ewmvar", 0.0)), 0.0)
    if statistic == "count":
        return math.sqrt(max(ewmvar, ewma, 1.0) / hours)
    s2 = item_variance(statistic, baseline)
    usual = max(1.0, float((baseline.get("count") or {}).get("ewma") or 1.0))
    drift = max(0.0, ewmvar - s2 / usual)
    return max(math.sqrt(drift / hours + s2 / max(items, 1)), STD_FLOOR.get(statistic, 0.02))


def _window_value(spec: RuleSpec, rows: Sequence[BucketRow], count: int) -> float:
    if spec.statistic == "count":
        return count / spec.window_buckets
    if spec.statistic == "negative_share":
        return sum(r.negative for r in rows) / count
    return sum(r.score_sum for r in rows) / count


def evaluate(spec: RuleSpec, rows: Sequence[BucketRow], *, start: datetime, end: datetime) -> Detection:
    """Evaluate one rule over the buckets of one scope's window (`rows`, oldest first, all inside it)."""
    count = sum(r.count for r in rows)
    if not rows or count == 0:
        return Detection(False, None, None, None, None, 0, start, end, "no items in the window")
    value = _window_value(spec, rows, count)
    baseline = rows[0].baseline or {}
    base = baseline.get(spec.statistic) or {}
    if int(base.get("n", 0)) < MIN_HISTORY or base.get("ewma") is None:
        return Detection(False, None, value, None, None, count, start, end, "no baseline yet")
    ewma = float(base["ewma"])
    std = window_std(spec.statistic, baseline, items=count, hours=spec.window_buckets)
    z = (value - ewma) / std
    if count < spec.min_count:
        return Detection(False, z, value, ewma, std, count, start, end, f"fewer than {spec.min_count} items")
    fired = spec.direction * z >= spec.threshold
    return Detection(fired, z, value, ewma, std, count, start, end, "" if fired else "under the threshold")


def rows_in_window(rows: Sequence[BucketRow], start: datetime, end: datetime) -> list[BucketRow]:
    return [r for r in rows if start <= r.start <= end]


# --- backtest -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BacktestFire:
    at: datetime
    entity_id: int | None
    topic_id: int | None
    z: float
    count: int


@dataclass
class BacktestResult:
    days: int
    since: datetime
    until: datetime
    scopes: int
    fires: list[BacktestFire] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)  # entity id -> ticker, for display

    @property
    def count(self) -> int:
        return len(self.fires)

    def rows(self, limit: int = 100) -> list[tuple[BacktestFire, str]]:
        return [(fire, self.labels.get(fire.entity_id or 0, "")) for fire in self.fires[:limit]]


def rule_scopes(
    *, entity_id: int | None, topic_id: int | None, active_entity_ids: Iterable[int]
) -> list[Scope]:
    """The scopes a rule watches: its entity, its topic, or every active entity."""
    if entity_id is not None:
        return [(entity_id, None)]
    if topic_id is not None:
        return [(None, topic_id)]
    return [(e, None) for e in active_entity_ids]


def simulate_scope(
    spec: RuleSpec, rows: Sequence[BucketRow], *, since: datetime, until: datetime
) -> list[Detection]:
    """Replay the live state machine hour by hour over one scope's history; return the detections that
    would have opened an alert.

    Evaluated at the end of each hour: an open alert updates while the condition holds, resolves once it has
    been clear for a whole window, and no new alert opens within the cooldown after a resolution.
    """
    by_start = {r.start: r for r in rows}
    k = spec.window_buckets
    clear_for = HOUR + k * HOUR  # the first clear evaluation comes an hour after the last firing one
    cooldown = timedelta(minutes=spec.cooldown_minutes)
    opened: list[Detection] = []
    last_fired: datetime | None = None  # evaluation time the open alert last fired; None when none is open
    resolved_at: datetime | None = None
    for hour in sorted({r.start + i * HOUR for r in rows for i in range(k)}):
        evaluated_at = hour + HOUR
        if hour < floor_hour(since) or evaluated_at > until + HOUR:
            continue
        if last_fired is not None and evaluated_at >= last_fired + clear_for:
            resolved_at, last_fired = last_fired + clear_for, None
        first = hour - (k - 1) * HOUR
        in_window = [by_start[first + i * HOUR] for i in range(k) if first + i * HOUR in by_start]
        det = evaluate(spec, in_window, start=first, end=evaluated_at)
        if not det.fired:
            continue
        if last_fired is None:
            if resolved_at is not None and evaluated_at < resolved_at + cooldown:
                continue
            opened.append(det)
        last_fired = evaluated_at
    return opened
