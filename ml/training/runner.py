"""What every training loop shares: progress reporting with ETA, cancellation between steps, seeds."""

from __future__ import annotations

import random
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ml.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    loss: float | None
    eta_seconds: float | None
    message: str = ""


class TrainingCallbacks(Protocol):
    """What a caller (a Celery job, the CLI) gives a training run."""

    def on_progress(self, progress: Progress) -> None: ...

    def should_stop(self) -> bool: ...

    def log(self, line: str) -> None: ...


class SilentCallbacks:
    """Callbacks that report nothing and never cancel (library use, tests)."""

    def on_progress(self, progress: Progress) -> None:
        return None

    def should_stop(self) -> bool:
        return False

    def log(self, line: str) -> None:
        return None


class TqdmCallbacks(SilentCallbacks):
    """A tqdm bar for runs started from a terminal."""

    def __init__(self, description: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(desc=description, unit="step")

    def on_progress(self, progress: Progress) -> None:
        self._bar.total = progress.total
        self._bar.n = progress.step
        if progress.loss is not None:
            self._bar.set_postfix(loss=f"{progress.loss:.4f}")
        self._bar.refresh()

    def log(self, line: str) -> None:
        self._bar.write(line)


class PaceEstimator:
    """Seconds left at the recent pace of a loop, from the times its steps finished.

    The pace is the mean of the last `window` step times, each capped at `outlier_factor` times their median,
    so a pause (a suspended worker, a soup rebuilding its model) moves the estimate a little, and only while it
    is in the window. The time before the first step (model load, warm-up) counts only until a second step
    gives a real step time. The mean since the start, which the ETA was before, let one slow first step
    dominate a whole run and kept a run that slowed down on its early pace (60 s shown with 6 minutes left).
    """

    def __init__(self, started_at: float, window: int = 30, outlier_factor: float = 4.0) -> None:
        self._started_at = started_at
        self._last: float | None = None
        self._step_times: deque[float] = deque(maxlen=window)
        self._outlier_factor = outlier_factor

    def step_done(self, at: float) -> None:
        """Record that a step finished at `at` (seconds on the clock `started_at` was read from)."""
        if self._last is not None:
            self._step_times.append(max(at - self._last, 0.0))
        self._last = at

    def seconds_per_step(self) -> float | None:
        """The recent pace; before a second step, the time the first one took from the start; None before any."""
        if not self._step_times:
            return None if self._last is None else self._last - self._started_at
        cap = self._outlier_factor * statistics.median(self._step_times)
        return statistics.fmean(min(t, cap) for t in self._step_times)

    def seconds_left(self, steps_left: int) -> float | None:
        """Seconds until `steps_left` more steps are done at the recent pace (0 when none are left)."""
        if steps_left <= 0:
            return 0.0
        per_step = self.seconds_per_step()
        return None if per_step is None else per_step * steps_left


class StepTracker:
    """Turns steps into Progress with an ETA, and checks for cancellation between steps."""

    def __init__(
        self, callbacks: TrainingCallbacks, total: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.callbacks = callbacks
        self.total = max(total, 1)
        self.step = 0
        self._clock = clock
        self._pace = PaceEstimator(started_at=clock())

    def advance(self, loss: float | None, message: str = "") -> None:
        self.step += 1
        self._pace.step_done(self._clock())
        eta = self._pace.seconds_left(self.total - self.step)
        self.callbacks.on_progress(Progress(self.step, self.total, loss, eta, message))
        self.check_cancel()

    def check_cancel(self) -> None:
        if self.callbacks.should_stop():
            raise Cancelled(f"cancelled at step {self.step} of {self.total}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run with the same data and seed gives the same model."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
