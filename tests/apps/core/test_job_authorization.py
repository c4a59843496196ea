"""Every job kind's parameters against every role: a job never does what its creator could not do directly.

The probe that found this: an analyst, refused by POST /api/models/<id>/promote/, started sentiment_train with
"promote": "always" and made a 0.28 macro-F1 version active over a 0.82 one.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework import serializers

from apps.core import roles
from apps.core.errors import Forbidden
from apps.core.job_registry import all_kinds
from apps.core.models import TrainingJob
from apps.core.services.jobs import job_create

PROMOTE = "core.promote_modelversion"
# The parameter values that reach a privileged effect, and the permission of the direct endpoint for it.
# A kind whose parameters can do what its starters could not do directly belongs here.
PRIVILEGED: dict[tuple[str, str, object], str] = {
    ("sentiment_train", "promote", "always"): PROMOTE,
    ("sentiment_train", "promote", "if_better"): PROMOTE,
    ("text_classifier", "promote", "if_first"): PROMOTE,
    ("support_intent", "promote", "always"): PROMOTE,
    ("support_intent", "promote", "if_better"): PROMOTE,
}
ROLES = (None, roles.AGENT, roles.ANALYST, roles.ADMIN)
# Values that are only valid together with another one.
TOGETHER: dict[tuple[str, str, object], dict[str, object]] = {
    ("sentiment_train", "class_weights", False): {"soup": False},
}
BASE_PARAMS = {
    "sentiment_rescore": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    "support_ingest": {"document": 1},
}


def _needs(kind: Any, params: dict[str, Any]) -> set[str]:
    """The permissions `params` need beyond the kind's, a parameter left out counting as its default."""
    fields = kind.params_serializer()().fields
    needs = set()
    for (kind_name, name, value), permission in PRIVILEGED.items():
        if kind_name == kind.name and params.get(name, fields[name].default) == value:
            needs.add(permission)
    return needs


def _variants() -> list[tuple[str, dict[str, Any], set[str]]]:
    """(kind, params, the permissions they need) for the defaults and for each value of each choice."""
    cases = []
    for kind in all_kinds():
        base = BASE_PARAMS.get(kind.name, {})
        cases.append((kind.name, base, _needs(kind, base)))
        for name, field in kind.params_serializer()().fields.items():
            values = list(field.choices) if isinstance(field, serializers.ChoiceField) else []
            values += [True, False] if isinstance(field, serializers.BooleanField) else []
            for value in values:
                params = {**base, name: value, **TOGETHER.get((kind.name, name, value), {})}
                cases.append((kind.name, params, _needs(kind, params)))
    return cases


def _allowed(user: Any, kind_name: str, needs: set[str]) -> bool:
    kind = next(k for k in all_kinds() if k.name == kind_name)
    return user.has_perm(kind.permission) and all(user.has_perm(permission) for permission in needs)


def test_the_declared_privileged_values_exist():
    kinds = {kind.name: kind for kind in all_kinds()}
    for kind_name, name, value in PRIVILEGED:
        field = kinds[kind_name].params_serializer()().fields[name]
        assert value in field.choices


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("kind", "params", "needs"), _variants())
def test_each_parameter_value_needs_what_the_direct_endpoint_needs(make_user, role, kind, params, needs):
    user = make_user(role)
    if _allowed(user, kind, needs):
        assert job_create(kind=kind, params=params, user=user).created_by == user
    else:
        with pytest.raises(Forbidden):
            job_create(kind=kind, params=params, user=user)
        assert not TrainingJob.objects.exists()


def test_an_analyst_cannot_promote_through_a_training_job_over_the_api(client, make_user):
    analyst = make_user(roles.ANALYST)
    client.force_login(analyst)
    promote = client.post("/api/models/1/promote/")
    job = client.post(
        "/api/jobs/",
        {"kind": "sentiment_train", "params": {"promote": "always", "max_steps": 1}},
        content_type="application/json",
    )
    assert promote.status_code == 403
    assert job.status_code == 403
    assert "core.promote_modelversion" in job.json()["detail"] and '"never"' in job.json()["detail"]
    assert not TrainingJob.objects.exists()
    allowed = client.post(
        "/api/jobs/",
        {"kind": "sentiment_train", "params": {"promote": "never", "max_steps": 1}},
        content_type="application/json",
    )
    assert allowed.status_code == 201 and allowed.json()["params"]["promote"] == "never"


def test_the_dashboard_form_says_why_and_starts_nothing(client, make_user):
    client.force_login(make_user(roles.ANALYST))
    response = client.post("/jobs/", {"kind": "sentiment_train", "params-promote": "always"}, follow=True)
    assert response.status_code == 400
    assert "core.promote_modelversion" in response.content.decode()
    assert not TrainingJob.objects.exists()
