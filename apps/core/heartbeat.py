"""Worker heartbeats: a daemon thread in each worker (and beat) process writes its last sign of life."""

from __future__ import annotations

import logging
import os
import threading

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)
_threads: dict[str, threading.Event] = {}


def beat(hostname: str, queues: list[str]) -> None:
    from apps.core.models import WorkerHeartbeat

    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname,
        defaults={"queues": queues, "pid": os.getpid(), "last_seen": now},
        create_defaults={"queues": queues, "pid": os.getpid(), "last_seen": now, "started_at": now},
    )


def _loop(hostname: str, queues: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            close_old_connections()
            beat(hostname, queues)
        except Exception:  # the next beat retries; a dead database shows on /healthz anyway
            logger.exception("heartbeat for %s failed", hostname)
        stop.wait(settings.WORKER_HEARTBEAT_SECONDS)
    connection.close()


def start_heartbeat_thread(*, hostname: str, queues: list[str]) -> None:
    if hostname in _threads:
        return
    stop = threading.Event()
    _threads[hostname] = stop
    threading.Thread(
        target=_loop, args=(hostname, queues, stop), name=f"heartbeat-{hostname}", daemon=True
    ).start()


def stop_heartbeat_thread(*, hostname: str) -> None:
    from apps.core.models import WorkerHeartbeat

    stop = _threads.pop(hostname, None)
    if stop is not None:
        stop.set()
    try:
        WorkerHeartbeat.objects.filter(hostname=hostname).delete()
    except Exception:
        logger.exception("could not remove heartbeat of %s", hostname)
