"""Retrieval: weighted re-fusion, grouping passages by document, and the public-only door of the widget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from apps.support.retrieval import (
    PassageHit,
    fuse,
    group_by_document,
    passage_metadata,
    passage_text,
    retrieve,
)

CANARY = "zqxcanary7731"


@dataclass(frozen=True)
class FakeHit:
    id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    dense_score: float | None = None
    lexical_score: float | None = None


def _p(
    pid: str, doc: int, fused: float, cosine: float | None = None, bm25: float | None = None
) -> PassageHit:
    return PassageHit(pid, doc, "passage", f"Doc {doc}", "", fused, cosine, bm25)


def _meta(doc: int, visibility: str = "public") -> dict[str, Any]:
    return passage_metadata(
        document=doc, kb=1, visibility=visibility, kind="passage", title=f"Doc {doc}", heading=""
    )


def test_a_document_scores_by_its_best_passage_not_by_how_many_it_has():
    # given one document with a single excellent passage and one with many middling ones
    passages = [_p("a", 1, 0.9, 0.8), *[_p(f"b{i}", 2, 0.6, 0.6) for i in range(10)]]
    # when grouped
    docs = group_by_document(passages, k=5)
    # then the excellent one leads, carrying its best cosine and the margin to the next document
    assert [d.document for d in docs] == [1, 2]
    assert docs[0].cosine == pytest.approx(0.8)
    assert docs[0].margin == pytest.approx(0.2)
    assert docs[0].fused_margin == pytest.approx(0.3)
    assert len(docs[1].passages) == 10


def test_grouping_keeps_k_documents_and_the_last_margin_is_to_nothing():
    passages = [_p("a", 1, 0.9, 0.7), _p("b", 2, 0.8, 0.6), _p("c", 3, 0.7, 0.5)]
    docs = group_by_document(passages, k=2)
    assert [d.document for d in docs] == [1, 2]
    assert docs[1].margin == pytest.approx(0.6 - 0.5)  # the third document still counts as "next"
    alone = group_by_document(passages[:1], k=2)[0]
    assert alone.margin == pytest.approx(0.7) and alone.fused_margin == pytest.approx(0.9)


def test_lexical_agreement_is_the_share_of_the_best_bm25_score():
    passages = [_p("a", 1, 0.9, 0.8, bm25=2.0), _p("b", 2, 0.8, 0.7, bm25=8.0), _p("c", 3, 0.5, 0.6)]
    docs = {d.document: d for d in group_by_document(passages, k=3)}
    assert docs[1].lexical == pytest.approx(0.25)
    assert docs[2].lexical == pytest.approx(1.0)
    assert docs[3].lexical == 0.0  # BM25 did not find it at all


def test_fusion_weighs_the_dense_side_and_lets_bm25_only_break_near_ties():
    hits = [
        FakeHit("dense-best", _meta(1), dense_score=0.80, lexical_score=None),
        FakeHit("lexical-best", _meta(2), dense_score=0.78, lexical_score=9.0),
        FakeHit("low", _meta(3), dense_score=0.40, lexical_score=1.0),
        FakeHit("bm25-only", _meta(4), dense_score=None, lexical_score=5.0),
    ]
    ranked = fuse(hits)
    assert [p.id for p in ranked][:2] == ["lexical-best", "dense-best"]  # 0.95 + 0.1 beats 1.0 + 0
    bm25_only = next(p for p in ranked if p.id == "bm25-only")
    assert bm25_only.cosine is None and bm25_only.fused < 0.1


def test_passage_text_is_title_heading_text():
    assert passage_text(title="T", heading="H", text="body") == "T\nH\nbody"


# --- through a real ml.api index on the fake backend ---------------------------------------------------
def _kb(public_only_canary: bool = True) -> Any:
    from ml import api

    index = api.index_create("kb-test")
    rows = [
        ("p1", 1, "public", "Resetting your password", "Open settings and choose reset password."),
        ("p2", 1, "public", "Resetting your password", "A reset email arrives within minutes."),
        ("p3", 2, "public", "Billing and invoices", "Invoices are sent on the first of the month."),
        ("p4", 3, "internal", "Escalations", f"Internal runbook {CANARY}: call the on-call engineer."),
    ]
    index.add(
        [r[0] for r in rows],
        [passage_text(title=r[3], heading="", text=r[4]) for r in rows],
        [
            passage_metadata(document=r[1], kb=1, visibility=r[2], kind="passage", title=r[3], heading="")
            for r in rows
        ],
    )
    return index


def test_retrieve_finds_the_document_and_groups_its_passages(fake_ml):
    docs = retrieve(_kb(), "how do I reset my password", public_only=True, k=3)
    assert docs[0].document == 1
    assert {p.id for p in docs[0].passages} == {"p1", "p2"}
    assert docs[0].cosine > 0 and docs[0].best.cosine == pytest.approx(docs[0].cosine)


@pytest.mark.parametrize("query", [CANARY, f"internal runbook {CANARY} on-call engineer", "escalations"])
def test_an_internal_passage_never_reaches_the_widget(fake_ml, query):
    index = _kb()
    # the canary is there to find: staff search (public_only=False) returns it first
    assert retrieve(index, CANARY, public_only=False, k=3)[0].document == 3
    # the widget never sees it, even asked for the canary string itself
    docs = retrieve(index, query, public_only=True, k=10)
    assert all(d.document != 3 for d in docs)
    assert all(p.id != "p4" for d in docs for p in d.passages)


def test_an_empty_question_retrieves_nothing(fake_ml):
    assert retrieve(_kb(), "   ", public_only=True, k=3) == []
    with pytest.raises(ValueError, match="k must be positive"):
        retrieve(_kb(), "password", public_only=True, k=0)
