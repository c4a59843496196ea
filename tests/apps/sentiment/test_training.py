"""Training: the fixed evaluation split, job parameters, the bootstrap job, and promote-only-if-better."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command

from apps.core.errors import ServiceError
from apps.core.models import JobStatus, ModelVersion, TrainingJob
from apps.sentiment.services import training
from apps.sentiment.services.training import (
    bootstrap_training,
    held_out,
    load_training_data,
)
from tests.apps.sentiment.scoring_data import tfns_csv

PHRASEBANK = Path(settings.DATA_DIR) / "financial_phrasebank" / "Sentences_50Agree.txt"
needs_phrasebank = pytest.mark.skipif(not PHRASEBANK.is_file(), reason="PhraseBank is not under DATA_DIR")


def test_the_holdout_is_a_fixed_fifth_by_sentence() -> None:
    sentence = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn ."
    assert held_out(sentence) == held_out("  operating profit ROSE to EUR 13.1 mn from EUR 8.7 mn . ")
    fraction = sum(held_out(f"sentence number {i}") for i in range(5000)) / 5000
    assert 0.18 < fraction < 0.22


@needs_phrasebank
def test_phrasebank_training_never_sees_the_evaluation_sentences() -> None:
    data = load_training_data({"phrasebank": str(PHRASEBANK)})
    eval_texts, _ = data.eval_sets["phrasebank"]
    train = {training.normalise(t) for t in data.texts}
    assert not train & {training.normalise(t) for t in eval_texts}
    assert 0.17 < len(eval_texts) / (len(eval_texts) + len(data.texts)) < 0.23
    allagree, _ = data.eval_sets["phrasebank_allagree"]
    assert {training.normalise(t) for t in allagree} <= {training.normalise(t) for t in eval_texts}


def test_tweets_are_evaluated_on_the_validation_file(tmp_path: Path) -> None:
    train = tfns_csv(
        tmp_path / "sent_train.csv", [("up", "positive"), ("down", "negative"), ("flat", "neutral")]
    )
    tfns_csv(tmp_path / "sent_valid.csv", [("higher", "positive")])
    data = load_training_data({"tfns": str(train)})
    assert data.texts == ["up", "down", "flat"] and data.eval_sets["tfns"] == (["higher"], ["positive"])


def validate(params: dict[str, object], *, trusted: bool = False) -> dict[str, object]:
    """What the API (and, trusted, the command line) does with sentiment_train's parameters."""
    from apps.core.job_registry import get_kind

    return get_kind("sentiment_train").validate(params, trusted=trusted)


def test_parameters_are_validated(tmp_path: Path) -> None:
    outside = tfns_csv(tmp_path / "sent_train.csv", [("up", "positive")])
    with pytest.raises(ServiceError, match="only read files under DATA_DIR"):
        validate({"tfns": str(outside)})  # from the dashboard or the API
    assert validate({"tfns": str(outside)}, trusted=True)["tfns"] == str(outside)
    with pytest.raises(ServiceError, match="does not exist"):
        validate({"tfns": str(tmp_path / "missing.csv")}, trusted=True)
    with pytest.raises(ServiceError, match="unknown parameters: colour"):
        validate({"colour": "red"})
    with pytest.raises(ServiceError, match="epochs must be between"):
        validate({"tfns": str(outside), "epochs": 0}, trusted=True)
    with pytest.raises(ServiceError, match="promote must be one of if_better, always, never"):
        validate({"tfns": str(outside), "promote": "sometimes"}, trusted=True)
    with pytest.raises(ServiceError, match="class_weights must be true or false"):
        validate({"tfns": str(outside), "class_weights": "maybe"}, trusted=True)
    assert validate({"tfns": str(outside)}, trusted=True)["class_weights"] is True
    off = validate({"tfns": str(outside), "class_weights": "false", "soup": False}, trusted=True)
    assert off["class_weights"] is False
    assert off["label_smoothing"] == 0.0
    with pytest.raises(ServiceError, match=r"label_smoothing must be between 0 and 0\.5"):
        validate({"tfns": str(outside), "label_smoothing": 0.9}, trusted=True)
    smooth = validate({"tfns": str(outside), "label_smoothing": "0.1"}, trusted=True)
    assert smooth["label_smoothing"] == 0.1
    assert validate({"tfns": str(outside), "class_bias": "on"}, trusted=True)["class_bias"]
    with pytest.raises(ServiceError, match="class_bias must be true or false"):
        validate({"tfns": str(outside), "class_bias": 2}, trusted=True)


@needs_phrasebank
def test_no_files_means_both_default_files(db: None) -> None:
    params = validate({})
    assert params["phrasebank"].endswith("Sentences_50Agree.txt") and params["tfns"].endswith(
        "sent_train.csv"
    )


def test_is_better_is_strict() -> None:
    assert training.is_better({"all": {"macro_f1": 0.8}}, None)
    assert training.is_better({"all": {"macro_f1": 0.8}}, {"all": {"macro_f1": 0.79}})
    assert not training.is_better({"all": {"macro_f1": 0.8}}, {"all": {"macro_f1": 0.8}})


@pytest.mark.skipif(
    not (Path(settings.DATA_DIR) / training.DEFAULT_FILES["tfns"]).is_file(), reason="no tweets"
)
def test_bootstrap_queues_one_first_training_job(db: None) -> None:
    first = bootstrap_training()
    assert first is not None and first.kind == "sentiment_train" and first.params["phrasebank"] == ""
    assert first.params["epochs"] == 1
    assert bootstrap_training() is None  # one is pending already
    TrainingJob.objects.filter(pk=first.pk).update(status=JobStatus.FAILED)
    ModelVersion.objects.create(task="sentiment", version=1, artifact_dir="/x", is_active=True)
    assert bootstrap_training() is None  # a model is active
    assert TrainingJob.objects.count() == 1


# --- promote only if better (real training, a few steps) -----------------------------------------------


def _train(capsys: pytest.CaptureFixture[str], train: Path, *extra: str) -> dict[str, Any]:
    call_command("sentiment_train", "--tfns", str(train), "--learning-rate", "3e-4", "--max-length", "32",
                 "--json", *extra)  # fmt: skip
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.django_db
def test_a_new_version_is_promoted_only_if_it_beats_the_active_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.apps.sentiment.scoring_data import COMPANIES, sentences

    monkeypatch.setenv("ML_THREADS", "1")
    texts, labels = sentences(COMPANIES[:6])
    train = tfns_csv(tmp_path / "sent_train.csv", list(zip(texts, labels, strict=True)))
    texts, labels = sentences(COMPANIES[6:])
    tfns_csv(tmp_path / "sent_valid.csv", list(zip(texts, labels, strict=True)))

    weak = _train(capsys, train, "--max-steps", "1")
    assert weak["active"] is True and weak["version"] == 1  # the first version is always activated

    strong = _train(capsys, train, "--epochs", "6")
    assert (
        strong["metrics"]["eval"]["tfns"]["macro_f1"] > strong["metrics"]["active_eval"]["tfns"]["macro_f1"]
    )
    assert strong["active"] is True and strong["metrics"]["beats_active"] is True

    again = _train(capsys, train, "--max-steps", "1")
    assert again["active"] is False and again["metrics"]["beats_active"] is False
    active = ModelVersion.objects.get(task="sentiment", is_active=True)
    assert active.version == 2 and ModelVersion.objects.filter(task="sentiment").count() == 3
    job = TrainingJob.objects.get(pk=again["job_id"])
    assert job.status == JobStatus.SUCCEEDED and "not promoted" in job.log_tail
    assert (Path(active.artifact_dir) / training.SEEN_FILE).is_file()
