"""The training ETA: seconds left at the recent pace, robust to a slow first step and to pauses."""

from __future__ import annotations

import pytest

from ml.training.runner import StepTracker
from tests.ml.recorder import Recorder


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _run(tracker: StepTracker, clock: Clock, steps: int, seconds_each: float) -> None:
    for _ in range(steps):
        clock.now += seconds_each
        tracker.advance(loss=None)


def test_eta_follows_the_recent_pace_not_the_mean_since_the_start():
    # given a run that did 100 quick steps, then slowed to 0.4 step/s
    clock, recorder = Clock(), Recorder()
    tracker = StepTracker(recorder, 300, clock=clock)
    _run(tracker, clock, 100, 0.1)

    # when 50 steps run at the new pace, leaving 150
    _run(tracker, clock, 50, 2.5)

    # then the ETA is 150 steps at 2.5 s (the mean since the start said 135 s)
    assert recorder.events[-1].eta_seconds == pytest.approx(375, rel=0.02)


def test_a_slow_first_step_does_not_dominate():
    # given two minutes of model load before the first step, then 0.4 step/s
    clock, recorder = Clock(), Recorder()
    tracker = StepTracker(recorder, 160, clock=clock)
    _run(tracker, clock, 1, 120.0)

    # when 9 more steps run, leaving 150
    _run(tracker, clock, 9, 2.5)

    # then the load is forgotten (the mean since the start said 2,138 s)
    assert recorder.events[-1].eta_seconds == pytest.approx(375, rel=0.02)


def test_a_pause_moves_the_eta_little():
    # given a steady 0.4 step/s run
    clock, recorder = Clock(), Recorder()
    tracker = StepTracker(recorder, 200, clock=clock)
    _run(tracker, clock, 40, 2.5)

    # when it pauses for ten minutes, then runs 10 more steps, leaving 150
    _run(tracker, clock, 1, 600.0)
    _run(tracker, clock, 9, 2.5)

    # then the ETA is near 375 s, not hours
    assert 375 <= recorder.events[-1].eta_seconds < 1.2 * 375


def test_first_step_has_an_eta_and_the_last_step_has_none_left():
    clock, recorder = Clock(), Recorder()
    tracker = StepTracker(recorder, 4, clock=clock)
    _run(tracker, clock, 4, 3.0)
    assert [e.eta_seconds for e in recorder.events] == [9.0, 6.0, 3.0, 0.0]
