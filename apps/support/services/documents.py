"""Documents of a knowledge base: add or replace from an upload, pasted text, the API or a URL; delete.

A write stores the raw content as the document's pending version and queues a `support_ingest` job, which
extracts, sanitises, chunks, embeds and indexes it and then swaps it in (services/ingest.py). The same
content again (same external id, same content hash) changes nothing and queues nothing; changed content
replaces the served version once the job has built the new one.

The content hash covers what the index is built from: the bytes, the format, the title and the visibility
(title and visibility are part of every indexed passage).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import IO

from django.db import transaction
from django.utils import timezone

from apps.core import outbound
from apps.core.errors import QuotaExceeded, ServiceError
from apps.core.live import publish
from apps.support.apps import LIVE_KB
from apps.support.extraction import FORMATS, guess_format
from apps.support.models import Document, KnowledgeBase
from apps.support.sanitising import plain_text

INGEST_KIND = "support_ingest"
UPLOAD_MAX_BYTES = 10 * 1024 * 1024
PASTE_MAX_CHARS = 2_000_000
TITLE_MAX = 300
EXTERNAL_ID_MAX = 200
SYNC_MINUTES_MAX = 7 * 24 * 60
MAX_QUEUED_PER_KB = 1000  # documents waiting or indexing in one knowledge base: the kind's quota
WAITING = (Document.Status.PENDING, Document.Status.INDEXING)
CREATED, REPLACED, UNCHANGED, DELETED = "created", "replaced", "unchanged", "deleted"


@dataclass(frozen=True)
class DocumentChange:
    """What a write did: `created`, `replaced`, `unchanged` or `deleted`, and the job it queued, if any."""

    document: Document
    outcome: str
    job_id: int | None = None


@dataclass(frozen=True)
class Content:
    """A document version as given: what it is called, how it is read, and its bytes."""

    title: str
    fmt: str
    data: bytes
    visibility: str = Document.Visibility.PUBLIC

    def digest(self) -> str:
        head = f"{self.fmt}\n{self.visibility}\n{self.title}\n".encode()
        return hashlib.sha256(head + self.data).hexdigest()


# --- checks ---------------------------------------------------------------------------------------------
def clean_title(title: str, *, fallback: str = "") -> str:
    cleaned = plain_text(title or "") or plain_text(fallback)
    if not cleaned:
        raise ServiceError("a document needs a title", field="title")
    return cleaned[:TITLE_MAX]


def clean_external_id(external_id: str | None) -> str:
    value = (external_id or "").strip()
    if len(value) > EXTERNAL_ID_MAX or not value.isprintable():
        raise ServiceError(
            f"an external id is at most {EXTERNAL_ID_MAX} printable characters",
            field="external_id",
        )
    return value


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ServiceError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}", field="format")
    return fmt


def _check_visibility(visibility: str) -> str:
    if visibility not in Document.Visibility.values:
        raise ServiceError(
            f"visibility must be one of {', '.join(Document.Visibility.values)}", field="visibility"
        )
    return visibility


def _check_sync_minutes(minutes: int) -> int:
    if not 0 <= minutes <= SYNC_MINUTES_MAX or 0 < minutes < 15:
        raise ServiceError(
            f"sync_minutes is 0 (never) or 15 to {SYNC_MINUTES_MAX} (a week)", field="sync_minutes"
        )
    return minutes


def _check_quota(kb: KnowledgeBase) -> None:
    if Document.objects.filter(kb=kb, status__in=WAITING).count() >= MAX_QUEUED_PER_KB:
        raise QuotaExceeded(
            f"{MAX_QUEUED_PER_KB} documents of this knowledge base are already waiting to be indexed: "
            "try again when some are ready"
        )


# --- writes ---------------------------------------------------------------------------------------------
def read_upload(file: IO[bytes]) -> bytes:
    data = file.read(UPLOAD_MAX_BYTES + 1)
    if len(data) > UPLOAD_MAX_BYTES:
        raise ServiceError(f"a file is at most {UPLOAD_MAX_BYTES // (1024 * 1024)} MB", field="file")
    if not data.strip():
        raise ServiceError("the file is empty", field="file")
    return data


def document_upload(
    *,
    kb: KnowledgeBase,
    file: IO[bytes],
    filename: str,
    content_type: str = "",
    title: str = "",
    fmt: str = "",
    visibility: str = Document.Visibility.PUBLIC,
    external_id: str = "",
) -> DocumentChange:
    """Add or replace a document from an uploaded file; the file name is its external id unless one is given."""
    fmt = fmt or guess_format(filename, content_type) or ""
    if not fmt:
        raise ServiceError(
            "cannot tell the file's format from its name: use .md, .html, .txt, .pdf or .csv, or say which",
            field="format",
        )
    content = Content(
        clean_title(title, fallback=filename), _check_format(fmt), read_upload(file), visibility
    )
    return document_put(
        kb=kb,
        external_id=external_id or filename[:EXTERNAL_ID_MAX],
        content=content,
        source=Document.Source.UPLOAD,
    )


def document_paste(
    *,
    kb: KnowledgeBase,
    title: str,
    text: str,
    fmt: str = "text",
    visibility: str = Document.Visibility.PUBLIC,
    external_id: str = "",
    source: str = Document.Source.PASTE,
) -> DocumentChange:
    """Add or replace a document from text (pasted on the page, or sent to the API)."""
    if not (text or "").strip():
        raise ServiceError("the text is empty", field="text")
    if len(text) > PASTE_MAX_CHARS:
        raise ServiceError(f"a text is at most {PASTE_MAX_CHARS:,} characters", field="text")
    content = Content(clean_title(title), _check_format(fmt), text.encode("utf-8"), visibility)
    return document_put(kb=kb, external_id=external_id, content=content, source=source)


def document_put(*, kb: KnowledgeBase, external_id: str, content: Content, source: str) -> DocumentChange:
    """Store `content` as the document with this external id (created if new); "" matches by content.

    Nothing happens when the document already serves, or waits to index, exactly this content.
    """
    external_id = clean_external_id(external_id)
    _check_visibility(content.visibility)
    digest = content.digest()
    with transaction.atomic():
        doc = _find(kb, external_id, digest)
        if doc is not None and same_content(doc, digest):
            return DocumentChange(doc, UNCHANGED)
        _check_quota(kb)
        outcome = REPLACED if doc is not None else CREATED
        if doc is None:
            doc = Document(kb=kb, external_id=external_id, source=source)
        job_id = stage(doc, content, digest)
    return DocumentChange(doc, outcome, job_id)


def _find(kb: KnowledgeBase, external_id: str, digest: str) -> Document | None:
    rows = Document.objects.select_for_update().filter(kb=kb)
    if external_id:
        return rows.filter(external_id=external_id).first()
    return rows.filter(external_id="").filter(content_hash=digest).first() or (
        rows.filter(external_id="", pending_hash=digest).first()
    )


def same_content(doc: Document, digest: str) -> bool:
    served = doc.content_hash == digest and doc.status == Document.Status.READY
    waiting = doc.pending_hash == digest and doc.status in WAITING
    return served or waiting


def stage(doc: Document, content: Content, digest: str) -> int:
    """Make `content` the document's pending version and queue its ingestion; the job's id."""
    doc.title, doc.format, doc.visibility = content.title, content.fmt, content.visibility
    doc.pending_content, doc.pending_hash = content.data, digest
    doc.status, doc.error = Document.Status.PENDING, ""
    doc.save()
    announce(doc.kb_id)
    return queue_ingest(doc, action="index")


def announce(kb_id: int) -> None:
    """Tell open pages of the knowledge base that its documents changed (sent when the write commits)."""
    publish(f"{LIVE_KB}{kb_id}")


def queue_ingest(doc: Document, *, action: str) -> int:
    from apps.core.services.jobs import job_create

    params = {"document": doc.pk, "content_hash": doc.pending_hash, "action": action}
    return job_create(kind=INGEST_KIND, params=params, user=None).pk


def document_add_url(
    *,
    kb: KnowledgeBase,
    url: str,
    title: str = "",
    visibility: str = Document.Visibility.PUBLIC,
    sync_minutes: int = 0,
    external_id: str = "",
    source: str = Document.Source.URL,
) -> DocumentChange:
    """Add (or re-point) a document read from `url`; it is fetched at once by a task, then every
    `sync_minutes` (0: never again). A sitemap's pages become documents of their own."""
    outbound.url_check(url=url, what="document URL", field="url")
    external_id = clean_external_id(external_id or url[:EXTERNAL_ID_MAX])
    _check_visibility(visibility)
    with transaction.atomic():
        doc = Document.objects.select_for_update().filter(kb=kb, external_id=external_id).first()
        if doc is not None and doc.url == url:
            _sync_settings(doc, sync_minutes, visibility, title)
            return DocumentChange(doc, UNCHANGED)
        _check_quota(kb)
        outcome = REPLACED if doc is not None else CREATED
        doc = doc or Document(kb=kb, external_id=external_id, source=source, format=Document.Format.HTML)
        doc.url, doc.etag, doc.last_modified = url, "", ""
        doc.title = clean_title(title, fallback=url)
        doc.visibility, doc.sync_minutes = visibility, _check_sync_minutes(sync_minutes)
        doc.status, doc.error, doc.next_sync_at = Document.Status.PENDING, "", None
        doc.save()
        announce(doc.kb_id)
        queue_fetch(doc)
    return DocumentChange(doc, outcome)


def _sync_settings(doc: Document, sync_minutes: int, visibility: str, title: str) -> None:
    """The same URL again: keep it, with the new schedule; a new title or visibility re-reads it at once."""
    doc.sync_minutes = _check_sync_minutes(sync_minutes)
    new_title = clean_title(title, fallback=doc.title)
    changed = visibility != doc.visibility or new_title != doc.title
    doc.visibility, doc.title = visibility, new_title
    if changed:
        doc.etag, doc.last_modified, doc.next_sync_at = "", "", timezone.now()
    elif not sync_minutes:
        doc.next_sync_at = None
    elif doc.next_sync_at is None:
        doc.next_sync_at = timezone.now() + timedelta(minutes=sync_minutes)
    doc.save()


def queue_fetch(doc: Document) -> None:
    from apps.support.tasks import sync_document

    doc_id = doc.pk
    transaction.on_commit(lambda: sync_document.delay(doc_id, True))


def document_delete(*, document: Document) -> DocumentChange:
    """Delete a document: at once when nothing of it is served, else by a job that takes its passages out
    of the index first (the row goes with the new index version, in one transaction)."""
    with transaction.atomic():
        doc = Document.objects.select_for_update().get(pk=document.pk)
        announce(doc.kb_id)
        if doc.version == 0 and not doc.chunks.exists() and not doc.curated_answers.exists():
            doc.delete()
            return DocumentChange(document, DELETED)
        doc.status, doc.error, doc.next_sync_at = Document.Status.DELETING, "", None
        doc.pending_content, doc.pending_hash = b"", ""
        doc.save()
        job_id = queue_ingest(doc, action="delete")
    return DocumentChange(doc, DELETED, job_id)
