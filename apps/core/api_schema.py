"""The API schema's house rules, applied to every operation in one place (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS).

- Every operation documents the errors it can answer, each with the one error body that
  apps.core.api_errors.exception_handler gives: {"detail": "...", "field": "..."} (`field` only when known;
  a validation error keeps DRF's per-field messages beside them).
  400 where there is input (a body or query parameters) or an action that may not apply (any write);
  401 wherever credentials are read (a bad token is refused even where none is needed); 403 where a
  permission is needed; 404 where the path names an object; 413 and 415 where there is a body; 429 always
  (throttles and job quotas). A view that declares a code itself (with another body) keeps its own.
- A path parameter documents the pattern of its Django path converter (integers: not negative): a value
  outside it never reaches the view, as the URL does not resolve.
- The token endpoint (DRF's ObtainAuthToken) answers {"token": "..."}, not its request serializer.
- Every operation's description ends with who may call it, read from the view's access declaration
  (`require(...)` or `@access(...)`) and the roles the apps declare, so it cannot drift from what is enforced.
- Every operation of an ApiView answers 400 to a query parameter it does not declare (apps.core.api_filters).
"""

from __future__ import annotations

import re
from typing import Any

from django.urls.converters import get_converters
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.settings import api_settings

from apps.core.access import PUBLIC, SIGNED_IN, Access
from apps.core.api_filters import ApiView

ERROR_DESCRIPTIONS = {
    "400": "The input is invalid (a query parameter the operation does not take included), or the action "
    "does not apply to the object as it is.",
    "401": "No credentials, invalid ones, or an authorization scheme other than Bearer and Token.",
    "403": "The user lacks the permission this operation needs.",
    "404": "No such object.",
    "413": "The request body is too large.",
    "415": "The body's media type is not one this operation reads.",
    "429": "Too many requests (throttled), or a quota is spent.",
}
_PATH_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer. A validation error also keeps DRF's messages under each field's name."""

    detail = serializers.CharField(help_text="What went wrong, for a person to read.")
    field = serializers.CharField(required=False, help_text="The input field at fault, when one is.")


class ErrorSerializerExtension(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """ErrorSerializer's schema, open to the per-field messages: a list of strings, or an object for a nested
    field (a serializer cannot say so itself)."""

    target_class = ErrorSerializer

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer(  # type: ignore[no-untyped-call]
            self.target_class, direction, bypass_extensions=True
        )
        schema["additionalProperties"] = {"description": "Messages about one field (validation errors)."}
        return schema


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(
        help_text="Send it as `Authorization: Bearer <token>` (`Authorization: Token <token>` works too)."
    )


class ContextaAutoSchema(AutoSchema):
    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        # Here, not in get_description: @extend_schema(description=...) replaces that method.
        if who := who_may_call(self.view, self.method):
            described = operation.get("description", "")
            operation["description"] = f"{described}\n\n{WHO_MAY_CALL_IT} {who}".strip()
        self._constrain_path_parameters(operation.get("parameters", []))
        error = self.resolve_serializer(ErrorSerializer, "response").ref
        for code in sorted(self._error_codes(operation)):
            operation["responses"].setdefault(
                code,
                {"content": {"application/json": {"schema": error}}, "description": ERROR_DESCRIPTIONS[code]},
            )
        return operation

    def get_response_serializers(self) -> Any:
        if isinstance(self.view, ObtainAuthToken):
            return TokenSerializer
        return super().get_response_serializers()

    def _error_codes(self, operation: dict[str, Any]) -> set[str]:
        where = {parameter["in"] for parameter in operation.get("parameters", [])}
        has_body = "requestBody" in operation
        codes = {"429"}
        checks_query = isinstance(self.view, ApiView)
        if has_body or "query" in where or self.method not in SAFE_METHODS or checks_query:
            codes.add("400")
        if has_body:
            codes |= {"413", "415"}
        if "path" in where:
            codes.add("404")
        if self.view.get_authenticators():  # bad credentials fail before any permission is checked
            codes.add("401")
        if any(not isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes.add("403")
        return codes

    def _constrain_path_parameters(self, parameters: list[dict[str, Any]]) -> None:
        converters = get_converters()
        by_name = {}
        for match in _PATH_PARAMETER.finditer(self.path_regex):
            name = match["name"]
            if name == "pk" and api_settings.SCHEMA_COERCE_PATH_PK:
                name = "id"
            by_name[name] = converters.get(match["converter"] or "str")
        for parameter in parameters:
            converter, schema = by_name.get(parameter["name"]), parameter.get("schema", {})
            if parameter["in"] != "path" or converter is None or "enum" in schema:
                continue
            if schema.get("type") == "integer":
                schema.setdefault("minimum", 0)
            elif schema.get("type") == "string":
                schema.setdefault("pattern", f"^(?:{converter.regex})$")


# --- who may call it ---------------------------------------------------------------------------------------
WHO_MAY_CALL_IT = "**Who may call it:**"


def who_may_call(view: Any, method: str) -> str | None:
    """The access rule of `view` for `method` in words, with the roles that hold the permission."""
    declared = _declared_access(view)
    if declared is None:
        return None
    rule = declared.rule(method.upper())
    if rule == PUBLIC:
        return "anyone; no credentials are needed."
    if rule == SIGNED_IN:
        return "any signed-in user."
    if rule.startswith("role:"):
        return f"users with the role {' or '.join(rule.removeprefix('role:').split(','))}."
    roles = _roles_holding(rule)
    named = " and ".join([", ".join(roles[:-1]), roles[-1]] if len(roles) > 1 else roles)
    held = f"the {named} role{'s' if len(roles) > 1 else ''}, and superusers" if roles else "superusers"
    return f"users with the permission `{rule}`: {held}."


def _declared_access(view: Any) -> Access | None:
    for holder in (type(view), *getattr(view, "permission_classes", ())):
        found = getattr(holder, "access", None)
        if isinstance(found, Access):
            return found
    return None


def _roles_holding(permission: str) -> list[str]:
    from apps.core.roles import role_permissions

    app_label = permission.partition(".")[0]
    return sorted(
        role for role, specs in role_permissions().items() if permission in specs or f"{app_label}.*" in specs
    )


# --- the docs' front page ----------------------------------------------------------------------------------
API_DESCRIPTION = """\
The HTTP API of Contexta: jobs and the model registry, prompts, and the sentiment monitor.

**[← Back to Contexta](/)** · [Get a token](#/auth/auth_token_create) · \
[Tokens (admins)](/admin/authtoken/tokenproxy/) · [This reference as ReDoc](/api/redoc/) · \
[The schema (OpenAPI 3)](/api/schema/)

## Authentication
Every operation but `POST /api/auth/token/` needs a user. Post your username and password to \
[`/api/auth/token/`](#/auth/auth_token_create) for your token, then send it on every call as \
`Authorization: Bearer <token>` (`Authorization: Token <token>` works too). Here, press **Authorize** and paste \
the token. Signed in to the dashboard, this page's calls use your session instead. Each operation says who may \
call it; no or a bad token is a 401, a missing permission a 403.

## Errors
Every error answers JSON: `{{"detail": "what went wrong", "field": "the input at fault"}}` (`field` when one \
input is to blame). A validation error keeps each field's messages beside them, e.g. \
`{{"detail": "name: Enter a valid slug.", "field": "name", "name": ["Enter a valid slug."]}}`. A query parameter \
that an operation does not take is a 400 that names it and lists those it takes: filters are never ignored \
silently.

## Pagination
A list answers a page: `{{"count": 120, "next": "https://…/api/jobs/?limit=50&offset=50", "previous": null, \
"results": […]}}`. `limit` (1 to {max_limit}, default {page_size}) and `offset` (default 0) choose it; follow \
`next` until it is null.

## Rate limits
Writes (any method but GET, HEAD and OPTIONS) are limited to `{write_rate}` a user, `{anon_write_rate}` an \
address without one; past that the answer is 429 with `Retry-After` (seconds). Job kinds have quotas of jobs \
queued or running, a user's and everyone's (429 too). After {login_failures} wrong passwords for a username \
from one address, the token endpoint refuses it for {cooloff_minutes} minutes (429).

## Times
Times are answered in ISO 8601, in UTC (`2024-05-01T09:30:00Z`). Times sent (the series' `from` and `to`, a \
pushed item's `published_at`) may be ISO 8601 (without an offset: UTC) or Unix seconds, an integer or a \
fraction (`1714555800`, `1714555800.5`; in a JSON body, a number), from 1970-01-01T00:00:00Z to \
9999-12-31T23:59:59Z (a pushed item's: to a day from now). Outside that, the answer says so: a 400, or for one \
pushed item among others, that item's rejection.
"""


def describe_api(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """SPECTACULAR_SETTINGS' last postprocessing hook: the front page, with this deployment's limits."""
    from django.conf import settings

    from apps.core.api_filters import MAX_LIMIT

    result["info"]["description"] = API_DESCRIPTION.format(
        max_limit=MAX_LIMIT,
        page_size=api_settings.PAGE_SIZE,
        write_rate=settings.API_WRITE_RATE,
        anon_write_rate=settings.API_ANON_WRITE_RATE,
        login_failures=settings.AXES_FAILURE_LIMIT,
        cooloff_minutes=round(settings.AXES_COOLOFF_TIME * 60),
    )
    return result
