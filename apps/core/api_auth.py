"""How the API knows its caller: a token (`Authorization: Bearer <token>` or `Token <token>`) or the session.

REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES names this module, so DRF imports it while it defines APIView:
nothing here may import rest_framework.views (the token view is in apps.core.api).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.request import Request

from apps.core.parsers import printable

TOKEN_KEYWORDS = ("Bearer", "Token")
HOW_TO_AUTHENTICATE = (
    "send `Authorization: Bearer <token>` (or `Token <token>`), with a token from POST /api/auth/token/"
)


class BearerTokenAuthentication(TokenAuthentication):
    """DRF's token authentication under either keyword, `Bearer` (OAuth's, what the docs send) or `Token`.

    Another scheme (say `Basic`, from a proxy in front) is left to the session, as DRF leaves it; if the
    request then needs a user, the 401 names the scheme (`not_authenticated_detail`).
    """

    keyword = TOKEN_KEYWORDS[0]

    def authenticate(self, request: Request) -> Any:
        header = get_authorization_header(request).split()
        scheme = header[0].decode("latin-1") if header else ""
        matched = next((k for k in TOKEN_KEYWORDS if k.lower() == scheme.lower()), None)
        if matched is None:
            if scheme:
                request.unsupported_auth_scheme = scheme  # type: ignore[attr-defined]
            return None
        self.keyword = matched  # this request's own instance: DRF makes the authenticators per request
        return super().authenticate(request)

    def authenticate_header(self, request: Request) -> str:
        return f'{TOKEN_KEYWORDS[0]} realm="api"'


def not_authenticated_detail(request: Request) -> str:
    """The 401's message for a request that needs a user and has none: what was wrong, and what to send."""
    scheme = getattr(request, "unsupported_auth_scheme", None)
    if scheme:
        return f"the authorization scheme {printable(scheme)[:40]!r} is not accepted: {HOW_TO_AUTHENTICATE}"
    return f"authentication credentials were not provided: {HOW_TO_AUTHENTICATE}, or sign in"


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The schema's security scheme for tokens: HTTP bearer, so the docs' Authorize button takes the token."""

    target_class = "apps.core.api_auth.BearerTokenAuthentication"
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from POST /api/auth/token/, sent as `Authorization: Bearer <token>` "
            "(`Authorization: Token <token>` is accepted too).",
        }
