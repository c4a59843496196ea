"""Start the whole suite as child processes: web, one Celery worker per queue, and beat.

Ctrl-C (SIGINT) or SIGTERM stops every child cleanly (SIGTERM, then SIGKILL after a grace period). If any
child exits on its own, the others are stopped too and the command fails, so nothing half-runs unnoticed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

CELERY = [sys.executable, "-m", "celery", "-A", "apps"]
WORKER_CONCURRENCY = {"default": "2", "inference": "1", "training": "1"}


def process_commands(bind: str, web_workers: int) -> dict[str, list[str]]:
    commands = {
        "web": [
            sys.executable,
            "-m",
            "gunicorn",
            "apps.wsgi:application",
            "--bind",
            bind,
            "--workers",
            str(web_workers),
            "--threads",
            "4",
            "--access-logfile",
            "-",
            "--graceful-timeout",
            "10",
            "--timeout",
            "120",
        ],
    }
    for queue in settings.QUEUES:
        commands[f"worker-{queue}"] = [
            *CELERY,
            "worker",
            "-Q",
            queue,
            "-n",
            f"{queue}@%h",
            "--loglevel",
            "INFO",
            "--concurrency",
            WORKER_CONCURRENCY.get(queue, "1"),
            "--without-gossip",
            "--without-mingle",
        ]
    commands["beat"] = [*CELERY, "beat", "--loglevel", "INFO", "-s", settings.CELERY_BEAT_SCHEDULE_FILENAME]
    return commands


class Command(BaseCommand):
    help = "Run web, the default/inference/training workers and beat until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=settings.BIND)
        parser.add_argument("--web-workers", type=int, default=settings.WEB_CONCURRENCY)
        parser.add_argument("--grace", type=float, default=20.0, help="seconds to wait before SIGKILL")

    def handle(self, *args: Any, **options: Any) -> None:
        children: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False

        def request_stop(signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        for name, cmd in process_commands(options["bind"], options["web_workers"]).items():
            # Each child in its own process group: Ctrl-C reaches only us, and we stop them in order.
            children[name] = subprocess.Popen(cmd, start_new_session=True)
            self.stdout.write(f"started {name} (pid {children[name].pid})")
        self.stdout.write(f"Contexta is starting on http://{options['bind']}  (Ctrl-C stops everything)")
        failed = ""
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    failed = f"{name} exited with code {proc.returncode}"
                    stopping = True
                    break
            time.sleep(0.5)
        self._stop(children, options["grace"])
        if failed:
            raise CommandError(f"{failed}; stopped the other processes")
        self.stdout.write("all processes stopped")

    def _stop(self, children: dict[str, subprocess.Popen[bytes]], grace: float) -> None:
        for name, proc in children.items():
            if proc.poll() is None:
                self.stdout.write(f"stopping {name}")
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, proc in children.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in {grace} s: killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
