from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from apps.core.models import PromptTemplate, TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client, make_user):
    user = make_user("admin")
    token = Token.objects.create(user=user)
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    return client


def test_token_is_issued_for_valid_credentials_only(client, make_user):
    make_user("analyst", username="ana")
    ok = client.post("/api/auth/token/", {"username": "ana", "password": "pw-123456789"})
    assert ok.status_code == 200 and len(ok.json()["token"]) == 40
    assert client.post("/api/auth/token/", {"username": "ana", "password": "wrong"}).status_code == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "text_classifier", "params": {"dataset": "imdb"}}, "dataset must be one of"),
        ({"kind": "text_classifier", "params": {"epochs": 0}}, "epochs must be between 1 and 20"),
        ({"kind": "text_classifier", "params": {"surprise": 1}}, "unknown parameters: surprise"),
        ({"kind": "nope"}, "unknown job kind"),
    ],
)
def test_bad_job_requests_get_a_readable_400_and_save_nothing(api, body, message):
    response = api.post("/api/jobs/", body, content_type="application/json")
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert TrainingJob.objects.count() == 0


def test_malformed_json_is_a_400(api):
    response = api.post("/api/jobs/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_prompt_lifecycle_over_the_api(api):
    created = api.post(
        "/api/prompts/", {"name": "faq", "body": "Q: {{ q }}"}, content_type="application/json"
    )
    assert created.status_code == 201
    assert {lab["name"]: lab["version"] for lab in created.json()["labels"]} == {
        "production": 1,
        "staging": 1,
    }
    v2 = api.post("/api/prompts/faq/", {"body": "Question: {{ q }}"}, content_type="application/json")
    assert v2.status_code == 201 and v2.json()["number"] == 2
    moved = api.post("/api/prompts/faq/labels/staging/", {"version": 2}, content_type="application/json")
    assert moved.status_code == 200
    staged = api.post(
        "/api/prompts/faq/render/",
        {"label": "staging", "variables": {"q": "hi"}},
        content_type="application/json",
    )
    assert staged.json() == {"version": 2, "text": "Question: hi"}
    prod = api.post("/api/prompts/faq/render/", {"variables": {"q": "hi"}}, content_type="application/json")
    assert prod.json() == {"version": 1, "text": "Q: hi"}


def test_bad_prompt_bodies_are_400_and_nothing_is_saved(api):
    response = api.post("/api/prompts/", {"name": "bad", "body": "{% if %}"}, content_type="application/json")
    assert response.status_code == 400
    assert "syntax error" in response.json()["detail"]
    assert not PromptTemplate.objects.filter(name="bad").exists()
    response = api.post("/api/prompts/", {"name": "has spaces", "body": "x"}, content_type="application/json")
    assert response.status_code == 400 and "name" in response.json()


def test_job_can_be_started_read_and_cancelled_over_the_api(api, settings):
    response = api.post(
        "/api/jobs/",
        {"kind": "text_classifier", "params": {"max_examples": 50}},
        content_type="application/json",
    )
    assert response.status_code == 201
    job = response.json()
    assert job["status"] == "pending" and job["params"]["dataset"] == "tfns"
    cancelled = api.post(f"/api/jobs/{job['id']}/cancel/")
    assert cancelled.json()["status"] == "cancelled"
    again = api.post(f"/api/jobs/{job['id']}/cancel/")
    assert again.status_code == 400 and "already cancelled" in again.json()["detail"]
