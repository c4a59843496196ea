"""Reads of the support knowledge: knowledge bases, their documents, and what the URL sync finds due."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from apps.support.models import Chunk, CuratedAnswer, Document, KnowledgeBase


def knowledge_bases() -> QuerySet[KnowledgeBase]:
    """Every knowledge base with its document counts (`documents_total`, `documents_ready`)."""
    return KnowledgeBase.objects.annotate(
        documents_total=Count("documents", distinct=True),
        documents_ready=Count("documents", filter=Q(documents__status=Document.Status.READY), distinct=True),
    ).order_by("name", "id")


def kb_by_slug(slug: str) -> KnowledgeBase | None:
    return KnowledgeBase.objects.filter(slug=slug).first()


def documents(
    *, kb: KnowledgeBase, status: str | None = None, visibility: str | None = None
) -> QuerySet[Document]:
    """A KB's documents with `chunk_count` and `answer_count`, by title; never the raw pending bytes."""
    rows = Document.objects.filter(kb=kb).defer("pending_content", "text")
    if status:
        rows = rows.filter(status=status)
    if visibility:
        rows = rows.filter(visibility=visibility)
    return rows.annotate(
        chunk_count=Count("chunks", distinct=True), answer_count=Count("curated_answers", distinct=True)
    ).order_by("title", "id")


def document_by_id(*, kb: KnowledgeBase, pk: int) -> Document | None:
    return documents(kb=kb).filter(pk=pk).first()


def document_by_external_id(*, kb: KnowledgeBase, external_id: str) -> Document | None:
    if not external_id:
        return None
    return documents(kb=kb).filter(external_id=external_id).first()


def document_any(pk: int) -> Document | None:
    return Document.objects.select_related("kb").defer("pending_content").filter(pk=pk).first()


def documents_due_for_sync(now: datetime | None = None, *, limit: int = 500) -> list[int]:
    """URL documents whose next sync time has come, the longest waiting first."""
    now = now or timezone.now()
    due = Document.objects.exclude(url="").filter(next_sync_at__isnull=False, next_sync_at__lte=now)
    return list(due.order_by("next_sync_at", "pk").values_list("pk", flat=True)[:limit])


def chunks_by_index_id(index_ids: Iterable[str]) -> dict[str, Chunk]:
    """The served chunks behind index hits, by index id (an id no longer served is left out)."""
    rows = Chunk.objects.filter(index_id__in=list(index_ids)).select_related("document")
    return {chunk.index_id: chunk for chunk in rows}


def curated_answers_by_index_id(index_ids: Iterable[str]) -> dict[str, CuratedAnswer]:
    rows = CuratedAnswer.objects.filter(index_id__in=list(index_ids)).select_related("document")
    return {answer.index_id: answer for answer in rows}
