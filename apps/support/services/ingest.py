"""Ingestion of a document's pending version into its knowledge base's index (the `support_ingest` job).

Steps, each reported as the job's progress: extract, sanitise, chunk, embed, index. The index is reached
through `ml.api` only. Ingestions of one knowledge base take turns (a lease on the KB row, `kb_lock`),
since an index is not safe for concurrent writers:

1. load the served index version (a new index for the first document), take out the document's old
   passages and add the new ones, and save that as a NEW version: the served one is never written;
2. in ONE transaction, replace the document's Chunk and CuratedAnswer rows and make the new version the
   served one (a compare-and-set on the version it was built from), so a question asked meanwhile sees the
   old version with the old rows or the new with the new, never half.

Any failure before the transaction commits leaves the served version and the old rows as they were, and
marks the document failed with a reason a person can read. A version nobody serves any more stays in the
model store, like every saved version (the store's own clean-up removes old ones).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.support import chunking, passages
from apps.support.extraction import CSV_QA, HTML, ExtractionError, QAPair, extract, html_to_text
from apps.support.models import Chunk, CuratedAnswer, Document, KnowledgeBase
from apps.support.sanitising import plain_text, sanitise_html, sanitise_text
from apps.support.services import documents

if TYPE_CHECKING:
    from apps.core.job_reporter import JobReporter
    from ml.api import HybridIndex

logger = logging.getLogger(__name__)
STEPS = ("extract", "sanitise", "chunk", "embed", "index")
LOCK_LEASE = timedelta(minutes=5)
LOCK_WAIT_SECONDS = 600.0
EMBED_BATCH = 64
HEADING_MAX = 1000


class Superseded(Exception):
    """The document changed (a newer version, a deletion) while this ingestion ran: the newer job wins."""


@dataclass(frozen=True)
class Prepared:
    """A document version ready to index: safe text, its chunks and its curated answers."""

    title: str
    text: str
    pieces: tuple[chunking.Piece, ...]
    pairs: tuple[QAPair, ...]


# --- the job's entry point ------------------------------------------------------------------------------
def document_ingest(*, document_id: int, content_hash: str, reporter: JobReporter) -> dict[str, Any]:
    """Index the document's pending version (the one hashed `content_hash`) and serve it."""
    doc = Document.objects.select_related("kb").filter(pk=document_id).first()
    if doc is None or doc.pending_hash != content_hash or not doc.pending_content:
        return {"document": document_id, "outcome": "superseded"}
    _set_status(doc, Document.Status.INDEXING)
    try:
        prepared = prepare(doc, reporter)
        with kb_lock(doc.kb_id) as lease:
            version = _index_and_swap(doc, prepared, reporter, lease)
    except Superseded:
        return {"document": document_id, "outcome": "superseded"}
    except BaseException as exc:
        _fail(doc, exc)
        raise
    finally:
        documents.announce(doc.kb_id)
    return {"document": doc.pk, "outcome": "indexed", "index_version": version, "chunks": len(prepared.pieces),
            "curated_answers": len(prepared.pairs)}  # fmt: skip


def document_unindex(*, document_id: int, reporter: JobReporter) -> dict[str, Any]:
    """Take a document being deleted out of the index, then delete its row with the new served version."""
    doc = Document.objects.select_related("kb").filter(pk=document_id).first()
    if doc is None or doc.status != Document.Status.DELETING:
        return {"document": document_id, "outcome": "superseded"}
    try:
        with kb_lock(doc.kb_id):
            kb = KnowledgeBase.objects.get(pk=doc.kb_id)
            _step(reporter, 5, f"removing {doc.title!r} from the index")
            index = open_index(kb)
            index.delete(served_ids(doc))
            version = save_index(index)
            _swap_deleted(doc, kb.index_version, version)
    except Superseded:
        return {"document": document_id, "outcome": "superseded"}
    except BaseException as exc:
        _fail(doc, exc)
        raise
    finally:
        documents.announce(doc.kb_id)
    return {"document": document_id, "outcome": "deleted", "index_version": version}


# --- steps 1-3: extract, sanitise, chunk ----------------------------------------------------------------
def prepare(doc: Document, reporter: JobReporter) -> Prepared:
    _step(reporter, 1, f"extracting {doc.get_format_display()} text")
    try:
        extracted = extract(bytes(doc.pending_content), doc.format)
    except ExtractionError as exc:
        raise ServiceError(str(exc)) from None
    _step(reporter, 2, "sanitising")
    raw = extracted.text
    text = sanitise_text(html_to_text(sanitise_html(raw)) if doc.format == HTML else raw)
    pairs = tuple(QAPair(plain_text(p.question), plain_text(p.answer)) for p in extracted.pairs)
    _step(reporter, 3, "chunking")
    pieces = () if doc.format == CSV_QA else tuple(chunking.chunk_text(text))
    pairs = tuple(p for p in pairs if p.question and p.answer)
    if not pieces and not pairs:
        raise ServiceError("the document has no text left to index once sanitised")
    return Prepared(title=_title(doc, extracted.title), text=text, pieces=pieces, pairs=pairs)


def _title(doc: Document, found: str) -> str:
    """A URL document named after its URL takes the title its page gives itself."""
    found = plain_text(found)[:300]
    return found if found and doc.source == Document.Source.URL and doc.title == doc.url[:300] else doc.title


# --- steps 4-5: embed and index, then swap --------------------------------------------------------------
def _index_and_swap(doc: Document, prepared: Prepared, reporter: JobReporter, lease: Lease) -> str:
    kb = KnowledgeBase.objects.get(pk=doc.kb_id)  # read under the lock: the version served now
    version = doc.version + 1
    chunks, answers = _rows(doc, prepared, version)
    _step(reporter, 4, f"embedding {len(chunks) + len(answers)} passages")
    index = open_index(kb)
    index.delete(served_ids(doc))
    _add(index, _entries(doc, kb, prepared, chunks, answers), lease)
    _step(reporter, 5, "saving the index and serving it")
    new_version = save_index(index)
    lease.renew()
    _swap(doc, kb.index_version, new_version, prepared, chunks, answers)
    return new_version


def _rows(doc: Document, prepared: Prepared, version: int) -> tuple[list[Chunk], list[CuratedAnswer]]:
    chunks = [
        Chunk(document=doc, index_id=passages.chunk_index_id(doc.pk, version, p.position), position=p.position,
              heading=p.heading[:HEADING_MAX], text=p.text, token_count=p.token_count)
        for p in prepared.pieces
    ]  # fmt: skip
    answers = [
        CuratedAnswer(document=doc, index_id=passages.qa_index_id(doc.pk, version, n), position=n,
                      question=pair.question, answer=pair.answer)
        for n, pair in enumerate(prepared.pairs)
    ]  # fmt: skip
    return chunks, answers


def _entries(
    doc: Document, kb: KnowledgeBase, prepared: Prepared, chunks: list[Chunk], answers: list[CuratedAnswer]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(index id, text, metadata) of every passage, in the shape `passages` defines."""
    title = prepared.title

    def meta(kind: passages.Kind, heading: str) -> dict[str, Any]:
        return passages.passage_metadata(
            document=doc.pk, kb=kb.pk, visibility=doc.visibility, kind=kind, title=title, heading=heading
        )

    found = [
        (c.index_id, passages.passage_text(title=title, heading=c.heading, text=c.text), meta("passage", c.heading))
        for c in chunks
    ]  # fmt: skip
    heading_of = {a.index_id: a.question[:HEADING_MAX] for a in answers}
    found += [
        (a.index_id, passages.passage_text(title=title, heading=heading_of[a.index_id], text=a.answer),
         meta("qa", heading_of[a.index_id]))
        for a in answers
    ]  # fmt: skip
    return found


def _add(index: HybridIndex, entries: Sequence[tuple[str, str, dict[str, Any]]], lease: Lease) -> None:
    for start in range(0, len(entries), EMBED_BATCH):
        lease.renew()
        batch = entries[start : start + EMBED_BATCH]
        index.add([e[0] for e in batch], [e[1] for e in batch], [e[2] for e in batch])


def served_ids(doc: Document) -> list[str]:
    ids = list(Chunk.objects.filter(document=doc).values_list("index_id", flat=True))
    return ids + list(CuratedAnswer.objects.filter(document=doc).values_list("index_id", flat=True))


def open_index(kb: KnowledgeBase) -> HybridIndex:
    """The served version of the KB's index, or a new empty one before its first document."""
    from ml import api

    if kb.index_version:
        return api.index_load(kb.index_name, kb.index_version, store=settings.MODEL_STORE)
    return api.index_create(kb.index_name)


def save_index(index: HybridIndex) -> str:
    from ml import api

    return api.index_save(index, store=settings.MODEL_STORE).version


def _serve(kb_id: int, built_from: str, new_version: str) -> None:
    """Make `new_version` the served one, if the served version is still the one it was built from."""
    moved = KnowledgeBase.objects.filter(pk=kb_id, index_version=built_from).update(
        index_version=new_version, updated_at=timezone.now()
    )
    if not moved:  # another writer slipped past the lock (an expired lease): build again from its version
        raise ServiceError("the knowledge base's index changed while this document was indexed: run it again")


@transaction.atomic
def _swap(
    doc: Document,
    built_from: str,
    new_version: str,
    prepared: Prepared,
    chunks: list[Chunk],
    answers: list[CuratedAnswer],
) -> None:
    now = timezone.now()
    claimed = Document.objects.filter(pk=doc.pk, pending_hash=doc.pending_hash).update(
        status=Document.Status.READY, error="", version=doc.version + 1, title=prepared.title,
        text=prepared.text, content_hash=doc.pending_hash, pending_content=b"", pending_hash="",
        indexed_at=now, updated_at=now,
    )  # fmt: skip
    if not claimed:
        raise Superseded
    _serve(doc.kb_id, built_from, new_version)
    Chunk.objects.filter(document=doc).delete()
    CuratedAnswer.objects.filter(document=doc).delete()
    Chunk.objects.bulk_create(chunks)
    CuratedAnswer.objects.bulk_create(answers)


@transaction.atomic
def _swap_deleted(doc: Document, built_from: str, new_version: str) -> None:
    if not Document.objects.filter(pk=doc.pk, status=Document.Status.DELETING).exists():
        raise Superseded
    _serve(doc.kb_id, built_from, new_version)
    Document.objects.filter(pk=doc.pk).delete()


# --- status, progress, failure --------------------------------------------------------------------------
def _set_status(doc: Document, status: str) -> None:
    doc.status, doc.error = status, ""
    doc.save(update_fields=["status", "error", "updated_at"])
    documents.announce(doc.kb_id)


def _step(reporter: JobReporter, number: int, what: str) -> None:
    from ml.api import Progress
    from ml.errors import Cancelled

    reporter.on_progress(Progress(step=number, total=len(STEPS), loss=None, eta_seconds=None, message=what))
    reporter.log(f"{STEPS[number - 1]}: {what}")
    if reporter.should_stop():
        raise Cancelled("ingestion cancelled")


def failure_reason(exc: BaseException) -> str:
    from ml.errors import Cancelled, MLError

    if isinstance(exc, Cancelled):
        return "indexing was cancelled"
    if isinstance(exc, ServiceError | MLError):
        return str(exc)
    return f"unexpected error ({type(exc).__name__}: {exc})"


def _fail(doc: Document, exc: BaseException) -> None:
    """Mark the document failed (its served version, if any, stays served), unless a newer version took over."""
    reason = failure_reason(exc)
    if doc.version:
        reason += f"; version {doc.version} is still served"
    running = [Document.Status.INDEXING, Document.Status.DELETING]
    Document.objects.filter(pk=doc.pk, pending_hash=doc.pending_hash, status__in=running).update(
        status=Document.Status.FAILED, error=reason[:2000], updated_at=timezone.now()
    )
    logger.warning("support document %s failed to index: %s", doc.pk, reason)


# --- one writer per knowledge base ----------------------------------------------------------------------
@dataclass(frozen=True)
class Lease:
    """The right to write one KB's index, until `LOCK_LEASE` after it was last renewed."""

    kb_id: int
    token: str

    def acquire(self) -> bool:
        now = timezone.now()
        free = Q(lock_holder="") | Q(lock_expires_at__lt=now) | Q(lock_expires_at__isnull=True)
        rows = KnowledgeBase.objects.filter(pk=self.kb_id).filter(free | Q(lock_holder=self.token))
        return bool(rows.update(lock_holder=self.token, lock_expires_at=now + LOCK_LEASE))

    def renew(self) -> None:
        if not self.acquire():
            raise ServiceError("lost the knowledge base's index lock to another ingestion: run it again")

    def release(self) -> None:
        rows = KnowledgeBase.objects.filter(pk=self.kb_id, lock_holder=self.token)
        rows.update(lock_holder="", lock_expires_at=None)


@contextmanager
def kb_lock(kb_id: int, *, wait: float = LOCK_WAIT_SECONDS) -> Iterator[Lease]:
    """Hold the KB's index lease while the block runs; waits up to `wait` seconds for another holder."""
    lease = Lease(kb_id, uuid.uuid4().hex)
    deadline = time.monotonic() + wait
    while not lease.acquire():
        if time.monotonic() > deadline:
            raise ServiceError(
                f"another ingestion of this knowledge base held its index for over {wait:g} s: try again"
            )
        time.sleep(0.5)
    try:
        yield lease
    finally:
        lease.release()
