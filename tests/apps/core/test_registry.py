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
