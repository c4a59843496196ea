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

ERROR_DESCRIPTIONS = {
    "400": "The input is invalid, or the action does not apply to the object as it is.",
    "401": "No credentials, or invalid ones.",
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
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")


class ContextaAutoSchema(AutoSchema):
    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
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
        if has_body or "query" in where or self.method not in SAFE_METHODS:
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
