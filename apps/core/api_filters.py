"""What an API request's query string may hold, read the same way by every API view.

- `ApiView`, the base of every API view: a query parameter its operation does not declare is a 400 that
  names it and lists the accepted ones, so a misspelt or unsupported filter is never silently ignored.
  "Declared" is read from the view itself, as the schema reads it: the `parameters` of the method's
  `@extend_schema`, the paginator's `limit` and `offset` on a list, and DRF's `format`.
- `Pagination`: every list answers {"count", "next", "previous", "results"}; `limit` 1-200 (default 50),
  `offset` from 0; a value that is not a whole number is a 400 naming it.
- `parse_time`: a time in a query string, ISO 8601 or Unix seconds, between 1970 and 9999 (else a 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from drf_spectacular.plumbing import is_serializer
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.core.api_auth import not_authenticated_detail
from apps.core.errors import ServiceError
from apps.core.parsers import printable

MAX_LIMIT = 200
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNIX_SECONDS_MAX = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold
OUT_OF_RANGE = (
    f"times are from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z (Unix seconds 0 to {UNIX_SECONDS_MAX})"
)
TIME_FORMATS = "an ISO 8601 date-time (2024-05-01T09:30:00Z) or Unix seconds (1714555800, 1714555800.5)"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WHOLE = re.compile(r"[+-]?\d+")


class Pagination(LimitOffsetPagination):
    """DRF's limit/offset pages, with `limit` clamped to 1-200 (as the lists did before) and bad numbers a 400."""

    default_limit = api_settings.PAGE_SIZE or 50
    max_limit = MAX_LIMIT
    limit_query_description = (
        f"How many results, at most (default {default_limit}; "
        f"1 to {MAX_LIMIT}, larger is read as {MAX_LIMIT})."
    )
    offset_query_description = "How many to skip, from the first (default 0): the next page is `next`."

    def get_limit(self, request: Request) -> int:
        raw = request.query_params.get(self.limit_query_param, "")
        if raw == "":
            return self.default_limit
        return max(1, min(_whole_number(self.limit_query_param, raw), self.max_limit))

    def get_offset(self, request: Request) -> int:
        raw = request.query_params.get(self.offset_query_param, "")
        offset = _whole_number(self.offset_query_param, raw) if raw != "" else 0
        if offset < 0:
            raise ServiceError("offset must be 0 or more", field=self.offset_query_param)
        return offset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"] = {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "default": self.default_limit,
        }
        offset["schema"] = {"type": "integer", "minimum": 0, "default": 0}
        return [limit, offset]

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        envelope = super().get_paginated_response_schema(schema)
        envelope["required"] = ["count", "next", "previous", "results"]
        described = {
            "count": "How many results there are in all, on every page.",
            "next": "The URL of the next page; null on the last.",
            "previous": "The URL of the previous page; null on the first.",
            "results": "This page's results.",
        }
        for name, description in described.items():
            envelope["properties"][name]["description"] = description
        return envelope


def _whole_number(name: str, raw: str) -> int:
    try:
        if _WHOLE.fullmatch(raw.strip()):
            return int(raw)
    except ValueError:  # more digits than Python reads
        pass
    raise ServiceError(f"{name} must be a whole number, not {printable(raw)[:40]!r}", field=name)


def declared_query_parameters(view: APIView, method: str) -> list[str]:
    """The query parameters `view` declares for `method` (its @extend_schema), as the schema documents them."""
    handler = getattr(view, method.lower(), None)
    schema_class: Any = getattr(handler, "kwargs", {}).get("schema") or api_settings.DEFAULT_SCHEMA_CLASS
    schema = schema_class()
    schema.view, schema.method = view, method.upper()
    names: list[str] = []
    for parameter in schema.get_override_parameters():
        if isinstance(parameter, OpenApiParameter):
            if parameter.location == OpenApiParameter.QUERY and not parameter.exclude:
                names.append(parameter.name)
        elif is_serializer(parameter):
            fields = (parameter() if isinstance(parameter, type) else parameter).fields
            names += [name for name, f in fields.items() if not f.read_only]
    return names


def accepted_query_parameters(view: APIView, method: str) -> list[str]:
    """What `method` on `view` reads from the query string: its declared parameters, a list's pagination, format."""
    names = declared_query_parameters(view, method)
    paginator = getattr(view, "pagination_class", None)
    if paginator is not None and method.upper() in ("GET", "HEAD"):
        names += [parameter["name"] for parameter in paginator().get_schema_operation_parameters(view)]
    if api_settings.URL_FORMAT_OVERRIDE:
        names.append(api_settings.URL_FORMAT_OVERRIDE)
    return list(dict.fromkeys(names))


def refuse_unknown_parameters(view: APIView, request: Request) -> None:
    accepted = accepted_query_parameters(view, request.method or "GET")
    unknown = [name for name in request.query_params if name not in accepted]
    if not unknown:
        return
    shown = ", ".join(printable(name) for name in unknown)
    noun = "parameter" if len(unknown) == 1 else "parameters"
    raise ServiceError(
        f"unknown query {noun}: {shown}; this operation accepts {', '.join(accepted)}",
        field=printable(unknown[0]),
    )


class ApiView(APIView):
    """The base of the API's views: the query string holds only what the operation declares, and a request
    refused for want of a user is told what to send.

    A list sets `pagination_class = Pagination` and answers `self.paginate(rows, render)`.
    """

    pagination_class: type[Pagination] | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if hasattr(self, (request.method or "").lower()):  # else DRF's 405, with nothing to check
            refuse_unknown_parameters(self, request)

    def permission_denied(
        self, request: Request, message: str | None = None, code: str | None = None
    ) -> NoReturn:
        if request.authenticators and not request.successful_authenticator:
            raise NotAuthenticated(not_authenticated_detail(request))  # DRF's own words say less
        super().permission_denied(request, message, code)

    def paginate(self, rows: QuerySet[Any], render: Callable[[list[Any]], Any]) -> Response:
        """One page of `rows` (a queryset), each page rendered by `render` (a list of rows -> the results)."""
        if self.pagination_class is None:  # the schema would document a bare list
            raise ImproperlyConfigured(f"{type(self).__name__} paginates but sets no pagination_class")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, self.request, view=self)
        return paginator.get_paginated_response(render(list(page or [])))


# --- times -------------------------------------------------------------------------------------------
def parse_time(name: str, raw: str) -> datetime:
    """A query parameter's time: ISO 8601 (naive: UTC) or Unix seconds, from 1970 to 9999."""
    value = raw.strip()
    try:
        when = serializers.DateTimeField(default_timezone=UTC).to_internal_value(value)
    except serializers.ValidationError as exc:
        if _NUMBER.fullmatch(value):
            return from_unix_seconds(name, float(value))
        codes = exc.get_codes()
        if isinstance(codes, list) and "overflow" in codes:  # past year 9999 (or before 1) once in UTC
            raise ServiceError(f"`{name}` is out of range: {OUT_OF_RANGE}", field=name) from None
        raise ServiceError(f"`{name}` must be {TIME_FORMATS}", field=name) from None
    if when < EPOCH:
        raise ServiceError(f"`{name}` is out of range: {OUT_OF_RANGE}", field=name)
    return when


def from_unix_seconds(name: str, seconds: float) -> datetime:
    if not 0 <= seconds <= UNIX_SECONDS_MAX:  # NaN too
        raise ServiceError(f"`{name}` is out of range: {OUT_OF_RANGE}", field=name)
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, ValueError, OSError):  # the last microsecond of 9999, rounded up
        raise ServiceError(f"`{name}` is out of range: {OUT_OF_RANGE}", field=name) from None
