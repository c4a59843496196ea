"""/healthz checks: database, broker, a live worker per queue, a writable model store, and (under run_suite)
the state of each supervised process. Anyone sees the overall status; staff see the checks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable extras, for staff
    # A failed critical check makes /healthz answer 503 (take the process out of service); a failed
    # non-critical one (a data problem, say) makes the status "degraded" with 200, for people to act on.
    critical: bool = True


def overall_status(checks: list[Check]) -> str:
    """ "ok", "degraded" (only non-critical checks failed) or "unhealthy"."""
    if any(not c.ok and c.critical for c in checks):
        return "unhealthy"
    return "degraded" if any(not c.ok for c in checks) else "ok"


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return Check("database", False, f"{type(exc).__name__}: {exc}")
    return Check("database", True, connection.vendor)


def check_broker() -> Check:
    from apps.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            transport = conn.transport_cls
    except Exception as exc:
        return Check("broker", False, f"{type(exc).__name__}: {exc}")
    return Check("broker", True, str(transport))


def check_workers() -> list[Check]:
    from apps.core.models import WorkerHeartbeat

    fresh_after = timezone.now() - timedelta(seconds=settings.WORKER_STALE_SECONDS)
    try:
        beats = list(WorkerHeartbeat.objects.filter(last_seen__gte=fresh_after))
    except Exception as exc:
        return [Check(f"worker:{q}", False, f"cannot read heartbeats: {exc}") for q in settings.QUEUES]
    checks = []
    for queue in (*settings.QUEUES, "beat"):
        alive = [b.hostname for b in beats if queue in b.queues]
        name = "beat" if queue == "beat" else f"worker:{queue}"
        detail = ", ".join(alive) if alive else f"no heartbeat in the last {settings.WORKER_STALE_SECONDS} s"
        checks.append(Check(name, bool(alive), detail))
    return checks


def check_model_store() -> Check:
    store = Path(settings.MODEL_STORE)
    probe = store / f".healthz-{uuid.uuid4().hex}"
    try:
        store.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Check("model_store", False, f"{store}: {exc}")
    return Check("model_store", True, str(store))


def check_supervised_processes() -> list[Check]:
    """One check per process run_suite supervises, while its state file is fresh; none otherwise."""
    from apps.core.supervisor import RUNNING, process_summary, read_state

    state = read_state()
    if state is None:
        return []
    return [
        Check(
            f"process:{name}",
            process["state"] == RUNNING,
            process_summary(process),
            {key: process.get(key) for key in ("state", "pid", "restarts", "last_exit")},
        )
        for name, process in state["processes"].items()
    ]


def run_checks() -> list[Check]:
    return [
        check_database(),
        check_broker(),
        *check_workers(),
        check_model_store(),
        *check_supervised_processes(),
        *check_apps(),
    ]


def check_apps() -> list[Check]:
    """The installed apps' own checks (`ContextaApp.health_checks`); one that raises is a failed check."""
    from apps.core.platform import declared_health_checks

    checks = []
    for check in declared_health_checks():
        try:
            checks.append(check())
        except Exception as exc:
            checks.append(
                Check(getattr(check, "__name__", "app check"), False, f"{type(exc).__name__}: {exc}")
            )
    return checks


def details_visible_to(user: Any) -> bool:
    """Host names, paths and errors are for staff (is_staff or the admin role), not for anyone who asks."""
    from apps.core.roles import ADMIN, has_role

    if not getattr(user, "is_authenticated", False):
        return False
    return bool(getattr(user, "is_staff", False)) or has_role(user, ADMIN)
