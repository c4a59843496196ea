"""Run a job kind in this process (no worker needed), with a tqdm bar, recorded as a TrainingJob row."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import ServiceError
from apps.core.job_kinds import JobReporter, all_kinds, get_kind
from apps.core.models import TrainingJob
from apps.core.services import jobs as job_services
from ml.errors import Cancelled, MLError
from ml.training.runner import Progress, TqdmCallbacks


class CliReporter(JobReporter):
    """Writes progress to the job row (the dashboard shows it) and to a tqdm bar in the terminal."""

    def __init__(self, job: TrainingJob) -> None:
        super().__init__(job)
        self.bar = TqdmCallbacks(f"job #{job.pk} {job.kind}")

    def on_progress(self, progress: Progress) -> None:
        super().on_progress(progress)
        self.bar.on_progress(progress)

    def log(self, line: str) -> None:
        super().log(line)
        self.bar.log(line)


class Command(BaseCommand):
    help = 'Run a job in-process: manage.py run_job text_classifier --params \'{"dataset": "tfns"}\''

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("kind", help=f"one of: {', '.join(k.name for k in all_kinds())}")
        parser.add_argument("--params", default="{}", help="JSON object of parameters")
        parser.add_argument("--json", action="store_true", help="print the result as JSON on the last line")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            params = json.loads(options["params"])
            if not isinstance(params, dict):
                raise ValueError("must be a JSON object")
            kind = get_kind(options["kind"])
            job = TrainingJob.objects.create(kind=kind.name, params=kind.validate(params))
        except (ValueError, ServiceError) as exc:
            raise CommandError(f"--params: {exc}") from None
        claimed = job_services.job_claim(job_id=job.pk)
        if claimed is None:
            raise CommandError(f"could not claim job #{job.pk}")
        try:
            outcome = kind.run(claimed, CliReporter(claimed))
        except Cancelled as exc:
            job_services.job_mark_cancelled(job=claimed, reason=str(exc))
            raise CommandError(str(exc)) from None
        except MLError as exc:
            job_services.job_fail(job=claimed, reason=str(exc))
            raise CommandError(str(exc)) from None
        except BaseException as exc:
            job_services.job_fail(job=claimed, reason=f"{type(exc).__name__}: {exc}")
            raise
        job_services.job_succeed(job=claimed, metrics=outcome.metrics, result=outcome.result)
        summary = {"job": claimed.pk, "metrics": outcome.metrics, "result": outcome.result}
        self.stdout.write(json.dumps(summary) if options["json"] else json.dumps(summary, indent=2))
