"""/healthz checks: database, broker, a live worker per queue, and a writable model store."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


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


def run_checks() -> list[Check]:
    return [check_database(), check_broker(), *check_workers(), check_model_store()]
