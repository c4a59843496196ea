"""URL documents: fetch through apps/core/outbound.py (no internal addresses), with conditional GET, on a
schedule; a sitemap becomes one document per page.

A fetch that fails (a timeout, an HTTP error, a refused address) marks the document failed with the reason
and leaves its served version served; the next sync tries again. An unchanged page (304, or the same
content hash) changes nothing. Changed content is staged and indexed by a `support_ingest` job.
"""

from __future__ import annotations

import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import unescape

from django.db.models import Q
from django.utils import timezone

from apps.core import outbound
from apps.core.errors import ServiceError
from apps.support.extraction import HTML, guess_format
from apps.support.models import Document
from apps.support.services import documents

logger = logging.getLogger(__name__)
FETCH_TIMEOUT = 15.0
MAX_BYTES = documents.UPLOAD_MAX_BYTES
MAX_REDIRECTS = 3
MAX_SITEMAP_PAGES = 500
CLAIM_LEASE = timedelta(minutes=10)
USER_AGENT = "Contexta-support/1 (+knowledge base sync)"
_SITEMAP = re.compile(rb"<(?:\w+:)?(?:urlset|sitemapindex)[\s>]")
_LOC = re.compile(r"<(?:\w+:)?loc>\s*(.*?)\s*</(?:\w+:)?loc>", re.DOTALL)


class FetchError(Exception):
    """A fetch failed in a way a later sync may not (network, HTTP status, refused address, too large)."""


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes = b""
    content_type: str = ""
    etag: str = ""
    last_modified: str = ""


def fetch(url: str, *, etag: str = "", last_modified: str = "", timeout: float | None = None) -> Fetched:
    """GET `url` (If-None-Match / If-Modified-Since when given); a 304 comes back with no body."""
    timeout = timeout if timeout is not None else FETCH_TIMEOUT
    headers = {"User-Agent": USER_AGENT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (url_open allows http(s) only)
    try:
        with outbound.url_open(
            request=request, what="document URL", timeout=timeout, max_redirects=MAX_REDIRECTS
        ) as response:
            return _read(response)
    except outbound.OutboundError as exc:
        raise FetchError(exc.message) from None
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(304, etag=etag, last_modified=last_modified)
        raise FetchError(f"fetching {url} failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise FetchError(f"cannot reach {url}: {exc.reason}") from None
    except TimeoutError:
        raise FetchError(f"fetching {url} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise FetchError(f"fetching {url} failed: {exc}") from None


def _read(response: object) -> Fetched:
    body = response.read(MAX_BYTES + 1)  # type: ignore[attr-defined]
    if len(body) > MAX_BYTES:
        raise FetchError(f"the page is larger than {MAX_BYTES // (1024 * 1024)} MB")
    headers = response.headers  # type: ignore[attr-defined]
    return Fetched(
        status=response.status,  # type: ignore[attr-defined]
        body=body,
        content_type=headers.get("Content-Type", ""),
        etag=headers.get("ETag", "")[:300],
        last_modified=headers.get("Last-Modified", "")[:100],
    )


def sitemap_urls(body: bytes) -> list[str] | None:
    """The page URLs a sitemap (or sitemap index) lists, or None when `body` is not a sitemap."""
    if not _SITEMAP.search(body[:4096]):
        return None
    urls = [unescape(loc) for loc in _LOC.findall(body.decode("utf-8", errors="replace"))]
    return list(dict.fromkeys(u for u in urls if u.startswith(("http://", "https://"))))[:MAX_SITEMAP_PAGES]


# --- the schedule ---------------------------------------------------------------------------------------
def document_sync_claim(*, document_id: int, now: datetime | None = None) -> Document | None:
    """Compare-and-set: move a due document's next sync forward so no other worker syncs it now."""
    now = now or timezone.now()
    due = Q(next_sync_at__isnull=False, next_sync_at__lte=now)
    claimed = (
        Document.objects.filter(due, pk=document_id).exclude(url="").update(next_sync_at=now + CLAIM_LEASE)
    )
    return Document.objects.select_related("kb").filter(pk=document_id).first() if claimed else None


def document_sync(*, document: Document, now: datetime | None = None) -> str:
    """Fetch a URL document and stage what changed: "fetched", "not_modified", "unchanged", "expanded",
    or "failed" (the reason is on the document)."""
    now = now or timezone.now()
    served = document.version > 0
    try:
        fetched = fetch(
            document.url,
            etag=document.etag if served else "",
            last_modified=document.last_modified if served else "",
        )
    except FetchError as exc:
        return _sync_failed(document, str(exc), now)
    if fetched.status == 304:
        return _synced(document, fetched, now, "not_modified")
    pages = sitemap_urls(fetched.body)
    if pages is not None:
        return _expand(document, pages, fetched, now)
    return _stage(document, fetched, now)


def _stage(doc: Document, fetched: Fetched, now: datetime) -> str:
    fmt = guess_format(doc.url, fetched.content_type) or HTML
    content = documents.Content(doc.title, fmt, fetched.body, doc.visibility)
    digest = content.digest()
    if documents.same_content(doc, digest):
        return _synced(doc, fetched, now, "unchanged")
    _synced(doc, fetched, now, "fetched")
    documents.stage(doc, content, digest)
    return "fetched"


def _expand(doc: Document, pages: list[str], fetched: Fetched, now: datetime) -> str:
    """Each page of a sitemap becomes a URL document of the same KB (external id: its URL)."""
    added = 0
    for url in pages:
        try:
            change = documents.document_add_url(
                kb=doc.kb, url=url, visibility=doc.visibility, sync_minutes=doc.sync_minutes
            )
        except ServiceError as exc:
            logger.warning("sitemap %s: page %s refused: %s", doc.url, url, exc.message)
            continue
        added += change.outcome == documents.CREATED
    doc.format, doc.status, doc.error = Document.Format.SITEMAP, Document.Status.READY, ""
    doc.text = "\n".join(pages)
    doc.save(update_fields=["format", "status", "error", "text", "updated_at"])
    _synced(doc, fetched, now, "expanded")
    logger.info("sitemap %s: %d pages, %d new", doc.url, len(pages), added)
    return "expanded"


def _next_sync(doc: Document, now: datetime) -> datetime | None:
    return now + timedelta(minutes=doc.sync_minutes) if doc.sync_minutes else None


def _synced(doc: Document, fetched: Fetched, now: datetime, outcome: str) -> str:
    doc.etag, doc.last_modified = fetched.etag, fetched.last_modified
    doc.last_synced_at, doc.next_sync_at = now, _next_sync(doc, now)
    fields = ["etag", "last_modified", "last_synced_at", "next_sync_at", "updated_at"]
    if outcome in ("not_modified", "unchanged") and doc.status == Document.Status.FAILED and doc.version:
        doc.status, doc.error = Document.Status.READY, ""  # the last fetch failed; this one is fine again
        fields += ["status", "error"]
    doc.save(update_fields=fields)
    documents.announce(doc.kb_id)
    return outcome


def _sync_failed(doc: Document, reason: str, now: datetime) -> str:
    if doc.version:
        reason += f"; version {doc.version} is still served"
    doc.status, doc.error = Document.Status.FAILED, reason[:2000]
    doc.last_synced_at, doc.next_sync_at = now, _next_sync(doc, now)
    doc.save(update_fields=["status", "error", "last_synced_at", "next_sync_at", "updated_at"])
    documents.announce(doc.kb_id)
    logger.warning("support document %s: %s", doc.pk, reason)
    return "failed"
