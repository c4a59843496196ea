"""The jobs page in a real browser: who may open it. (Its live progress: test_live_browser.py.)"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(page, live_server, username):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_agent_cannot_open_the_jobs_page(page, live_server, make_user):
    make_user("agent", username="agnes")
    _login(page, live_server, "agnes")
    response = page.goto(f"{live_server.url}/jobs/")
    assert response.status == 403
    assert "Jobs" not in page.locator("header nav").inner_text()
