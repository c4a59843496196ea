"""Intent detection: train the intent classifier as a job, promote it only if better, detect and route intents.

Data: a BANKING77-format CSV (`text,category`) under DATA_DIR (the command line may name any file). Texts that
`apps.support.intents.held_out` picks are never trained on: every version is scored on the held-out texts of
its training file, and the active version on the same texts, and the new one is promoted only if its macro-F1
there is strictly higher. Early stopping and calibration use a further stratified validation split (seed 13)
carved inside `ml.training.classifier` from the training texts. See docs/models/support-intent.md.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.core.errors import ServiceError
from apps.core.models import ModelVersion, TrainingJob
from apps.support.intents import IntentDecision, IntentRoute, recipe_key, route_intent, split_holdout

logger = logging.getLogger(__name__)

TASK = "support_intent"
DEFAULT_FILE = "banking77/train.csv"
SEED = 13
# Chosen on the validation split of banking77/train.csv (see docs/models/support-intent.md).
DEFAULTS: dict[str, Any] = {
    "epochs": 4,
    "learning_rate": 2e-4,
    "max_length": 48,
    "batch_size": 32,
    "max_examples": 0,
    "max_steps": 0,
    "promote": "if_better",
}
RECIPE_KEYS = ("epochs", "learning_rate", "max_length", "batch_size", "max_examples", "max_steps")
VAL_FRACTION = 0.05  # of the training texts, for early stopping and calibration (the holdout compares)


def resolve_train_file(value: Any, *, restrict: bool) -> str:
    """The training file's absolute path ("" or "default": DATA_DIR/banking77/train.csv).

    `restrict` (jobs started from the dashboard or the API) refuses files outside DATA_DIR.
    """
    data_dir = Path(settings.DATA_DIR).resolve()
    path = (
        data_dir / DEFAULT_FILE if value in ("", "default", None) else Path(str(value)).expanduser()
    ).resolve()
    if restrict and data_dir not in path.parents:
        raise ServiceError(
            "train: a job started from the dashboard or API may only read files under DATA_DIR", field="train"
        )
    if not path.is_file():
        raise ServiceError(f"train: {path} does not exist", field="train")
    return str(path)


def recipe_of(params: dict[str, Any]) -> dict[str, Any]:
    return {key: params.get(key, DEFAULTS[key]) for key in RECIPE_KEYS}


def key_for(train_file: str | Path, params: dict[str, Any]) -> str:
    """The recipe key of a model trained on this file's content with these parameters."""
    from ml.api import load_banking77

    return recipe_key(load_banking77(Path(train_file)).sha256, recipe_of(params))


# --- evaluation -------------------------------------------------------------------------------------------
def evaluate(artifact_dir: str | Path, texts: list[str], labels: list[str]) -> dict[str, Any]:
    """n, accuracy and macro-F1 (over every label seen or predicted) of a version on labelled texts."""
    from ml import api

    predicted = [p.label for p in api.classify(artifact_dir, texts, backend="torch-fp32")]
    classes = sorted(set(labels) | set(predicted))
    return {
        "n": len(texts),
        "accuracy": round(api.accuracy(labels, predicted), 4),
        "macro_f1": round(api.macro_f1(labels, predicted, classes), 4),
    }


def _active_score(previous: ModelVersion | None, texts: list[str], labels: list[str], reporter: Any) -> Any:
    if previous is None:
        return None
    reporter.log(f"scoring the active {previous} on the same held-out texts")
    try:
        return evaluate(previous.artifact_dir, texts, labels)
    except Exception as exc:  # an unreadable active artifact must not block a good new one
        reporter.log(f"the active version could not be scored ({exc}); treating it as worse")
        return {"macro_f1": -1.0}


def is_better(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Strictly higher held-out macro-F1 (no active version: always better)."""
    return old is None or float(new["macro_f1"]) > float(old.get("macro_f1", 0.0))


# --- the job ----------------------------------------------------------------------------------------------
def _spec(params: dict[str, Any], path: Path, reporter: Any) -> tuple[Any, tuple[list[str], list[str]]]:
    """The classifier spec for the training texts, and the held-out (texts, labels)."""
    from ml import api

    data = api.load_banking77(path)
    (texts, labels), held = split_holdout(data.texts, data.labels)
    train = api.stratified_sample(
        api.LabelledTexts(data.name, tuple(texts), tuple(labels), data.sha256), params["max_examples"], SEED
    )
    reporter.log(
        f"{path.name}: {len(train.texts)} training texts, {len(held[0])} held out to compare versions"
    )
    spec = api.ClassifierSpec(
        task=TASK,
        texts=train.texts,
        labels=train.labels,
        label_names=tuple(sorted(set(data.labels))),
        method="full",
        epochs=params["epochs"],
        batch_size=params["batch_size"],
        learning_rate=params["learning_rate"],
        max_length=params["max_length"],
        max_steps=params["max_steps"],
        val_fraction=VAL_FRACTION,
        seed=SEED,
        data_sources={path.name: data.sha256},
    )
    return spec, held


def intent_train_job(*, job: TrainingJob, reporter: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train, score against the active version on the held-out texts, register, promote if better."""
    from apps.core.selectors import active_version
    from apps.core.services.registry import model_version_promote, model_version_register
    from ml import api

    p = {**DEFAULTS, **job.params}
    api.apply_thread_setting()
    path = Path(p["train"])
    spec, (held_texts, held_labels) = _spec(p, path, reporter)
    if not held_texts:
        raise ServiceError(f"{path.name} is too small: no text falls in the held-out split", field="train")
    out = api.new_version_dir(Path(settings.MODEL_STORE), TASK)
    started = time.monotonic()
    trained = api.run_training(spec, out, reporter)
    seconds = round(time.monotonic() - started, 1)
    reporter.log("scoring the new version on the held-out texts")
    new_eval = evaluate(out, held_texts, held_labels)
    previous = active_version(TASK)
    old_eval = _active_score(previous, held_texts, held_labels, reporter)
    better = is_better(new_eval, old_eval)
    recipe = {"recipe_key": recipe_key(spec.data_sources[path.name], recipe_of(p)), "train_seconds": seconds}
    metrics = {
        **trained.metrics,
        "holdout": new_eval,
        "active_holdout": old_eval,
        "beats_active": better,
        **recipe,
    }
    api.update_artifact_metrics(out, metrics)
    version = model_version_register(
        task=TASK, artifact_dir=out, job=job, activate_if_first=p["promote"] != "never"
    )
    if not version.is_active and (p["promote"] == "always" or (p["promote"] == "if_better" and better)):
        version = model_version_promote(version=version, user=job.created_by)
    reporter.log(
        f"{version}: held-out macro-F1 {new_eval['macro_f1']} vs active {(old_eval or {}).get('macro_f1')}: "
        f"{'active' if version.is_active else 'not promoted'}"
    )
    result = {
        "model_version_id": version.pk,
        "task": TASK,
        "version": version.version,
        "active": version.is_active,
    }
    return metrics, {**result, "artifact_dir": str(out)}


def trained_version(key: str) -> ModelVersion | None:
    """A registered version trained with this recipe key whose artifact is still on disk (the newest)."""
    from apps.core.selectors import model_versions_by_task

    versions = sorted(model_versions_by_task().get(TASK, []), key=lambda v: -v.version)
    return next(
        (v for v in versions if v.metrics.get("recipe_key") == key and Path(v.artifact_dir).is_dir()), None
    )


# --- detection and routing (what the answering code calls) ------------------------------------------------
def intent_detect(text: str) -> tuple[str, float] | None:
    """(intent, confidence) from the active support_intent version; None when none is active, the text is
    blank, or the model cannot be used (answering then goes on without an intent)."""
    from apps.core.selectors import active_version
    from ml import api
    from ml.errors import MLError

    version = active_version(TASK)
    if version is None or not str(text).strip():
        return None
    try:
        prediction = api.classify(version.artifact_dir, [text])[0]
    except MLError as exc:
        logger.warning("intent detection with %s failed: %s", version, exc)
        return None
    return prediction.label, float(prediction.probabilities[prediction.label])


def intent_route(*, text: str, routes: list[IntentRoute]) -> IntentDecision | None:
    """What to do with a customer's message: a canned answer, a hand-off, or None (answer as usual)."""
    detected = intent_detect(text)
    return None if detected is None else route_intent(detected[0], detected[1], routes)
