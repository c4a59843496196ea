"""Alert delivery: the dashboard notification, email, signed webhooks and Slack-compatible webhooks.

Channels are JSON objects in `AlertRule.channels`:

    {"type": "email", "to": ["ops@example.com"]}
    {"type": "webhook", "url": "https://receiver.example/hook", "secret": "a shared secret"}
    {"type": "slack", "url": "https://hooks.slack.com/services/..."}

Every alert event ("fired", "resolved") writes a dashboard `Notification` (it cannot fail) and one `Delivery`
row per channel, sent by the task `sentiment.delivery_send` right after the transaction commits. A failed
attempt is logged as a `DeliveryAttempt` (status code, error, duration) and the delivery is retried after
SENTIMENT_DELIVERY_BASE_DELAY * 2**(attempt - 1) seconds (30 s, 1 min, 2 min, ... capped at
SENTIMENT_DELIVERY_MAX_DELAY), up to SENTIMENT_DELIVERY_MAX_ATTEMPTS attempts; the periodic sweeper
`sentiment.deliveries_sweep` re-sends whatever is due, so a worker restart or a lost message loses nothing. Network errors, timeouts, HTTP 408, 429 and 5xx are retried; other 4xx answers
(a wrong URL, a rejected signature) fail at once. A delivery that fails for good leaves a notification saying
so; the alert itself is a row and is never lost.

Webhook format (type "webhook"): an HTTP POST with a JSON body (UTF-8)

    {"event": "fired" | "resolved", "delivery_id": 17,
     "alert": {"id", "url", "status", "severity", "rule": {"id", "name"}, "condition",
               "scope": {"entity": "AAPL" | null, "topic": "earnings" | null}, "value" (the z-score),
               "detail": {"z", "value", "baseline_mean", "baseline_std", "count", "window_start", ...},
               "message", "fired_at", "acknowledged_at", "acknowledged_by", "resolved_at",
               "items": [{"id", "title", "url", "published_at"}, ...]}}

and these headers:

    X-Contexta-Timestamp: 1767225600                 (Unix seconds when the attempt was made)
    X-Contexta-Signature: sha256=<hex>               HMAC-SHA256(key=secret, msg=f"{timestamp}.{body}")
    X-Contexta-Event: fired
    X-Contexta-Delivery: 17                          (the same on every retry: use it to drop duplicates)

A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes, compares it in constant time,
and rejects timestamps more than 5 minutes from its clock (replay window); `verify_signature` does exactly
that. Any 2xx answer counts as delivered.

Slack format (type "slack"): an incoming-webhook POST `{"text": ..., "blocks": [section, context]}`, which Slack,
Mattermost and Rocket.Chat accept. Email goes through Django's email backend (SMTP by the EMAIL_* settings).

Webhook and Slack URLs may not reach internal addresses (apps/core/outbound.py): checked when the rule is saved
and again on every attempt, where a refusal is a failed attempt that is not retried; redirects are not
followed. Secrets are write-only: people see `SECRET_MASK` in their place (`channels_masked`), and a channel
saved with the mask keeps its stored secret (`channels_keep_secrets`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from apps.core import outbound
from apps.core.errors import ServiceError
from apps.core.live import publish
from apps.sentiment.apps import LIVE_ALERTS
from apps.sentiment.models import Alert, AlertRule, Delivery, DeliveryAttempt, Notification
from apps.sentiment.selectors import DELIVERY_WAITING

logger = logging.getLogger(__name__)

REPLAY_WINDOW = 300
SIGNATURE_HEADER = "X-Contexta-Signature"
TIMESTAMP_HEADER = "X-Contexta-Timestamp"
CHANNEL_TYPES = ("email", "webhook", "slack")
SECRET_MASK = "********"  # noqa: S105 (what people see instead of a stored secret)  # nosec B105 # the mask shown in place of a secret, not a secret


# --- signing ------------------------------------------------------------------------------------------
def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """The X-Contexta-Signature value for a body sent at `timestamp`."""
    message = _as_bytes(str(timestamp)) + b"." + _as_bytes(body)
    return "sha256=" + hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: int | str,
    body: str | bytes,
    signature: str,
    tolerance: int = REPLAY_WINDOW,
    now: float | None = None,
) -> bool:
    """For receivers: True when `signature` is ours for this timestamp and body, and the timestamp is within
    `tolerance` seconds of now (older or future-dated requests are replays and are refused)."""
    try:
        sent = int(str(timestamp).strip())
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent, body), str(signature).strip())


def backoff_seconds(attempt: int) -> int:
    """Delay before the attempt after failed attempt number `attempt` (1-based)."""
    return int(
        min(
            settings.SENTIMENT_DELIVERY_MAX_DELAY,
            settings.SENTIMENT_DELIVERY_BASE_DELAY * 2 ** max(0, attempt - 1),
        )
    )


# --- channels -----------------------------------------------------------------------------------------
def _http_url(value: Any, where: str, kind: str) -> str:
    url = str(value or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ServiceError(f"{where}: the url must start with http:// or https://", field="channels")
    return outbound.url_check(url=url, what=f"{where}: {kind} URL", field="channels")


def _webhook_secret(raw: dict[str, Any], where: str) -> str:
    secret = raw.get("secret")
    if not isinstance(secret, str) or len(secret) < 8:
        raise ServiceError(f'{where}: a webhook needs "secret", at least 8 characters', field="channels")
    if secret == SECRET_MASK:
        raise ServiceError(
            f"{where}: type the webhook secret; {SECRET_MASK} keeps a stored secret only while the URL is unchanged",
            field="channels",
        )
    return secret


def _clean_channel(raw: Any, n: int) -> dict[str, Any]:
    where = f"channel {n}"
    if not isinstance(raw, dict):
        raise ServiceError(
            f'{where}: each channel is an object like {{"type": "email", "to": [...]}}', field="channels"
        )
    kind = raw.get("type")
    if kind == "email":
        to = raw.get("to")
        to = [to] if isinstance(to, str) else to
        if not isinstance(to, list) or not to:
            raise ServiceError(f'{where}: email needs "to": a list of addresses', field="channels")
        for address in to:
            try:
                validate_email(address)
            except ValidationError:
                raise ServiceError(
                    f"{where}: {address!r} is not an email address", field="channels"
                ) from None
        return {"type": "email", "to": [str(a) for a in to]}
    if kind == "webhook":
        secret = _webhook_secret(raw, where)
        return {"type": "webhook", "url": _http_url(raw.get("url"), where, kind), "secret": secret}
    if kind == "slack":
        return {"type": "slack", "url": _http_url(raw.get("url"), where, kind)}
    raise ServiceError(f"{where}: type must be one of {', '.join(CHANNEL_TYPES)}", field="channels")


def channels_validate(channels: Any) -> list[dict[str, Any]]:
    """Check and normalise a rule's channel list; raise ServiceError naming the faulty channel."""
    if not isinstance(channels, list):
        raise ServiceError("Channels are a JSON list of objects.", field="channels")
    return [_clean_channel(raw, n) for n, raw in enumerate(channels, start=1)]


def channels_masked(channels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The channels as people see them once saved: every secret replaced by SECRET_MASK."""
    return [{**c, "secret": SECRET_MASK} if "secret" in c else dict(c) for c in channels]


def channels_keep_secrets(*, channels: Any, stored: list[dict[str, Any]]) -> Any:
    """`channels` with each SECRET_MASK put back to the stored secret of the webhook with the same URL (the one
    at the same position first). A mask without such a webhook stays, and channels_validate asks for it."""
    if not isinstance(channels, list):
        return channels
    return [_keep_secret(c, n, stored) for n, c in enumerate(channels)]


def _keep_secret(channel: Any, n: int, stored: list[dict[str, Any]]) -> Any:
    if not isinstance(channel, dict) or channel.get("secret") != SECRET_MASK:
        return channel
    url = str(channel.get("url") or "").strip()
    places = [stored[n], *stored] if n < len(stored) else stored
    same = (c for c in places if c.get("type") == "webhook" and c.get("url") == url and c.get("secret"))
    match = next(same, None)
    return {**channel, "secret": match["secret"]} if match else channel


def secrets_added(*, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> int:
    """How many webhook secrets in `after` are new (typed in this save, not kept from `before`)."""
    old = {c.get("secret") for c in before}
    return sum(1 for c in after if c.get("secret") and c.get("secret") not in old)


def channel_label(channel: dict[str, Any]) -> str:
    """A short description without the secret."""
    if channel.get("type") == "email":
        return "email to " + ", ".join(channel.get("to", []))
    return f"{channel.get('type')} {urlsplit(str(channel.get('url', ''))).netloc}"


# --- messages -----------------------------------------------------------------------------------------
def scope_label(alert: Alert) -> str:
    if alert.entity_id:
        return alert.entity.ticker  # type: ignore[union-attr]
    if alert.topic_id:
        return f"topic {alert.topic.slug}"  # type: ignore[union-attr]
    return "all items"


_PHRASES: dict[str, str] = {
    AlertRule.Condition.SCORE_DROP: "mean score fell to {v:.2f} (usual {b:.2f})",
    AlertRule.Condition.SCORE_RISE: "mean score rose to {v:.2f} (usual {b:.2f})",
    AlertRule.Condition.NEGATIVE_SHARE: "negative share rose to {v:.0%} (usual {b:.0%})",
    AlertRule.Condition.VOLUME_SPIKE: "volume rose to {v:.1f} items/hour (usual {b:.1f})",
}


def alert_message(alert: Alert, event: str = "fired") -> str:
    """One line for people: what moved, by how much, over how many items."""
    d = alert.detail or {}
    phrase = _PHRASES.get(str(alert.rule.condition), "value {v} (usual {b})")
    try:
        what = phrase.format(v=float(d["value"]), b=float(d["baseline_mean"]))
    except (KeyError, TypeError, ValueError):
        what = alert.rule.get_condition_display().lower()
    minutes = d.get("window_minutes", alert.rule.window_minutes)
    text = (
        f"{scope_label(alert)}: {what}, z = {alert.value:.1f}, {d.get('count', '?')} items in {minutes} min"
    )
    text += f" (rule {alert.rule.name!r})"
    if event == "resolved":
        who = alert.resolved_by.get_username() if alert.resolved_by else "automatically, back to normal"
        return f"Resolved ({who}): {text}"
    return f"[{alert.severity.upper()}] {text}"


def site_url() -> str:
    return str(settings.SITE_URL)


def alert_url(alert: Alert) -> str:
    return site_url() + reverse("sentiment:alert", args=[alert.pk])


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def alert_payload(alert: Alert, *, event: str, delivery_id: int | None = None) -> dict[str, Any]:
    """The JSON document webhooks receive (see the module docstring)."""
    items = alert.items.order_by("-published_at")[:20]
    return {
        "event": event,
        "delivery_id": delivery_id,
        "alert": {
            "id": alert.pk,
            "url": alert_url(alert),
            "status": alert.status,
            "severity": alert.severity,
            "rule": {"id": alert.rule_id, "name": alert.rule.name},
            "condition": alert.rule.condition,
            "scope": {
                "entity": alert.entity.ticker if alert.entity_id else None,  # type: ignore[union-attr]
                "topic": alert.topic.slug if alert.topic_id else None,  # type: ignore[union-attr]
            },
            "value": alert.value,
            "detail": alert.detail,
            "message": alert_message(alert, event),
            "fired_at": _iso(alert.fired_at),
            "acknowledged_at": _iso(alert.acknowledged_at),
            "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by else None,
            "resolved_at": _iso(alert.resolved_at),
            "items": [
                {
                    "id": i.pk,
                    "title": i.title or i.text[:200],
                    "url": i.url,
                    "published_at": _iso(i.published_at),
                }
                for i in items
            ],
        },
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert, *, event: str) -> dict[str, Any]:
    """A Slack incoming-webhook message: plain `text` for notifications, blocks for the channel."""
    message = alert_message(alert, event)
    link = f"<{alert_url(alert)}|Open alert #{alert.pk}>"
    context = f"severity {alert.severity} · {alert.rule.get_condition_display()} · fired {alert.fired_at:%Y-%m-%d %H:%M} UTC"
    return {
        "text": message,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{_slack_escape(message)}\n{link}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(context)}]},
        ],
    }


# --- creating deliveries ------------------------------------------------------------------------------
def deliveries_create(*, alert: Alert, event: str) -> list[Delivery]:
    """The notification and one delivery per channel of the alert's rule; sending starts after commit."""
    Notification.objects.create(alert=alert, message=alert_message(alert, event)[:500])
    now = timezone.now()
    rows = [
        Delivery.objects.create(
            alert=alert, channel=c, channel_type=c.get("type", ""), event=event, next_attempt_at=now
        )
        for c in alert.rule.channels or []
    ]
    ids = [d.pk for d in rows]
    if ids:
        transaction.on_commit(lambda: enqueue_deliveries(ids))
    return rows


def enqueue_deliveries(ids: list[int]) -> None:
    """Queue a send per delivery; when the broker is down the sweeper sends them later."""
    from apps.sentiment.tasks import send_delivery

    for pk in ids:
        try:
            send_delivery.apply_async((pk,), expires=settings.SENTIMENT_DELIVERY_MAX_DELAY)
        except Exception:  # the row is due, so the sweeper picks it up
            logger.exception("could not enqueue delivery %s; the sweeper will send it", pk)


# --- sending ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str = ""
    retry: bool = True


Sender = Callable[[Delivery], Outcome]
SENDERS: dict[str, Sender] = {}


def sender(kind: str) -> Callable[[Sender], Sender]:
    def register(fn: Sender) -> Sender:
        SENDERS[kind] = fn
        return fn

    return register


def post_json(url: str, body: bytes, headers: dict[str, str], *, what: str = "webhook URL") -> Outcome:
    """POST with a timeout; 2xx is success, 408/429/5xx and network errors may pass, other 4xx do not.

    An internal address or a redirect is refused (outbound.url_open) and not retried."""
    request = urllib.request.Request(  # noqa: S310 (url_open allows http and https only)
        url,
        data=body,
        headers={"Content-Type": "application/json", "User-Agent": "Contexta-Alerts/1", **headers},
        method="POST",
    )
    timeout = settings.SENTIMENT_WEBHOOK_TIMEOUT
    try:
        with outbound.url_open(request=request, what=what, timeout=timeout) as response:
            response.read(4096)
            return Outcome(True, response.status)
    except outbound.OutboundError as exc:
        return Outcome(False, None, exc.message, retry=False)
    except urllib.error.HTTPError as exc:
        snippet = exc.read(300).decode("utf-8", "replace") if exc.fp else ""
        retry = exc.code >= 500 or exc.code in (408, 429)
        return Outcome(False, exc.code, f"HTTP {exc.code} {exc.reason} {snippet}".strip(), retry)


@sender("webhook")
def send_webhook(delivery: Delivery) -> Outcome:
    body = json.dumps(alert_payload(delivery.alert, event=delivery.event, delivery_id=delivery.pk)).encode(
        "utf-8"
    )
    timestamp = int(time.time())
    headers = {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(delivery.channel["secret"], timestamp, body),
        "X-Contexta-Event": delivery.event,
        "X-Contexta-Delivery": str(delivery.pk),
    }
    return post_json(delivery.channel["url"], body, headers)


@sender("slack")
def send_slack(delivery: Delivery) -> Outcome:
    body = json.dumps(slack_payload(delivery.alert, event=delivery.event)).encode("utf-8")
    return post_json(delivery.channel["url"], body, {}, what="Slack URL")


@sender("email")
def send_email(delivery: Delivery) -> Outcome:
    alert = delivery.alert
    subject = f"[Contexta {alert.severity}] {scope_label(alert)}: {alert.rule.name}"
    if delivery.event == "resolved":
        subject = "Resolved: " + subject
    lines = [alert_message(alert, delivery.event), "", alert_url(alert), ""]
    lines += [
        f"- {i.title or i.text[:120]} {i.url or ''}".rstrip()
        for i in alert.items.order_by("-published_at")[:10]
    ]
    sent = EmailMessage(subject=subject[:200], body="\n".join(lines), to=delivery.channel["to"]).send()
    return Outcome(bool(sent), None, "" if sent else "the email backend sent nothing")


def delivery_send(*, delivery_id: int, now: datetime | None = None) -> Delivery | None:
    """Make one attempt at a due delivery and log it; None when it is not due or another worker holds it.

    The claim moves next_attempt_at a lease ahead, so a worker that dies mid-send is retried by the sweeper."""
    now = now or timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = Delivery.objects.filter(due, pk=delivery_id, status__in=DELIVERY_WAITING).update(
        next_attempt_at=now + timedelta(seconds=settings.SENTIMENT_DELIVERY_LEASE)
    )
    if not claimed:
        return None
    delivery = Delivery.objects.select_related(
        "alert__rule", "alert__entity", "alert__topic", "alert__acknowledged_by", "alert__resolved_by"
    ).get(pk=delivery_id)
    send = SENDERS.get(delivery.channel_type)
    started = time.perf_counter()
    if send is None:
        outcome = Outcome(False, None, f"unknown channel type {delivery.channel_type!r}", retry=False)
    else:
        try:
            outcome = send(delivery)
        except Exception as exc:  # a channel being down must never break the pass; log and retry
            outcome = Outcome(False, None, f"{type(exc).__name__}: {exc}"[:2000], retry=True)
    _record(delivery, outcome, (time.perf_counter() - started) * 1000, now)
    return delivery


@transaction.atomic
def _record(delivery: Delivery, outcome: Outcome, duration_ms: float, now: datetime) -> None:
    number = delivery.attempts + 1
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=number,
        ok=outcome.ok,
        status_code=outcome.status_code,
        error=outcome.error[:2000],
        duration_ms=round(duration_ms, 2),
    )
    delivery.attempts = number
    if outcome.ok:
        delivery.status, delivery.sent_at, delivery.next_attempt_at = (
            Delivery.Status.SENT,
            timezone.now(),
            None,
        )
    elif outcome.retry and number < settings.SENTIMENT_DELIVERY_MAX_ATTEMPTS:
        delivery.status = Delivery.Status.RETRYING
        delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(number))
    else:
        delivery.status, delivery.next_attempt_at = Delivery.Status.FAILED, None
        Notification.objects.create(
            alert=delivery.alert,
            message=f"Delivery of alert #{delivery.alert_id} by {channel_label(delivery.channel)} failed after "
            f"{number} attempt(s): {outcome.error[:200]}",
        )
        logger.warning("delivery %s failed for good: %s", delivery.pk, outcome.error)
    delivery.save(update_fields=["attempts", "status", "sent_at", "next_attempt_at"])
    publish(LIVE_ALERTS)  # the alert page lists deliveries and their attempts; a failure adds a notification
