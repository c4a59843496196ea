"""Every URL pattern and API operation, times every role, times every method, against its declaration.

The routes come from the URL resolver (so a new endpoint is covered without editing this test) and are
checked against the OpenAPI schema's operations; what each may do is declared next to the view
(`apps.core.access`: `@access(...)` on pages, `require(...)` in a DRF view's permission classes). A route
that declares nothing fails. Django's admin (staff only, Django's own checks) is the one exception.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver
from rest_framework.authtoken.models import Token

from apps.core import roles
from apps.core.access import declared_access
from tests.routes import CONVERTER, walk

ROLES = ("anonymous", "no-role", roles.AGENT, roles.ANALYST, roles.ADMIN, "superuser")
DENIED = {401, 403, 405}
SKIPPED_PREFIXES = ("admin/",)


ROUTES = [
    (route, p) for route, p in walk(get_resolver().url_patterns) if not route.startswith(SKIPPED_PREFIXES)
]


def _path(route: str) -> str:
    """A concrete path for a route: ids that do not exist, names that do not exist."""
    return "/" + CONVERTER.sub(lambda m: "999999" if m.group(1) == "int" else "nope", route)


def _methods(pattern: URLPattern) -> list[str]:
    view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    if view is None:
        return ["GET", "POST"]
    return [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)] or ["GET"]


def _user(make_user: Any, role: str) -> Any:
    if role == "anonymous":
        return None
    if role == "superuser":
        user = make_user(None, "root")
        user.is_superuser = user.is_staff = True
        user.save()
        return user
    return make_user(None if role == "no-role" else role, f"user-{role}")


def _call(client: Client, method: str, path: str, **headers: Any) -> Any:
    if method == "GET":
        return client.get(path, **headers)
    return getattr(client, method.lower())(path, data="{}", content_type="application/json", **headers)


def _is_login_redirect(response: Any) -> bool:
    return response.status_code == 302 and "/accounts/login/?next=" in response.get("Location", "")


def _cell(
    route: str, pattern: URLPattern, role: str, user: Any, method: str, token: str | None
) -> str | None:
    """What is wrong with one cell of the matrix, or None."""
    declared = declared_access(pattern.callback)
    if declared is None:
        return f"{route}: no access declared (add @access(...) or require(...) next to the view)"
    client = Client()
    headers = {}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Token {token}"
    elif user is not None:
        client.force_login(user)
    response = _call(client, method, _path(route), **headers)
    allowed = declared.allows(user, method) if user is not None else declared.rule(method) == "public"
    how = f"{method} /{route} as {role}{' (token)' if token else ''}: {response.status_code}"
    if "Content-Security-Policy" not in response:
        return f"{how} without a Content-Security-Policy"
    if response.status_code >= 500 and not (route == "healthz" and response.status_code == 503):
        return f"{how}: a server error"  # (/healthz answers 503 here: no workers run in the tests)
    if allowed and (response.status_code in (401, 403) or _is_login_redirect(response)):
        return f"{how}, but {declared.rule(method)!r} allows it"
    if not allowed and not (response.status_code in DENIED or _is_login_redirect(response)):
        return f"{how}, but {declared.rule(method)!r} should refuse it"
    return None


@pytest.mark.parametrize(("route", "pattern"), ROUTES, ids=[route or "/" for route, _ in ROUTES])
def test_every_role_gets_what_the_route_declares(make_user: Any, route: str, pattern: URLPattern) -> None:
    problems, cells = [], 0
    for role in ROLES:
        user = _user(make_user, role)
        tokens = [None]
        if route.startswith("api/") and user is not None:
            tokens.append(Token.objects.get_or_create(user=user)[0].key)
        for method in _methods(pattern):
            for token in tokens:
                cells += 1
                problem = _cell(route, pattern, role, user, method, token)
                if problem:
                    problems.append(problem)
        if user is not None:
            user.delete()
    assert cells >= len(ROLES)
    assert not problems, "\n".join(problems)


def test_every_schema_operation_is_a_route_this_matrix_calls() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    tested = {
        (CONVERTER.sub("{}", "/" + route), method)
        for route, pattern in ROUTES
        for method in _methods(pattern)
    }
    missing = [
        (path, method.upper())
        for path, operations in schema["paths"].items()
        for method in operations
        if (re.sub(r"\{\w+\}", "{}", path), method.upper()) not in tested
    ]
    assert not missing


def test_an_undeclared_view_fails_the_matrix(make_user: Any) -> None:
    from django.http import HttpResponse
    from django.urls import path

    undeclared = path("new/", lambda request: HttpResponse("hi"))
    assert _cell("new/", undeclared, "no-role", make_user(None), "GET", None) is not None
