"""Feed polling against saved RSS 2.0 / Atom files served by a local HTTP server (never the network).

Feeds may not reach internal addresses unless OUTBOUND_ALLOW_NETWORKS allows them: every test here allows
loopback (the local server), and the refusal tests take it away again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from apps.sentiment import selectors
from apps.sentiment.models import Item, ItemEntity, Source
from apps.sentiment.services import feeds
from apps.sentiment.services.entities import entity_upsert

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.django_db
REDIRECTS = {"/moved": "/rss", "/to-private": "http://10.0.0.5/rss", "/to-ftp": "ftp://files.example/rss"}


@pytest.fixture(autouse=True)
def local_server_allowed(settings) -> None:
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]


class _Handler(BaseHTTPRequestHandler):
    seen_headers: list[dict[str, str]] = []

    def log_message(self, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        _Handler.seen_headers.append(dict(self.headers))
        routes = {
            "/rss": ("feed_rss2.xml", '"v1"'),
            "/atom": ("feed_atom.xml", '"a1"'),
            "/bad": ("feed_malformed.xml", ""),
        }
        if self.path in REDIRECTS:
            self.send_response(301)
            self.send_header("Location", REDIRECTS[self.path])
            self.end_headers()
            return
        if self.path == "/error":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"internal error")
            return
        if self.path == "/slow":
            time.sleep(1.5)
        name, etag = routes.get(self.path, ("feed_rss2.xml", ""))
        if etag and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        body = (FIXTURES / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        if etag:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", "Tue, 14 May 2024 10:05:00 GMT")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (slow route)
            self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _feed(url: str, name: str = "markets") -> Source:
    return feeds.feed_source_create(name=name, url=url, poll_interval_seconds=600)


def test_rss_feed_items_are_stored_with_their_fields_and_linked(server: str) -> None:
    entity_upsert(ticker="AAPL", name="Apple", aliases=["Apple Inc."])
    source = _feed(f"{server}/rss")

    report = feeds.feed_poll(source=source)

    assert report.created == 3 and report.duplicates == 0
    item = Item.objects.get(url__endswith="apple-earnings")
    assert item.title.startswith("Apple beats quarterly earnings")
    assert item.text == "Apple Inc. ($AAPL) reported higher profit for the quarter."  # HTML stripped
    assert item.published_at == datetime(2024, 5, 14, 9, 30, tzinfo=UTC)
    assert item.language == "en" and item.external_id == "example-news-10001"
    linked = set(ItemEntity.objects.values_list("item__url", flat=True))
    assert linked == {item.url}  # "Pineapple growers" is not Apple
    source.refresh_from_db()
    assert source.last_success_at is not None and source.consecutive_failures == 0 and source.last_error == ""
    assert source.etag == '"v1"' and source.items_total == 3


def test_second_poll_is_a_conditional_get_and_stores_nothing_twice(server: str) -> None:
    source = _feed(f"{server}/rss")
    feeds.feed_poll(source=source)
    _Handler.seen_headers.clear()

    report = feeds.feed_poll(source=source)

    assert _Handler.seen_headers[-1].get("If-None-Match") == '"v1"'
    assert _Handler.seen_headers[-1].get("If-Modified-Since") == "Tue, 14 May 2024 10:05:00 GMT"
    assert report.created == 0 and Item.objects.count() == 3


def test_atom_feed_is_parsed(server: str) -> None:
    report = feeds.feed_poll(source=_feed(f"{server}/atom", "filings"))

    assert report.created == 2
    tesla = Item.objects.get(title__startswith="Tesla")
    assert tesla.text == "Tesla Inc. said the lay-offs affect every region."
    assert tesla.published_at == datetime(2024, 5, 14, 11, 0, tzinfo=UTC)
    msft = Item.objects.get(title__startswith="Microsoft")
    assert msft.published_at == datetime(2024, 5, 13, 18, 0, tzinfo=UTC)  # +02:00 converted, from <updated>


def test_failing_source_is_marked_backs_off_and_keeps_its_items(server: str) -> None:
    source = _feed(f"{server}/rss")
    feeds.feed_poll(source=source)
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    Source.objects.filter(pk=source.pk).update(url=f"{server}/error")
    source.refresh_from_db()

    with pytest.raises(feeds.FeedError, match="HTTP 500"):
        feeds.feed_poll(source=source, now=now)
    assert source.consecutive_failures == 1 and "HTTP 500" in source.last_error
    assert source.next_poll_at == now + timedelta(seconds=600)

    with pytest.raises(feeds.FeedError):
        feeds.feed_poll(source=source, now=now)
    assert source.consecutive_failures == 2 and source.next_poll_at == now + timedelta(seconds=1200)

    Source.objects.filter(pk=source.pk).update(url=f"{server}/bad")
    source.refresh_from_db()
    with pytest.raises(feeds.FeedError, match="not a valid RSS/Atom feed"):
        feeds.feed_poll(source=source, now=now)
    assert source.consecutive_failures == 3 and source.next_poll_at == now + timedelta(seconds=2400)
    assert Item.objects.count() == 3  # what was stored before the failures stays

    Source.objects.filter(pk=source.pk).update(url=f"{server}/rss")
    source.refresh_from_db()
    feeds.feed_poll(source=source, now=now)
    assert source.consecutive_failures == 0 and source.last_error == ""


def test_a_slow_server_times_out_instead_of_hanging(server: str) -> None:
    source = _feed(f"{server}/slow")
    started = time.monotonic()
    with pytest.raises(feeds.FeedError, match="timed out"):
        feeds.feed_poll(source=source, timeout=0.3)
    assert time.monotonic() - started < 1.4
    source.refresh_from_db()
    assert "timed out" in source.last_error and source.consecutive_failures == 1


def test_backoff_is_capped() -> None:
    source = Source(name="x", kind=Source.Kind.FEED, poll_interval_seconds=600)
    assert feeds.backoff_delay(source, 1) == timedelta(minutes=10)
    assert feeds.backoff_delay(source, 3) == timedelta(minutes=40)
    assert feeds.backoff_delay(source, 30) == feeds.MAX_BACKOFF


def test_beat_fans_out_one_poll_per_due_feed_and_a_feed_is_claimed_once(server: str) -> None:
    from apps.sentiment.tasks import poll_due_feeds

    due = _feed(f"{server}/rss", "due")
    later = _feed(f"{server}/atom", "later")
    Source.objects.filter(pk=later.pk).update(next_poll_at=datetime(2999, 1, 1, tzinfo=UTC))
    off = _feed(f"{server}/atom", "off")
    Source.objects.filter(pk=off.pk).update(enabled=False)

    assert selectors.feeds_due() == [due.pk]
    assert poll_due_feeds() == 1  # eager: the poll ran in-process

    due.refresh_from_db()
    assert due.last_success_at is not None and Item.objects.count() == 3
    assert feeds.feed_claim(source_id=due.pk) is None  # not due again until its interval passes


def test_feed_polling_is_on_the_beat_schedule() -> None:
    from apps.celery import app

    assert app.conf.beat_schedule["sentiment-score-stragglers"]["task"] == "sentiment.score_stragglers"
    entry = app.conf.beat_schedule["sentiment-poll-feeds"]
    assert entry["task"] == "sentiment.poll_due_feeds"
    assert entry["options"]["expires"] < entry["schedule"].total_seconds()


def test_feed_urls_must_be_http() -> None:
    from apps.core.errors import ServiceError

    with pytest.raises(ServiceError, match="http"):
        feeds.feed_source_create(name="local", url="file:///etc/passwd")


def test_a_feed_on_an_internal_address_cannot_be_created(server: str, settings) -> None:
    from apps.core.errors import ServiceError

    settings.OUTBOUND_ALLOW_NETWORKS = []
    for url, words in [
        (
            f"{server}/rss",
            f"feed URL {server}/rss resolves to 127.0.0.1, a loopback address; set OUTBOUND_ALLOW",
        ),
        ("http://192.168.0.10/rss", "resolves to 192.168.0.10, a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata endpoint, which is never allowed"),
        ("http://[::1]/rss", "resolves to ::1, a loopback address"),
    ]:
        with pytest.raises(ServiceError) as refused:
            _feed(url)
        assert refused.value.field == "url" and words in refused.value.message
    assert not Source.objects.exists()


def test_a_poll_is_refused_when_the_address_is_no_longer_allowed(server: str, settings) -> None:
    source = _feed(f"{server}/rss")  # created while loopback was allowed
    settings.OUTBOUND_ALLOW_NETWORKS = []

    with pytest.raises(feeds.FeedError, match="a loopback address"):
        feeds.feed_poll(source=source)

    assert (
        source.consecutive_failures == 1 and "resolves to 127.0.0.1, a loopback address" in source.last_error
    )
    assert Item.objects.count() == 0


def test_redirects_are_followed_but_each_hop_is_checked(server: str) -> None:
    assert feeds.feed_poll(source=_feed(f"{server}/moved")).created == 3  # a moved feed still works

    source = _feed(f"{server}/to-private", "moved away")
    with pytest.raises(feeds.FeedError) as refused:
        feeds.feed_poll(source=source)
    assert str(refused.value) == (
        f"feed URL {server}/to-private redirected to http://10.0.0.5/rss, which resolves to 10.0.0.5, "
        "a private address; set OUTBOUND_ALLOW_NETWORKS to allow it"
    )
    assert source.last_error == str(refused.value)
    with pytest.raises(feeds.FeedError, match="which is not an http"):
        feeds.feed_poll(source=_feed(f"{server}/to-ftp", "to ftp"))
