"""Sentiment job kinds (rows on the dashboard's Jobs page): training a model version and re-scoring a range."""

from __future__ import annotations

from typing import Any

from apps.core.job_kinds import JobKind, JobOutcome, JobReporter, register_kind
from apps.core.models import TrainingJob
from apps.sentiment.services import training


def run_train(job: TrainingJob, reporter: JobReporter) -> JobOutcome:
    metrics, result = training.run_training_job(job, reporter)
    return JobOutcome(metrics=metrics, result=result)


def _run_rescore(job: TrainingJob, reporter: JobReporter) -> JobOutcome:
    metrics, result = training.run_rescore_job(job, reporter)
    return JobOutcome(metrics=metrics, result=result)


def _validate_train(params: dict[str, Any]) -> dict[str, Any]:
    return training.validate_train_params(params, restrict_paths=True)


register_kind(
    JobKind(
        name="sentiment_train",
        label="Sentiment model (fine-tune MiniLM on finance data)",
        queue="training",
        validate=_validate_train,
        run=run_train,
    )
)
register_kind(
    JobKind(
        name="sentiment_rescore",
        label="Sentiment re-score (a time range, with the active model)",
        queue="inference",
        validate=training.validate_rescore_params,
        run=_run_rescore,
    )
)
