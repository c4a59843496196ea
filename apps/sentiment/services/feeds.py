"""RSS/Atom feeds: fetch with a timeout and conditional GET, parse with feedparser, ingest, and back off.

The HTTP fetch is ours (urllib with a timeout and a size cap); feedparser only parses the bytes, so a slow
server can never hang a worker. A poll that fails (timeout, connection error, HTTP error, unparseable
XML) marks the source with the error and schedules the next try after
poll_interval * 2 ** (failures - 1), capped at MAX_BACKOFF; the items already stored stay. A success resets
the failure count. `selectors.feeds_due` and the compare-and-set in `feed_claim` let beat fan out one task per due
feed without two workers polling the same one.

Feed URLs may not reach internal addresses (apps/core/outbound.py): checked when the feed is created and on
every poll, each redirect hop too (at most MAX_REDIRECTS); a refused poll fails like any other, with the reason.
"""

from __future__ import annotations

import calendar
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db.models import F, Q
from django.utils import timezone

from apps.core import outbound
from apps.core.errors import ServiceError
from apps.sentiment.models import Source
from apps.sentiment.services.ingest import IngestReport, ItemRecord, items_ingest

logger = logging.getLogger(__name__)

FETCH_TIMEOUT = 15.0
MAX_FEED_BYTES = 5 * 1024 * 1024
MAX_BACKOFF = timedelta(hours=6)
USER_AGENT = "Contexta-sentiment/1 (+feed poller)"
MAX_REDIRECTS = 3


class FeedError(Exception):
    """A poll failed in a way worth retrying later (network, HTTP status, unparseable feed)."""


@dataclass(frozen=True)
class FetchResult:
    status: int
    body: bytes
    etag: str
    modified: str


def fetch(url: str, *, etag: str = "", modified: str = "", timeout: float = FETCH_TIMEOUT) -> FetchResult:
    """GET `url` with If-None-Match / If-Modified-Since; a 304 comes back with an empty body."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/rss+xml, application/atom+xml, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    if not url.lower().startswith(("http://", "https://")):
        raise FeedError(f"not an http(s) URL: {url[:100]}")
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked above)
    try:
        with outbound.url_open(
            request=request, what="feed URL", timeout=timeout, max_redirects=MAX_REDIRECTS
        ) as resp:
            body = resp.read(MAX_FEED_BYTES + 1)
            if len(body) > MAX_FEED_BYTES:
                raise FeedError(f"feed larger than {MAX_FEED_BYTES // (1024 * 1024)} MB")
            return FetchResult(
                resp.status, body, resp.headers.get("ETag", ""), resp.headers.get("Last-Modified", "")
            )
    except outbound.OutboundError as exc:
        raise FeedError(exc.message) from None
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return FetchResult(304, b"", etag, modified)
        raise FeedError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise FeedError(f"cannot reach the feed: {exc.reason}") from None
    except TimeoutError:
        raise FeedError(f"timed out after {timeout:g} s") from None
    except OSError as exc:
        raise FeedError(f"connection failed: {exc}") from None


def _entry_time(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    return None


def _entry_text(entry: Any) -> str:
    from django.utils.html import strip_tags

    content = entry.get("content") or []
    raw = content[0].get("value", "") if content else entry.get("summary", "")
    return " ".join(strip_tags(raw or "").split())


def parse_feed(body: bytes) -> tuple[list[ItemRecord], str]:
    """Records of an RSS 2.0 or Atom document, and the feed's language; FeedError when nothing parses."""
    import feedparser

    parsed = feedparser.parse(body)
    if parsed.bozo and not parsed.entries:
        reason = getattr(parsed.get("bozo_exception"), "getMessage", lambda: None)() or parsed.get(
            "bozo_exception"
        )
        raise FeedError(f"not a valid RSS/Atom feed: {reason}")
    if not parsed.entries and not parsed.get("version"):
        raise FeedError("not an RSS/Atom feed (no channel or entries found)")
    language = str(parsed.feed.get("language", "") or "").split("-")[0].lower()
    records = [
        ItemRecord(
            title=" ".join(strip_title(entry.get("title", "")).split()),
            text=_entry_text(entry),
            url=entry.get("link") or None,
            published_at=_entry_time(entry),
            language=language,
            external_id=str(entry.get("id", "") or "")[:300],
        )
        for entry in parsed.entries
    ]
    return records, language


def strip_title(title: str) -> str:
    from django.utils.html import strip_tags

    return strip_tags(title or "")


def backoff_delay(source: Source, failures: int) -> timedelta:
    base = timedelta(seconds=max(60, source.poll_interval_seconds))
    return min(MAX_BACKOFF, base * (1 << max(0, failures - 1)))


def feed_source_create(*, name: str, url: str, poll_interval_seconds: int = 600) -> Source:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ServiceError("a feed URL must start with http:// or https://", field="url")
    outbound.url_check(url=url, what="feed URL", field="url")
    if Source.objects.filter(name=name).exists():
        raise ServiceError(f"a source named {name!r} already exists", field="name")
    return Source.objects.create(
        name=name, kind=Source.Kind.FEED, url=url, poll_interval_seconds=max(60, poll_interval_seconds)
    )


def feed_claim(*, source_id: int, now: datetime | None = None) -> Source | None:
    """Compare-and-set: push next_poll_at forward so nobody else polls this feed now; None if not due."""
    now = now or timezone.now()
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return None
    lease = now + timedelta(seconds=max(60, source.poll_interval_seconds))
    claimed = (
        Source.objects.filter(pk=source_id, kind=Source.Kind.FEED, enabled=True)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .update(next_poll_at=lease, last_polled_at=now)
    )
    if not claimed:
        return None
    source.refresh_from_db()
    return source


def feed_poll(*, source: Source, now: datetime | None = None, timeout: float = FETCH_TIMEOUT) -> IngestReport:
    """Fetch, parse and ingest one feed, recording success or failure on the source."""
    now = now or timezone.now()
    try:
        result = fetch(source.url, etag=source.etag, modified=source.modified, timeout=timeout)
        records = parse_feed(result.body)[0] if result.status != 304 else []
    except FeedError as exc:
        feed_mark_failed(source=source, error=str(exc), now=now)
        raise
    report = items_ingest(source=source, records=records, now=now)
    Source.objects.filter(pk=source.pk).update(
        last_polled_at=now,
        last_success_at=now,
        last_error="",
        consecutive_failures=0,
        next_poll_at=now + timedelta(seconds=max(60, source.poll_interval_seconds)),
        etag=(result.etag or "")[:300],
        modified=(result.modified or "")[:300],
    )
    source.refresh_from_db()
    return report


def feed_mark_failed(*, source: Source, error: str, now: datetime | None = None) -> Source:
    now = now or timezone.now()
    failures = source.consecutive_failures + 1
    Source.objects.filter(pk=source.pk).update(
        last_polled_at=now,
        last_error=error[:2000],
        consecutive_failures=F("consecutive_failures") + 1,
        next_poll_at=now + backoff_delay(source, failures),
    )
    source.refresh_from_db()
    logger.warning("feed %s failed (%d in a row): %s", source.name, source.consecutive_failures, error)
    return source
