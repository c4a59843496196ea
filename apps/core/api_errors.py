"""Every error under /api/ is JSON: {"detail": "...", "field": "..."} (`field` when one input is to blame).

DRF validation errors keep their per-field lists ({"name": ["..."]}) and gain `detail` (the first message, with
its field) and `field`, so a client can always read `detail`. The DRF exception handler below covers what a
view raises; apps.core.middleware.ApiErrorMiddleware covers the rest (unknown URLs, Django's own error pages,
unexpected exceptions) with `json_error` and `exception_response`.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import BadRequest, PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from rest_framework.exceptions import ParseError
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import ServiceError
from apps.core.parsers import RequestTooLarge, printable

logger = logging.getLogger(__name__)

_DETAILS = {
    400: "Bad request.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "The request body is too large.",
    500: "Internal server error.",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus ServiceError (400 or its status_code), Django's request errors 400/413, with `detail`.

    Anything else returns None, so DRF re-raises it and the middleware answers a logged JSON 500.
    """
    if isinstance(exc, ServiceError):
        body: dict[str, Any] = {"detail": printable(exc.message)}
        if exc.field:
            body["field"] = exc.field
        return Response(body, status=exc.status_code)  # 400; Forbidden 403; QuotaExceeded 429
    response = drf_exception_handler(_as_api_exception(exc), context)
    if response is not None:
        response.data = _with_detail(_printable_data(response.data), getattr(exc, "field", None))
    return response


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, RequestDataTooBig):
        return RequestTooLarge()
    if isinstance(exc, SuspiciousOperation | BadRequest | UnreadablePostError):
        return ParseError(_DETAILS[400])
    return exc


def _with_detail(data: Any, field: str | None) -> Any:
    """The documented shape: a `detail` always, a `field` when known; validation lists are kept."""
    if isinstance(data, list):
        return {"detail": " ".join(str(message) for _, message in _messages(data)) or _DETAILS[400]}
    if not isinstance(data, dict):
        return {"detail": str(data)}
    if "detail" in data:
        return {**data, "field": field} if field and "field" not in data else data
    found = next(_messages(data), None)
    if found is None:
        return {**data, "detail": _DETAILS[400]}
    path, message = found
    if not path or path == api_settings.NON_FIELD_ERRORS_KEY:
        return {**data, "detail": message}
    return {**data, "detail": f"{path}: {message}", "field": path}


def _messages(data: Any, path: str = "") -> Any:
    """(dotted path, message) for every message in a DRF error structure, in order."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _messages(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for value in data:
            yield from _messages(value, path)
    else:
        yield path, str(data)


def _printable_data(data: Any) -> Any:
    if isinstance(data, str):
        return printable(data)
    if isinstance(data, dict):
        return {printable(str(key)): _printable_data(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_printable_data(value) for value in data]
    return data


# --- outside DRF: used by apps.core.middleware ------------------------------------------------------------
def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def is_json(response: HttpResponse) -> bool:
    content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def json_error(status: int, detail: str | None = None, *, field: str | None = None) -> JsonResponse:
    body = {"detail": detail or _DETAILS.get(status) or f"{HTTPStatus(status).phrase}."}
    if field:
        body["field"] = field
    return JsonResponse(body, status=status)


def exception_response(request: HttpRequest, exc: Exception) -> JsonResponse:
    """The JSON answer for an exception that escaped a view; an unexpected one is logged and hidden."""
    if isinstance(exc, RequestDataTooBig):
        return json_error(413)
    if isinstance(exc, Http404):
        return json_error(404)
    if isinstance(exc, PermissionDenied):
        return json_error(403)
    if isinstance(exc, SuspiciousOperation | BadRequest | UnreadablePostError):
        logger.warning("Bad request: %s (%s)", request.path, type(exc).__name__)
        return json_error(400)
    logger.error(
        "Internal Server Error: %s",
        request.path,
        exc_info=exc,
        extra={"status_code": 500, "request": request},
    )
    return json_error(500)
