"""Delivery: signed webhooks checked by a real receiver, retries with backoff, Slack format, email.

The receiver listens on 127.0.0.1, which outbound requests refuse unless OUTBOUND_ALLOW_NETWORKS allows it:
the `receiver` fixture allows loopback, and the refusal tests take it away again.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from apps.sentiment import selectors
from apps.sentiment.models import Alert, AlertRule, Delivery, Notification
from apps.sentiment.services import alerts as alert_services
from apps.sentiment.services import delivery as svc
from apps.sentiment.tasks import sweep_deliveries
from tests.apps.sentiment import alert_factories as f

pytestmark = pytest.mark.django_db
SECRET = "a-shared-secret-for-tests"
PUBLIC = "93.184.216.34"
LOOPBACK_ALLOWED = ["127.0.0.0/8"]


class Receiver:
    """A local HTTP endpoint that answers with scripted status codes, verifies signatures and records requests."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.location = ""  # sent with a 3xx status
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                verified = svc.verify_signature(
                    SECRET,
                    self.headers.get("X-Contexta-Timestamp", ""),
                    body,
                    self.headers.get("X-Contexta-Signature", ""),
                )
                receiver.requests.append({"headers": dict(self.headers), "body": body, "verified": verified})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.location)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"server trouble")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.OUTBOUND_ALLOW_NETWORKS = LOOPBACK_ALLOWED
    with Receiver() as r:
        yield r


@pytest.fixture
def dns(monkeypatch) -> dict[str, list[str]]:
    """Host names resolved without the network: name -> addresses; other names resolve as usual."""
    names: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in names:
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port or 0))) for a in names[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def fired_alert(channels: list[dict[str, Any]]) -> Alert:
    """An alert fired through the real evaluation pass (its deliveries are created, not yet sent)."""
    now = timezone.now()
    ent = f.entity("ACME")
    f.series([*f.calm(48), f.stats(12, -0.6, 11)], end=now, ent=ent)
    hour = now.replace(minute=0, second=0, microsecond=0)
    f.item(ent, hour + (now - hour) / 2, -0.9, title="ACME <recalls> every widget & more")
    f.rule(name="ACME drop", entity=ent, channels=channels, min_count=5)
    alert_services.alerts_evaluate(at=now)
    return Alert.objects.get()


def test_webhook_is_signed_and_verified_by_the_receiver(receiver, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        alert = fired_alert([{"type": "webhook", "url": receiver.url, "secret": SECRET}])

    # the on-commit hook sent it (eager Celery in tests) and the receiver accepted the signature
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request["verified"] is True
    assert request["headers"]["X-Contexta-Signature"].startswith("sha256=")
    assert request["headers"]["X-Contexta-Event"] == "fired"
    payload = json.loads(request["body"])
    assert payload["event"] == "fired" and payload["alert"]["id"] == alert.pk
    assert payload["alert"]["scope"] == {"entity": "ACME", "topic": None}
    assert payload["alert"]["url"].endswith(f"/sentiment/alerts/{alert.pk}/")
    assert payload["alert"]["items"][0]["url"].startswith("https://news.example/")
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert list(delivery.attempt_log.values_list("ok", "status_code")) == [(True, 200)]
    assert payload["delivery_id"] == delivery.pk == int(request["headers"]["X-Contexta-Delivery"])


def test_verify_signature_rejects_tampering_wrong_secrets_and_replays():
    body = b'{"event": "fired"}'
    ts = int(time.time())
    good = svc.sign(SECRET, ts, body)
    assert svc.verify_signature(SECRET, ts, body, good)
    assert svc.verify_signature(SECRET, str(ts), body.decode(), good)  # str or bytes alike
    assert not svc.verify_signature(SECRET, ts, body + b" ", good)
    assert not svc.verify_signature("another secret", ts, body, good)
    assert not svc.verify_signature(SECRET, ts + 1, body, good)  # the timestamp is signed too
    assert not svc.verify_signature(SECRET, ts, body, good, now=ts + 301)  # outside the replay window
    assert not svc.verify_signature(SECRET, ts, body, good, now=ts - 301)  # from the future
    assert svc.verify_signature(SECRET, ts, body, good, now=ts + 299)
    assert not svc.verify_signature(SECRET, "yesterday", body, good)


def test_failed_deliveries_back_off_and_are_sent_in_the_end(receiver):
    receiver.statuses = [500, 500, 200]
    alert = fired_alert([{"type": "webhook", "url": receiver.url, "secret": SECRET}])
    delivery = Delivery.objects.get()
    t = timezone.now()

    svc.delivery_send(delivery_id=delivery.pk, now=t)
    delivery.refresh_from_db()
    first_retry = delivery.next_attempt_at
    assert delivery.status == "retrying" and first_retry == t + timedelta(seconds=30)
    # not due yet: nothing is sent, and the sweeper does not pick it
    assert svc.delivery_send(delivery_id=delivery.pk, now=t + timedelta(seconds=10)) is None
    assert selectors.deliveries_due(now=t + timedelta(seconds=10)) == []
    assert selectors.deliveries_due(now=first_retry) == [delivery.pk]

    svc.delivery_send(delivery_id=delivery.pk, now=first_retry)
    delivery.refresh_from_db()
    second_retry = delivery.next_attempt_at
    assert second_retry - first_retry == timedelta(seconds=60)  # the wait doubled

    svc.delivery_send(delivery_id=delivery.pk, now=second_retry)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("sent", 3, None)
    log = list(delivery.attempt_log.values_list("number", "ok", "status_code"))
    assert log == [(1, False, 500), (2, False, 500), (3, True, 200)]
    assert "HTTP 500" in delivery.attempt_log.first().error
    assert all(r["verified"] for r in receiver.requests) and len(receiver.requests) == 3
    alert.refresh_from_db()
    assert alert.status == "fired"


def test_backoff_grows_to_a_cap(settings):
    waits = [svc.backoff_seconds(n) for n in range(1, 12)]
    assert waits[:4] == [30, 60, 120, 240]
    assert waits == sorted(waits) and max(waits) == settings.SENTIMENT_DELIVERY_MAX_DELAY


def test_delivery_settings_are_read_when_used(receiver, settings, monkeypatch):
    settings.SENTIMENT_DELIVERY_BASE_DELAY, settings.SENTIMENT_DELIVERY_MAX_DELAY = 5, 12
    assert [svc.backoff_seconds(n) for n in (1, 2, 3, 4)] == [5, 10, 12, 12]

    settings.SITE_URL, settings.SENTIMENT_DELIVERY_LEASE = "https://monitor.example", 45
    alert = fired_alert([{"type": "webhook", "url": receiver.url, "secret": SECRET}])
    assert svc.alert_url(alert) == f"https://monitor.example/sentiment/alerts/{alert.pk}/"
    seen: dict[str, Any] = {}

    def send(delivery: Delivery) -> svc.Outcome:  # look at the claim while the attempt is in flight
        seen["lease"] = Delivery.objects.get(pk=delivery.pk).next_attempt_at
        return svc.Outcome(True, 200)

    monkeypatch.setitem(svc.SENDERS, "webhook", send)
    t = timezone.now()
    svc.delivery_send(delivery_id=Delivery.objects.get().pk, now=t)
    assert seen["lease"] == t + timedelta(seconds=45)


def test_the_webhook_timeout_is_read_when_sending(settings, monkeypatch, dns):
    settings.SENTIMENT_WEBHOOK_TIMEOUT = 2.5
    dns["receiver.example"] = [PUBLIC]
    connects: list[tuple[tuple[str, int], float]] = []

    def create_connection(address: tuple[str, int], timeout: float, *args: Any) -> None:
        connects.append((address, timeout))
        raise TimeoutError("slow receiver")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    with pytest.raises(urllib.error.URLError, match="slow receiver"):
        svc.post_json("https://receiver.example/hook", b"{}", {})
    assert connects == [((PUBLIC, 443), 2.5)]  # to the vetted address, with the configured timeout


def test_a_channel_that_stays_down_fails_for_good_but_the_alert_stays(receiver, settings):
    settings.SENTIMENT_DELIVERY_MAX_ATTEMPTS = 3
    receiver.statuses = [503, 503, 503]
    alert = fired_alert([{"type": "webhook", "url": receiver.url, "secret": SECRET}])
    delivery = Delivery.objects.get()
    t = timezone.now()
    for _ in range(3):
        svc.delivery_send(delivery_id=delivery.pk, now=t)
        delivery.refresh_from_db()
        t = delivery.next_attempt_at or t
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert Alert.objects.filter(pk=alert.pk, status="fired").exists()
    assert Notification.objects.filter(alert=alert, message__contains="failed after 3 attempt").exists()


def test_a_rejecting_endpoint_is_not_retried(receiver):
    receiver.statuses = [404]
    fired_alert([{"type": "webhook", "url": receiver.url, "secret": SECRET}])
    delivery = svc.delivery_send(delivery_id=Delivery.objects.get().pk)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.attempt_log.get().status_code == 404 and len(receiver.requests) == 1


def test_each_attempt_tells_the_live_alert_pages(receiver, monkeypatch, django_capture_on_commit_callbacks):
    receiver.statuses = [503]
    fired_alert([{"type": "webhook", "url": receiver.url, "secret": SECRET}])
    published: list[tuple[str, ...]] = []
    monkeypatch.setattr(svc, "publish", lambda *topics, **kw: published.append(topics))
    svc.delivery_send(delivery_id=Delivery.objects.get().pk)
    assert published == [("sentiment.alerts",)]


def test_an_unreachable_endpoint_is_logged_and_retried(settings):
    settings.OUTBOUND_ALLOW_NETWORKS = LOOPBACK_ALLOWED
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fired_alert([{"type": "webhook", "url": f"http://127.0.0.1:{port}/hook", "secret": SECRET}])
    delivery = svc.delivery_send(delivery_id=Delivery.objects.get().pk)
    attempt = delivery.attempt_log.get()
    assert delivery.status == "retrying" and attempt.status_code is None
    assert "URLError" in attempt.error or "refused" in attempt.error.lower()


def test_the_sweeper_sends_due_deliveries(receiver):
    receiver.statuses = [500]
    fired_alert([{"type": "webhook", "url": receiver.url, "secret": SECRET}])
    delivery = Delivery.objects.get()
    svc.delivery_send(delivery_id=delivery.pk)  # fails once; due again in 30 s
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))

    assert sweep_deliveries.delay().get() == 1  # eager in tests: the send ran too
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert sweep_deliveries.delay().get() == 0


def test_slack_message_format(receiver):
    fired_alert([{"type": "slack", "url": receiver.url}])
    svc.delivery_send(delivery_id=Delivery.objects.get().pk)
    body = json.loads(receiver.requests[0]["body"])
    assert body["text"].startswith("[WARNING] ACME: mean score fell to")
    section, context = body["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "|Open alert #" in section["text"]["text"] and "/sentiment/alerts/" in section["text"]["text"]
    assert context["type"] == "context" and "severity warning" in context["elements"][0]["text"]
    assert "X-Contexta-Signature" not in receiver.requests[0]["headers"]


def test_slack_text_is_escaped():
    alert = fired_alert([])
    alert.rule.name = "<b>drop & co</b>"
    text = svc.slack_payload(alert, event="fired")["blocks"][0]["text"]["text"]
    assert "&lt;b&gt;drop &amp; co&lt;/b&gt;" in text


def test_email_goes_through_the_django_backend(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    alert = fired_alert([{"type": "email", "to": ["ops@example.com", "risk@example.com"]}])
    delivery = svc.delivery_send(delivery_id=Delivery.objects.get().pk)
    assert delivery.status == "sent"
    [message] = mail.outbox
    assert message.to == ["ops@example.com", "risk@example.com"]
    assert message.subject == "[Contexta warning] ACME: ACME drop"
    assert f"/sentiment/alerts/{alert.pk}/" in message.body
    assert "ACME <recalls> every widget" in message.body


def test_resolving_sends_a_resolved_event(receiver, make_user, django_capture_on_commit_callbacks):
    alert = fired_alert([{"type": "webhook", "url": receiver.url, "secret": SECRET}])
    with django_capture_on_commit_callbacks(execute=True):
        alert_services.alert_resolve(alert=alert, user=make_user("analyst", username="ana"))
    resolved = json.loads(receiver.requests[-1]["body"])
    assert resolved["event"] == "resolved" and resolved["alert"]["status"] == "resolved"
    assert resolved["alert"]["message"].startswith("Resolved (ana)")


def test_channel_validation(dns):
    dns["h.example"] = dns["hooks.slack.com"] = [PUBLIC]
    ok = svc.channels_validate(
        [
            {"type": "email", "to": ["a@example.com"]},
            {"type": "webhook", "url": "https://h.example/x", "secret": "12345678"},
            {"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"},
        ]
    )
    assert [c["type"] for c in ok] == ["email", "webhook", "slack"]
    for bad, words in [
        ({"type": "pager"}, "type must be one of"),
        ({"type": "email", "to": ["not an address"]}, "not an email address"),
        ({"type": "webhook", "url": "https://h.example/x"}, "secret"),
        ({"type": "slack", "url": "javascript:alert(1)"}, "http"),
    ]:
        with pytest.raises(svc.ServiceError, match=words):
            svc.channels_validate([bad])


# --- internal addresses -------------------------------------------------------------------------------
def test_a_rule_cannot_be_saved_with_a_channel_to_an_internal_address(dns):
    dns["metadata.google.internal"] = ["169.254.169.254"]
    dns["hooks.example"] = [PUBLIC, "10.1.2.3"]  # one internal address is enough
    good = {"name": "r", "condition": "score_drop", "threshold": 3, "window_minutes": 60, "min_count": 5}
    with pytest.raises(svc.ServiceError) as private:
        alert_services.rule_create(
            user=None, channels=[{"type": "webhook", "url": "http://10.0.0.5/", "secret": SECRET}], **good
        )
    assert private.value.field == "channels"
    assert private.value.message == (
        "channel 1: webhook URL http://10.0.0.5/ resolves to 10.0.0.5, a private address; "
        "set OUTBOUND_ALLOW_NETWORKS to allow it"
    )
    for url, words in [
        ("http://127.0.0.1:8000/admin/", "resolves to 127.0.0.1, a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata endpoint, which is never allowed"),
        ("http://metadata.google.internal/computeMetadata/v1/", "names a cloud metadata host"),
        ("https://hooks.example/x", "resolves to 10.1.2.3, a private address"),
        ("http://[::ffff:10.0.0.5]/", "which stands for 10.0.0.5, a private address"),
    ]:
        with pytest.raises(svc.ServiceError, match=re.escape(words)):
            svc.channels_validate([{"type": "slack", "url": url}])
    assert not AlertRule.objects.exists()


def test_the_allow_setting_lets_a_rule_reach_an_internal_receiver(settings):
    settings.OUTBOUND_ALLOW_NETWORKS = ["10.0.0.0/8"]
    [channel] = svc.channels_validate([{"type": "webhook", "url": "http://10.0.0.5/hook", "secret": SECRET}])
    assert channel["url"] == "http://10.0.0.5/hook"
    settings.OUTBOUND_ALLOW_NETWORKS = ["169.254.0.0/16"]
    with pytest.raises(svc.ServiceError, match="a cloud metadata endpoint"):  # never, whatever is allowed
        svc.channels_validate([{"type": "slack", "url": "http://169.254.169.254/"}])


def test_a_delivery_to_an_internal_address_fails_at_send_time_with_the_reason(receiver, settings):
    fired_alert([{"type": "webhook", "url": receiver.url, "secret": SECRET}])  # saved while allowed
    settings.OUTBOUND_ALLOW_NETWORKS = []

    delivery = svc.delivery_send(delivery_id=Delivery.objects.get().pk)

    attempt = delivery.attempt_log.get()
    assert (delivery.status, delivery.attempts, attempt.ok, attempt.status_code) == ("failed", 1, False, None)
    assert attempt.error == (
        f"webhook URL {receiver.url} resolves to 127.0.0.1, a loopback address; "
        "set OUTBOUND_ALLOW_NETWORKS to allow it"
    )
    assert receiver.requests == []  # nothing left the server
    assert Notification.objects.filter(message__contains="a loopback address").exists()


def test_dns_that_changes_after_saving_is_checked_again_when_sending(dns, settings):
    dns["hooks.example"] = [PUBLIC]
    channels = svc.channels_validate([{"type": "slack", "url": "https://hooks.example/services/T/B/X"}])
    fired_alert(channels)  # saved while the name was public
    dns["hooks.example"] = ["10.9.8.7"]  # rebinding to an internal address after the check

    delivery = svc.delivery_send(delivery_id=Delivery.objects.get().pk)

    assert delivery.status == "failed"
    assert "Slack URL https://hooks.example/services/T/B/X resolves to 10.9.8.7, a private address" in (
        delivery.attempt_log.get().error
    )


def test_a_webhook_that_redirects_is_not_followed(receiver):
    receiver.statuses = [302]
    receiver.location = "http://169.254.169.254/latest/meta-data/"
    fired_alert([{"type": "webhook", "url": receiver.url, "secret": SECRET}])

    delivery = svc.delivery_send(delivery_id=Delivery.objects.get().pk)

    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "redirects to http://169.254.169.254/latest/meta-data/ (HTTP 302); redirects are not followed" in (
        delivery.attempt_log.get().error
    )
    assert len(receiver.requests) == 1
