"""Training callbacks that record what a run reports, and can ask it to stop after N steps."""

from __future__ import annotations

from ml.training.runner import Progress, SilentCallbacks


class Recorder(SilentCallbacks):
    def __init__(self, stop_at: int = 0) -> None:
        self.events: list[Progress] = []
        self.lines: list[str] = []
        self.stop_at = stop_at

    def on_progress(self, progress: Progress) -> None:
        self.events.append(progress)

    def should_stop(self) -> bool:
        return bool(self.stop_at) and len(self.events) >= self.stop_at

    def log(self, line: str) -> None:
        self.lines.append(line)
