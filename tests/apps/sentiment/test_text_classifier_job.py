"""The generic text_classifier job kind: fine-tune MiniLM on a data set and register the version."""

from __future__ import annotations

import pytest

from apps.core.models import JobStatus
from apps.core.services import jobs as job_services

pytestmark = pytest.mark.django_db


@pytest.mark.slow
def test_text_classifier_job_trains_and_registers_a_model(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = job_services.job_create(
            kind="text_classifier",
            params={"dataset": "tfns", "method": "lora", "max_examples": 60, "max_steps": 3},
            user=None,
        )
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.total_steps == 3 and job.step == 3
    from apps.core.models import ModelVersion

    version = ModelVersion.objects.get(pk=job.result["model_version_id"])
    assert version.is_active  # the first version of a task becomes active
    assert version.meta["labels"] == ["negative", "neutral", "positive"]
    assert len(version.meta["data"]["twitter_financial_news_sentiment/sent_train.csv"]) == 64
    assert "val_accuracy" in version.metrics
