"""The query string of every API operation: unknown parameters are refused, and every list is paginated.

The routes come from the URL resolver and the operations from the generated schema, so a new endpoint is
covered without editing this file: a GET of it with an unknown parameter must be a 400, and a new list must
be given rows below (`ROWS`) before the pagination test passes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token

from apps.core.models import ModelVersion, PromptTemplate, TrainingJob
from apps.sentiment.models import Alert
from tests.apps.sentiment import alert_factories as f
from tests.routes import CONVERTER, walk

pytestmark = pytest.mark.django_db


def _view_class(pattern: URLPattern) -> Any:
    return getattr(pattern.callback, "cls", None)


# Every API route whose view reads GET; each with a concrete path (ids and names that do not exist).
GET_ROUTES = [
    ("/" + CONVERTER.sub(lambda m: "999999" if m.group(1) == "int" else "nope", route), pattern)
    for route, pattern in walk(get_resolver().url_patterns)
    if route.startswith("api/")
    and hasattr(_view_class(pattern) or object, "get")
    and route not in ("api/schema/", "api/docs/", "api/redoc/")
]
LIST_ROUTES = [
    (path, pattern) for path, pattern in GET_ROUTES if getattr(_view_class(pattern), "pagination_class", None)
]


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operation(openapi: dict[str, Any], path: str) -> dict[str, Any]:
    parts = path.strip("/").split("/")
    for template, item in openapi["paths"].items():
        names = template.strip("/").split("/")
        if len(names) == len(parts) and all(
            n == p or n.startswith("{") for n, p in zip(names, parts, strict=True)
        ):
            return item["get"]
    raise AssertionError(f"{path} is not in the schema")


@pytest.fixture
def api(client: Client, make_user: Any) -> Client:
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {Token.objects.create(user=make_user('admin')).key}"
    return client


def test_the_routes_found_include_every_list() -> None:
    assert {pattern.name for _, pattern in LIST_ROUTES} == {
        "api-jobs", "api-models", "api-prompts", "api-sentiment-items", "api-sentiment-entities",
        "api-sentiment-alerts", "api-support-kbs", "api-support-documents",
    }  # fmt: skip
    assert {"api-sentiment-series", "api-sentiment-entity-series"} <= {p.name for _, p in GET_ROUTES}


# --- unknown parameters ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "pattern"), GET_ROUTES, ids=[path for path, _ in GET_ROUTES])
def test_an_unknown_query_parameter_is_a_400_naming_it_and_the_accepted_ones(
    api: Client, openapi: dict[str, Any], path: str, pattern: URLPattern
) -> None:
    documented = [p["name"] for p in _operation(openapi, path).get("parameters", []) if p["in"] == "query"]

    response = api.get(path, {"no_such_filter": "1"})

    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["field"] == "no_such_filter" and "unknown query parameter: no_such_filter" in body["detail"]
    accepted = body["detail"].split("this operation accepts ")[1].split(", ")
    assert sorted(accepted) == sorted([*documented, "format"])  # what the schema documents, no more, no less


@pytest.mark.parametrize(("path", "pattern"), LIST_ROUTES, ids=[path for path, _ in LIST_ROUTES])
def test_pagination_and_format_stay_allowed_on_every_list(
    api: Client, path: str, pattern: URLPattern
) -> None:
    ROWS[pattern.name]()  # a list under a parent (a knowledge base's documents) needs the parent to exist
    response = api.get(path, {"limit": "5", "offset": "0", "format": "json"})

    assert response.status_code == 200, response.content[:300]


def test_source_on_the_items_list_is_refused_not_ignored(api: Client) -> None:
    response = api.get("/api/sentiment/items/", {"source": "wire", "ticker": "ACME", "colour": "red"})

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "unknown query parameters: source, colour; this operation accepts ticker, limit, offset, format"
    )


def test_a_write_with_a_query_parameter_it_does_not_take_is_refused_before_anything_changes(
    api: Client,
) -> None:
    response = api.post(
        "/api/prompts/?dry_run=1", {"name": "faq", "body": "Q: {{ q }}"}, content_type="application/json"
    )

    assert response.status_code == 400 and response.json()["field"] == "dry_run"
    assert not PromptTemplate.objects.exists()


def test_the_query_check_comes_after_authentication(client: Client) -> None:
    response = client.get("/api/jobs/", {"no_such_filter": "1"})

    assert response.status_code == 401


# --- pagination -----------------------------------------------------------------------------------------
def _jobs() -> None:
    for _ in range(3):
        TrainingJob.objects.create(kind="text_classifier", params={})


def _models() -> None:
    for version in (1, 2, 3):
        ModelVersion.objects.create(task="demo", version=version, artifact_dir=f"/nonexistent/{version}")


def _prompts() -> None:
    for name in ("a", "b", "c"):
        PromptTemplate.objects.create(name=name)


def _items() -> None:
    ent, now = f.entity("ACME"), timezone.now()
    for hours in range(3):
        f.item(ent, now - timedelta(hours=hours), 0.5)


def _entities() -> None:
    for ticker in ("AAA", "BBB", "CCC"):
        f.entity(ticker)


def _alerts() -> None:
    ent, now = f.entity("ACME"), timezone.now()
    for minutes in range(3):
        Alert.objects.create(
            rule=f.rule(entity=ent),
            entity=ent,
            severity="high",
            value=-4.0,
            fired_at=now - timedelta(minutes=minutes),
        )


def _knowledge_bases() -> None:
    from apps.support.services.knowledge import kb_create

    for name in ("Alpha", "Beta", "Gamma"):
        kb_create(name=name)


def _documents() -> None:
    from apps.support.models import Document
    from apps.support.services.knowledge import kb_create

    kb = kb_create(name="Nope", slug="nope")  # the path the list routes are called with
    for title in ("a", "b", "c"):
        Document.objects.create(kb=kb, title=title, source="paste", format="text")


ROWS: dict[str, Callable[[], None]] = {
    "api-jobs": _jobs,
    "api-models": _models,
    "api-prompts": _prompts,
    "api-sentiment-items": _items,
    "api-sentiment-entities": _entities,
    "api-sentiment-alerts": _alerts,
    "api-support-kbs": _knowledge_bases,
    "api-support-documents": _documents,
}


@pytest.mark.parametrize(("path", "pattern"), LIST_ROUTES, ids=[path for path, _ in LIST_ROUTES])
def test_every_list_answers_pages_of_count_next_previous_results(
    api: Client, openapi: dict[str, Any], path: str, pattern: URLPattern
) -> None:
    assert pattern.name in ROWS, f"give {pattern.name} three rows in ROWS"
    ROWS[pattern.name]()

    first = api.get(path, {"limit": "2"}).json()
    second = api.get(first["next"]).json()

    assert set(first) == {"count", "next", "previous", "results"} and first["count"] == 3
    assert len(first["results"]) == 2 and first["previous"] is None and "offset=2" in first["next"]
    assert len(second["results"]) == 1 and second["next"] is None and second["previous"] is not None
    assert first["results"][0] not in second["results"]
    schema = _operation(openapi, path)["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].startswith("#/components/schemas/Paginated")


def test_no_operation_answers_a_bare_list(openapi: dict[str, Any]) -> None:
    bare = [
        f"{method.upper()} {path}"
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        for code, response in operation["responses"].items()
        if code.startswith("2") and response.get("content", {}).get("application/json", {}).get("schema", {}).get("type") == "array"
    ]  # fmt: skip
    assert bare == []


def test_the_envelope_is_documented(openapi: dict[str, Any]) -> None:
    envelope = openapi["components"]["schemas"]["PaginatedJobList"]

    assert envelope["required"] == ["count", "next", "previous", "results"]
    assert all(prop.get("description") for prop in envelope["properties"].values())


@pytest.mark.parametrize(
    ("query", "status", "count"),
    [
        ({"limit": "1"}, 200, 1),
        ({"limit": "0"}, 200, 1),  # clamped to 1, as `limit` was before the envelope
        ({"limit": "5000"}, 200, 3),  # clamped to 200
        ({"offset": "2"}, 200, 1),
        ({"offset": "10"}, 200, 0),
        ({"limit": "ten"}, 400, None),
        ({"limit": "1.5"}, 400, None),
        ({"offset": "-1"}, 400, None),
        ({"offset": "9" * 5000}, 400, None),  # more digits than Python reads: a 400, not a 500
    ],
)
def test_limit_and_offset_are_read_strictly(
    api: Client, query: dict[str, str], status: int, count: int | None
) -> None:
    _entities()

    response = api.get("/api/sentiment/entities/", query)

    assert response.status_code == status, response.content[:300]
    body = response.json()
    if count is None:
        assert body["field"] in query and ("whole number" in body["detail"] or "0 or more" in body["detail"])
    else:
        assert len(body["results"]) == count
