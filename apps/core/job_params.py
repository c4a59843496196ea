"""The base of job parameter schemas (see apps.core.job_registry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from apps.core.errors import ServiceError


class JobParams(serializers.Serializer):
    """The base of a kind's parameter schema, whose errors say the range, the choices or the type expected.

    A schema's `validate()` may raise ServiceError(field=...) for checks across fields; `self.context
    ["trusted"]` is True only for the command line. A schema whose parameters can cause a privileged effect
    (promoting a model, say) names the permission in `required_permissions`, and `JobKind.validate` checks it
    against the user, so a job never does what its creator could not do directly.
    """

    def required_permissions(self, attrs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(permission, why) pairs the validated parameters `attrs` need beyond running the kind."""
        return []

    def first_error(self, given: Mapping[str, Any]) -> ServiceError:
        """The first validation error as one sentence naming the field: "epochs must be between 1 and 20, got 0"."""
        name, details = next(iter(self.errors.items()))
        detail = details[0] if isinstance(details, list) else details
        if name in ("non_field_errors", "__all__"):
            return ServiceError(str(detail))
        message = _message(self.fields[name], getattr(detail, "code", "")) or str(detail)
        got = f", got {given[name]!r}" if given.get(name) not in (None, "") else ""
        return ServiceError(f"{name} {message}{got}", field=name)


def _message(field: serializers.Field, code: str) -> str:
    if code == "required":
        return "is required"
    if code in ("null", "blank"):
        return "may not be empty"
    if isinstance(field, serializers.IntegerField | serializers.FloatField):
        if code == "invalid":
            return "must be an integer" if isinstance(field, serializers.IntegerField) else "must be a number"
        low, high = field.min_value, field.max_value
        if code in ("min_value", "max_value"):
            if low is not None and high is not None:
                return f"must be between {low:g} and {high:g}"
            return f"must be at least {low:g}" if code == "min_value" else f"must be at most {high:g}"
    if isinstance(field, serializers.ChoiceField) and code == "invalid_choice":
        return "must be one of " + ", ".join(map(str, field.choices))
    if isinstance(field, serializers.BooleanField) and code == "invalid":
        return "must be true or false"
    if isinstance(field, serializers.DateTimeField) and code == "invalid":
        return "must be an ISO date-time, like 2026-01-31T09:00:00Z"
    return ""
