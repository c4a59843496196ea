from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.core.heartbeat import beat
from apps.core.models import WorkerHeartbeat
from apps.core.supervisor import write_json_atomically

pytestmark = pytest.mark.django_db


def _all_workers_alive() -> None:
    for queue in ("default", "inference", "training"):
        beat(f"{queue}@test", [queue])
    beat("beat", ["beat"])


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_user("ops", is_staff=True))
    return client


def test_anyone_gets_the_status_and_nothing_else(client, settings):
    _all_workers_alive()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    WorkerHeartbeat.objects.all().delete()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy"}
    assert str(settings.MODEL_STORE) not in response.content.decode()


def test_a_signed_in_user_without_the_admin_role_gets_the_status_only(client, make_user):
    _all_workers_alive()
    client.force_login(make_user("analyst"))
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_admin_role_sees_the_checks(client, make_user):
    _all_workers_alive()
    client.force_login(make_user("admin"))
    body = client.get("/healthz").json()
    assert body["checks"]["worker:training"] == {"ok": True, "detail": "training@test"}


def test_healthy_when_every_queue_has_a_live_worker(staff_client):
    _all_workers_alive()
    response = staff_client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    core = {
        "database",
        "broker",
        "worker:default",
        "worker:inference",
        "worker:training",
        "beat",
        "model_store",
    }
    assert core <= set(body["checks"])  # and the apps' own checks (ContextaApp.health_checks)
    assert not [name for name in body["checks"] if name.startswith("process:")]  # no run_suite here


def test_unhealthy_when_a_queue_has_no_fresh_heartbeat(staff_client, settings):
    _all_workers_alive()
    old = timezone.now() - timedelta(seconds=settings.WORKER_STALE_SECONDS + 1)
    WorkerHeartbeat.objects.filter(hostname="training@test").update(last_seen=old)
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker:training"]["ok"] is False


def test_unhealthy_when_the_broker_is_down(staff_client, monkeypatch):
    from apps.celery import app

    _all_workers_alive()
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False and "Error" in broker["detail"]


def test_unhealthy_when_the_model_store_is_not_writable(staff_client, settings, tmp_path):
    _all_workers_alive()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings.MODEL_STORE = blocker / "models"  # a path below a regular file cannot be created
    response = staff_client.get("/healthz")
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


def _supervisor_state(settings, *, age: float = 0.0, worker: dict | None = None) -> None:
    """The state file run_suite writes: web running, worker-default as given."""
    worker = worker or {"state": "running", "pid": 43, "restarts": 0, "last_exit": None, "restart_in": None}
    processes = {
        "web": {"state": "running", "pid": 42, "restarts": 0, "last_exit": None, "restart_in": None},
        "worker-default": worker,
    }
    write_json_atomically(
        settings.VAR_DIR / "supervisor.json", {"updated_at": time.time() - age, "processes": processes}
    )


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


KILLED = {"code": -9, "description": "code -9 (SIGKILL)", "at": "2026-01-02T03:04:05+00:00"}


def test_staff_see_each_supervised_process_and_a_restarting_one_is_unhealthy(staff_client, settings, var_dir):
    _all_workers_alive()
    restarting = {"state": "restarting", "pid": None, "restarts": 3, "last_exit": KILLED, "restart_in": 2.0}
    _supervisor_state(settings, worker=restarting)
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["process:web"] == {
        "ok": True,
        "detail": "running (pid 42)",
        "state": "running",
        "pid": 42,
        "restarts": 0,
        "last_exit": None,
    }
    worker = checks["process:worker-default"]
    assert worker["ok"] is False and worker["state"] == "restarting" and worker["restarts"] == 3
    assert worker["last_exit"]["code"] == -9
    assert (
        worker["detail"]
        == "restarting in 2 s; 3 restarts, last exit code -9 (SIGKILL) at 2026-01-02T03:04:05+00:00"
    )


def test_a_restarted_process_that_runs_again_is_healthy_and_shows_its_restart(
    staff_client, settings, var_dir
):
    _all_workers_alive()
    _supervisor_state(settings, worker={"state": "running", "pid": 44, "restarts": 1, "last_exit": KILLED})
    response = staff_client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"]["process:worker-default"]["restarts"] == 1


def test_a_stale_supervisor_state_is_ignored(staff_client, settings, var_dir):
    _all_workers_alive()
    _supervisor_state(
        settings, age=120, worker={"state": "restarting", "pid": None, "restarts": 1, "restart_in": 1}
    )
    response = staff_client.get("/healthz")
    assert response.status_code == 200
    assert not [name for name in response.json()["checks"] if name.startswith("process:")]


def test_wait_for_health_waits_for_the_supervised_processes(settings, var_dir, capsys):
    _all_workers_alive()
    restarting = {"state": "restarting", "pid": None, "restarts": 1, "last_exit": KILLED, "restart_in": 30}
    _supervisor_state(settings, worker=restarting)
    with pytest.raises(CommandError, match=r"process:worker-default.*restarting in 30 s"):
        call_command("wait_for_health", "--timeout", "0")
    _supervisor_state(settings)
    call_command("wait_for_health", "--timeout", "0")
    assert "process:worker-default" in capsys.readouterr().out
