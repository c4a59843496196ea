"""Hybrid hits carry the cosine similarity and the BM25 score they had, not only their ranks."""

from __future__ import annotations

import numpy as np
import pytest

from ml import api


@pytest.fixture(autouse=True)
def fake_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_BACKEND", "fake")


def test_a_hybrid_hit_reports_its_dense_cosine_and_its_bm25_score():
    index = api.index_create("scores")
    texts = ["reset your password in settings", "invoices arrive monthly", "zzz"]
    index.add(["a", "b", "c"], texts)
    hits = {h.id: h for h in index.search("reset password", k=3)}
    emb = api.embedder()
    q, a = emb.encode(["reset password"])[0], emb.encode([texts[0]])[0]
    assert hits["a"].dense_score == pytest.approx(float(np.dot(q, a)), abs=1e-5)
    assert hits["a"].lexical_score is not None and hits["a"].lexical_score > 0
    assert hits["b"].lexical_score is None  # shares no word with the query: BM25 did not return it
    assert hits["b"].dense_score is not None and hits["b"].dense_rank is not None
