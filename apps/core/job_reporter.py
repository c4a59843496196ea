"""Training callbacks that write a job's progress, log lines and heartbeats to its TrainingJob row."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.core.models import TrainingJob

if TYPE_CHECKING:
    from ml.api import Progress


class JobReporter:
    """What a running job reports through: the dashboard's progress bar and log read the row."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self._cancel = False

    def on_progress(self, progress: Progress) -> None:
        from apps.core.services.jobs import job_progress

        self._cancel = job_progress(
            job=self.job,
            step=progress.step,
            total=progress.total,
            loss=progress.loss,
            eta_seconds=progress.eta_seconds,
        )

    def should_stop(self) -> bool:
        return self._cancel

    def log(self, line: str) -> None:
        from apps.core.services.jobs import job_log

        job_log(job=self.job, line=line)


class CliReporter(JobReporter):
    """For a job run from the command line: the row as above, and a progress bar in the terminal."""

    def __init__(self, job: TrainingJob) -> None:
        from ml.api import TqdmCallbacks

        super().__init__(job)
        self.bar = TqdmCallbacks(f"job #{job.pk} {job.kind}")

    def on_progress(self, progress: Progress) -> None:
        super().on_progress(progress)
        self.bar.on_progress(progress)

    def log(self, line: str) -> None:
        super().log(line)
        self.bar.log(line)
