"""Stored XSS payloads never survive: what the support app stores is text a browser cannot run."""

from __future__ import annotations

import pytest

from apps.support.extraction import html_to_text
from apps.support.sanitising import plain_text, sanitise_html, sanitise_text

PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<svg onload=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&amp;lt;img src=x onerror=alert(1)&amp;gt;",
    '<iframe src="javascript:alert(1)"></iframe>',
    "[click](javascript:alert(1))",
    "![x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<style>body{background:url(javascript:alert(1))}</style>",
]


def _unsafe(text: str) -> bool:
    lowered = text.lower()
    return any(
        bad in lowered
        for bad in ("<script", "onerror", "onload", "javascript:", "<img", "<iframe", "data:text")
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_survives_in_document_text(payload: str) -> None:
    assert not _unsafe(sanitise_text(f"Before {payload} after"))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_survives_in_html_documents(payload: str) -> None:
    assert not _unsafe(sanitise_text(html_to_text(sanitise_html(f"<h1>Help</h1><p>{payload}</p>"))))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_survives_in_titles(payload: str) -> None:
    assert not _unsafe(plain_text(f"Refunds {payload}"))


def test_ordinary_text_is_left_as_written() -> None:
    text = "# Prices\n\nA < B & C > D, see [the page](https://example.com/p(1))."

    assert sanitise_text(text) == text
    assert plain_text("Terms & conditions") == "Terms & conditions"


def test_safe_markup_stays_and_links_keep_only_web_schemes() -> None:
    cleaned = sanitise_html(
        '<p onclick="x()">Hi <a href="https://ok.example/">ok</a><a href="vbscript:x">no</a></p>'
    )

    assert (
        cleaned.startswith("<p>Hi") and 'href="https://ok.example/"' in cleaned and "vbscript" not in cleaned
    )
