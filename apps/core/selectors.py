"""Reads of the core app."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.models import ModelPromotion, ModelVersion, PromptTemplate, TrainingJob


def jobs_list(*, status: str | None = None, kind: str | None = None) -> QuerySet[TrainingJob]:
    qs = TrainingJob.objects.select_related("created_by")
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    return qs


def model_versions_by_task() -> dict[str, list[ModelVersion]]:
    grouped: dict[str, list[ModelVersion]] = {}
    for version in ModelVersion.objects.select_related("promoted_by").order_by("task", "-version"):
        grouped.setdefault(version.task, []).append(version)
    return grouped


def promotions(task: str | None = None) -> QuerySet[ModelPromotion]:
    qs = ModelPromotion.objects.select_related("version", "previous", "by")
    return qs.filter(task=task) if task else qs


def prompt_templates() -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.prefetch_related("labels__version", "labels__split_version")
