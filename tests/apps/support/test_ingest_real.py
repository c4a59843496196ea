"""Ingestion and search of a tiny knowledge base with the real packaged MiniLM embedder (no fakes)."""

from __future__ import annotations

import pytest

from apps.support.models import Chunk
from apps.support.services import documents
from tests.apps.support.kb_helpers import FAQ_MD, served_index

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_a_tiny_kb_answers_by_meaning_with_minilm(
    minilm_embedder, support_kb, run_queued, monkeypatch
) -> None:
    monkeypatch.delenv("ML_BACKEND", raising=False)
    run_queued(lambda: documents.document_paste(kb=support_kb, title="FAQ", text=FAQ_MD, fmt="markdown"))

    index = served_index(support_kb)
    hit = index.search("when do I get my money back?", 1)[0]

    assert index.embed_backend != "fake" and index.embed_model
    assert hit.id == Chunk.objects.get(heading="Billing > Refunds").index_id
    assert hit.metadata["kind"] == "passage" and hit.dense_rank == 1
