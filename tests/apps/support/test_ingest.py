"""Ingestion jobs on the fake ML backend: progress, idempotency, atomic replacement, failures, deletion.

tests/apps/support/test_ingest_real.py runs the same path with the real packaged MiniLM embedder.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from apps.core.errors import ServiceError
from apps.core.models import JobStatus, TrainingJob
from apps.support.models import Chunk, CuratedAnswer, Document
from apps.support.services import documents, ingest
from tests.apps.support.kb_helpers import FAQ_MD, make_pdf, search_ids, served_index

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_ml")]


def _paste(kb: Any, text: str = FAQ_MD, **kwargs: Any) -> documents.DocumentChange:
    kwargs.setdefault("title", "FAQ")
    return documents.document_paste(kb=kb, text=text, fmt=kwargs.pop("fmt", "markdown"), **kwargs)


def test_the_ingestion_job_reports_every_step_and_serves_the_passages(support_kb, run_queued) -> None:
    change = run_queued(lambda: _paste(support_kb, external_id="faq"))

    job = TrainingJob.objects.get(pk=change.job_id)
    doc = Document.objects.get()
    assert job.kind == "support_ingest" and job.status == JobStatus.SUCCEEDED
    assert (job.step, job.total_steps) == (5, 5)
    assert [f"{step}:" in job.log_tail for step in ingest.STEPS] == [True] * 5
    assert (doc.status, doc.version, doc.error, doc.pending_content) == ("ready", 1, "", b"")
    assert job.metrics == {"chunks": 3, "curated_answers": 0}
    support_kb.refresh_from_db()
    assert support_kb.index_version == job.result["index_version"]
    hits = served_index(support_kb).search("refund to the original card", 3)
    refunds = Chunk.objects.get(heading="Billing > Refunds")
    assert hits[0].id == refunds.index_id
    assert hits[0].metadata == {
        "document": doc.pk, "kb": support_kb.pk, "visibility": "public", "kind": "passage", "title": "FAQ",
        "heading": "Billing > Refunds",
    }  # fmt: skip


def test_an_unchanged_reupload_does_nothing(support_kb, run_queued) -> None:
    upload = lambda: documents.document_upload(  # noqa: E731
        kb=support_kb, file=io.BytesIO(FAQ_MD.encode()), filename="faq.md"
    )
    run_queued(upload)
    support_kb.refresh_from_db()
    served, chunk_ids = support_kb.index_version, sorted(Chunk.objects.values_list("index_id", flat=True))

    again = run_queued(upload)

    support_kb.refresh_from_db()
    assert again.outcome == "unchanged" and again.job_id is None
    assert TrainingJob.objects.count() == 1 and support_kb.index_version == served
    assert sorted(Chunk.objects.values_list("index_id", flat=True)) == chunk_ids
    assert Document.objects.get().version == 1


def test_pasting_the_same_text_again_without_an_id_finds_the_document(support_kb, run_queued) -> None:
    run_queued(lambda: _paste(support_kb))

    assert run_queued(lambda: _paste(support_kb)).outcome == "unchanged" and Document.objects.count() == 1


def test_changed_content_replaces_the_chunks_and_the_served_version(support_kb, run_queued) -> None:
    run_queued(lambda: _paste(support_kb, external_id="faq"))
    old_ids = set(Chunk.objects.values_list("index_id", flat=True))
    support_kb.refresh_from_db()
    old_version = support_kb.index_version

    change = run_queued(
        lambda: _paste(support_kb, "# Returns\nReturns are free for 60 days.", external_id="faq")
    )

    support_kb.refresh_from_db()
    doc = Document.objects.get()
    assert change.outcome == "replaced" and doc.version == 2 and support_kb.index_version != old_version
    assert list(Chunk.objects.values_list("index_id", "heading")) == [(f"chunk-{doc.pk}-v2-0", "Returns")]
    assert set(search_ids(support_kb, "refunds card invoices returns")).isdisjoint(old_ids)
    assert len(served_index(support_kb)) == 1


def test_a_question_asked_during_an_update_sees_the_old_version_and_a_failure_keeps_it(
    support_kb, run_queued, monkeypatch
) -> None:
    run_queued(lambda: _paste(support_kb, external_id="faq"))
    support_kb.refresh_from_db()
    old_version, old_ids = support_kb.index_version, sorted(Chunk.objects.values_list("index_id", flat=True))
    seen: dict[str, Any] = {}
    real_add, real_serve = ingest._add, ingest._serve

    def add_and_look(index: Any, entries: Any, lease: Any) -> None:
        real_add(index, entries, lease)  # the new passages are in the index being built...
        seen["ids"] = sorted(
            search_ids(support_kb, "refunds invoices shipping returns")
        )  # ...not the served one
        seen["rows"] = sorted(Chunk.objects.values_list("index_id", flat=True))

    def serve_then_crash(*args: Any) -> None:
        real_serve(*args)
        raise RuntimeError("disk on fire")  # inside the swap transaction: everything in it is undone

    monkeypatch.setattr(ingest, "_add", add_and_look)
    monkeypatch.setattr(ingest, "_serve", serve_then_crash)

    run_queued(
        lambda: _paste(support_kb, "# Returns\nReturns are free.", external_id="faq")
    )  # the job crashes

    assert seen == {"ids": old_ids, "rows": old_ids}
    support_kb.refresh_from_db()
    doc = Document.objects.get()
    assert support_kb.index_version == old_version
    assert sorted(Chunk.objects.values_list("index_id", flat=True)) == old_ids
    assert sorted(search_ids(support_kb, "refunds invoices shipping")) == old_ids
    assert doc.status == "failed" and doc.version == 1
    assert doc.error == "unexpected error (RuntimeError: disk on fire); version 1 is still served"
    assert TrainingJob.objects.get(pk__gt=1).status == JobStatus.FAILED


def test_a_password_protected_pdf_fails_with_a_reason_a_person_can_read(support_kb, run_queued) -> None:
    change = run_queued(
        lambda: documents.document_upload(
            kb=support_kb, file=io.BytesIO(make_pdf("secret", password="pw")), filename="terms.pdf"
        )
    )

    doc, job = Document.objects.get(), TrainingJob.objects.get(pk=change.job_id)
    assert doc.status == "failed" and "password-protected" in doc.error and doc.version == 0
    assert job.status == JobStatus.FAILED and job.error == doc.error
    support_kb.refresh_from_db()
    assert support_kb.index_version == "" and not Chunk.objects.exists()


def test_a_pdf_upload_is_indexed(support_kb, run_queued) -> None:
    pdf = make_pdf("Warranty\nThe warranty lasts two years from delivery.")
    run_queued(
        lambda: documents.document_upload(kb=support_kb, file=io.BytesIO(pdf), filename="warranty.pdf")
    )

    doc = Document.objects.get()
    assert (doc.status, doc.format, doc.title) == ("ready", "pdf", "warranty.pdf")
    assert "two years" in Chunk.objects.get().text


def test_stored_xss_in_a_document_and_its_title_never_reaches_the_index_or_the_rows(
    support_kb, run_queued
) -> None:
    html = (
        "<h1>Help<script>alert(1)</script></h1><p>Hello <img src=x onerror=alert(2)> "
        '<a href="javascript:alert(3)">click</a> &lt;script&gt;alert(4)&lt;/script&gt;</p>'
    )
    run_queued(lambda: _paste(support_kb, html, fmt="html", title='Guide <img src=x onerror="alert(5)">'))

    doc, chunk = Document.objects.get(), Chunk.objects.get()
    hit = served_index(support_kb).search("hello click", 1)[0]
    stored = " ".join([doc.title, doc.text, chunk.text, chunk.heading, str(hit.metadata)]).lower()
    assert doc.status == "ready" and doc.title == "Guide" and chunk.heading == "Help"
    assert "Hello" in chunk.text and "click" in chunk.text
    assert all(bad not in stored for bad in ("<script", "onerror", "javascript:", "alert", "<img"))


def test_a_csv_of_answers_is_indexed_as_curated_answers_of_kind_qa(support_kb, run_queued) -> None:
    data = b"question,answer\nHow do I reset my password?,Use Forgot password on the login page.\n"
    run_queued(
        lambda: documents.document_upload(kb=support_kb, file=io.BytesIO(data), filename="answers.csv")
    )

    answer = CuratedAnswer.objects.get()
    hit = served_index(support_kb).search("reset my password", 1)[0]
    assert answer.question == "How do I reset my password?" and not Chunk.objects.exists()
    assert hit.id == answer.index_id and hit.metadata["kind"] == "qa"
    assert hit.metadata["heading"] == answer.question and hit.metadata["title"] == "answers.csv"


def test_a_csv_with_the_wrong_columns_fails_the_document(support_kb, run_queued) -> None:
    run_queued(
        lambda: documents.document_upload(kb=support_kb, file=io.BytesIO(b"q,a\nx,y\n"), filename="a.csv")
    )

    assert "columns question and answer" in Document.objects.get().error


def test_deleting_a_served_document_takes_it_out_of_the_index(support_kb, run_queued) -> None:
    run_queued(lambda: _paste(support_kb, external_id="faq"))
    run_queued(
        lambda: _paste(support_kb, "# Opening hours\nWe open at nine.", title="Hours", external_id="hours")
    )
    faq = Document.objects.get(external_id="faq")

    change = run_queued(lambda: documents.document_delete(document=faq))

    assert (
        change.outcome == "deleted"
        and TrainingJob.objects.get(pk=change.job_id).status == JobStatus.SUCCEEDED
    )
    assert list(Document.objects.values_list("external_id", flat=True)) == ["hours"]
    assert len(served_index(support_kb)) == 1 and Chunk.objects.count() == 1


def test_a_document_never_served_is_deleted_at_once(support_kb) -> None:
    change = _paste(support_kb)  # its job never ran

    assert (
        documents.document_delete(document=change.document).job_id is None and not Document.objects.exists()
    )


def test_a_job_for_an_older_version_steps_aside(support_kb, run_queued) -> None:
    _paste(support_kb, external_id="faq")  # queued, not run
    run_queued(lambda: _paste(support_kb, "# New\nNewer text.", external_id="faq"))

    first = TrainingJob.objects.order_by("pk").first()
    result = ingest.document_ingest(
        document_id=first.params["document"],
        content_hash=first.params["content_hash"],
        reporter=None,  # type: ignore[arg-type]
    )

    assert result["outcome"] == "superseded" and Document.objects.get().version == 1


def test_ingestions_of_one_kb_take_turns(support_kb) -> None:
    with ingest.kb_lock(support_kb.pk), pytest.raises(ServiceError, match="another ingestion"):  # noqa: SIM117
        with ingest.kb_lock(support_kb.pk, wait=0.2):
            pass
    with ingest.kb_lock(support_kb.pk, wait=0):  # released: free again
        pass


def test_a_cancelled_ingestion_leaves_the_document_failed_and_nothing_served(support_kb, monkeypatch) -> None:
    from apps.core.job_reporter import JobReporter

    monkeypatch.setattr(JobReporter, "should_stop", lambda self: True)
    from apps.core.services.jobs import job_claim, job_run

    change = _paste(support_kb)
    job = job_run(
        job=job_claim(job_id=change.job_id), reporter=JobReporter(TrainingJob.objects.get(pk=change.job_id))
    )

    doc = Document.objects.get()
    assert (
        job.status == JobStatus.CANCELLED and doc.status == "failed" and doc.error == "indexing was cancelled"
    )


def test_open_pages_of_the_knowledge_base_hear_of_each_change(support_kb, run_queued, monkeypatch) -> None:
    """Queued, indexing, served, deleted: each is published on the KB's live topic (the page refetches)."""
    topics: list[str] = []
    monkeypatch.setattr(documents, "publish", lambda *names, **kw: topics.extend(names))

    run_queued(lambda: _paste(support_kb, external_id="faq"))
    assert topics and set(topics) == {f"support.kb.{support_kb.pk}"}
    assert len(topics) >= 3  # pending, indexing, ready
    topics.clear()
    run_queued(lambda: documents.document_delete(document=Document.objects.get()))
    assert len(topics) >= 2 and not Document.objects.exists()
