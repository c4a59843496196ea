"""A bad date never silently stops aggregation, and a failed aggregation is visible and recoverable.

The probe: an item published 0001-01-01 was accepted; the re-score after the first promotion then ran
from year 1, failed with OverflowError in series_rebuild, and 2,570 scored items were never aggregated,
with nothing flagging it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from apps.core import roles
from apps.core.health import run_checks
from apps.core.models import JobStatus, TrainingJob
from apps.core.services.jobs import job_create, job_fail
from apps.core.services.registry import model_version_register
from apps.sentiment import selectors
from apps.sentiment.models import Bucket, Item, Source
from apps.sentiment.services import ingest, training
from apps.sentiment.services.ingest import ItemRecord
from tests.apps.sentiment.scoring_data import NOW, ingest_texts, train_fake

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_fake(tmp_path_factory.mktemp("aggregation") / "v1")


@pytest.fixture
def source(db: None) -> Source:
    return ingest.source_get_or_create(name="wire", kind=Source.Kind.PUSH)


def test_year_one_and_year_9999_are_rejected_per_item_and_the_rest_stored(source: Source) -> None:
    report = ingest.items_ingest(
        source=source,
        records=[
            ItemRecord(text="Orion beats estimates", published_at=datetime(1, 1, 1, tzinfo=UTC)),
            ItemRecord(text="Kone lifts its outlook", published_at=NOW),
            ItemRecord(text="Neste misses estimates", published_at=datetime(9999, 12, 31, tzinfo=UTC)),
        ],
    )
    assert report.created == 1 and [index for index, _ in report.rejected] == [0, 2]
    assert Item.objects.get().text == "Kone lifts its outlook"


def test_the_first_re_score_covers_every_stored_item(source: Source, model_dir: Path) -> None:
    ingest_texts(source, ["Elisa misses estimates and its shares slump"], NOW - timedelta(days=400))
    ingest_texts(source, ["Fortum wins a large order and lifts its outlook"], NOW)
    version = model_version_register(task="sentiment", artifact_dir=model_dir)
    creator = TrainingJob.objects.create(kind="sentiment_train")

    rescore = training._after_promotion(version, None, {}, creator)

    assert rescore is not None
    first, last = selectors.items_time_range() or (NOW, NOW)
    assert datetime.fromisoformat(rescore.params["start"]) <= first
    assert datetime.fromisoformat(rescore.params["end"]) > last


def test_an_out_of_window_item_stored_earlier_does_not_break_the_rebuild(
    source: Source, model_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    ingest_texts(source, ["Fortum wins a large order and lifts its outlook"], NOW)
    legacy = ingest_texts(source, ["Wartsila beats estimates"], NOW)
    Item.objects.filter(pk__in=legacy).update(published_at=datetime(1, 1, 1, tzinfo=UTC))  # stored pre-fix
    model_version_register(task="sentiment", artifact_dir=model_dir)

    with django_capture_on_commit_callbacks(execute=True):
        job = job_create(
            kind="sentiment_rescore",
            params={"start": "0001-01-01T00:00:00Z", "end": (NOW + timedelta(hours=1)).isoformat()},
            user=None,
        )
    job.refresh_from_db()

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert Bucket.objects.get(entity=None, topic=None, granularity="hour", start=NOW).count == 1


def _failed_rescore() -> TrainingJob:
    params = {"start": (NOW - timedelta(days=1)).isoformat(), "end": (NOW + timedelta(hours=1)).isoformat()}
    job = job_create(kind="sentiment_rescore", params=params, user=None)
    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, claimed_by="w:1")
    job.refresh_from_db()
    job_fail(job=job, reason="OverflowError: date value out of range")
    job.refresh_from_db()
    return job


def test_a_failed_aggregation_shows_in_health_and_on_the_dashboard(client, make_user) -> None:
    failed = _failed_rescore()
    assert failed.status == JobStatus.FAILED

    check = next(c for c in run_checks() if c.name == "sentiment:aggregation")
    assert not check.ok and f"#{failed.pk}" in check.detail
    anonymous = client.get("/healthz")  # a data problem: degraded, not out of service
    assert anonymous.json()["status"] in ("degraded", "unhealthy") and "checks" not in anonymous.json()
    client.force_login(make_user(roles.ADMIN, "staff"))
    staff = client.get("/healthz").json()
    assert staff["checks"]["sentiment:aggregation"] == {
        "ok": False,
        "detail": check.detail,
        "critical": False,
        "job": failed.pk,
    }
    client.force_login(make_user(roles.ANALYST))
    page = client.get("/sentiment/").content.decode()
    assert 'data-problem="aggregation"' in page and "OverflowError" in page
    assert f"/jobs/{failed.pk}/retry/" in page


def test_running_it_again_recovers_and_clears_the_flag(
    client, make_user, source: Source, model_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    ingest_texts(source, ["Fortum wins a large order and lifts its outlook"], NOW)
    model_version_register(task="sentiment", artifact_dir=model_dir)
    failed = _failed_rescore()
    client.force_login(make_user(roles.ANALYST))

    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(f"/api/jobs/{failed.pk}/retry/")

    assert answer.status_code == 201
    again = TrainingJob.objects.get(pk=answer.json()["id"])
    assert again.status == JobStatus.SUCCEEDED and again.params == failed.params
    assert Bucket.objects.get(entity=None, topic=None, granularity="hour", start=NOW).count == 1
    assert selectors.aggregation_failure() is None
    assert next(c for c in run_checks() if c.name == "sentiment:aggregation").ok
    assert 'data-problem="aggregation"' not in client.get("/sentiment/").content.decode()


def test_only_finished_failures_can_be_run_again(client, make_user) -> None:
    pending = job_create(
        kind="sentiment_rescore",
        params={"start": NOW.isoformat(), "end": (NOW + timedelta(hours=1)).isoformat()},
        user=None,
    )
    client.force_login(make_user(roles.ANALYST))
    answer = client.post(f"/api/jobs/{pending.pk}/retry/")
    assert answer.status_code == 400 and "only a failed or cancelled job" in answer.json()["detail"]
