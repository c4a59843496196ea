"""Intent detection: the support_intent job, its parameters, support_intent_eval, detection and routing."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from apps.core.errors import ServiceError
from apps.core.job_registry import get_kind
from apps.core.models import JobStatus, ModelVersion
from apps.core.services import jobs as job_services
from apps.support.intents import Action, IntentRoute, held_out, route_intent, split_holdout
from apps.support.services.intents import TASK, intent_detect, intent_route

INTENTS = ("card_arrival", "lost_card", "refund_missing", "exchange_rate")
PHRASES = {
    "card_arrival": ["when will my card arrival be", "card arrival is late", "tracking my card arrival"],
    "lost_card": ["I lost my card", "my card is lost", "lost card, please block it"],
    "refund_missing": ["my refund is missing", "refund still missing", "where is the missing refund"],
    "exchange_rate": [
        "what exchange rate do you use",
        "the exchange rate looks wrong",
        "exchange rate today",
    ],
}


def banking_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    return path


def intent_rows(per_intent: int = 40, intents: tuple[str, ...] = INTENTS) -> list[tuple[str, str]]:
    """Texts that carry their intent's words (what the fake classifier keys on), numbered to be distinct."""
    return [
        (f"{PHRASES.get(intent, [intent.replace('_', ' ')] * 3)[i % 3]} (case {i})", intent)
        for intent in intents
        for i in range(per_intent)
    ]


@pytest.fixture
def data_dir(tmp_path: Path, settings: Any) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    return Path(settings.DATA_DIR)


def validate(params: dict[str, object], *, trusted: bool = False) -> dict[str, Any]:
    """What the API (and, trusted, the command line) does with support_intent's parameters."""
    return get_kind("support_intent").validate(params, trusted=trusted)


def train(params: dict[str, Any], capture: Any) -> Any:
    with capture(execute=True):
        job = job_services.job_create(kind="support_intent", params=params, user=None)
    job.refresh_from_db()
    return job


# --- the pure rules ---------------------------------------------------------------------------------------
def test_the_holdout_is_a_fixed_tenth_by_text() -> None:
    assert held_out("Where is my card?") == held_out("  where IS my   card? ")
    fraction = sum(held_out(f"question number {i}") for i in range(5000)) / 5000
    assert 0.08 < fraction < 0.12
    rows = intent_rows()
    (train_texts, _), (held_texts, held_labels) = split_holdout([t for t, _ in rows], [y for _, y in rows])
    assert held_texts and not set(train_texts) & set(held_texts)
    assert len(train_texts) + len(held_labels) == len(rows)


def test_a_route_applies_only_when_confident_enough() -> None:
    routes = [
        IntentRoute("exchange_rate", Action.CANNED, "We use the Visa rate of the day."),
        IntentRoute("lost_card", Action.HANDOFF),
    ]
    canned = route_intent("exchange_rate", 0.9, routes)
    assert canned is not None and canned.action == Action.CANNED and canned.answer.startswith("We use")
    assert route_intent("exchange_rate", 0.6, routes) is None  # a canned answer needs 0.85
    handoff = route_intent("lost_card", 0.6, routes)
    assert handoff is not None and handoff.action == Action.HANDOFF  # a hand-off needs only 0.5
    assert route_intent("card_arrival", 0.99, routes) is None  # no route: answer as usual


def test_a_canned_route_needs_an_answer() -> None:
    with pytest.raises(ValueError, match="needs an answer"):
        IntentRoute("exchange_rate", Action.CANNED, "  ")
    with pytest.raises(ValueError, match="min_confidence"):
        IntentRoute("lost_card", Action.HANDOFF, min_confidence=1.5)


# --- parameters -------------------------------------------------------------------------------------------
def test_parameters_are_validated(tmp_path: Path, data_dir: Path) -> None:
    inside = banking_csv(data_dir / "intents.csv", intent_rows(2))
    outside = banking_csv(tmp_path / "elsewhere.csv", intent_rows(2))
    assert validate({"train": str(inside)})["train"] == str(inside.resolve())
    with pytest.raises(ServiceError, match="only read files under DATA_DIR"):
        validate({"train": str(outside)})  # from the dashboard or the API
    with pytest.raises(ServiceError, match="only read files under DATA_DIR"):
        validate({"train": str(data_dir / ".." / "elsewhere.csv")})
    assert validate({"train": str(outside)}, trusted=True)["train"] == str(outside.resolve())
    with pytest.raises(ServiceError, match="does not exist"):
        validate({"train": str(data_dir / "missing.csv")})
    with pytest.raises(ServiceError, match="does not exist"):
        validate({})  # the default file, banking77/train.csv, is not in this DATA_DIR
    with pytest.raises(ServiceError, match="unknown parameters: colour"):
        validate({"train": str(inside), "colour": "red"})
    with pytest.raises(ServiceError, match="epochs must be between 1 and 20"):
        validate({"train": str(inside), "epochs": 0})
    with pytest.raises(ServiceError, match="promote must be one of if_better, always, never"):
        validate({"train": str(inside), "promote": "sometimes"})


def test_promoting_needs_the_permission(data_dir: Path, make_user: Any) -> None:
    from apps.core.errors import Forbidden
    from apps.core.roles import ANALYST

    inside = banking_csv(data_dir / "intents.csv", intent_rows(2))
    user = make_user(ANALYST)  # may run jobs, may not promote models
    with pytest.raises(Forbidden, match=r"core\.promote_modelversion"):
        get_kind("support_intent").validate({"train": str(inside)}, user=user)
    assert get_kind("support_intent").validate({"train": str(inside), "promote": "never"}, user=user)


# --- the job (fake ML backend) ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_job_trains_reports_progress_and_registers_an_active_first_version(
    data_dir: Path, fake_ml: None, django_capture_on_commit_callbacks: Any
) -> None:
    file = banking_csv(data_dir / "intents.csv", intent_rows())
    job = train({"train": str(file), "epochs": 3}, django_capture_on_commit_callbacks)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.total_steps == 3 and job.step == 3
    version = ModelVersion.objects.get(pk=job.result["model_version_id"])
    assert version.task == TASK and version.is_active  # the first version is always activated
    assert version.meta["labels"] == sorted(INTENTS)
    assert version.metrics["holdout"]["n"] > 0 and version.metrics["holdout"]["accuracy"] > 0.9
    assert version.metrics["beats_active"] is True and len(version.metrics["recipe_key"]) == 24
    assert "held out to compare versions" in job.log_tail


@pytest.mark.django_db
def test_a_new_version_is_promoted_only_if_better_on_the_held_out_texts(
    data_dir: Path, fake_ml: None, django_capture_on_commit_callbacks: Any
) -> None:
    # The fake classifier predicts by the words of its labels: one trained on other intents scores 0 here.
    wrong = banking_csv(data_dir / "other.csv", intent_rows(40, ("pin_blocked", "top_up_failed")))
    good = banking_csv(data_dir / "intents.csv", intent_rows())
    first = train({"train": str(wrong)}, django_capture_on_commit_callbacks)
    better = train({"train": str(good)}, django_capture_on_commit_callbacks)
    same = train({"train": str(good)}, django_capture_on_commit_callbacks)
    never = train({"train": str(wrong), "promote": "never"}, django_capture_on_commit_callbacks)
    forced = train({"train": str(wrong), "promote": "always"}, django_capture_on_commit_callbacks)

    assert [j.status for j in (first, better, same, never, forced)] == [JobStatus.SUCCEEDED] * 5
    assert better.result["active"] and better.metrics["active_holdout"]["macro_f1"] == 0.0
    assert not same.result["active"] and same.metrics["beats_active"] is False  # equal is not better
    assert not never.result["active"]
    assert forced.result["active"]  # "always" promotes a worse version
    assert ModelVersion.objects.filter(task=TASK).count() == 5
    assert ModelVersion.objects.get(task=TASK, is_active=True).pk == forced.result["model_version_id"]


# --- detection and routing (fake ML backend) ------------------------------------------------------------
@pytest.mark.django_db
def test_intent_detect_uses_the_active_version(
    data_dir: Path, fake_ml: None, django_capture_on_commit_callbacks: Any
) -> None:
    assert intent_detect("I lost my card") is None  # no model yet
    file = banking_csv(data_dir / "intents.csv", intent_rows())
    train({"train": str(file)}, django_capture_on_commit_callbacks)
    detected = intent_detect("I lost my card yesterday")
    assert detected is not None and detected[0] == "lost_card" and 0.5 < detected[1] <= 1.0
    assert intent_detect("   ") is None
    decision = intent_route(text="I lost my card", routes=[IntentRoute("lost_card", Action.HANDOFF)])
    assert decision is not None and decision.action == Action.HANDOFF


# --- support_intent_eval (fake ML backend) --------------------------------------------------------------
def run_eval(capsys: pytest.CaptureFixture[str], train_file: Path, test_file: Path) -> dict[str, Any]:
    call_command("support_intent_eval", "--train", str(train_file), "--test", str(test_file), "--json")
    result: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return result


@pytest.mark.django_db
def test_support_intent_eval_prints_the_scores_and_reuses_a_model_of_the_same_file(
    tmp_path: Path, fake_ml: None, capsys: pytest.CaptureFixture[str]
) -> None:
    train_file = banking_csv(tmp_path / "train.csv", intent_rows())
    test_file = banking_csv(tmp_path / "test.csv", [(f"{t} again", y) for t, y in intent_rows(5)])
    first = run_eval(capsys, train_file, test_file)
    assert {"n", "accuracy", "macro_f1"} <= set(first) and first["n"] == 20
    assert first["accuracy"] > 0.9 and first["reused"] is False
    copy = banking_csv(tmp_path / "copy.csv", intent_rows())  # the same content under another name
    again = run_eval(capsys, copy, test_file)
    assert again["reused"] is True and again["model_version"] == first["model_version"]
    assert ModelVersion.objects.filter(task=TASK).count() == 1
    assert not ModelVersion.objects.get(task=TASK).is_active  # evaluation never promotes by default


# --- the real model ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.django_db
def test_the_real_model_learns_intents_better_than_chance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ML_THREADS", "1")
    train_file = banking_csv(tmp_path / "train.csv", intent_rows(60))
    # Unseen texts: the training phrases with other case numbers, and a few new wordings.
    unseen = [(f"{PHRASES[y][i % 3]} (ticket {500 + i})", y) for y in INTENTS for i in range(2)]
    new_wordings = [
        ("when will my new card arrive", "card_arrival"),
        ("I have lost my bank card", "lost_card"),
        ("the refund I was promised is missing", "refund_missing"),
        ("which exchange rate applies to euros", "exchange_rate"),
    ]
    test_file = banking_csv(tmp_path / "test.csv", unseen + new_wordings)
    call_command(
        "support_intent_eval", "--train", str(train_file), "--test", str(test_file), "--epochs", "1",
        "--learning-rate", "3e-4", "--batch-size", "16", "--json",
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 12
    assert result["accuracy"] > 0.5  # chance is 0.25 on four intents
