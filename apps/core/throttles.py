"""Rate limits on writes: DRF's throttles for the API, and the same throttle for the dashboard's forms.

Logins (the dashboard form and POST /api/auth/token/) are django-axes' job: it locks a username from an
address out after AXES_FAILURE_LIMIT wrong passwords. Here every write request (a method other than GET,
HEAD and OPTIONS) counts against a rate per user, or per client address for anonymous callers, kept in
the default cache (Redis in production, so every web process shares one count).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class WriteThrottle(SimpleRateThrottle):
    """Writes per signed-in user (API_WRITE_RATE) or per address when anonymous (API_ANON_WRITE_RATE)."""

    scope = "write"

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        user = getattr(request, "user", None)
        self.scope = "write" if user is not None and user.is_authenticated else "anon_write"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_rate(self) -> str:
        return str(settings.API_WRITE_RATE if self.scope == "write" else settings.API_ANON_WRITE_RATE)

    def get_cache_key(self, request: Any, view: Any) -> str:
        user = getattr(request, "user", None)
        ident = str(user.pk) if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class WriteThrottleMiddleware:
    """The API's write throttle for the pages outside /api/ (DRF applies it to the API views itself)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in SAFE_METHODS and not request.path.startswith("/api/"):
            throttle = WriteThrottle()
            if not throttle.allow_request(request, None):
                return _too_many(throttle.wait())
        return self.get_response(request)


def _too_many(wait: float | None) -> HttpResponse:
    seconds = max(1, round(wait or 1))
    response = HttpResponse(
        f"Too many changes in a short time: try again in {seconds} s.", status=429, content_type="text/plain"
    )
    response["Retry-After"] = str(seconds)
    return response


def client_ip(request: Any) -> str | None:
    """The client's address as the throttles see it (TRUSTED_PROXY_COUNT), for django-axes too."""
    return BaseThrottle().get_ident(request) if request is not None else None
