"""Scoring, re-scoring and the alerts they feed, on the deterministic fake classifier (ML_BACKEND=fake).

The fake scores by cue words ("loss", "plunge", "beats"...), so these tests check what the app does with
scores; tests/apps/sentiment/test_scoring_real.py runs the same path on a real fine-tuned MiniLM.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from apps.core.models import JobStatus, ModelVersion, TrainingJob
from apps.core.services.jobs import job_create
from apps.core.services.registry import model_version_register
from apps.sentiment import selectors
from apps.sentiment.models import Bucket, Entity, Item, Score, Source
from apps.sentiment.services import ingest, scoring
from apps.sentiment.services.ingest import ItemRecord
from tests.apps.sentiment.scoring_data import NOW, ingest_texts, train_fake

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_fake(tmp_path_factory.mktemp("sentiment") / "v1")


@pytest.fixture
def active(tiny_model_dir: Path) -> ModelVersion:
    return model_version_register(task="sentiment", artifact_dir=tiny_model_dir)


@pytest.fixture
def source(db: None) -> Source:
    return ingest.source_get_or_create(name="wire", kind=Source.Kind.PUSH)


def test_scoring_is_idempotent_and_feeds_the_series_once(active: ModelVersion, source: Source) -> None:
    entity = Entity.objects.create(ticker="NOK", name="Nokia", aliases=["Nokia"])
    ids = ingest_texts(
        source, ["Nokia swings to a loss as sales collapse", "Nokia cuts jobs as demand falls sharply"]
    )
    assert Item.objects.filter(itementity__entity=entity).count() == 2

    scoring.items_score(item_ids=ids)
    again = scoring.items_score(item_ids=ids)

    assert again.scored == 0 and Score.objects.count() == 2
    hour = Bucket.objects.get(entity=entity, granularity="hour")
    stored = [s.score for s in Score.objects.all()]
    assert hour.count == 2 and hour.negative == 2
    assert hour.mean_score == pytest.approx(sum(stored) / 2) and hour.mean_score < 0
    assert Bucket.objects.get(entity=None, topic=None, granularity="day").count == 2


def test_without_an_active_model_items_wait(source: Source, db: None) -> None:
    ids = ingest_texts(source, ["Kone beats estimates and its shares jump"])
    report = scoring.items_score(item_ids=ids)
    assert report.scored == 0 and report.skipped == 1 and not Score.objects.exists()


def test_ingestion_queues_scoring_after_commit(active: ModelVersion, source: Source,
                                               django_capture_on_commit_callbacks: Any) -> None:  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        report = ingest.items_ingest(source=source, records=[ItemRecord(text="Orion raises its dividend")])
    assert Score.objects.filter(item_id__in=report.item_ids, model_version=active).count() == 1


def test_rescore_job_scores_a_range_with_the_active_version_and_rebuilds_it(
    active: ModelVersion, source: Source, tiny_model_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    early = ingest_texts(source, ["Elisa misses estimates and its shares slump"], NOW - timedelta(days=3))
    ingest_texts(source, ["Fortum wins a large order and lifts its outlook"], NOW)
    scoring.items_score(item_ids=early)
    copy = shutil.copytree(tiny_model_dir, tiny_model_dir.with_name("v2"))  # same weights, a new version
    v2 = model_version_register(task="sentiment", artifact_dir=copy)
    ModelVersion.objects.filter(pk=active.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=v2.pk).update(is_active=True)

    with django_capture_on_commit_callbacks(execute=True):
        job = job_create(
            kind="sentiment_rescore",
            params={
                "start": (NOW - timedelta(hours=1)).isoformat(),
                "end": (NOW + timedelta(hours=1)).isoformat(),
            },
            user=None,
        )
    job.refresh_from_db()

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.metrics["items_scored"] == 1  # only the item inside the range
    assert Score.objects.filter(model_version=v2).count() == 1
    assert Bucket.objects.get(entity=None, topic=None, granularity="hour", start=NOW).count == 1


def test_rescore_params_are_validated(db: None) -> None:
    from apps.core.errors import ServiceError

    with pytest.raises(ServiceError, match="end must be after start"):
        job_create(kind="sentiment_rescore", params={"start": "2024-05-02T00:00:00Z", "end": "2024-05-01"},
                   user=None)  # fmt: skip
    assert not TrainingJob.objects.exists()


def test_replay_inline_scores_what_it_ingests(active: ModelVersion, tmp_path: Path) -> None:
    path = tmp_path / "replay.csv"
    path.write_text("published_at,text\n2024-01-01T00:00:00Z,Sampo cuts jobs as demand falls sharply\n"
                    "2024-01-01T02:00:00Z,Sampo beats estimates and its shares jump\n", encoding="utf-8")  # fmt: skip
    call_command("sentiment_replay", str(path), "--speed", "0", "--inline")
    assert Score.objects.filter(model_version=active).count() == 2


def test_items_whose_scoring_task_was_lost_are_picked_up(active: ModelVersion, source: Source) -> None:
    from django.utils import timezone

    from apps.sentiment.tasks import score_stragglers

    old, _fresh = ingest_texts(
        source, ["Kone raises its dividend after a record year", "Kone publishes its report"]
    )
    Item.objects.filter(pk=old).update(ingested_at=timezone.now() - timedelta(hours=1))

    assert selectors.items_stragglers() == [old]  # the fresh one is probably still queued
    assert score_stragglers() == 1  # eager: scored in-process
    assert Score.objects.filter(item_id=old, model_version=active).exists()
    assert selectors.items_stragglers() == []


def test_a_negative_burst_fires_an_alert_through_the_scoring_task(
    active: ModelVersion, source: Source, django_capture_on_commit_callbacks: Any
) -> None:
    """End to end: ingest -> (on commit) the scoring task -> buckets -> the alert evaluation it queues."""
    from django.utils import timezone

    from apps.sentiment.models import Alert, AlertRule

    nokia = Entity.objects.create(ticker="NOK", name="Nokia", aliases=["Nokia"])
    AlertRule.objects.create(
        name="Nokia turns", entity=nokia, condition="score_drop", threshold=2.0, min_count=4
    )
    now = timezone.now()
    cities = ["Espoo", "Oulu", "Tampere", "Turku", "Vaasa", "Lahti", "Kuopio", "Pori"]
    calm = [ItemRecord(text=f"Nokia has offices in Helsinki and {city}", published_at=now - (i + 1) * timedelta(hours=1))
            for i, city in enumerate(cities)]  # fmt: skip
    burst = [
        ItemRecord(text=f"Nokia shares plunge as sales collapse ({n})", published_at=now) for n in range(6)
    ]

    with django_capture_on_commit_callbacks(execute=True):
        ingest.items_ingest(source=source, records=calm + burst)

    assert Score.objects.count() == len(calm) + len(burst)
    alert = Alert.objects.get(rule__entity=nokia)
    assert alert.status == "fired" and alert.value < -2.0
