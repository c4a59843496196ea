"""Scoring with a real (tiny) classifier fine-tuned from the packaged MiniLM once per session.

The session model is trained for a few steps on short, clearly separable finance sentences; it is small but
real: the same training code, the same artifact format and the same inference path as production.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from apps.core.models import ModelVersion
from apps.core.services.registry import model_version_register
from apps.sentiment.models import Score, Source
from apps.sentiment.services import ingest, scoring
from apps.sentiment.services.training import LABELS
from tests.apps.sentiment.scoring_data import COMPANIES, ingest_texts, sentences, tfns_csv, train_tiny

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


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


def test_scores_store_probabilities_signed_score_and_version(active: ModelVersion, source: Source) -> None:
    ids = ingest_texts(source, ["Valmet profit rose sharply and sales grew strongly",
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


def test_auto_backend_agrees_with_fp32(active: ModelVersion, settings: Any) -> None:
    texts = ["Kone beats estimates and its shares jump", "Kone cuts jobs as demand falls sharply"]
    fp32 = scoring.classify_texts(active.artifact_dir, texts, backend="torch-fp32")
    auto = scoring.classify_texts(active.artifact_dir, texts, backend="auto")
    for a, b in zip(fp32, auto, strict=True):
        assert max(a, key=a.__getitem__) == max(b, key=b.__getitem__)
        assert scoring.signed_score(a) == pytest.approx(scoring.signed_score(b), abs=0.15)


def test_sentiment_eval_prints_the_contract_json_and_leaves_out_seen_texts(
    active: ModelVersion, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unseen_texts, unseen_labels = sentences(COMPANIES[6:])
    seen_texts, seen_labels = sentences(COMPANIES[:1])
    path = tfns_csv(
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
