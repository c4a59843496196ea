"""API tokens: `Authorization: Bearer <token>` (what the docs' Authorize button sends) and `Token <token>`."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(make_user: Any) -> str:
    return Token.objects.create(user=make_user("analyst")).key


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer", "TOKEN"])
def test_a_token_is_accepted_under_either_keyword_in_any_case(
    client: Client, token: str, keyword: str
) -> None:
    response = client.get("/api/jobs/", HTTP_AUTHORIZATION=f"{keyword} {token}")

    assert response.status_code == 200, response.content[:300]


def test_a_token_from_the_token_endpoint_works_as_a_bearer_token(client: Client, make_user: Any) -> None:
    make_user("analyst", username="ana")
    issued = client.post("/api/auth/token/", {"username": "ana", "password": "pw-123456789"}).json()["token"]

    response = client.get("/api/models/", HTTP_AUTHORIZATION=f"Bearer {issued}")

    assert response.status_code == 200


@pytest.mark.parametrize("scheme", ["Basic", "Bearing", "JWT"])
def test_another_scheme_is_a_401_that_names_it_and_says_what_to_send(
    client: Client, token: str, scheme: str
) -> None:
    response = client.get("/api/jobs/", HTTP_AUTHORIZATION=f"{scheme} {token}")

    assert response.status_code == 401
    detail = response.json()["detail"]
    assert f"the authorization scheme '{scheme}' is not accepted" in detail
    assert "Authorization: Bearer <token>" in detail and "/api/auth/token/" in detail
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer not-a-real-token", "Invalid token."),
        ("Bearer", "No credentials provided."),
        ("Token a b", "should not contain spaces"),
    ],
)
def test_a_bad_bearer_or_token_header_is_a_401_saying_why(client: Client, header: str, message: str) -> None:
    response = client.get("/api/jobs/", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401 and message in response.json()["detail"]


def test_no_credentials_is_a_401_that_says_how_to_authenticate(client: Client) -> None:
    response = client.get("/api/jobs/")

    assert response.status_code == 401
    assert "credentials were not provided" in response.json()["detail"]
    assert "Authorization: Bearer <token>" in response.json()["detail"]


def test_a_proxys_basic_credentials_do_not_hide_the_session(client: Client, make_user: Any) -> None:
    # e.g. a staging site behind HTTP basic auth: the browser sends it on every request, the API uses the session
    client.force_login(make_user("analyst"))

    response = client.get("/api/jobs/", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    schema = client.get("/api/schema/", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")

    assert response.status_code == 200 and schema.status_code == 200


def test_the_schema_offers_bearer_authentication_for_the_authorize_button() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)

    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    jobs = schema["paths"]["/api/jobs/"]["get"]["security"]
    assert {"bearerAuth": []} in jobs and {"cookieAuth": []} in jobs
    assert "tokenAuth" not in schemes
