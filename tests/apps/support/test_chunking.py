"""Chunks follow the headings, keep their path, and stay within the token budget with a small overlap."""

from __future__ import annotations

from itertools import pairwise

import pytest

from apps.support.chunking import chunk_text, count_tokens, sections
from tests.apps.support.kb_helpers import FAQ_MD


def test_each_heading_opens_a_section_with_its_path() -> None:
    assert [s.heading for s in sections(FAQ_MD)] == ["Billing > Refunds", "Billing > Invoices", "Shipping"]


def test_a_chunk_never_spans_two_sections() -> None:
    pieces = chunk_text(FAQ_MD)

    assert [p.heading for p in pieces] == ["Billing > Refunds", "Billing > Invoices", "Shipping"]
    assert "Invoices" not in pieces[0].text and pieces[2].text.startswith("Parcels ship")


def test_long_sections_are_cut_within_the_budget_and_overlap() -> None:
    body = " ".join(f"Step {n} of the set-up is described here." for n in range(200))
    pieces = chunk_text(f"# Set-up\n{body}", budget=80, overlap=12)

    assert len(pieces) > 5 and all(p.token_count <= 80 for p in pieces)
    assert all(p.heading == "Set-up" for p in pieces)
    for first, second in pairwise(pieces):
        assert first.text.split()[-1] in second.text.split()[:15]  # the next chunk starts with the last words
    assert [p.position for p in pieces] == list(range(len(pieces)))


def test_a_sentence_longer_than_the_budget_is_cut_at_words() -> None:
    pieces = chunk_text("word " * 500, budget=50, overlap=0)

    assert all(p.token_count <= 50 for p in pieces) and sum(p.token_count for p in pieces) == 500


def test_the_token_estimate_counts_words_and_punctuation() -> None:
    assert count_tokens("Refunds: 5 days, by card.") == 8


def test_a_bad_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="budget"):
        chunk_text("x", budget=20, overlap=20)
