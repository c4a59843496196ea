"""Every page sends a Content-Security-Policy, and the pages need nothing it refuses (no inline code)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.core import roles

PAGES = [
    "core:dashboard",
    "core:jobs",
    "core:models",
    "core:prompts",
    "login",
    "sentiment:index",
    "sentiment:alerts",
    "sentiment:rules",
]


@pytest.mark.parametrize("name", PAGES)
def test_pages_send_a_strict_policy_and_carry_no_inline_script_or_style(client, make_user, name):
    client.force_login(make_user(roles.ADMIN))
    response = client.get(reverse(name), follow=True)
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    html = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r"<style|\sstyle=", html), "inline style"


def test_errors_and_the_api_carry_the_policy_too(client):
    assert "default-src 'self'" in client.get("/no-such-page/")["Content-Security-Policy"]
    assert "default-src 'self'" in client.get("/api/jobs/")["Content-Security-Policy"]


def test_the_api_reference_relaxes_it_for_its_viewer_only(client, make_user):
    client.force_login(make_user(roles.ADMIN))
    assert "unsafe-inline" in client.get("/api/docs/")["Content-Security-Policy"]
