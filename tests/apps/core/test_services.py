"""Checks that need the production services: PostgreSQL and Redis (run by .ci/run with their URLs set)."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import cache
from django.db import connection

from apps.core.heartbeat import beat
from apps.core.models import JobStatus, TrainingJob
from apps.core.services.jobs import job_claim

pytestmark = pytest.mark.services


@pytest.mark.django_db
def test_running_on_postgresql_and_redis(client, make_user):
    assert connection.vendor == "postgresql"
    client.force_login(make_user("admin"))  # the checks' details are for staff
    for queue in ("default", "inference", "training", "beat"):
        beat(f"{queue}@ci", [queue])
    body = client.get("/healthz").json()
    assert body["status"] == "ok", body
    assert "redis" in body["checks"]["broker"]["detail"].lower()


def test_cache_is_redis():
    cache.set("contexta-ci", {"n": 1}, 30)
    assert cache.get("contexta-ci") == {"n": 1}
    assert "Redis" in type(cache._cache).__name__ or "redis" in type(cache).__module__


@pytest.mark.django_db(transaction=True)
def test_only_one_worker_claims_a_job_under_concurrency():
    job = TrainingJob.objects.create(kind="text_classifier", params={})
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        if job_claim(job_id=job.pk) is not None:
            winners.append(1)
        connection.close()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    job.refresh_from_db()
    assert len(winners) == 1
    assert job.status == JobStatus.RUNNING and job.attempts == 1


def test_broker_round_trip_through_redis():
    from apps.celery import app

    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue("contexta-ci-probe")
        queue.put({"hello": "redis"})
        message = queue.get(timeout=5)
        assert message.payload == {"hello": "redis"}
        message.ack()
        queue.close()
