"""Support job kinds (rows on the dashboard's Jobs page): their parameter schemas and run functions.

SupportConfig.job_kinds declares the kinds by dotted paths into this module. Each schema is a serializer
that the API, the dashboard form and the command line validate through; each run function calls a service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from apps.core.job_params import JobParams
from apps.core.job_registry import JobOutcome
from apps.core.job_reporter import JobReporter
from apps.core.models import TrainingJob
from apps.support.services.intents import DEFAULTS as _D


# --- support_ingest: index one knowledge-base document (or take it out of the index) ---------------------
class IngestParams(JobParams):
    """Parameters of `support_ingest`: the document, and the pending version it was queued for."""

    document = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text="the document's id")
    content_hash = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default="", help_text="the pending version's hash"
    )
    action = serializers.ChoiceField(choices=("index", "delete"), default="index")


def run_ingest(job: TrainingJob, reporter: JobReporter) -> JobOutcome:
    from apps.support.services import ingest

    p = job.params
    if p.get("action") == "delete":
        result = ingest.document_unindex(document_id=p["document"], reporter=reporter)
    else:
        result = ingest.document_ingest(
            document_id=p["document"], content_hash=p.get("content_hash", ""), reporter=reporter
        )
    metrics: dict[str, Any] = {key: result[key] for key in ("chunks", "curated_answers") if key in result}
    return JobOutcome(metrics=metrics, result=result)


# --- support_intent: fine-tune the intent classifier (BANKING77 format) ----------------------------------
PROMOTE = "core.promote_modelversion"  # what POST /api/models/<id>/promote/ checks


class IntentTrainParams(JobParams):
    """Parameters of `support_intent` (defaults: the recipe chosen on the validation split)."""

    train = serializers.CharField(
        required=False,
        allow_blank=True,
        default="default",
        help_text='BANKING77-format CSV (text,category) under DATA_DIR, or "default" (banking77/train.csv)',
    )
    epochs = serializers.IntegerField(min_value=1, max_value=20, default=_D["epochs"])
    learning_rate = serializers.FloatField(min_value=1e-6, max_value=1e-2, default=_D["learning_rate"])
    max_length = serializers.IntegerField(min_value=16, max_value=512, default=_D["max_length"])
    batch_size = serializers.IntegerField(min_value=1, max_value=256, default=_D["batch_size"])
    max_examples = serializers.IntegerField(min_value=0, max_value=10_000_000, default=_D["max_examples"])
    max_steps = serializers.IntegerField(min_value=0, max_value=10_000_000, default=_D["max_steps"])
    promote = serializers.ChoiceField(choices=("if_better", "always", "never"), default=_D["promote"])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        from apps.support.services.intents import resolve_train_file

        restrict = not self.context.get("trusted", False)
        attrs["train"] = resolve_train_file(attrs.get("train", ""), restrict=restrict)
        return attrs

    def required_permissions(self, attrs: Mapping[str, Any]) -> list[tuple[str, str]]:
        if attrs["promote"] == "never":
            return []
        why = f'promote "{attrs["promote"]}" (making the new model active; pass "never" to only train)'
        return [(PROMOTE, why)]


def run_intent_train(job: TrainingJob, reporter: JobReporter) -> JobOutcome:
    from apps.support.services import intents

    metrics, result = intents.intent_train_job(job=job, reporter=reporter)
    return JobOutcome(metrics=metrics, result=result)
