from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.core.job_kinds import _KINDS, JobKind, JobOutcome, register_kind
from ml.training.runner import StepTracker


def _validate_steps(params: dict[str, Any]) -> dict[str, Any]:
    from apps.core.errors import ServiceError

    steps = params.get("steps", 3)
    if not isinstance(steps, int) or not 1 <= steps <= 100:
        raise ServiceError("steps must be an integer from 1 to 100", field="steps")
    return {"steps": steps, "cancel_at": params.get("cancel_at")}


def _run_steps(job: Any, reporter: Any) -> JobOutcome:
    """Counts steps through the real reporter; asks for cancellation at `cancel_at` like a user would."""
    from apps.core.services.jobs import job_cancel

    tracker = StepTracker(reporter, job.params["steps"])
    for step in range(1, job.params["steps"] + 1):
        if step == job.params.get("cancel_at"):
            job.refresh_from_db()
            job_cancel(job=job)
        tracker.advance(loss=1.0 / step)
    return JobOutcome(metrics={"steps": tracker.step}, result={"done": True})


@pytest.fixture
def counting_kind() -> Iterator[str]:
    """A job kind that exercises the job machinery without a model (the real kinds have their own tests)."""
    register_kind(JobKind("count_steps", "Count steps", "default", _validate_steps, _run_steps))
    yield "count_steps"
    _KINDS.pop("count_steps", None)
