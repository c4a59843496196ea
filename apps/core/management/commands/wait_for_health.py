"""Poll the health checks until they pass (used by scripts that start the processes)."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.core.health import run_checks


class Command(BaseCommand):
    help = "Wait until database, broker, every queue's worker, beat and the model store are healthy."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--timeout", type=float, default=120.0)

    def handle(self, *args: Any, **options: Any) -> None:
        deadline = time.monotonic() + options["timeout"]
        while True:
            checks = run_checks()
            if all(c.ok for c in checks if c.critical):
                self.stdout.write("healthy: " + ", ".join(c.name for c in checks))
                return
            if time.monotonic() > deadline:
                failing = {c.name: c.detail for c in checks if not c.ok}
                raise CommandError(f"not healthy after {options['timeout']} s: {json.dumps(failing)}")
            time.sleep(1)
