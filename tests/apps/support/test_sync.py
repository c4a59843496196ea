"""URL documents against a local HTTP server: first fetch, conditional GET (304), changes, a sitemap, and
a server that answers 500 or too slowly (the previous version stays served).

The server listens on 127.0.0.1, which outbound requests refuse unless OUTBOUND_ALLOW_NETWORKS allows it
(the `loopback` fixture does; one test checks the refusal without it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.support import tasks
from apps.support.models import Chunk, Document
from apps.support.services import documents, sync
from tests.apps.support.kb_helpers import search_ids

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_ml", "loopback")]
PAGE = b"<html><head><title>Refund policy</title></head><body><h1>Refunds</h1><p>Paid in 5 days.</p></body></html>"


class Site:
    """Pages by path, each with an ETag; `status` overrides the answer, `delay` stalls it."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[bytes, str]] = {}
        self.status: int | None = None
        self.delay = 0.0
        self.requests: list[dict[str, str]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append({"path": self.path, **dict(self.headers)})
                time.sleep(site.delay)
                body, kind = site.pages.get(self.path, (b"", ""))
                etag = f'"{hash(body) & 0xFFFF:x}"'
                if site.status or not kind:
                    self.send_response(site.status or 404)
                    self.end_headers()
                    return
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    s.pages["/refunds"] = (PAGE, "text/html; charset=utf-8")
    yield s
    s.close()


def _add(kb: Any, site: Site, run_queued: Any, path: str = "/refunds", **kwargs: Any) -> Document:
    run_queued(lambda: documents.document_add_url(kb=kb, url=site.base + path, **kwargs))
    return Document.objects.get(url=site.base + path)


def _resync(doc: Document, run_queued: Any) -> str:
    doc.refresh_from_db()
    return run_queued(lambda: sync.document_sync(document=doc))


def test_a_url_is_fetched_indexed_and_named_after_its_page(support_kb, site, run_queued) -> None:
    doc = _add(support_kb, site, run_queued, sync_minutes=60)

    assert (doc.status, doc.title, doc.format, doc.version) == ("ready", "Refund policy", "html", 1)
    assert doc.etag and doc.next_sync_at is not None and doc.external_id == site.base + "/refunds"
    assert Chunk.objects.get().heading == "Refunds"


def test_a_resync_asks_conditionally_and_a_304_changes_nothing(support_kb, site, run_queued) -> None:
    doc = _add(support_kb, site, run_queued)
    support_kb.refresh_from_db()
    served = support_kb.index_version

    assert _resync(doc, run_queued) == "not_modified"

    assert site.requests[-1]["If-None-Match"] == doc.etag
    support_kb.refresh_from_db()
    assert support_kb.index_version == served and Document.objects.get().version == 1


def test_a_changed_page_is_indexed_as_a_new_version(support_kb, site, run_queued) -> None:
    doc = _add(support_kb, site, run_queued)
    site.pages["/refunds"] = (b"<h1>Refunds</h1><p>Now paid in 2 days.</p>", "text/html")

    assert _resync(doc, run_queued) == "fetched"

    doc.refresh_from_db()
    assert doc.version == 2 and "2 days" in Chunk.objects.get().text


@pytest.mark.parametrize(
    ("status", "delay", "reason"), [(500, 0.0, "HTTP 500"), (None, 1.5, "timed out after 0.3 s")]
)
def test_a_failing_server_leaves_the_previous_version_served(
    support_kb, site, run_queued, monkeypatch, status, delay, reason
) -> None:
    doc = _add(support_kb, site, run_queued)
    support_kb.refresh_from_db()
    served, ids = support_kb.index_version, search_ids(support_kb, "refunds paid")
    site.status, site.delay = status, delay
    monkeypatch.setattr(sync, "FETCH_TIMEOUT", 0.3)

    assert _resync(doc, run_queued) == "failed"

    doc.refresh_from_db()
    support_kb.refresh_from_db()
    assert doc.status == "failed" and reason in doc.error and doc.error.endswith("version 1 is still served")
    assert support_kb.index_version == served and search_ids(support_kb, "refunds paid") == ids
    site.status, site.delay = None, 0.0
    assert _resync(doc, run_queued) == "not_modified"  # the page is back: the document is fine again
    doc.refresh_from_db()
    assert (doc.status, doc.error) == ("ready", "")


def test_a_first_fetch_that_fails_says_why(support_kb, site, run_queued) -> None:
    doc = _add(support_kb, site, run_queued, path="/missing")

    assert doc.status == "failed" and "HTTP 404" in doc.error and doc.version == 0


def test_a_sitemap_becomes_one_document_per_page(support_kb, site, run_queued) -> None:
    site.pages["/shipping"] = (b"<title>Shipping</title><p>Two days.</p>", "text/html")
    urls = "".join(f"<url><loc>{site.base}{p}</loc></url>" for p in ("/refunds", "/shipping"))
    site.pages["/sitemap.xml"] = (
        f'<?xml version="1.0"?><urlset xmlns="x">{urls}</urlset>'.encode(),
        "application/xml",
    )

    sitemap = _add(support_kb, site, run_queued, path="/sitemap.xml")

    assert sitemap.format == "sitemap" and sitemap.status == "ready"
    pages = Document.objects.exclude(pk=sitemap.pk).order_by("title")
    assert [(d.title, d.status) for d in pages] == [("Refund policy", "ready"), ("Shipping", "ready")]


def test_internal_addresses_are_refused_unless_allowed(support_kb, site, settings) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = []

    with pytest.raises(ServiceError, match="loopback"):
        documents.document_add_url(kb=support_kb, url=site.base + "/refunds")


def test_beat_fans_out_a_sync_per_due_document(support_kb, site, run_queued) -> None:
    doc = _add(support_kb, site, run_queued, sync_minutes=15)
    Document.objects.filter(pk=doc.pk).update(next_sync_at=timezone.now() - timedelta(minutes=1))
    before = len(site.requests)

    assert tasks.sync_due_documents() == 1

    doc.refresh_from_db()
    assert len(site.requests) == before + 1 and doc.next_sync_at > timezone.now() + timedelta(minutes=10)
    assert tasks.sync_document(doc.pk) is None  # not due any more: claimed by the compare-and-set
