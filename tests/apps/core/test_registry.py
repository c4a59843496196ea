from __future__ import annotations

from pathlib import Path

import pytest

from apps.core.errors import ServiceError
from apps.core.models import ModelPromotion, ModelVersion
from apps.core.selectors import active_version
from apps.core.services.registry import (
    model_version_promote,
    model_version_register,
    model_version_rollback,
)
from ml.artifacts import ArtifactMeta, write_meta

pytestmark = pytest.mark.django_db


def _artifact(store: Path, name: str, accuracy: float) -> Path:
    path = store / "demo" / name
    write_meta(
        path, ArtifactMeta(task="demo", kind="sequence-classifier", base_model="m", metrics={"acc": accuracy})
    )
    return path


def test_first_version_is_active_later_ones_wait_for_promotion(model_store):
    v1 = model_version_register(task="demo", artifact_dir=_artifact(model_store, "a", 0.8))
    v2 = model_version_register(task="demo", artifact_dir=_artifact(model_store, "b", 0.9))
    assert (v1.version, v2.version) == (1, 2)
    assert active_version("demo") == v1
    assert v2.metrics == {"acc": 0.9}


def test_promote_then_roll_back(model_store, make_user):
    admin = make_user("admin")
    v1 = model_version_register(task="demo", artifact_dir=_artifact(model_store, "a", 0.8))
    v2 = model_version_register(task="demo", artifact_dir=_artifact(model_store, "b", 0.9))
    model_version_promote(version=v2, user=admin)
    v2.refresh_from_db()
    assert active_version("demo") == v2 and v2.promoted_by == admin
    back = model_version_rollback(task="demo", user=admin)
    assert back == v1 and active_version("demo") == v1
    assert ModelVersion.objects.filter(task="demo", is_active=True).count() == 1
    assert list(ModelPromotion.objects.filter(task="demo").values_list("action", flat=True))[:2] == [
        "rollback",
        "promote",
    ]


def test_cannot_register_or_promote_a_broken_artifact(model_store):
    with pytest.raises(ServiceError, match=r"nothing-here-yet does not exist"):
        model_version_register(task="demo", artifact_dir=model_store / "nothing-here-yet")
    v1 = model_version_register(task="demo", artifact_dir=_artifact(model_store, "a", 0.8))
    v2 = model_version_register(task="demo", artifact_dir=_artifact(model_store, "b", 0.9))
    (Path(v2.artifact_dir) / "meta.json").write_text("{not json")
    with pytest.raises(ServiceError, match="not valid JSON"):
        model_version_promote(version=v2, user=None)
    assert active_version("demo") == v1


def test_rollback_without_history_is_a_clear_error(model_store):
    model_version_register(task="demo", artifact_dir=_artifact(model_store, "a", 0.8))
    with pytest.raises(ServiceError, match="no earlier active version"):
        model_version_rollback(task="demo", user=None)


def test_registering_the_same_artifact_again_returns_the_same_version(model_store):
    path = _artifact(model_store, "20260101T000000000000", 0.8)
    first = model_version_register(task="demo", artifact_dir=path)
    again = model_version_register(task="demo", artifact_dir=path)
    assert again.pk == first.pk
    assert ModelVersion.objects.filter(task="demo").count() == 1


@pytest.mark.django_db(transaction=True)  # a retry happens only outside the caller's transaction
def test_registration_is_retried_while_the_database_is_locked(model_store, monkeypatch):
    from django.db import OperationalError

    from apps.core import db
    from apps.core.services import registry

    real, calls = registry._register, []

    def locked_twice(**kwargs):
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("database is locked")
        return real(**kwargs)

    monkeypatch.setattr(registry, "_register", locked_twice)
    monkeypatch.setattr(db.time, "sleep", lambda seconds: None)
    version = model_version_register(task="demo", artifact_dir=_artifact(model_store, "a", 0.8))
    assert len(calls) == 3 and version.version == 1


def test_orphaned_artifacts_are_adopted_and_broken_ones_removed(model_store):
    from apps.core.services.registry import model_store_reconcile

    registered = model_version_register(
        task="demo", artifact_dir=_artifact(model_store, "20260101T000000000000", 0.8)
    )
    orphan = _artifact(model_store, "20260102T000000000000", 0.9)  # trained; registering it failed
    empty = model_store / "demo" / "20260103T000000000000"  # the job died before writing anything
    empty.mkdir()
    cache = model_store / "onnx" / "abc123"  # not a version directory: left alone
    cache.mkdir(parents=True)

    found = model_store_reconcile()

    assert found["removed"] == [str(empty)] and not empty.exists()
    assert len(found["adopted"]) == 1 and str(orphan) in found["adopted"][0]
    adopted = ModelVersion.objects.get(artifact_dir=str(orphan))
    assert (adopted.version, adopted.is_active) == (2, False)
    assert active_version("demo") == registered
    assert cache.is_dir()
    assert model_store_reconcile() == {"adopted": [], "removed": []}


def test_an_artifact_a_running_job_may_still_be_writing_is_left_alone(model_store):
    from apps.core.models import JobStatus, TrainingJob
    from apps.core.services.registry import model_store_reconcile

    TrainingJob.objects.create(kind="text_classifier", status=JobStatus.RUNNING)
    writing = model_store / "demo" / "20260103T000000000000"
    writing.mkdir(parents=True)
    assert model_store_reconcile() == {"adopted": [], "removed": []}
    assert writing.is_dir()
    assert model_store_reconcile(grace_seconds=0)["removed"] == [str(writing)]
