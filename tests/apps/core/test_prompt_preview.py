"""Previewing a prompt version on its page: a field per variable, the result or the error in place."""

from __future__ import annotations

from typing import Any

import pytest
from django.test.html import Element, parse_html
from playwright.sync_api import expect

from apps.core.services import prompts as svc

pytestmark = pytest.mark.django_db

BODY = "Hello {{ customer_name }}, about {{ topic | default('your card') }}.\n{{ question | fence }}"
LIST_BODY = "Steps:\n{% for step in steps %}- {{ step }}\n{% endfor %}Sources:{% for p in passages %} {{ p.text }}{% endfor %}"


@pytest.fixture
def admin(client, make_user):
    user = make_user("admin")
    client.force_login(user)
    return user


@pytest.fixture
def template(admin):
    return svc.prompt_template_create(name="greet", body=BODY, user=admin)


def _preview_url(number: int = 1, name: str = "greet") -> str:
    return f"/prompts/{name}/v{number}/preview/"


def _by_id(node: Element | str, wanted: str) -> Element | None:
    if isinstance(node, str):
        return None
    if dict(node.attributes).get("id") == wanted:
        return node
    for child in node.children:
        found = _by_id(child, wanted)
        if found is not None:
            return found
    return None


def _pane(response: Any, number: int = 1) -> Element:
    """The preview area of version `number`: its variables form and its result or error."""
    pane = _by_id(parse_html(response.content.decode()), f"preview-{number}")
    assert pane is not None, f"no preview area for v{number} in:\n{response.content.decode()[:2000]}"
    return pane


def _field_names(node: Element | str) -> list[str]:
    if isinstance(node, str):
        return []
    own = [dict(node.attributes)["name"]] if node.name in ("input", "textarea") else []
    return own + [name for child in node.children for name in _field_names(child)]


def _text(node: Element | str) -> str:
    return node if isinstance(node, str) else " ".join(_text(child) for child in node.children)


def _field_value(node: Element | str, name: str) -> str | None:
    """What a textarea or input named `name` holds, or None when there is no such field."""
    if isinstance(node, str):
        return None
    attributes = dict(node.attributes)
    if attributes.get("name") == name:
        return (
            "".join(c for c in node.children if isinstance(c, str))
            if node.name == "textarea"
            else attributes.get("value", "")
        )
    for child in node.children:
        found = _field_value(child, name)
        if found is not None:
            return found
    return None


def test_a_missing_variable_shows_the_error_in_the_page_without_javascript(client, template):
    response = client.post(_preview_url(), {"var-question": "Where is it?"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "<h1>greet</h1>" in html and "<html" in html  # the whole page, not a bare message
    pane = _pane(response)
    assert "cannot render template: 'customer_name' is undefined" in _text(pane)
    assert _field_value(pane, "var-question") == "Where is it?"  # what was entered stays


def test_a_missing_variable_shows_the_error_next_to_the_form_for_htmx(client, template):
    response = client.post(_preview_url(), {"var-question": "Where is it?"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    html = response.content.decode()
    assert "<html" not in html  # the fragment that replaces the preview area
    pane = _pane(response)
    assert "cannot render template: 'customer_name' is undefined" in _text(pane)
    assert _field_value(pane, "var-customer_name") == ""
    assert _field_value(pane, "var-question") == "Where is it?"


def test_the_page_offers_a_field_for_every_variable_of_each_version(client, template, admin):
    svc.prompt_version_create(template=template, body=LIST_BODY, user=admin)
    response = client.get("/prompts/greet/")
    assert response.status_code == 200
    v1 = [n for n in _field_names(_pane(response, 1)) if n.startswith("var-")]
    v2 = [n for n in _field_names(_pane(response, 2)) if n.startswith("var-")]
    assert v1 == ["var-customer_name", "var-topic", "var-question"]  # in the order the body uses them
    assert v2 == ["var-steps", "var-passages"]
    assert "JSON" in response.content.decode()  # the help says how to give a list


@pytest.mark.parametrize("htmx", [False, True], ids=["plain post", "htmx"])
def test_filled_fields_render_the_preview_and_stay_filled(client, template, htmx):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    data = {"var-customer_name": "Ann", "var-topic": "", "var-question": "Where is my card?"}
    response = client.post(_preview_url(), data, **headers)
    assert response.status_code == 200
    pane = _pane(response)
    rendered = "Hello Ann, about your card.\n<<<DATA untrusted\nWhere is my card?\nDATA>>>"
    assert rendered.replace("<", "&lt;").replace(">", "&gt;") in response.content.decode()
    assert _field_value(pane, "var-customer_name") == "Ann"


def test_list_variables_take_json(client, template, admin):
    svc.prompt_version_create(template=template, body=LIST_BODY, user=admin)
    data = {
        "var-steps": '["Check the address", "Resend"]',
        "var-passages": '[{"text": "Cards ship in 5 days."}]',
    }
    response = client.post(_preview_url(2), data)
    assert response.status_code == 200
    text = response.content.decode()
    assert "Steps:\n- Check the address\n- Resend\nSources: Cards ship in 5 days." in text


def test_broken_json_is_an_error_on_its_field(client, template, admin):
    svc.prompt_version_create(template=template, body=LIST_BODY, user=admin)
    response = client.post(
        _preview_url(2), {"var-steps": '["Check the address", Resend]', "var-passages": "[]"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in _text(_pane(response, 2))
    assert "<h1>greet</h1>" in response.content.decode()


def test_the_page_a_plain_preview_answers_still_saves_edits_to_the_prompt(client, template):
    response = client.post(_preview_url(), {"var-customer_name": "Ann"})
    assert 'action="/prompts/greet/"' in response.content.decode()  # not back to the preview URL


def _login(page: Any, live_server: Any, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_the_browser_the_error_and_then_the_preview_appear_in_place(page, live_server, make_user):
    user = make_user("admin", username="ada")
    svc.prompt_template_create(name="greet", body=BODY, user=user)
    _login(page, live_server, "ada")
    page.goto(f"{live_server.url}/prompts/greet/")
    pane = page.locator("#preview-1")
    pane.locator("textarea[name=var-question]").fill("Where is it?")
    pane.locator("button[type=submit]").click()
    expect(pane.locator(".flash.error")).to_contain_text("'customer_name' is undefined", timeout=10_000)
    expect(page.locator("h1")).to_have_text("greet")  # the page is still there
    assert page.url == f"{live_server.url}/prompts/greet/"  # htmx swapped the area, no navigation

    page.locator("#preview-1 textarea[name=var-customer_name]").fill("Ann")
    page.locator("#preview-1 button[type=submit]").click()
    expect(page.locator("#preview-1 pre.preview")).to_contain_text(
        "Hello Ann, about your card.", timeout=10_000
    )
    expect(page.locator("#preview-1 textarea[name=var-question]")).to_have_value("Where is it?")
