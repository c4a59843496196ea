"""Reads of the core app."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from apps.core.errors import ServiceError
from apps.core.models import (
    ModelPromotion,
    ModelVersion,
    PromptLabel,
    PromptTemplate,
    PromptVersion,
    TrainingJob,
)
from apps.core.server_paths import SEE_ALL, hide_paths


def jobs_visible_to(user: Any) -> QuerySet[TrainingJob]:
    """Every job for admins (core.view_all_trainingjob); for others their own and the suite's own."""
    qs = TrainingJob.objects.select_related("created_by")
    if user.has_perm(SEE_ALL):
        return qs
    return qs.filter(Q(created_by=user.pk) | Q(created_by__isnull=True))


def job_visible_to(user: Any, pk: int) -> TrainingJob:
    """One job `user` may see (Http404 otherwise, as if it did not exist), as `job_as_seen_by` shows it."""
    return job_as_seen_by(user, get_object_or_404(jobs_visible_to(user), pk=pk))


def job_as_seen_by(user: Any, job: TrainingJob) -> TrainingJob:
    """`job` for display to `user`: server paths and tracebacks for admins only. Never save it afterwards."""
    if not user.has_perm(SEE_ALL):
        for name in ("params", "result", "metrics", "log_tail", "error"):
            setattr(job, name, hide_paths(getattr(job, name)))
        job.log_tail = without_tracebacks(job.log_tail)
    return job


def without_tracebacks(log: str) -> str:
    """A job's log with each crash's traceback left out (the code's insides are for admins)."""
    from apps.core.services.jobs import CRASH_END, CRASH_MARK

    pattern = re.compile(re.escape(CRASH_MARK) + r"\n.*?(?:" + re.escape(CRASH_END) + r"|\Z)", re.S)
    return pattern.sub(CRASH_MARK + " (the traceback is shown to admins)", log)


def latest_job(*, kind: str) -> TrainingJob | None:
    return TrainingJob.objects.filter(kind=kind).order_by("-created_at", "-pk").first()


def jobs_list(*, user: Any, status: str | None = None, kind: str | None = None) -> QuerySet[TrainingJob]:
    qs = jobs_visible_to(user)
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


def rollback_targets() -> dict[str, ModelVersion]:
    """task -> the version a roll back would re-activate (the one active before the latest promotion)."""
    targets: dict[str, ModelVersion] = {}
    seen: set[str] = set()
    for promotion in promotions():  # newest first: a task's latest promotion decides, as in the roll back
        if promotion.task not in seen and promotion.previous is not None:
            targets[promotion.task] = promotion.previous
        seen.add(promotion.task)
    return targets


def prompt_templates() -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.prefetch_related("labels__version", "labels__split_version")


def active_version(task: str) -> ModelVersion | None:
    """The version of `task` that serves now, or None before the first promotion."""
    return ModelVersion.objects.filter(task=task, is_active=True).first()


def prompt_resolve(*, template_name: str, label: str = "production", key: str = "") -> PromptVersion:
    """The version a request with `key` (a conversation id, say) gets; the same key always gets the same one."""
    obj = (
        PromptLabel.objects.select_related("version", "split_version")
        .filter(template__name=template_name, name=label)
        .first()
    )
    if obj is None:
        raise ServiceError(f"no label {label!r} on template {template_name!r}")
    if obj.split_version is None or obj.split_percent == 0:
        return obj.version
    bucket = int(hashlib.sha256(f"{template_name}:{key}".encode()).hexdigest()[:8], 16) % 100
    return obj.split_version if bucket < obj.split_percent else obj.version
