"""Start the whole suite as child processes: web, one Celery worker per queue, and beat.

A child that exits on its own (a crash, kill -9) is restarted with back-off and the console says so; the
others keep running (apps/core/supervisor.py). /healthz shows staff each process's state. Ctrl-C (SIGINT) or
SIGTERM stops every child cleanly (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.core.supervisor import Backoff, Supervisor, state_path

CELERY = [sys.executable, "-m", "celery", "-A", "apps"]
WORKER_CONCURRENCY = {"default": "2", "inference": "1", "training": "1"}


def process_commands(bind: str, web_workers: int) -> dict[str, list[str]]:
    commands = {
        "web": [
            sys.executable,
            "-m",
            "gunicorn",
            "apps.asgi:application",
            # ASGI (uvicorn) workers: an open live-update stream is a task, not a thread (apps.core.live).
            "--worker-class",
            "uvicorn_worker.UvicornWorker",
            "--bind",
            bind,
            "--workers",
            str(web_workers),
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
    help = "Run web, the default/inference/training workers and beat until Ctrl-C, restarting any that exits."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=settings.BIND)
        parser.add_argument("--web-workers", type=int, default=settings.WEB_CONCURRENCY)
        parser.add_argument("--grace", type=float, default=20.0, help="seconds to wait before SIGKILL")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping = False

        def request_stop(signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        supervisor = Supervisor(
            commands=process_commands(options["bind"], options["web_workers"]),
            say=self._say,
            state_path=state_path(),
            backoff=Backoff(initial=1.0, cap=60.0, stable_after=60.0),
        )
        try:
            supervisor.start_all()
            self._say(f"Contexta is starting on http://{options['bind']}  (Ctrl-C stops everything)")
            while not stopping:
                supervisor.step()
                time.sleep(0.5)
        finally:  # the children run in sessions of their own: nothing else would stop them
            supervisor.stop_all(options["grace"])
        self._say("all processes stopped")

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()  # between the children's own output, in order, also when piped to a file
