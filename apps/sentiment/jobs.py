"""Sentiment job kinds (rows on the dashboard's Jobs page): their parameter schemas and run functions.

SentimentConfig.job_kinds declares the kinds by dotted paths into this module. Each schema is a serializer
that the API, the dashboard form and the command line validate through; each run function calls a service.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from rest_framework import serializers

from apps.core.errors import ServiceError
from apps.core.job_params import JobParams
from apps.core.job_registry import JobOutcome
from apps.core.job_reporter import JobReporter
from apps.core.models import TrainingJob
from apps.sentiment.services import training

_D = training.DEFAULTS
PROMOTE = "core.promote_modelversion"  # what POST /api/models/<id>/promote/ checks
_BIG = 10_000_000


class TrainParams(JobParams):
    """Parameters of `sentiment_train` (defaults: the recipe chosen on the validation split)."""

    phrasebank = serializers.CharField(
        required=False, allow_blank=True, default="", help_text='Financial PhraseBank file, or "default"'
    )
    tfns = serializers.CharField(
        required=False, allow_blank=True, default="", help_text='tweets training file, or "default"'
    )
    tfns_eval = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="tweets evaluation file (default: sent_valid.csv)",
    )
    epochs = serializers.IntegerField(min_value=1, max_value=20, default=_D["epochs"])
    learning_rate = serializers.FloatField(min_value=1e-6, max_value=1e-2, default=_D["learning_rate"])
    max_length = serializers.IntegerField(min_value=16, max_value=512, default=_D["max_length"])
    batch_size = serializers.IntegerField(min_value=1, max_value=256, default=_D["batch_size"])
    max_steps = serializers.IntegerField(min_value=0, max_value=_BIG, default=_D["max_steps"])
    max_examples = serializers.IntegerField(min_value=0, max_value=_BIG, default=_D["max_examples"])
    class_weights = serializers.BooleanField(default=_D["class_weights"])
    class_bias = serializers.BooleanField(default=_D["class_bias"])
    soup = serializers.BooleanField(default=_D["soup"])
    label_smoothing = serializers.FloatField(min_value=0.0, max_value=0.5, default=_D["label_smoothing"])
    promote = serializers.ChoiceField(choices=("if_better", "always", "never"), default=_D["promote"])
    rescore_from = serializers.DateTimeField(required=False, allow_null=True, default=None)
    rescore_to = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        restrict = not self.context.get("trusted", False)
        files = {name: attrs.get(name, "") for name in ("phrasebank", "tfns")}
        if not any(files.values()):
            files = {"phrasebank": "default", "tfns": "default"}
        for name, value in files.items():
            attrs[name] = training.resolve_data_file(value, name, restrict=restrict)
        if attrs.get("tfns_eval"):
            attrs["tfns_eval"] = training.resolve_data_file(attrs["tfns_eval"], "tfns", restrict=restrict)
        if attrs["soup"] and not attrs["class_weights"]:
            raise ServiceError(
                "class_weights=false has no effect on a soup (one ingredient is trained with class weights and "
                "one without): turn soup off as well (--no-soup)",
                field="class_weights",
            )
        return attrs

    def required_permissions(self, attrs: Mapping[str, Any]) -> list[tuple[str, str]]:
        if attrs["promote"] == "never":
            return []
        why = f'promote "{attrs["promote"]}" (making the new model active; pass "never" to only train)'
        return [(PROMOTE, why)]


class RescoreParams(JobParams):
    """Parameters of `sentiment_rescore`: the time range [start, end) to score with the active version."""

    start = serializers.DateTimeField()
    end = serializers.DateTimeField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] <= attrs["start"]:
            raise ServiceError("end must be after start", field="end")
        return attrs


# --- a text classifier on one of the packaged data sets (the generic fine-tuning kind) ---------------------
DATASETS = {
    "banking77": ("banking77/train.csv", "banking77"),
    "phrasebank": ("financial_phrasebank/Sentences_50Agree.txt", "phrasebank"),
    "tfns": ("twitter_financial_news_sentiment/sent_train.csv", "tfns"),
}


class TextClassifierParams(JobParams):
    """Parameters of `text_classifier`: fine-tune MiniLM (LoRA or full) on one data set under DATA_DIR."""

    dataset = serializers.ChoiceField(choices=tuple(DATASETS), default="tfns")
    method = serializers.ChoiceField(choices=("lora", "full"), default="lora")
    epochs = serializers.IntegerField(min_value=1, max_value=20, default=1)
    max_examples = serializers.IntegerField(min_value=0, max_value=1_000_000, default=0)
    max_steps = serializers.IntegerField(min_value=0, max_value=1_000_000, default=0)
    task = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,64}$",
        required=False,
        allow_blank=True,
        default="",
        help_text="model registry task name (default: <dataset>-classifier)",
        error_messages={"invalid": "must be letters, digits, - and _ (at most 64)"},
    )
    promote = serializers.ChoiceField(
        choices=("if_first", "never"),
        default="if_first",
        help_text="if_first: the version becomes active when the task has no active one",
    )

    def required_permissions(self, attrs: Mapping[str, Any]) -> list[tuple[str, str]]:
        if attrs["promote"] == "never":
            return []
        return [(PROMOTE, 'promote "if_first" (making the version active; pass "never" to only train)')]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        path = Path(settings.DATA_DIR) / DATASETS[attrs["dataset"]][0]
        if not path.is_file():
            raise ServiceError(
                f"{path} does not exist: set DATA_DIR to the data sets folder", field="dataset"
            )
        attrs["task"] = attrs.get("task") or f"{attrs['dataset']}-classifier"
        return attrs


def run_train(job: TrainingJob, reporter: JobReporter) -> JobOutcome:
    metrics, result = training.run_training_job(job, reporter)
    return JobOutcome(metrics=metrics, result=result)


def run_rescore(job: TrainingJob, reporter: JobReporter) -> JobOutcome:
    metrics, result = training.run_rescore_job(job, reporter)
    return JobOutcome(metrics=metrics, result=result)


def run_text_classifier(job: TrainingJob, reporter: JobReporter) -> JobOutcome:
    from apps.core.services.registry import model_version_register
    from ml import api

    p = job.params
    rel, loader = DATASETS[p["dataset"]]
    data = api.load_dataset(loader, Path(settings.DATA_DIR) / rel)
    data = api.stratified_sample(data, p["max_examples"], seed=13)
    spec = api.ClassifierSpec(
        task=p["task"],
        texts=data.texts,
        labels=data.labels,
        method=p["method"],
        epochs=p["epochs"],
        max_steps=p["max_steps"],
        data_sources={rel: data.sha256},
    )
    out = api.new_version_dir(Path(settings.MODEL_STORE), p["task"])
    trained = api.run_training(spec, out, reporter)
    version = model_version_register(
        task=p["task"],
        artifact_dir=trained.artifact_dir,
        job=job,
        activate_if_first=p.get("promote", "if_first") != "never",
    )
    return JobOutcome(
        metrics=trained.metrics,
        result={
            "model_version_id": version.pk,
            "task": version.task,
            "version": version.version,
            "artifact_dir": str(trained.artifact_dir),
            "active": version.is_active,
        },
    )
