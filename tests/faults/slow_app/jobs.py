"""`fault_slow_train`: steps that sleep, then the fake trainer and a registered model version."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from rest_framework import serializers

from apps.core.job_params import JobParams
from apps.core.job_registry import JobOutcome
from apps.core.job_reporter import JobReporter
from apps.core.models import TrainingJob
from ml.training.runner import StepTracker

TEXTS = tuple(f"{word} news number {i}" for i in range(12) for word in ("great", "awful"))
LABELS = tuple("positive" if text.startswith("great") else "negative" for text in TEXTS)


class SlowTrainParams(JobParams):
    steps = serializers.IntegerField(min_value=1, max_value=1000, default=20)
    step_seconds = serializers.FloatField(min_value=0.0, max_value=10.0, default=0.5)
    task = serializers.CharField(default="fault-slow")


def run_slow_train(job: TrainingJob, reporter: JobReporter) -> JobOutcome:
    from apps.core.services.registry import model_version_register
    from ml import api

    p = job.params
    tracker = StepTracker(reporter, p["steps"])
    for step in range(p["steps"]):
        time.sleep(p["step_seconds"])
        tracker.advance(loss=1.0 / (step + 1))
    spec = api.ClassifierSpec(task=p["task"], texts=TEXTS, labels=LABELS, epochs=1)
    out = api.new_version_dir(Path(settings.MODEL_STORE), p["task"])
    trained = api.train_classifier(spec, out, reporter, backend="fake")
    version = model_version_register(task=p["task"], artifact_dir=trained.artifact_dir, job=job)
    return JobOutcome(metrics=trained.metrics, result={"model_version_id": version.pk})
