"""The API docs teach: every operation and parameter is described, and the front page explains the rules.

The schema is generated in-process, as /api/schema/ serves it, and walked whole: a new operation without a
summary or a description of its own, or a parameter without a description, fails here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from apps.core.api_schema import WHO_MAY_CALL_IT

METHODS = ("get", "put", "patch", "post", "delete")


def _schema() -> dict[str, Any]:
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return _schema()


def _operations(openapi: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_there_are_operations_to_check(openapi: dict[str, Any]) -> None:
    assert len(_operations(openapi)) >= 26


def test_every_operation_has_a_summary_and_a_description_of_its_own(openapi: dict[str, Any]) -> None:
    missing = []
    for name, operation in _operations(openapi):
        own = operation.get("description", "").split(WHO_MAY_CALL_IT)[0].strip()
        if not operation.get("summary", "").strip():
            missing.append(f"{name}: no summary")
        if len(own) < 40:
            missing.append(f"{name}: no description of what it does ({own!r})")
    assert missing == []


def test_every_operation_says_who_may_call_it(openapi: dict[str, Any]) -> None:
    missing = [
        name for name, operation in _operations(openapi) if WHO_MAY_CALL_IT not in operation["description"]
    ]
    assert missing == []
    jobs = openapi["paths"]["/api/jobs/"]
    assert (
        "`core.view_trainingjob`: the admin and analyst roles, and superusers." in jobs["get"]["description"]
    )
    prompts = openapi["paths"]["/api/prompts/"]["get"]["description"]
    assert "`core.view_prompttemplate`: the admin, agent and analyst roles, and superusers." in prompts
    assert (
        "`core.label_prompttemplate`: the admin role, and superusers."
        in (openapi["paths"]["/api/prompts/{name}/labels/{label}/"]["post"]["description"])
    )
    assert "`core.run_trainingjob`" in jobs["post"]["description"]
    assert "anyone; no credentials are needed" in openapi["paths"]["/api/auth/token/"]["post"]["description"]


def test_every_parameter_has_a_description(openapi: dict[str, Any]) -> None:
    missing = [
        f"{name} {parameter['in']} {parameter['name']}"
        for name, operation in _operations(openapi)
        for parameter in operation.get("parameters", [])
        if not parameter.get("description", "").strip()
    ]
    assert missing == []


def test_summaries_are_unique(openapi: dict[str, Any]) -> None:
    summaries = [operation["summary"] for _, operation in _operations(openapi)]
    assert len(summaries) == len(set(summaries))


# --- the sentiment series ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/sentiment/series/", "/api/sentiment/entities/{ticker}/series/"])
def test_the_series_parameters_have_types_enums_defaults_and_ranges(
    openapi: dict[str, Any], path: str
) -> None:
    parameters = {p["name"]: p for p in openapi["paths"][path]["get"]["parameters"]}

    granularity = parameters["granularity"]["schema"]
    assert granularity["type"] == "string" and sorted(granularity["enum"]) == ["day", "hour"]
    assert granularity["default"] == "hour"
    for name in ("from", "to"):
        options = parameters[name]["schema"]["oneOf"]
        assert {"type": "string", "format": "date-time"} in options
        assert {"type": "number", "minimum": 0, "maximum": 253402300799} in options
        assert "Unix seconds" in parameters[name]["description"]
    assert "5000" in parameters["from"]["description"]  # the longest range


def test_the_series_answer_is_typed_point_by_point(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    ok = openapi["paths"]["/api/sentiment/series/"]["get"]["responses"]["200"]["content"]["application/json"]

    series = schemas[ok["schema"]["$ref"].rsplit("/", 1)[1]]
    point = schemas["SeriesPoint"]

    assert series["properties"]["buckets"]["items"]["$ref"] == "#/components/schemas/SeriesPoint"
    assert set(series["required"]) == {"entity", "topic", "granularity", "from", "to", "buckets"}
    assert (
        point["properties"]["count"]["type"] == "integer"
        and point["properties"]["mean_score"]["type"] == "number"
    )
    assert all(prop.get("description") for prop in point["properties"].values())
    baseline = schemas[point["properties"]["baseline"]["allOf"][0]["$ref"].rsplit("/", 1)[1]]
    assert set(baseline["properties"]) == {"count", "mean_score", "negative_share", "positive_share"}


# --- the front page ---------------------------------------------------------------------------------------
def test_the_front_page_links_back_to_the_app_and_to_tokens(openapi: dict[str, Any]) -> None:
    description = openapi["info"]["description"]

    assert "[← Back to Contexta](/)" in description
    assert "(#/auth/auth_token_create)" in description and "(/admin/authtoken/tokenproxy/)" in description
    for section in ("## Authentication", "## Errors", "## Pagination", "## Rate limits", "## Times"):
        assert section in description
    assert "Authorization: Bearer <token>" in description and "Retry-After" in description


def test_the_front_page_states_this_deployments_rate_limits(settings: Any) -> None:
    settings.API_WRITE_RATE, settings.API_ANON_WRITE_RATE = "7/min", "3/min"

    description = _schema()["info"]["description"]

    assert "`7/min` a user, `3/min` an address" in description


def test_the_docs_page_keeps_the_token_across_reloads_and_links_operations(client: Client) -> None:
    page = client.get("/api/docs/")
    script = client.get("/api/docs/?script=")

    assert page.status_code == 200 and script.status_code == 200
    assert b'"persistAuthorization": true' in script.content and b'"deepLinking": true' in script.content
