"""ApiErrorMiddleware: under /api/, every answer is JSON, whatever went wrong and wherever.

- An exception that escapes a view is answered by apps.core.api_errors.exception_response: 400, 403, 404, 413,
  or a JSON 500 that is logged here and shows nothing of the traceback or the settings (debug or not).
- An error page Django made itself (an unknown URL's 404, in debug the technical pages) becomes JSON with the
  same status. DRF responses are left alone: DRF already negotiated their format.
- A JSON body for a view that does not parse with the project's parser (DRF's token view sets its own) gets the
  same size, depth and surrogate checks here, before the view sees it.

It comes first in MIDDLEWARE, so it sees every answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from rest_framework import parsers as drf_parsers
from rest_framework.response import Response

from apps.core import api_errors, parsers


class ApiErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            api_errors.is_api_path(request.path_info)
            and response.status_code >= 400
            and not isinstance(response, Response)
            and not api_errors.is_json(response)
        ):
            replacement = api_errors.json_error(response.status_code)
            if response.has_header("Allow"):
                replacement["Allow"] = response["Allow"]
            return replacement
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if refused := _unstorable_query(request):
            name, what = refused
            message = f"query parameter {name} contains {what}"
            if api_errors.is_api_path(request.path_info):
                return api_errors.json_error(400, message, field=name)
            return HttpResponse(message, status=400, content_type="text/plain")
        if not api_errors.is_api_path(request.path_info) or not _needs_json_checks(view_func):
            return None
        content_type = request.content_type or ""
        if content_type != "application/json" and not content_type.endswith("+json"):
            return None
        charset = (request.content_params or {}).get("charset", settings.DEFAULT_CHARSET)
        try:
            if request.body:  # an empty body is no data, as DRF reads it
                parsers.parse_json(request.body, encoding=charset)
        except RequestDataTooBig:
            return api_errors.json_error(413)
        except (parsers.BadBody, LookupError) as exc:
            return api_errors.json_error(
                400, str(getattr(exc, "detail", exc)), field=getattr(exc, "field", None)
            )
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not api_errors.is_api_path(request.path_info):
            return None
        return api_errors.exception_response(request, exception)


def _unstorable_query(request: HttpRequest) -> tuple[str, str] | None:
    """(parameter, what) for a query parameter no database can compare: a NUL character or a lone surrogate.

    PostgreSQL refuses NUL in text outright (a filter on it was a 500), on every page and API alike.
    """
    for name, values in request.GET.lists():
        for value in (name, *values):
            if "\x00" in value:
                return parsers.printable(name).replace("\x00", "\\x00"), "a NUL character"
            if any("\ud800" <= ch <= "\udfff" for ch in value):
                return parsers.printable(name), "a lone surrogate"
    return None


def _needs_json_checks(view_func: Callable[..., Any]) -> bool:
    """Whether `view_func` may parse JSON some other way than with the project's parser."""
    view_class = getattr(view_func, "cls", None)
    if view_class is None:
        return True  # a plain Django view reads the body its own way
    initkwargs = getattr(view_func, "initkwargs", None) or {}
    parser_classes = initkwargs.get("parser_classes", getattr(view_class, "parser_classes", ()))
    json_parsers = [
        p for p in parser_classes if isinstance(p, type) and issubclass(p, drf_parsers.JSONParser)
    ]
    return not all(issubclass(p, parsers.JSONParser) for p in json_parsers)
