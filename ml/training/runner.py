"""What every training loop shares: progress reporting with ETA, cancellation between steps, seeds."""

from __future__ import annotations

import random
import time
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


class StepTracker:
    """Turns steps into Progress with an ETA, and checks for cancellation between steps."""

    def __init__(self, callbacks: TrainingCallbacks, total: int) -> None:
        self.callbacks = callbacks
        self.total = max(total, 1)
        self.step = 0
        self._start = time.monotonic()

    def advance(self, loss: float | None, message: str = "") -> None:
        self.step += 1
        elapsed = time.monotonic() - self._start
        eta = elapsed / self.step * (self.total - self.step) if self.step else None
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
