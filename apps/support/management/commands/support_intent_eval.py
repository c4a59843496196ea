"""Train (or reuse) a support intent model on a BANKING77-format file and score it on a test file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.errors import ServiceError
from apps.core.models import JobStatus, ModelVersion
from apps.core.services import jobs as job_services
from apps.support.services.intents import DEFAULTS, RECIPE_KEYS, TASK, evaluate, key_for, trained_version

KIND = "support_intent"


class Command(BaseCommand):
    help = (
        "Fine-tune the intent classifier on --train (text,category CSV) through the support_intent job, or reuse "
        "a registered version trained on a file with the same content and the same recipe, then score it on "
        "--test: n, accuracy and macro-F1. The test file is only scored, never trained or tuned on."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--train", metavar="FILE", required=True)
        parser.add_argument("--test", metavar="FILE", required=True)
        for name in RECIPE_KEYS:
            kind = float if name == "learning_rate" else int
            parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=DEFAULTS[name])
        parser.add_argument(
            "--promote",
            choices=["if_better", "always", "never"],
            default="never",
            help="whether a newly trained version may become active (default: never, only evaluate)",
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON on the last line")

    def handle(self, *args: Any, **opts: Any) -> None:
        from ml import api
        from ml.errors import MLError

        params = {name: opts[name] for name in RECIPE_KEYS} | {
            "train": opts["train"],
            "promote": opts["promote"],
        }
        try:
            test = api.load_banking77(Path(opts["test"]))
            version, reused, seconds = self._model(params)
        except MLError as exc:
            raise CommandError(str(exc)) from None
        result = {
            **evaluate(version.artifact_dir, list(test.texts), list(test.labels)),
            "model_version": version.version,
            "reused": reused,
            "train_seconds": seconds,
            "holdout": version.metrics.get("holdout"),
        }
        if opts["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(
                f"{TASK} v{version.version} on {result['n']} texts: accuracy {result['accuracy']:.4f}, "
                f"macro-F1 {result['macro_f1']:.4f}" + (" (reused)" if reused else "")
            )

    def _model(self, params: dict[str, Any]) -> tuple[ModelVersion, bool, float | None]:
        """(the version, whether it was reused, training seconds)."""
        from apps.core.job_registry import get_kind

        try:
            clean = get_kind(KIND).validate(params, trusted=True)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        found = trained_version(key_for(clean["train"], clean))
        if found is not None:
            self.stderr.write(f"reusing {found} (trained on the same file content with the same recipe)")
            return found, True, found.metrics.get("train_seconds")
        job = job_services.job_create_local(kind=KIND, params=clean, trusted=True)
        self.stderr.write(f"job #{job.pk}: training an intent model ({json.dumps(job.params)})")
        started = time.monotonic()
        job = job_services.job_run_local(job=job)
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"job #{job.pk} {job.status}: {job.error}")
        version = ModelVersion.objects.get(pk=job.result["model_version_id"])
        return version, False, round(time.monotonic() - started, 1)
