"""Scoring with a real (tiny) classifier fine-tuned from the packaged MiniLM once per session.

The session model is trained for a few steps on short, clearly separable finance sentences; it is small but
real: the same training code, the same artifact format and the same inference path as production.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
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
from apps.sentiment.services.training import LABELS, write_seen_texts

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

COMPANIES = ["Nokia", "Kone", "Fortum", "Elisa", "Orion", "Wartsila", "Neste", "Sampo", "Outokumpu", "Valmet"]
TEMPLATES = {
    "positive": ["{c} profit rose sharply and sales grew strongly", "{c} beats estimates and its shares jump",
                 "{c} raises its dividend after a record year", "{c} wins a large order and lifts its outlook"],
    "negative": ["{c} swings to a loss as sales collapse", "{c} shares plunge after a profit warning",
                 "{c} cuts jobs as demand falls sharply", "{c} misses estimates and its shares slump"],
    "neutral": ["{c} will hold its annual general meeting in April", "{c} has offices in Helsinki and Oslo",
                "{c} publishes its report on Tuesday", "The chairman of {c} is Matti Virtanen"],
}  # fmt: skip


def sentences(companies: list[str]) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for company in companies:
        for label, templates in TEMPLATES.items():
            for template in templates:
                texts.append(template.format(c=company))
                labels.append(label)
    return texts, labels


def train_tiny(out: Path, *, epochs: int = 6, max_steps: int = 0) -> Path:
    """Fine-tune MiniLM on 72 sentences (one thread: much faster than two on a busy 2-core machine)."""
    import torch

    from ml.api import ClassifierSpec, run_training
    from ml.training.runner import SilentCallbacks

    texts, labels = sentences(COMPANIES[:6])
    spec = ClassifierSpec(task="sentiment", texts=tuple(texts), labels=tuple(labels), label_names=LABELS,
                          epochs=epochs, max_steps=max_steps, learning_rate=3e-4, max_length=32)  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_training(spec, out, SilentCallbacks())
    finally:
        torch.set_num_threads(threads)
    write_seen_texts(out, texts)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("sentiment") / "v1")


@pytest.fixture
def active(tiny_model_dir: Path, settings: Any) -> ModelVersion:
    settings.SENTIMENT_BACKEND = "torch-fp32"
    return model_version_register(task="sentiment", artifact_dir=tiny_model_dir)


@pytest.fixture
def source(db: None) -> Source:
    return ingest.source_get_or_create(name="wire", kind=Source.Kind.PUSH)


NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


def _ingest(source: Source, texts: list[str], when: datetime = NOW) -> list[int]:
    return ingest.items_ingest(source=source, records=[ItemRecord(text=t, published_at=when) for t in texts],
                               now=NOW + timedelta(days=1), score=False).item_ids  # fmt: skip


def test_scores_store_probabilities_signed_score_and_version(active: ModelVersion, source: Source) -> None:
    ids = _ingest(source, ["Valmet profit rose sharply and sales grew strongly",
                           "Sampo shares plunge after a profit warning",
                           "Neste will hold its annual general meeting in April"])  # fmt: skip

    report = scoring.items_score(item_ids=ids)

    assert report.scored == 3 and report.version == str(active)
    scores = {s.item.text.split()[0]: s for s in Score.objects.select_related("item")}
    for s in scores.values():
        assert s.model_version_id == active.pk
        assert s.p_negative + s.p_neutral + s.p_positive == pytest.approx(1.0, abs=1e-4)
        assert s.score == pytest.approx(s.p_positive - s.p_negative)
        assert s.label == max(LABELS, key=lambda lab: getattr(s, f"p_{lab}"))
    assert scores["Valmet"].label == "positive" and scores["Sampo"].label == "negative"
    assert scores["Valmet"].score > scores["Neste"].score > scores["Sampo"].score


def test_scoring_is_idempotent_and_feeds_the_series_once(active: ModelVersion, source: Source) -> None:
    entity = Entity.objects.create(ticker="NOK", name="Nokia", aliases=["Nokia"])
    ids = _ingest(
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
    ids = _ingest(source, ["Kone beats estimates and its shares jump"])
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
    early = _ingest(source, ["Elisa misses estimates and its shares slump"], NOW - timedelta(days=3))
    _ingest(source, ["Fortum wins a large order and lifts its outlook"], NOW)
    scoring.items_score(item_ids=early)
    v2 = model_version_register(task="sentiment", artifact_dir=tiny_model_dir)  # same weights, new version
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


def test_auto_backend_agrees_with_fp32(active: ModelVersion, settings: Any) -> None:
    texts = ["Kone beats estimates and its shares jump", "Kone cuts jobs as demand falls sharply"]
    fp32 = scoring.classify_texts(active.artifact_dir, texts, backend="torch-fp32")
    auto = scoring.classify_texts(active.artifact_dir, texts, backend="auto")
    for a, b in zip(fp32, auto, strict=True):
        assert max(a, key=a.__getitem__) == max(b, key=b.__getitem__)
        assert scoring.signed_score(a) == pytest.approx(scoring.signed_score(b), abs=0.15)


# --- commands that need a model ------------------------------------------------------------------------
def _tfns_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    code = {"negative": "0", "positive": "1", "neutral": "2"}
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows((text, code[label]) for text, label in rows)
    return path


def test_sentiment_eval_prints_the_contract_json_and_leaves_out_seen_texts(
    active: ModelVersion, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unseen_texts, unseen_labels = sentences(COMPANIES[6:])
    seen_texts, seen_labels = sentences(COMPANIES[:1])
    path = _tfns_csv(
        tmp_path / "valid.csv", list(zip(unseen_texts + seen_texts, unseen_labels + seen_labels, strict=True))
    )

    call_command("sentiment_eval", "--tfns", str(path), "--json")

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"n", "accuracy", "macro_f1"} <= set(result)
    assert result["n"] == len(unseen_texts) and result["excluded_seen"] == len(seen_texts)
    assert 0.0 <= result["macro_f1"] <= 1.0 and result["accuracy"] >= 0.8


def test_sentiment_eval_reads_phrasebank_files(active: ModelVersion, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    texts, labels = sentences(COMPANIES[8:])
    path = tmp_path / "Sentences_50Agree.txt"
    path.write_bytes("\r\n".join(f"{t} .@{y}" for t, y in zip(texts, labels, strict=True)).encode("latin-1"))
    call_command("sentiment_eval", "--phrasebank", str(path), "--json")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == len(texts) and result["excluded_seen"] == 0


def test_replay_inline_scores_what_it_ingests(active: ModelVersion, tmp_path: Path) -> None:
    path = tmp_path / "replay.csv"
    path.write_text("published_at,text\n2024-01-01T00:00:00Z,Sampo cuts jobs as demand falls sharply\n"
                    "2024-01-01T02:00:00Z,Sampo beats estimates and its shares jump\n", encoding="utf-8")  # fmt: skip
    call_command("sentiment_replay", str(path), "--speed", "0", "--inline")
    assert Score.objects.filter(model_version=active).count() == 2


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
        ItemRecord(text=f"Nokia shares plunge after a profit warning ({n})", published_at=now)
        for n in range(6)
    ]

    with django_capture_on_commit_callbacks(execute=True):
        ingest.items_ingest(source=source, records=calm + burst)

    assert Score.objects.count() == len(calm) + len(burst)
    alert = Alert.objects.get(rule__entity=nokia)
    assert alert.status == "fired" and alert.value < -2.0


def test_items_whose_scoring_task_was_lost_are_picked_up(active: ModelVersion, source: Source) -> None:
    from django.utils import timezone

    from apps.sentiment.tasks import score_stragglers

    old, _fresh = _ingest(
        source, ["Kone raises its dividend after a record year", "Kone publishes its report"]
    )
    Item.objects.filter(pk=old).update(ingested_at=timezone.now() - timedelta(hours=1))

    assert selectors.items_stragglers() == [old]  # the fresh one is probably still queued
    assert score_stragglers() == 1  # eager: scored in-process
    assert Score.objects.filter(item_id=old, model_version=active).exists()
    assert selectors.items_stragglers() == []
