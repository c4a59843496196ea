from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework import serializers

from apps.core.job_params import JobParams
from apps.core.job_registry import JobKind, JobOutcome, override_kinds
from ml.training.runner import StepTracker


class StepsParams(JobParams):
    steps = serializers.IntegerField(min_value=1, max_value=100, default=3)
    cancel_at = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)


def run_steps(job: Any, reporter: Any) -> JobOutcome:
    """Counts steps through the real reporter; asks for cancellation at `cancel_at` like a user would."""
    from apps.core.services.jobs import job_cancel

    tracker = StepTracker(reporter, job.params["steps"])
    for step in range(1, job.params["steps"] + 1):
        if step == job.params.get("cancel_at"):
            job.refresh_from_db()
            job_cancel(job=job)
        tracker.advance(loss=1.0 / step)
    return JobOutcome(metrics={"steps": tracker.step}, result={"done": True})


COUNT_STEPS = JobKind(
    name="count_steps",
    label="Count steps",
    queue="default",
    params=f"{__name__}.StepsParams",
    run=f"{__name__}.run_steps",
)


@pytest.fixture
def counting_kind() -> Iterator[str]:
    """A job kind that exercises the job machinery without a model (the real kinds have their own tests)."""
    with override_kinds(COUNT_STEPS):
        yield COUNT_STEPS.name
