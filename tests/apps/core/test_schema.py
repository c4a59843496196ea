"""The OpenAPI schema tells the truth: real responses validate against what their operation documents.

The schema is generated in-process, as /api/schema/ serves it. Each response is checked against the schema of
its operation and status code, read as OpenAPI 3.0 (nullable, readOnly/writeOnly) by openapi-schema-validator,
with one strictness added: an object may carry no property its schema does not name.
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any
from unittest.mock import ANY

import pytest
from django.test import Client
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from openapi_schema_validator import OAS30ReadValidator
from rest_framework.authtoken.models import Token

from apps.core.models import ModelVersion, TrainingJob
from apps.sentiment.models import Alert, Delivery, DeliveryAttempt
from apps.sentiment.services import alerts as alert_services
from tests.apps.sentiment import alert_factories as f

pytestmark = pytest.mark.django_db
METHODS = ("get", "put", "patch", "post", "delete")


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


def _closed(schema: Any) -> Any:
    """`schema` with additionalProperties false wherever an object lists its properties and says nothing more."""
    if isinstance(schema, dict):
        out = {key: _closed(value) for key, value in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(value) for value in schema]
    return schema


def _template(openapi: dict[str, Any], path: str) -> str:
    """The documented path template that `path` (a real URL path, no query) is an instance of."""
    parts = path.split("/")
    for template in sorted(openapi["paths"], key=lambda t: t.count("{")):
        names = template.split("/")
        if len(names) == len(parts) and all(
            n == p or n.startswith("{") for n, p in zip(names, parts, strict=True)
        ):
            return template
    raise AssertionError(f"{path} matches no documented path")


def assert_documented(openapi: dict[str, Any], method: str, url: str, response: Any) -> None:
    """The response's status is documented for its operation, and its JSON body validates against that schema."""
    path = _template(openapi, url.split("?")[0])
    responses = openapi["paths"][path][method]["responses"]
    code = str(response.status_code)
    assert code in responses, f"{method.upper()} {path} answered {code}; documented: {sorted(responses)}"
    schema = responses[code]["content"]["application/json"]["schema"]
    root = _closed({**copy.deepcopy(schema), "components": openapi["components"]})
    validator = OAS30ReadValidator(root, format_checker=OAS30ReadValidator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json())]
    assert not errors, f"{method.upper()} {path} {code} does not match its schema: {errors[:5]}"


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.fixture
def admin_client(client: Client, make_user: Any) -> Client:
    token = Token.objects.create(user=make_user("admin"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    return client


def _call(openapi: dict[str, Any], client: Client, method: str, url: str, status: int, **kw: Any) -> Any:
    if method != "get" and "data" in kw and "content_type" not in kw and not kw.pop("multipart", False):
        kw["content_type"] = "application/json"
    response = getattr(client, method)(url, **kw)
    assert response.status_code == status, response.content[:300]
    assert_documented(openapi, method, url, response)
    return response.json()


# --- the schema as a whole ---------------------------------------------------------------------------------
def test_no_success_response_is_a_free_form_placeholder(openapi: dict[str, Any]) -> None:
    placeholders = [
        f"{method.upper()} {path} {code}"
        for method, path, operation in _operations(openapi)
        for code, response in operation["responses"].items()
        if code.startswith("2")
        and response.get("content", {}).get("application/json", {}).get("schema")
        in ({"type": "object", "additionalProperties": {}}, {})
    ]
    assert placeholders == []


def test_every_operation_documents_its_error_responses(openapi: dict[str, Any]) -> None:
    missing = []
    for method, path, operation in _operations(openapi):
        params = {p["in"] for p in operation.get("parameters", [])}
        expected = {"429"}
        if "requestBody" in operation or "query" in params:
            expected.add("400")
        if "requestBody" in operation:
            expected |= {"413", "415"}
        if "path" in params:
            expected.add("404")
        expected.add("401")  # every operation reads credentials, and a bad token is refused
        if path != "/api/auth/token/":
            expected.add("403")
        for code in sorted(expected - set(operation["responses"])):
            missing.append(f"{method.upper()} {path} {code}")
        for code in expected & set(operation["responses"]):
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema.get("$ref", "").startswith("#/components/schemas/"), (method, path, code)
    assert missing == []
    error = openapi["components"]["schemas"]["Error"]
    assert error["required"] == ["detail"] and set(error["properties"]) == {"detail", "field"}


# --- core ------------------------------------------------------------------------------------------------
def test_jobs_without_a_creator_match_the_schema(openapi: dict[str, Any], admin_client: Client) -> None:
    job = TrainingJob.objects.create(
        kind="text_classifier", params={"dataset": "tfns"}
    )  # made by beat: no user

    listed = _call(openapi, admin_client, "get", "/api/jobs/", 200)["results"]
    detail = _call(openapi, admin_client, "get", f"/api/jobs/{job.pk}/", 200)

    assert listed[0]["created_by"] is None and detail["created_by"] is None


def test_model_versions_never_promoted_match_the_schema(
    openapi: dict[str, Any], admin_client: Client
) -> None:
    ModelVersion.objects.create(task="tfns-classifier", version=1, artifact_dir="/nonexistent/v1")

    listed = _call(openapi, admin_client, "get", "/api/models/?task=tfns-classifier", 200)["results"]

    assert listed[0]["promoted_by"] is None and listed[0]["promoted_at"] is None


def test_prompt_responses_match_the_schema(openapi: dict[str, Any], admin_client: Client) -> None:
    _call(openapi, admin_client, "post", "/api/prompts/", 201, data={"name": "faq", "body": "Q: {{ q }}"})
    _call(openapi, admin_client, "post", "/api/prompts/faq/", 201, data={"body": "Question: {{ q }}"})

    detail = _call(openapi, admin_client, "get", "/api/prompts/faq/", 200)
    label = _call(openapi, admin_client, "post", "/api/prompts/faq/labels/staging/", 200, data={"version": 2})
    body = {"label": "staging", "variables": {"q": "hi"}}
    rendered = _call(openapi, admin_client, "post", "/api/prompts/faq/render/", 200, data=body)
    listed = _call(openapi, admin_client, "get", "/api/prompts/", 200)["results"]

    assert sorted(v["number"] for v in detail["versions"]) == [1, 2] and detail["name"] == "faq"
    assert label["split_version"] is None and rendered == {"version": 2, "text": "Question: hi"}
    assert listed[0]["latest_version"] == 2


def test_error_responses_match_the_schema(openapi: dict[str, Any], client: Client, make_user: Any) -> None:
    _call(openapi, client, "get", "/api/jobs/", 401)
    agent = Token.objects.create(user=make_user("agent"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {agent.key}"
    _call(openapi, client, "get", "/api/sentiment/alerts/", 403)
    admin = Token.objects.create(user=make_user("admin"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {admin.key}"

    missing = _call(openapi, client, "get", "/api/jobs/999999/", 404)
    refused = _call(openapi, client, "post", "/api/jobs/", 400, data={"kind": "nope"})
    invalid = _call(openapi, client, "post", "/api/prompts/", 400, data={"name": "has spaces", "body": "x"})
    _call(openapi, client, "post", "/api/jobs/", 415, data="kind=x", content_type="text/plain")

    assert "unknown job kind" in refused["detail"] and missing["detail"]
    assert invalid["field"] == "name" and invalid["name"] and invalid["detail"]


# --- sentiment -------------------------------------------------------------------------------------------
@pytest.fixture
def alert_world() -> Alert:
    """An entity with an hour series, a scored item, and a fired alert (no topic) whose webhook failed once."""
    now = timezone.now()
    ent = f.entity("ACME")
    f.series([*f.calm(48), f.stats(12, -0.6, 11)], end=now, ent=ent)
    hour = now.replace(minute=0, second=0, microsecond=0)
    f.item(ent, hour + (now - hour) / 2, -0.9, title="ACME warns on profits")
    channel = {"type": "webhook", "url": "https://hooks.example/x", "secret": "do-not-show-me"}
    f.rule(name="ACME drop", entity=ent, channels=[channel])
    alert_services.alerts_evaluate(at=now)
    DeliveryAttempt.objects.create(delivery=Delivery.objects.get(), number=1, ok=False, error="timed out")
    return Alert.objects.get()


def test_sentiment_reads_match_the_schema(
    openapi: dict[str, Any], admin_client: Client, alert_world: Alert
) -> None:
    items = _call(openapi, admin_client, "get", "/api/sentiment/items/?ticker=ACME&limit=5", 200)["results"]
    entities = _call(openapi, admin_client, "get", "/api/sentiment/entities/", 200)["results"]
    series = _call(openapi, admin_client, "get", "/api/sentiment/entities/ACME/series/?granularity=hour", 200)
    everything = _call(openapi, admin_client, "get", "/api/sentiment/series/?granularity=day", 200)
    alerts = _call(openapi, admin_client, "get", "/api/sentiment/alerts/?status=all", 200)["results"]
    detail = _call(openapi, admin_client, "get", f"/api/sentiment/alerts/{alert_world.pk}/", 200)

    assert items[0]["score"]["label"] == "negative" and entities[0]["ticker"] == "ACME"
    assert series["buckets"] and series["topic"] is None and everything["entity"] is None
    assert alerts[0]["topic"] is None and alerts[0]["acknowledged_by"] is None
    assert detail["deliveries"][0]["attempt_log"][0]["status_code"] is None


def test_sentiment_writes_match_the_schema(
    openapi: dict[str, Any], admin_client: Client, alert_world: Alert
) -> None:
    pk = alert_world.pk
    acked = _call(openapi, admin_client, "post", f"/api/sentiment/alerts/{pk}/acknowledge/", 200)
    again = _call(openapi, admin_client, "post", f"/api/sentiment/alerts/{pk}/acknowledge/", 400)
    resolved = _call(openapi, admin_client, "post", f"/api/sentiment/alerts/{pk}/resolve/", 200)
    entity = _call(openapi, admin_client, "post", "/api/sentiment/entities/", 201, data={"ticker": "TSLA"})
    items = [
        {"title": "TSLA beats", "published_at": "2024-05-01T09:00:00Z"},
        {"title": "x", "published_at": "soon"},
    ]
    pushed = _call(
        openapi, admin_client, "post", "/api/sentiment/items/", 201, data={"source": "wire", "items": items}
    )
    refused = _call(openapi, admin_client, "post", "/api/sentiment/items/", 400, data={"items": [{}]})
    malformed = _call(openapi, admin_client, "post", "/api/sentiment/items/", 400, data={"items": "x"})
    upload = io.BytesIO(b"text,published_at\nBoeing shares fall,2024-05-14T08:00:00Z\n,\n")
    upload.name = "news.csv"
    uploaded = _call(
        openapi, admin_client, "post", "/api/sentiment/uploads/", 201, data={"file": upload}, multipart=True
    )

    assert acked["acknowledged_by"] == "user-admin" and "already" in again["detail"]
    assert resolved["status"] == "resolved" and entity["item_count"] == 0
    assert pushed["created"] == 1 and pushed["rejected"][0] == {
        "index": 1,
        "reason": ANY,
        "field": "published_at",
    }
    assert refused["created"] == 0 and "no item was accepted" in refused["detail"]
    assert "created" not in malformed and malformed["field"] == "items"
    assert uploaded["created"] == 1 and uploaded["rejected"][0]["index"] == 3
