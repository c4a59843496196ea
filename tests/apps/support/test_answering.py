"""Answer or decline: the calibrated confidence, extractive answers with citations, curated pairs, the decline."""

from __future__ import annotations

import random

import pytest

from apps.support.answering import (
    DECLINE_TEXT,
    DEFAULT_THRESHOLD,
    QA_MIN_SIMILARITY,
    confidence,
    decide,
    fit_logistic,
    threshold_for_rate,
)
from apps.support.retrieval import Candidate, PassageHit


def _candidate(
    doc: int = 1,
    *,
    cosine: float = 0.8,
    margin: float = 0.2,
    passages: tuple[PassageHit, ...] | None = None,
    kind: str = "passage",
) -> Candidate:
    passages = passages or (PassageHit(f"p{doc}", doc, kind, f"Doc {doc}", "Setup", 1.0, cosine, 3.0),)
    return Candidate(doc, f"Doc {doc}", 1.0, cosine, margin, 0.3, 1.0, passages)


def test_confidence_rises_with_similarity_and_with_the_lead_over_the_next_document():
    low, high = confidence([_candidate(cosine=0.4)]), confidence([_candidate(cosine=0.9)])
    assert 0 < low < high < 1
    assert confidence([_candidate(margin=0.01)]) < confidence([_candidate(margin=0.2)])
    assert confidence([]) == 0.0


def test_a_clear_match_is_answered_by_quoting_its_passage_with_a_citation():
    decision = decide([_candidate(cosine=0.85)], texts={"p1": "Open settings.\nChoose reset."})
    assert decision.answered and decision.mode == "extractive"
    assert "> Open settings.\n> Choose reset." in decision.text
    assert "Source: Doc 1" in decision.text
    assert decision.document == 1 and decision.citations[0].passages == ("p1",)
    assert decision.confidence >= DEFAULT_THRESHOLD


def test_a_weak_match_is_declined_with_an_offer_of_a_person():
    decision = decide([_candidate(cosine=0.3, margin=0.0)], texts={"p1": "Open settings."})
    assert not decision.answered and decision.mode == "decline"
    assert decision.text == DECLINE_TEXT
    assert "I don't know" in decision.text and "person" in decision.text
    assert decision.citations == () and decision.document is None
    assert not decide([]).answered


def test_the_threshold_decides():
    candidates = [_candidate(cosine=0.7, margin=0.1)]
    conf = confidence(candidates)
    assert decide(candidates, threshold=conf - 0.01, texts={"p1": "x"}).answered
    assert not decide(candidates, threshold=conf + 0.01, texts={"p1": "x"}).answered


def test_a_second_passage_is_quoted_only_when_it_scores_nearly_as_well():
    near = PassageHit("p2", 1, "passage", "Doc 1", "More", 0.95, 0.7, None)
    far = PassageHit("p3", 1, "passage", "Doc 1", "Other", 0.5, 0.5, None)
    best = PassageHit("p1", 1, "passage", "Doc 1", "Setup", 1.0, 0.85, None)
    texts = {"p1": "first", "p2": "second", "p3": "third"}
    both = decide([_candidate(passages=(best, near, far), cosine=0.85)], texts=texts)
    assert both.citations[0].passages == ("p1", "p2")
    assert "> first" in both.text and "> second" in both.text and "third" not in both.text
    one = decide([_candidate(passages=(best, far), cosine=0.85)], texts=texts)
    assert one.citations[0].passages == ("p1",)


def test_a_passage_without_text_to_quote_is_skipped():
    title_only = PassageHit("q1", 1, "passage", "Doc 1", "", 1.0, 0.9, None)
    answer = PassageHit("a1", 1, "passage", "Doc 1", "", 0.8, 0.8, None)
    decision = decide(
        [_candidate(passages=(title_only, answer), cosine=0.9)], texts={"q1": "", "a1": "Do X."}
    )
    assert decision.citations[0].passages == ("a1",) and "> Do X." in decision.text


def test_a_close_curated_answer_is_returned_as_written():
    qa = PassageHit("qa1", 4, "qa", "FAQ", "How do I cancel?", 1.0, QA_MIN_SIMILARITY + 0.05, None)
    decision = decide([_candidate(4, passages=(qa,), cosine=0.2, margin=0.0)], texts={"qa1": "Email us."})
    assert decision.mode == "qa" and decision.text == "Email us."  # verbatim, even at low confidence
    assert decision.citations[0].passages == ("qa1",)


def test_a_curated_answer_below_the_similarity_follows_the_ordinary_rules():
    qa = PassageHit("qa1", 4, "qa", "FAQ", "How do I cancel?", 1.0, QA_MIN_SIMILARITY - 0.2, None)
    decision = decide([_candidate(4, passages=(qa,), cosine=0.3, margin=0.0)], texts={"qa1": "Email us."})
    assert decision.mode == "decline"


def test_fit_logistic_recovers_known_coefficients():
    rng = random.Random(0)
    rows = [(rng.uniform(-2, 2), rng.uniform(-2, 2)) for _ in range(4000)]
    true_b, true_w = -0.5, (2.0, -1.0)
    labels = [
        rng.random() < 1 / (1 + pow(2.718281828, -(true_b + true_w[0] * a + true_w[1] * b))) for a, b in rows
    ]
    b, w = fit_logistic(rows, labels)
    assert b == pytest.approx(true_b, abs=0.15)
    assert w[0] == pytest.approx(2.0, abs=0.2) and w[1] == pytest.approx(-1.0, abs=0.15)


def test_threshold_for_rate_keeps_at_least_that_share_answered():
    scores = [i / 100 for i in range(100)]
    t = threshold_for_rate(scores, 0.9)
    assert sum(s >= t for s in scores) >= 90
    assert t == pytest.approx(0.1)
    assert threshold_for_rate([], 0.9) == 0.0
