"""Every dashboard page and API endpoint, for anonymous users and each role."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from apps.core.services.prompts import prompt_template_create

pytestmark = pytest.mark.django_db

# (url, method, expected status for: anonymous, agent, analyst, admin). Anonymous pages redirect to login.
PAGES = [
    ("/", "get", 302, 200, 200, 200),
    ("/jobs/", "get", 302, 403, 200, 200),
    ("/models/", "get", 302, 403, 200, 200),
    ("/prompts/", "get", 302, 200, 200, 200),
    ("/prompts/greeting/", "get", 302, 200, 200, 200),
    ("/prompts/greeting/diff/?a=1&b=1", "get", 302, 200, 200, 200),
    ("/support/", "get", 302, 200, 403, 200),
    ("/sentiment/", "get", 302, 403, 200, 200),
    ("/recommender/", "get", 302, 403, 200, 200),
    ("/admin/", "get", 302, 302, 302, 200),
    ("/accounts/password/", "get", 302, 200, 200, 200),
]
API = [
    ("/api/jobs/", "get", 401, 403, 200, 200),
    ("/api/models/", "get", 401, 403, 200, 200),
    ("/api/models/rollback/", "post", 401, 403, 403, 400),
    ("/api/prompts/", "get", 401, 200, 200, 200),
    ("/api/prompts/greeting/", "get", 401, 200, 200, 200),
    ("/api/prompts/greeting/", "post", 401, 400, 403, 400),
    ("/api/prompts/greeting/labels/production/", "post", 401, 403, 403, 400),
    ("/api/prompts/greeting/render/", "post", 401, 200, 200, 200),
]
ROLES = [None, "agent", "analyst", "admin"]


@pytest.fixture
def users(make_user):
    made = {role: make_user(role) for role in ROLES[1:]}
    made["admin"].is_staff = True
    made["admin"].save(update_fields=["is_staff"])
    prompt_template_create(name="greeting", body="Hello {{ name | default('there') }}", user=made["admin"])
    return made


def _status(client, url, method, user, api):
    if user is not None:
        if api:
            token, _ = Token.objects.get_or_create(user=user)
            client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
        else:
            client.force_login(user)
    send = getattr(client, method)
    return send(url, data={}, content_type="application/json") if method == "post" else send(url)


@pytest.mark.parametrize("row", PAGES, ids=[p[0] for p in PAGES])
@pytest.mark.parametrize("role_index", range(4), ids=["anonymous", *ROLES[1:]])
def test_page_access(client, users, row, role_index):
    url, method, *expected = row
    role = ROLES[role_index]
    response = _status(client, url, method, users.get(role) if role else None, api=False)
    assert response.status_code == expected[role_index]
    if role is None:
        assert "login/" in response["Location"]


@pytest.mark.parametrize("row", API, ids=[f"{a[1]} {a[0]}" for a in API])
@pytest.mark.parametrize("role_index", range(4), ids=["anonymous", *ROLES[1:]])
def test_api_access(client, users, row, role_index):
    url, method, *expected = row
    role = ROLES[role_index]
    response = _status(client, url, method, users.get(role) if role else None, api=True)
    assert response.status_code == expected[role_index], response.content


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/jobs/" in schema.content
    assert client.get("/api/docs/").status_code == 200
