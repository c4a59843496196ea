"""Run a job kind in this process (no worker needed), with a progress bar, recorded as a TrainingJob row."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import ServiceError
from apps.core.job_registry import all_kinds
from apps.core.models import JobStatus
from apps.core.services import jobs as job_services


class Command(BaseCommand):
    help = 'Run a job in-process: manage.py run_job text_classifier --params \'{"dataset": "tfns"}\''

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("kind", help=f"one of: {', '.join(k.name for k in all_kinds())}")
        parser.add_argument("--params", default="{}", help="JSON object of parameters")
        parser.add_argument("--json", action="store_true", help="print the result as JSON on the last line")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            params = json.loads(options["params"])
            job = job_services.job_create_local(kind=options["kind"], params=params, trusted=True)
            job = job_services.job_run_local(job=job)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params: not valid JSON: {exc.msg}") from None
        except ServiceError as exc:
            raise CommandError(f"--params: {exc}" if exc.field != "kind" else str(exc)) from None
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"job #{job.pk} {job.status}: {job.error}")
        summary = {"job": job.pk, "metrics": job.metrics, "result": job.result}
        self.stdout.write(json.dumps(summary) if options["json"] else json.dumps(summary, indent=2))
