"""Signs of life: a daemon thread in each worker (and beat) process writes the worker's heartbeat, and one
thread per running job renews that job's claim (its lease) for as long as the process that claimed it lives.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)
_threads: dict[str, threading.Event] = {}
_leases: dict[int, threading.Event] = {}


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


def hold_job_lease(*, job_id: int, claimant: str) -> None:
    """Renew `claimant`'s claim on a running job every WORKER_HEARTBEAT_SECONDS, whatever the job is doing
    (a long evaluation reports no progress), until `release_job_lease` or until the claim is no longer
    `claimant`'s. A claim that goes unrenewed for JOB_LEASE_SECONDS belongs to a process that died."""
    release_job_lease(job_id=job_id)
    stop = threading.Event()
    _leases[job_id] = stop
    threading.Thread(
        target=_renew_lease, args=(job_id, claimant, stop), name=f"lease-job-{job_id}", daemon=True
    ).start()


def release_job_lease(*, job_id: int) -> None:
    stop = _leases.pop(job_id, None)
    if stop is not None:
        stop.set()


def _renew_lease(job_id: int, claimant: str, stop: threading.Event) -> None:
    from apps.core.services.jobs import job_lease_renew

    while not stop.wait(settings.WORKER_HEARTBEAT_SECONDS):
        try:
            close_old_connections()
            if not job_lease_renew(job_id=job_id, claimant=claimant):
                break  # finished, or taken over: nothing left to hold
        except Exception:  # the next beat retries; three missed beats and the job counts as abandoned
            logger.exception("renewing the lease of job %s failed", job_id)
    connection.close()  # the entry in _leases goes when the job's end releases it


def process_alive(pid: int) -> bool:
    """Whether `pid` is a live process in this pid namespace: it exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as someone else's
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()  # gone since, or a system without /proc
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"  # the state follows the command name "(…)"
