"""Model registry: register a trained artifact, promote a version, roll back to the previous one."""

from __future__ import annotations

import re
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.core.db import retry_while_locked
from apps.core.errors import ServiceError
from apps.core.models import ModelPromotion, ModelVersion, TrainingJob
from ml.api import ArtifactMeta, read_meta
from ml.errors import ArtifactError


def model_version_register(
    *, task: str, artifact_dir: Path, job: TrainingJob | None = None, activate_if_first: bool = True
) -> ModelVersion:
    """Register a complete artifact directory as the next version of `task`; idempotent and retried.

    Registering the same directory again returns the version it already is, so a job that lost the answer
    (a worker killed after the commit) or a retry after a lock timeout never makes a second version. The
    write is retried while the database is locked (the end of hours of training must not be lost to a busy
    moment), unless the caller holds a transaction of its own, which a retry could not repeat.
    """
    try:
        meta = read_meta(artifact_dir)
    except ArtifactError as exc:
        raise ServiceError(str(exc)) from None
    register = partial(_register, task=task, artifact_dir=artifact_dir, meta=meta, job=job)
    return retry_while_locked(lambda: register(activate_if_first=activate_if_first))


@transaction.atomic
def _register(
    *, task: str, artifact_dir: Path, meta: ArtifactMeta, job: TrainingJob | None, activate_if_first: bool
) -> ModelVersion:
    existing = ModelVersion.objects.filter(artifact_dir=str(artifact_dir)).first()
    if existing is not None:
        return existing
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


def model_store_reconcile(*, grace_seconds: int | None = None) -> dict[str, list[str]]:
    """Adopt complete artifacts that no version points at, and remove incomplete ones nothing writes to.

    A job that trained and then failed to register (a worker killed, a database error) leaves a directory
    under MODEL_STORE that no version names. A complete one (its meta.json reads) becomes a new, inactive
    version of its task, for a person to promote; an incomplete one is removed once no job is running or it
    is older than the longest a training may run (a running job may still be writing it).
    """
    from django.conf import settings

    from apps.core.models import JobStatus

    grace = settings.TRAINING_TIME_LIMIT if grace_seconds is None else grace_seconds
    running = TrainingJob.objects.filter(status=JobStatus.RUNNING).exists()
    known = set(ModelVersion.objects.values_list("artifact_dir", flat=True))
    adopted: list[str] = []
    removed: list[str] = []
    for directory in _artifact_dirs(Path(settings.MODEL_STORE)):
        if str(directory) in known or (running and _age(directory) < grace):
            continue
        try:
            meta = read_meta(directory)
        except ArtifactError:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(str(directory))
            continue
        version = model_version_register(task=meta.task, artifact_dir=directory, activate_if_first=False)
        adopted.append(f"{version} ({directory})")
    return {"adopted": adopted, "removed": removed}


VERSION_DIR = re.compile(r"^\d{8}T\d{12}$")  # the name `ml.api.new_version_dir` gives a version directory


def _artifact_dirs(store: Path) -> list[Path]:
    """MODEL_STORE/<task>/<version directory>: not the ONNX cache nor the indexes, whose names differ."""
    if not store.is_dir():
        return []
    return sorted(
        path
        for task_dir in store.iterdir()
        if task_dir.is_dir()
        for path in task_dir.iterdir()
        if path.is_dir() and VERSION_DIR.match(path.name)
    )


def _age(path: Path) -> float:
    return time.time() - path.stat().st_mtime
