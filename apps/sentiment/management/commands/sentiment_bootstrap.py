"""Queue the first sentiment model's training on a fresh install (called by `make run`)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.errors import ServiceError
from apps.sentiment.services.topics import topics_ensure_defaults
from apps.sentiment.services.training import BOOTSTRAP_PARAMS, bootstrap_training


class Command(BaseCommand):
    help = (
        "Create the default topics, and a `sentiment_train` job (tweets only, so commercially usable; one epoch) "
        "when no sentiment model is active and none is pending or running. A training worker picks it up."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        topics = topics_ensure_defaults()
        try:
            job = bootstrap_training()
        except ServiceError as exc:
            raise CommandError(f"cannot queue the first sentiment model: {exc.message}") from None
        if job is None:
            message = "sentiment: a model is active or a training job is already queued; nothing to do"
        else:
            message = f"sentiment: queued training job #{job.pk} for the first model ({json.dumps(BOOTSTRAP_PARAMS)})"
        self.stdout.write(message)
        if opts["json"]:
            self.stdout.write(json.dumps({"job_id": job.pk if job else None, "topics_created": topics}))
