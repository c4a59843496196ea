"""Adopt trained artifacts that no model version names, and remove incomplete ones (see the service)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.core.services.registry import model_store_reconcile


class Command(BaseCommand):
    help = (
        "Register complete artifacts under MODEL_STORE that no version names (inactive); remove broken ones."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--grace",
            type=int,
            default=None,
            help="seconds an incomplete directory is left alone (default: "
            "TRAINING_TIME_LIMIT while a job runs)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        found = model_store_reconcile(grace_seconds=options["grace"])
        for path in found["adopted"]:
            self.stdout.write(f"adopted {path}")
        for path in found["removed"]:
            self.stdout.write(f"removed {path}")
        if not any(found.values()):
            self.stdout.write("the model store and the registry agree")
