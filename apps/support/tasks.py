"""Thin Celery tasks of the support app: take ids, call a service.

Beat runs `support.sync_due_documents` (SupportConfig.periodic_tasks), which fans out one
`support.sync_document` per URL document that is due, each expiring if no worker takes it in time.
"""

from __future__ import annotations

from celery import shared_task

from apps.support import selectors
from apps.support.services import sync

SYNC_EXPIRES_SECONDS = 300


@shared_task(name="support.sync_due_documents", acks_late=True, ignore_result=True)
def sync_due_documents() -> int:
    ids = selectors.documents_due_for_sync()
    for document_id in ids:
        sync_document.apply_async(args=[document_id], expires=SYNC_EXPIRES_SECONDS)
    return len(ids)


@shared_task(
    name="support.sync_document",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=120,
    time_limit=150,
)
def sync_document(document_id: int, first: bool = False) -> str | None:
    """Fetch one URL document: `first` for a document just added (fetched whatever its schedule)."""
    document = (
        selectors.document_any(document_id) if first else sync.document_sync_claim(document_id=document_id)
    )
    if document is None or not document.url:
        return None  # gone, not due any more, or taken by another worker
    return sync.document_sync(document=document)
