"""The kinds of job a TrainingJob row can be, each with its queue, parameter validation and runner.

Apps add their own kinds with `register_kind` (the sentiment app registers its training there); the
`run_job` task looks the kind up and runs it with a reporter that writes progress to the row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.core.errors import ServiceError
from apps.core.models import TrainingJob
from ml.training.runner import Progress


class JobReporter:
    """Training callbacks that write progress, log lines and heartbeats to a TrainingJob row."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self._cancel = False

    def on_progress(self, progress: Progress) -> None:
        from apps.core.services.jobs import job_progress

        self._cancel = job_progress(
            job=self.job,
            step=progress.step,
            total=progress.total,
            loss=progress.loss,
            eta_seconds=progress.eta_seconds,
        )

    def should_stop(self) -> bool:
        return self._cancel

    def log(self, line: str) -> None:
        from apps.core.services.jobs import job_log

        job_log(job=self.job, line=line)


@dataclass(frozen=True)
class JobOutcome:
    metrics: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobKind:
    name: str
    label: str
    queue: str
    validate: Callable[[dict[str, Any]], dict[str, Any]]
    run: Callable[[TrainingJob, JobReporter], JobOutcome]


_KINDS: dict[str, JobKind] = {}


def register_kind(kind: JobKind) -> JobKind:
    if kind.queue not in settings.QUEUES:
        raise ValueError(f"job kind {kind.name}: unknown queue {kind.queue}")
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ServiceError(
            f"unknown job kind {name!r}; known: {', '.join(sorted(_KINDS))}", field="kind"
        ) from None


def all_kinds() -> list[JobKind]:
    return sorted(_KINDS.values(), key=lambda k: k.name)


# --- text classifier ----------------------------------------------------------------------------------
DATASETS = {
    "banking77": ("banking77/train.csv", "load_banking77"),
    "phrasebank": ("financial_phrasebank/Sentences_50Agree.txt", "load_phrasebank"),
    "tfns": ("twitter_financial_news_sentiment/sent_train.csv", "load_tfns"),
}


def _int_param(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ServiceError(f"{name} must be an integer, got {raw!r}", field=name) from None
    if not low <= value <= high:
        raise ServiceError(f"{name} must be between {low} and {high}, got {value}", field=name)
    return value


def validate_text_classifier(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - {"dataset", "method", "epochs", "max_examples", "max_steps", "task"}
    if unknown:
        raise ServiceError(f"unknown parameters: {', '.join(sorted(unknown))}")
    dataset = params.get("dataset", "tfns")
    if dataset not in DATASETS:
        raise ServiceError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}", field="dataset")
    path = Path(settings.DATA_DIR) / DATASETS[dataset][0]
    if not path.is_file():
        raise ServiceError(f"{path} does not exist: set DATA_DIR to the data sets folder", field="dataset")
    method = params.get("method", "lora")
    if method not in ("lora", "full"):
        raise ServiceError("method must be 'lora' or 'full'", field="method")
    task = str(params.get("task") or f"{dataset}-classifier")
    if not task.replace("-", "").replace("_", "").isalnum() or len(task) > 64:
        raise ServiceError("task must be letters, digits, - and _ (at most 64)", field="task")
    return {
        "dataset": dataset,
        "method": method,
        "epochs": _int_param(params, "epochs", 1, 1, 20),
        "max_examples": _int_param(params, "max_examples", 0, 0, 1_000_000),
        "max_steps": _int_param(params, "max_steps", 0, 0, 1_000_000),
        "task": task,
    }


def run_text_classifier(job: TrainingJob, reporter: JobReporter) -> JobOutcome:
    from apps.core.services.registry import model_version_register
    from ml import datasets
    from ml.api import ClassifierSpec, run_training
    from ml.artifacts import new_version_dir

    p = job.params
    rel, loader = DATASETS[p["dataset"]]
    data = getattr(datasets, loader)(Path(settings.DATA_DIR) / rel)
    data = datasets.stratified_sample(data, p["max_examples"], seed=13)
    spec = ClassifierSpec(
        task=p["task"],
        texts=data.texts,
        labels=data.labels,
        method=p["method"],
        epochs=p["epochs"],
        max_steps=p["max_steps"],
        data_sources={rel: data.sha256},
    )
    out = new_version_dir(Path(settings.MODEL_STORE), p["task"])
    result = run_training(spec, out, reporter)
    version = model_version_register(task=p["task"], artifact_dir=result.artifact_dir, job=job)
    return JobOutcome(
        metrics=result.metrics,
        result={
            "model_version_id": version.pk,
            "task": version.task,
            "version": version.version,
            "artifact_dir": str(result.artifact_dir),
            "active": version.is_active,
        },
    )


register_kind(
    JobKind(
        name="text_classifier",
        label="Text classifier (fine-tune MiniLM)",
        queue="training",
        validate=validate_text_classifier,
        run=run_text_classifier,
    )
)
