from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.db import update_rows
from apps.core.models import JobStatus, ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db


def test_update_rows_writes_each_rows_own_values_and_nothing_else() -> None:
    jobs = [TrainingJob.objects.create(kind="k", log_tail=f"log {i}") for i in range(5)]
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    for i, job in enumerate(jobs):
        job.metrics = {"accuracy": i / 10, "labels": ["a", "ü"], "nested": {"n": i}}
        job.loss = 1.5 * i
        job.finished_at = when
        job.status = JobStatus.SUCCEEDED if i % 2 else JobStatus.FAILED
        job.log_tail = "changed in memory only"
    with CaptureQueriesContext(connection) as queries:
        assert update_rows(jobs, ["metrics", "loss", "finished_at", "status"]) == 5
    assert len(queries) == 1  # one statement, executed per row
    for i, job in enumerate(jobs):
        stored = TrainingJob.objects.get(pk=job.pk)
        assert stored.metrics == {"accuracy": i / 10, "labels": ["a", "ü"], "nested": {"n": i}}
        assert stored.loss == 1.5 * i
        assert stored.finished_at == when
        assert stored.status == (JobStatus.SUCCEEDED if i % 2 else JobStatus.FAILED)
        assert stored.log_tail == f"log {i}"  # a field not named is left as stored


def test_update_rows_matches_bulk_update() -> None:
    a = [TrainingJob.objects.create(kind="a") for _ in range(3)]
    b = [TrainingJob.objects.create(kind="b") for _ in range(3)]
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        for job in (x, y):
            job.result = {"i": i, "none": None, "text": "x\ny"}
            job.eta_seconds = None if i == 1 else i * 0.25
    update_rows(a, ["result", "eta_seconds"])
    TrainingJob.objects.bulk_update(b, ["result", "eta_seconds"])
    for x, y in zip(a, b, strict=True):
        x.refresh_from_db()
        y.refresh_from_db()
        assert (x.result, x.eta_seconds) == (y.result, y.eta_seconds)


def test_update_rows_refuses_what_it_cannot_write() -> None:
    job = TrainingJob.objects.create(kind="k")
    assert update_rows([], ["loss"]) == 0
    with pytest.raises(ValueError, match="saved"):
        update_rows([TrainingJob(kind="new")], ["loss"])
    with pytest.raises(TypeError, match="same model"):
        update_rows([job, ModelVersion(pk=1)], ["loss"])
    with pytest.raises(ValueError, match="non-key"):
        update_rows([job], ["id"])
    with pytest.raises(ValueError, match="non-key"):
        update_rows([job], [])
