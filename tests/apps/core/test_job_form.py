"""The dashboard's job form: one field per parameter of the chosen kind's schema, validated by `job_create`.

The form is read here as a browser would submit it (`_submitted`), so a default that the page shows but the
service refuses fails these tests, as the old JSON box's defaults did.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from rest_framework import serializers

from apps.core import roles
from apps.core.job_registry import all_kinds, get_kind
from apps.core.models import JobStatus, TrainingJob

pytestmark = pytest.mark.django_db

KINDS = [kind.name for kind in all_kinds()]
PREFIX = "params-"
# Required parameters without a default: what a person types in before starting, and what the job stores.
TYPED = {
    "sentiment_rescore": {"start": "2026-01-01T00:00", "end": "2026-01-02T00:00"},
    "support_ingest": {"document": "1"},
}
STORED = {
    "sentiment_rescore": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    "support_ingest": {"document": 1},
}
VOID = {"input", "br", "hr", "img", "meta", "link", "source", "wbr", "area", "base", "col", "embed", "track"}


class _Page(HTMLParser):
    """A page's controls by the form that owns them (`forms[None]`: outside any form) and the text of each id
    (a label's text under "label:<the id it is for>")."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str | None, dict[str, dict[str, Any]]] = {}
        self.texts: dict[str, str] = {}
        self._open: list[str | None] = []
        self._form: str | None = None
        self._select: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = found.get("id")
        if tag in ("input", "select", "textarea") and "name" in found:
            control = {"tag": tag, "options": [], **found}
            self.forms.setdefault(found.get("form", self._form), {})[found["name"]] = control
            self._select = control if tag == "select" else None
        if tag == "option" and self._select is not None:
            self._select["options"].append(found.get("value", ""))
            if "selected" in found:
                self._select["selected"] = found.get("value", "")
        if tag not in VOID:
            key = found.get("id") or (f"label:{found['for']}" if tag == "label" and "for" in found else None)
            self._open.append(key)
            if key:
                self.texts.setdefault(key, "")

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self._open:
            self._open.pop()
        if tag == "form":
            self._form = None

    def handle_data(self, data: str) -> None:
        for key in filter(None, self._open):
            self.texts[key] += data


def _page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _submitted(html: str, form: str = "job-start") -> dict[str, str]:
    """What a browser sends when `form` is submitted as it stands: checked boxes, selected options."""
    values = {}
    for name, control in _page(html).forms.get(form, {}).items():
        if control.get("type") in ("submit", "button"):
            continue
        if control["tag"] == "select":
            values[name] = control.get("selected", (control["options"] or [""])[0])
        elif control.get("type") == "checkbox":
            if "checked" in control:
                values[name] = control.get("value") or "on"
        else:
            values[name] = control.get("value", "")
    return values


def _form_for(client: Any, kind: str) -> dict[str, str]:
    """The job form for `kind` as "Show parameters" renders it, the required fields without a default filled in."""
    values = _submitted(client.get("/jobs/", {"kind": kind}).content.decode())
    return {**values, **{PREFIX + name: value for name, value in TYPED.get(kind, {}).items()}}


def _default(field: serializers.Field) -> Any:
    return None if field.default is serializers.empty else field.default


@pytest.fixture
def admin(client, make_user):
    client.force_login(make_user(roles.ADMIN))
    return client


@pytest.mark.parametrize("kind", KINDS)
def test_the_default_form_of_every_kind_starts_a_job_with_the_kinds_defaults(admin, kind):
    response = admin.post("/jobs/", _form_for(admin, kind))

    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.kind == kind and job.status == JobStatus.PENDING
    assert job.params == get_kind(kind).validate(STORED.get(kind, {}))


@pytest.mark.parametrize("kind", KINDS)
def test_the_fields_of_a_kind_are_its_schema_fields_with_their_defaults(admin, kind):
    response = admin.get("/jobs/params/", {"kind": kind})

    page = _page(response.content.decode())
    controls = page.forms[None]  # a fragment: the form is the page's
    schema = get_kind(kind).params_serializer()().fields
    assert response.status_code == 200 and "<html" not in response.content.decode()
    assert controls["kind"]["type"] == "hidden" and controls["kind"]["value"] == kind
    assert {name.removeprefix(PREFIX) for name in controls if name.startswith(PREFIX)} == set(schema)
    for name, field in schema.items():
        control, default = controls[PREFIX + name], _default(field)
        help_text = page.texts.get(f"{control['id']}_helptext", "")
        assert page.texts[f"label:{control['id']}"].strip() == name
        assert f"{control['id']}_helptext" in control.get("aria-describedby", "") or not help_text
        if field.help_text:
            assert field.help_text in help_text
        if isinstance(field, serializers.BooleanField):
            assert control["type"] == "checkbox" and ("checked" in control) == default
        elif isinstance(field, serializers.ChoiceField):
            assert control["tag"] == "select" and control["options"] == list(field.choices)
            assert control["selected"] == default
        elif isinstance(field, serializers.IntegerField | serializers.FloatField):
            step = "1" if isinstance(field, serializers.IntegerField) else "any"
            assert (control["type"], control["step"]) == ("number", step)
            assert float(control["min"]) == field.min_value and float(control["max"]) == field.max_value
            if default is None:  # required, typed in by the person (support_ingest's document)
                assert "value" not in control and "required" in control
            else:
                assert float(control["value"]) == default
        elif isinstance(field, serializers.DateTimeField):
            assert control["type"] == "datetime-local" and "UTC" in help_text
            assert control.get("value", "") == (default or "")
            assert ("required" in control) == field.required
        else:
            assert control["type"] == "text" and control.get("value", "") == (default or "")


@pytest.mark.parametrize(
    ("kind", "changes", "field", "message"),
    [
        ("text_classifier", {"epochs": "0"}, "epochs", "epochs must be between 1 and 20, got 0"),
        (
            "text_classifier",
            {"task": "two words"},
            "task",
            "task must be letters, digits, - and _ (at most 64), got 'two words'",
        ),
        ("sentiment_train", {"learning_rate": "0.5"}, "learning_rate", "learning_rate must be between"),
        ("sentiment_train", {"class_weights": None}, "class_weights", "class_weights=false has no effect"),
        (
            "sentiment_rescore",
            {"start": "2026-01-02T00:00", "end": "2026-01-01T00:00"},
            "end",
            "end must be after start",
        ),
        ("sentiment_rescore", {"start": ""}, "start", "required"),
    ],
)
def test_a_bad_value_is_reported_next_to_its_field_and_starts_nothing(admin, kind, changes, field, message):
    values = _form_for(admin, kind)
    for name, value in changes.items():
        values.pop(PREFIX + name) if value is None else values.update({PREFIX + name: value})

    response = admin.post("/jobs/", values)

    page = _page(response.content.decode())
    controls = page.forms["job-start"]
    assert response.status_code == 400
    assert message in page.texts[f"id_{PREFIX}{field}_error"]
    assert controls[PREFIX + field].get("aria-invalid") == "true"
    assert controls["kind"]["value"] == kind
    for name, value in changes.items():  # what was typed is kept
        if value:
            assert controls[PREFIX + name]["value"] == value
    assert not TrainingJob.objects.exists()


def test_the_parameters_fragment_answers_for_a_known_kind_only(admin):
    assert admin.get("/jobs/params/", {"kind": "text_classifier"}).status_code == 200
    unknown = admin.get("/jobs/params/", {"kind": "<b>nope</b>"})
    assert unknown.status_code == 404 and "unknown job kind" in unknown.content.decode()
    assert unknown["Content-Type"].startswith("text/plain")
    assert admin.get("/jobs/params/").status_code == 400


def test_an_unknown_kind_is_refused_on_the_form_and_the_chooser_stays(admin):
    response = admin.post("/jobs/", {"kind": "nope", PREFIX + "epochs": "1"})

    page = _page(response.content.decode())
    assert response.status_code == 400 and "nope" in page.texts["job-start-errors"]
    assert page.forms["job-kind"]["kind"]["options"] == KINDS
    assert not TrainingJob.objects.exists()


def test_choosing_a_kind_swaps_the_fields_with_htmx_or_reloads_the_page_without_javascript(admin):
    html = admin.get("/jobs/", {"kind": "text_classifier"}).content.decode()

    page = _page(html)
    chooser, form = page.forms["job-kind"], page.forms["job-start"]
    assert chooser["kind"]["tag"] == "select" and chooser["kind"]["selected"] == "text_classifier"
    assert chooser["kind"]["options"] == KINDS
    assert chooser["kind"]["hx-get"] == "/jobs/params/" and chooser["kind"]["hx-target"] == "#job-params"
    assert 'id="job-kind" method="get"' in html and "Show parameters" in html  # its submit, without htmx
    assert form["kind"]["type"] == "hidden" and form["kind"]["value"] == "text_classifier"
    assert PREFIX + "dataset" in form and PREFIX + "soup" not in form


def test_an_unchecked_box_starts_the_job_with_false(admin):
    values = _form_for(admin, "sentiment_train")
    values.pop(PREFIX + "soup")
    values.pop(PREFIX + "class_weights")

    admin.post("/jobs/", values)

    job = TrainingJob.objects.get()
    assert job.params["soup"] is False and job.params["class_weights"] is False
    assert job.params["class_bias"] is True


def test_a_date_and_time_is_read_as_utc_whatever_the_server_time_zone(admin, settings):
    settings.TIME_ZONE = "America/New_York"
    values = {**_form_for(admin, "sentiment_rescore"), PREFIX + "start": "2026-01-01T09:30"}

    admin.post("/jobs/", values)

    job = TrainingJob.objects.get()
    assert datetime.fromisoformat(job.params["start"]) == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)


def test_an_analyst_asking_to_promote_is_told_why_and_starts_nothing(client, make_user):
    client.force_login(make_user(roles.ANALYST))
    values = {**_form_for(client, "sentiment_train"), PREFIX + "promote": "always"}

    response = client.post("/jobs/", values)

    text = _page(response.content.decode()).texts["job-start-errors"]
    assert response.status_code == 400
    assert "core.promote_modelversion" in text and '"never"' in text
    assert not TrainingJob.objects.exists()
    allowed = client.post("/jobs/", {**values, PREFIX + "promote": "never"})
    assert allowed.status_code == 302 and TrainingJob.objects.get().params["promote"] == "never"


def test_a_full_quota_is_shown_on_the_form(admin, settings):
    settings.JOB_QUOTA_PER_USER = 1
    values = _form_for(admin, "text_classifier")
    assert admin.post("/jobs/", values).status_code == 302

    response = admin.post("/jobs/", values)

    assert response.status_code == 400
    assert (
        "you already have 1 text_classifier jobs queued or running"
        in _page(response.content.decode()).texts["job-start-errors"]
    )
    assert TrainingJob.objects.count() == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_choosing_a_kind_swaps_its_fields_in_and_start_takes_them(
    page, live_server, make_user, monkeypatch
):
    from playwright.sync_api import expect

    monkeypatch.setattr("apps.core.services.jobs.job_enqueue", lambda job: None)  # created, not run
    make_user(roles.ADMIN, username="ada")
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/jobs/")
    expect(page.get_by_role("button", name="Show parameters")).to_be_hidden()  # htmx does its work

    page.select_option("#job-kind-choice", "text_classifier")
    expect(page.locator("#id_params-dataset")).to_have_value("tfns")
    assert page.url == f"{live_server.url}/jobs/"  # no reload
    page.fill("#id_params-epochs", "2")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(f"{live_server.url}/jobs/*/")

    job = TrainingJob.objects.get()
    assert job.kind == "text_classifier"
    assert job.params == get_kind("text_classifier").validate({"epochs": 2})
