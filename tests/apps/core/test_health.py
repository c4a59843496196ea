from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.heartbeat import beat
from apps.core.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


def _all_workers_alive() -> None:
    for queue in ("default", "inference", "training"):
        beat(f"{queue}@test", [queue])
    beat("beat", ["beat"])


def test_healthy_when_every_queue_has_a_live_worker(client):
    _all_workers_alive()
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {
        "database",
        "broker",
        "worker:default",
        "worker:inference",
        "worker:training",
        "beat",
        "model_store",
    }


def test_unhealthy_when_a_queue_has_no_fresh_heartbeat(client, settings):
    _all_workers_alive()
    old = timezone.now() - timedelta(seconds=settings.WORKER_STALE_SECONDS + 1)
    WorkerHeartbeat.objects.filter(hostname="training@test").update(last_seen=old)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker:training"]["ok"] is False


def test_unhealthy_when_the_broker_is_down(client, monkeypatch):
    from apps.celery import app

    _all_workers_alive()
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False and "Error" in broker["detail"]


def test_unhealthy_when_the_model_store_is_not_writable(client, settings, tmp_path):
    _all_workers_alive()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings.MODEL_STORE = blocker / "models"  # a path below a regular file cannot be created
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["model_store"]["ok"] is False


def _heartbeat_row(hostname: str) -> WorkerHeartbeat | None:
    """The row, read while the heartbeat thread may be writing: the test database is SQLite in memory with a
    shared cache, where a concurrent write makes a read fail at once with "table is locked" (no busy wait)."""
    from django.db import OperationalError

    for _ in range(50):
        try:
            return WorkerHeartbeat.objects.filter(hostname=hostname).first()
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    raise AssertionError("the heartbeat table stayed locked for 2.5 s")


@pytest.mark.django_db(transaction=True)  # the thread has its own connection: commit for real
def test_heartbeat_thread_writes_and_stops():
    from apps.core.heartbeat import start_heartbeat_thread, stop_heartbeat_thread

    start_heartbeat_thread(hostname="thread@test", queues=["default"])
    try:
        deadline = time.monotonic() + 60  # a loaded CI machine may start the thread late
        while (row := _heartbeat_row("thread@test")) is None:
            assert time.monotonic() < deadline, "the heartbeat thread wrote nothing in 60 s"
            time.sleep(0.1)
        assert row.queues == ["default"]
    finally:
        stop_heartbeat_thread(hostname="thread@test")
    assert _heartbeat_row("thread@test") is None
