"""The bad-input corpus: malformed and hostile bodies sent to every write endpoint under /api/.

Whatever arrives, the API answers JSON with a `detail` (validation errors keep their per-field lists and gain a
`detail` and `field` too) and never a 5xx. Batch pushes keep their valid items: see
tests/apps/sentiment/test_bad_input.py for what is stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token

from apps.core.api import RenderSerializer
from apps.core.services.prompts import prompt_template_create

pytestmark = pytest.mark.django_db

SURROGATE = "\udc80"
NUL = "\x00"
ITEM = {
    "title": "ACME beats estimates",
    "text": "Strong quarter for ACME",
    "url": "https://x.test/acme",
    "published_at": "2024-05-14T09:00:00Z",
    "language": "en",
    "id": "acme-1",
}

# Every write operation under /api/ (URL name -> method, path, a valid JSON body; "name@method" where one URL
# takes two write methods). The test below checks this table against the URL resolver, so a new write
# endpoint has to be added here before CI passes.
WRITE_ENDPOINTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "api-token": ("post", "/api/auth/token/", {"username": "probe", "password": "pw-123456789"}),
    "api-jobs": ("post", "/api/jobs/", {"kind": "text_classifier", "params": {"max_examples": 50}}),
    "api-job-cancel": ("post", "/api/jobs/1/cancel/", {}),
    "api-job-retry": ("post", "/api/jobs/1/retry/", {}),
    "api-model-promote": ("post", "/api/models/1/promote/", {}),
    "api-model-rollback": ("post", "/api/models/rollback/", {"task": "sentiment"}),
    "api-prompts": ("post", "/api/prompts/", {"name": "probe", "description": "Café", "body": "Q: {{ q }}"}),
    "api-prompt": ("post", "/api/prompts/faq/", {"body": "Question: {{ q }}", "note": "second"}),
    "api-prompt-label": ("post", "/api/prompts/faq/labels/staging/", {"version": 1}),
    "api-prompt-render": (
        "post",
        "/api/prompts/faq/render/",
        {"variables": {"q": "hi"}, "label": "production"},
    ),
    "api-sentiment-items": (
        "post",
        "/api/sentiment/items/",
        {
            "source": "probe",
            "items": [ITEM, {**ITEM, "url": "https://x.test/b", "title": "Other news", "id": "b"}],
        },
    ),
    "api-sentiment-uploads": ("post", "/api/sentiment/uploads/", {}),
    "api-sentiment-entities": (
        "post",
        "/api/sentiment/entities/",
        {"ticker": "ACME", "name": "Acme Café", "aliases": ["Acme Inc."]},
    ),
    "api-sentiment-alert-acknowledge": ("post", "/api/sentiment/alerts/1/acknowledge/", {}),
    "api-sentiment-alert-resolve": ("post", "/api/sentiment/alerts/1/resolve/", {}),
    "api-support-kbs": ("post", "/api/support/knowledge-bases/", {"name": "Centre d'aide", "slug": "aide"}),
    "api-support-documents": (
        "post",
        "/api/support/knowledge-bases/help/documents/",
        {
            "title": "Refunds",
            "text": "# Refunds\nMoney back in 5 days.",
            "format": "markdown",
            "external_id": "r",
        },
    ),
    "api-support-document-upload": ("post", "/api/support/knowledge-bases/help/documents/upload/", {}),
    "api-support-document": ("delete", "/api/support/knowledge-bases/help/documents/1/", {}),
    "api-support-document-external@put": (
        "put",
        "/api/support/knowledge-bases/help/documents/by-external-id/faq/",
        {"title": "FAQ", "text": "Opening hours: 9 to 5.", "format": "text"},
    ),
    "api-support-document-external@delete": (
        "delete",
        "/api/support/knowledge-bases/help/documents/by-external-id/faq/",
        {},
    ),
}
WRITE_METHODS = ("post", "put", "patch", "delete")


def _api_write_operations(
    patterns: list[URLPattern | URLResolver] | None = None, prefix: str = ""
) -> Iterator[tuple[str, str]]:
    """(URL name, method) for every view under api/ that handles a write method."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _api_write_operations(pattern.url_patterns, route)
        elif route.startswith("api/"):
            view_class = getattr(pattern.callback, "cls", None)
            for method in WRITE_METHODS:
                if view_class is not None and hasattr(view_class, method):
                    yield str(pattern.name), method


def _string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _string_leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _string_leaves(child, (*path, index))


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


def _leaf(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


def _leaf_cases() -> Iterator[Any]:
    """A lone surrogate and a NUL in every string of every endpoint's body; year 1 and 9999 in every date."""
    for name, (_, _, body) in WRITE_ENDPOINTS.items():
        for path in _string_leaves(body):
            where = ".".join(map(str, path))
            old = _leaf(body, path)
            variants = {"surrogate": old + SURROGATE, "nul": old + NUL}
            if path[-1] == "published_at":
                variants |= {
                    "year1": "0001-01-01T00:00:00Z",
                    "year1-offset": "0001-01-01T00:00:00+01:00",
                    "year9999": "9999-12-31T23:59:59Z",
                    "year9999-offset": "9999-12-31T23:59:59-01:00",
                }
            for kind, new in variants.items():
                raw = json.dumps(_replaced(body, path, new)).encode()
                yield pytest.param(name, raw, "application/json", id=f"{name}-{kind}-{where}")


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


WHOLE_BODIES: dict[str, tuple[bytes | None, str]] = {
    # None: the endpoint's valid body, transformed as the name says
    "surrogate-key": (json.dumps({SURROGATE: "x"}).encode(), "application/json"),
    "depth-1000": (_deep(1000), "application/json"),
    "depth-5000": (_deep(5000), "application/json"),
    "depth-5000-in-object": (b'{"items": ' + _deep(5000) + b"}", "application/json"),
    "5mb": (json.dumps({"text": "a" * 5 * 1024 * 1024}).encode(), "application/json"),
    "5mb-form": (b"text=" + b"a" * 5 * 1024 * 1024, "application/x-www-form-urlencoded"),
    "latin-1": (None, "latin-1"),
    "utf-16": (None, "utf-16"),
    "invalid-json": (b'{"items": [', "application/json"),
    "not-json-at-all": (b"\xff\xfe\x00garbage", "application/json"),
    "array-not-object": (None, "array"),
    "scalar-not-object": (b"42", "application/json"),
    "csv-as-json": (b'title,text\n"unterminated,quote\nnext,row\n', "application/json"),
}


def _whole_cases() -> Iterator[Any]:
    for name, (_, _, body) in WRITE_ENDPOINTS.items():
        for kind, (raw, content_type) in WHOLE_BODIES.items():
            if raw is None and content_type == "array":
                raw, content_type = json.dumps([body]).encode(), "application/json"
            elif raw is None:  # a non-ASCII body in another encoding, labelled plain JSON
                text = json.dumps({**body, "name": "Café"}, ensure_ascii=False)
                raw, content_type = text.encode(content_type), "application/json"
            yield pytest.param(name, raw, content_type, id=f"{name}-{kind}")


@pytest.fixture
def api(make_user: Any, monkeypatch: pytest.MonkeyPatch) -> Client:
    from apps.support.services.knowledge import kb_create

    monkeypatch.setenv("ML_BACKEND", "fake")  # a document that gets through is indexed without a model
    user = make_user("admin", username="probe")
    prompt_template_create(name="faq", body="Q: {{ q }}", user=user)
    kb_create(name="Help centre", slug="help")
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    return client


def assert_json_answer(response: Any) -> Any:
    """Never a 5xx; always JSON; an error always has a `detail` (a string)."""
    assert response.status_code < 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    body = json.loads(response.content)
    if response.status_code >= 400:
        assert isinstance(body, dict) and isinstance(body.get("detail"), str), body
    return body


def test_the_corpus_covers_every_write_operation_under_api() -> None:
    assert set(_api_write_operations()) == {
        (key.split("@")[0], row[0]) for key, row in WRITE_ENDPOINTS.items()
    }


@pytest.mark.parametrize(("name", "raw", "content_type"), [*_leaf_cases(), *_whole_cases()])
def test_bad_bodies_get_a_json_answer_and_never_a_5xx(
    api: Client, name: str, raw: bytes, content_type: str
) -> None:
    method, path, _ = WRITE_ENDPOINTS[name]
    response = getattr(api, method)(path, data=raw, content_type=content_type)
    assert_json_answer(response)


@pytest.mark.parametrize("depth", [1000, 5000])
def test_deep_nesting_is_a_400_that_names_the_limit(api: Client, depth: int) -> None:
    response = api.post("/api/jobs/", data=_deep(depth), content_type="application/json")
    assert response.status_code == 400
    assert "nested" in assert_json_answer(response)["detail"]


def test_moderate_nesting_is_still_accepted(api: Client) -> None:
    params = {"max_examples": 50, "note": [[[[["deep but fine"]]]]]}
    response = api.post(
        "/api/jobs/", {"kind": "text_classifier", "params": params}, content_type="application/json"
    )
    assert response.status_code == 400 and "unknown parameters: note" in response.json()["detail"]


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_body_over_the_limit_is_a_json_413(api: Client, content_type: str) -> None:
    response = api.post("/api/prompts/", data=b"x" * 5 * 1024 * 1024, content_type=content_type)
    assert response.status_code == 413
    assert "too large" in assert_json_answer(response)["detail"]
    assert len(response.content) < 1000


def test_a_lone_surrogate_in_a_json_body_is_a_400_naming_the_field(api: Client) -> None:
    body = json.dumps({"variables": {"q": "hi" + SURROGATE}})
    response = api.post("/api/prompts/faq/render/", data=body, content_type="application/json")
    assert response.status_code == 400
    answer = assert_json_answer(response)
    assert "surrogate" in answer["detail"] and answer["field"] == "variables.q"


def test_a_paired_surrogate_escape_is_an_ordinary_character(api: Client) -> None:
    body = '{"variables": {"q": "\\ud83d\\ude00"}}'  # an emoji, escaped as JSON allows
    response = api.post("/api/prompts/faq/render/", data=body, content_type="application/json")
    assert response.status_code == 200 and response.json()["text"] == "Q: \U0001f600"


@pytest.mark.parametrize(
    "variables", [{"q": "hi" + SURROGATE}, {SURROGATE: "x"}, {"q": ["a", {"b": SURROGATE}]}]
)
def test_the_render_serializer_refuses_lone_surrogates_in_variables(variables: dict[str, Any]) -> None:
    data = RenderSerializer(data={"variables": variables})
    assert not data.is_valid()
    assert "surrogate" in str(data.errors["variables"])


def test_the_token_endpoint_refuses_bad_json_too(client: Client) -> None:
    """DRF's own token view sets its own parsers; the same checks still apply to it."""
    surrogate = json.dumps({"username": SURROGATE, "password": "x"})
    assert client.post("/api/auth/token/", data=surrogate, content_type="application/json").status_code == 400
    deep = client.post("/api/auth/token/", data=_deep(5000), content_type="application/json")
    assert deep.status_code == 400 and "nested" in deep.json()["detail"]


def test_validation_errors_keep_their_field_lists_and_gain_a_detail(api: Client) -> None:
    response = api.post("/api/prompts/", {"name": "has spaces", "body": "x"}, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert isinstance(body["name"], list) and body["field"] == "name" and body["detail"].startswith("name: ")


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/nope/", "/api/sentiment/nope/", "/api/jobs/not-a-number/"])
def test_unknown_api_urls_are_a_json_404(api: Client, settings: Any, debug: bool, path: str) -> None:
    settings.DEBUG = debug
    for send in (api.get, api.post):
        response = send(path)
        assert response.status_code == 404
        assert assert_json_answer(response)["detail"]


def test_unknown_pages_outside_the_api_stay_html(client: Client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


def test_a_wrong_method_is_a_json_405(api: Client) -> None:
    response = api.put("/api/jobs/", data="{}", content_type="application/json")
    assert response.status_code == 405
    assert "PUT" in assert_json_answer(response)["detail"]


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_exception_is_a_json_500_without_internals(
    api: Client, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, debug: bool
) -> None:
    from apps.core import selectors

    settings.DEBUG = debug

    def explode(**kwargs: Any) -> None:
        raise RuntimeError("secret-internal-state")

    monkeypatch.setattr(selectors, "prompt_templates", explode)
    with caplog.at_level(logging.ERROR):
        response = api.get("/api/prompts/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    assert b"secret" not in response.content and b"Traceback" not in response.content
    assert any(r.exc_info and "secret-internal-state" in str(r.exc_info[1]) for r in caplog.records)


def test_the_csv_upload_endpoint_answers_json_for_broken_files(api: Client) -> None:
    broken = SimpleUploadedFile("news.csv", b'title,text\nGood,row\n"Broken,quote\nmore,lines\n')
    response = api.post("/api/sentiment/uploads/", {"file": broken, "source": "probe"})
    assert_json_answer(response)
    nul = SimpleUploadedFile("news.csv", b"title\nGood\n")
    response = api.post("/api/sentiment/uploads/", {"file": nul, "source": "pro\x00be"})
    assert response.status_code == 400 and assert_json_answer(response)["field"] == "source"


@pytest.mark.parametrize(
    "url",
    [
        "/api/jobs/?kind=%00",
        "/api/jobs/?status=a%00b",
        "/api/models/?task=%00",
        "/api/sentiment/alerts/?ticker=%00",
        "/api/sentiment/series/?topic=%00",
        "/api/sentiment/items/?ticker=%00",
        "/api/jobs/?%00=1",
    ],
)
def test_a_nul_in_a_query_parameter_is_a_400_naming_it(client, make_user, url):
    client.force_login(make_user("admin"))
    response = client.get(url)
    assert response.status_code == 400
    assert "NUL character" in response.json()["detail"] and response.json()["field"]


def test_a_nul_in_a_page_query_is_a_400_too(client, make_user):
    client.force_login(make_user("admin"))
    response = client.get("/jobs/?status=%00")
    assert response.status_code == 400 and b"NUL character" in response.content
