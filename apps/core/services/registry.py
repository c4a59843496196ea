"""Model registry: register a trained artifact, promote a version, roll back to the previous one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.core.models import ModelPromotion, ModelVersion, TrainingJob
from ml.api import read_meta
from ml.errors import ArtifactError


@transaction.atomic
def model_version_register(
    *, task: str, artifact_dir: Path, job: TrainingJob | None = None, activate_if_first: bool = True
) -> ModelVersion:
    """Register a complete artifact directory as the next version of `task`."""
    try:
        meta = read_meta(artifact_dir)
    except ArtifactError as exc:
        raise ServiceError(str(exc)) from None
    # Lock the task's rows so two jobs finishing together cannot take the same number.
    current = ModelVersion.objects.select_for_update().filter(task=task)
    number = (current.aggregate(n=Max("version"))["n"] or 0) + 1
    version = ModelVersion.objects.create(
        task=task,
        version=number,
        artifact_dir=str(artifact_dir),
        meta=meta.to_json(),
        metrics=dict(meta.metrics),
        job=job,
    )
    if activate_if_first and not current.filter(is_active=True).exists():
        model_version_promote(version=version, user=None)
    return version


@transaction.atomic
def model_version_promote(
    *, version: ModelVersion, user: User | AnonymousUser | None, action: str = "promote"
) -> ModelVersion:
    """Make `version` the active one for its task, recording who did it and what it replaced."""
    try:
        read_meta(version.artifact_dir)
    except ArtifactError as exc:
        raise ServiceError(f"cannot promote {version}: {exc}") from None
    locked = ModelVersion.objects.select_for_update().filter(task=version.task)
    previous = locked.filter(is_active=True).first()
    if previous is not None and previous.pk == version.pk:
        raise ServiceError(f"{version} is already active")
    if previous is not None:
        ModelVersion.objects.filter(pk=previous.pk).update(is_active=False)
    version.is_active = True
    version.promoted_by = user if isinstance(user, User) else None
    version.promoted_at = timezone.now()
    version.save(update_fields=["is_active", "promoted_by", "promoted_at"])
    ModelPromotion.objects.create(
        task=version.task, version=version, previous=previous, action=action, by=version.promoted_by
    )
    return version


@transaction.atomic
def model_version_rollback(*, task: str, user: User | AnonymousUser | None) -> ModelVersion:
    """Re-activate the version that was active before the current one."""
    last = ModelPromotion.objects.select_for_update().filter(task=task).first()
    if last is None or last.previous is None:
        raise ServiceError(f"{task} has no earlier active version to roll back to")
    return model_version_promote(version=last.previous, user=user, action="rollback")


def version_summary(version: ModelVersion) -> dict[str, Any]:
    return {"task": version.task, "version": version.version, "metrics": version.metrics}
