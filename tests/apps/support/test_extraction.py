"""Text out of every format a knowledge base takes, and a readable error for each file it cannot take."""

from __future__ import annotations

import pytest

from apps.support.extraction import ExtractionError, extract, guess_format, html_to_text
from apps.support.sanitising import sanitise_html
from tests.apps.support.kb_helpers import make_pdf


def test_markdown_keeps_its_text_and_names_its_first_heading_as_title() -> None:
    got = extract(b"# Returns policy\n\nSend it back within **30 days**.", "markdown")

    assert got.title == "Returns policy" and "30 days" in got.text


def test_plain_text_in_windows_1252_is_read_too() -> None:
    assert extract("Caf\xe9 opening hours".encode("cp1252"), "text").text == "Café opening hours"


def test_html_keeps_headings_as_markdown_lines_for_the_chunker() -> None:
    raw = extract(
        b"<html><title>Help</title><h1>Orders</h1><p>Track them.</p><ul><li>One</li></ul></html>", "html"
    )

    text = html_to_text(sanitise_html(raw.text))

    assert raw.title == "Help"
    assert "# Orders" in text and "Track them." in text and "- One" in text


def test_a_pdf_gives_the_text_of_its_pages() -> None:
    got = extract(make_pdf("Warranty lasts two years\nKeep the receipt"), "pdf")

    assert "Warranty lasts two years" in got.text and "Keep the receipt" in got.text


def test_a_password_protected_pdf_is_refused_saying_so() -> None:
    with pytest.raises(ExtractionError, match="password-protected"):
        extract(make_pdf("secret terms", password="hunter2"), "pdf")


def test_a_corrupt_pdf_is_refused_as_unreadable() -> None:
    broken = make_pdf("Warranty")[:200]

    with pytest.raises(ExtractionError, match="not a readable PDF"):
        extract(broken, "pdf")


def test_a_pdf_without_text_is_refused() -> None:
    with pytest.raises(ExtractionError, match="no text"):
        extract(make_pdf(""), "pdf")


@pytest.mark.parametrize("fmt", ["markdown", "html", "text", "pdf", "csv_qa"])
def test_an_empty_file_is_refused_in_every_format(fmt: str) -> None:
    with pytest.raises(ExtractionError, match="the file is empty"):
        extract(b"  \n ", fmt)


def test_a_csv_of_questions_and_answers_gives_the_pairs() -> None:
    data = (
        b"Question,Answer,notes\nHow do I reset my password?,Use the link on the login page.,x\n,,\nEmpty?,\n"
    )

    got = extract(data, "csv_qa")

    assert [(p.question, p.answer) for p in got.pairs] == [
        ("How do I reset my password?", "Use the link on the login page.")
    ]


def test_a_csv_with_the_wrong_columns_names_what_it_found() -> None:
    with pytest.raises(ExtractionError, match="columns question and answer; found: q, a"):
        extract(b"q,a\nHi,Hello\n", "csv_qa")


def test_formats_are_guessed_from_the_extension_then_the_content_type() -> None:
    assert guess_format("faq.md") == "markdown" and guess_format("x.PDF") == "pdf"
    assert guess_format("answers.csv", "text/plain") == "csv_qa"
    assert guess_format("page", "text/html; charset=utf-8") == "html" and guess_format("a.docx") is None
