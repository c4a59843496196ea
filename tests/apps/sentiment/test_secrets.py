"""Webhook secrets are write-only: typed once, masked on every page and API answer, kept when left masked."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.utils import timezone

from apps.sentiment.models import AlertRule, Delivery
from apps.sentiment.services import alerts as alert_services
from apps.sentiment.services import delivery as svc
from tests.apps.sentiment import alert_factories as f

pytestmark = pytest.mark.django_db
SECRET = "first-secret-do-not-show"
HOOK = "https://93.184.216.34/hook"  # a public address literal: the save-time check needs no DNS
MASK = svc.SECRET_MASK


@pytest.fixture
def analyst(client, make_user):
    client.force_login(make_user("analyst", username="ana"))
    return client


@pytest.fixture
def entity():
    now = timezone.now()
    ent = f.entity("ACME")
    f.series([*f.calm(48), f.stats(12, -0.6, 11)], end=now, ent=ent)
    hour = now.replace(minute=0, second=0, microsecond=0)
    f.item(ent, hour + (now - hour) / 2, -0.9, title="ACME warns on profits")
    return ent


def _form(entity, channels: str, **extra: str) -> dict[str, Any]:
    return {
        "name": "ACME drop", "enabled": "on", "entity": entity.pk, "condition": "score_drop", "threshold": "3",
        "window_minutes": "60", "min_count": "5", "cooldown_minutes": "240", "severity": "warning",
        "channels": channels, "action": "save", **extra,
    }  # fmt: skip


def _create(client, entity, channels: list[dict[str, Any]]) -> tuple[AlertRule, str]:
    response = client.post("/sentiment/rules/new/", _form(entity, json.dumps(channels)), follow=True)
    assert response.status_code == 200
    return AlertRule.objects.get(name="ACME drop"), response.content.decode()


def _editor_channels(client, rule: AlertRule) -> tuple[str, str]:
    """The edit page, and the channels text exactly as its textarea shows it."""
    page = client.get(f"/sentiment/rules/{rule.pk}/").content.decode()
    match = re.search(r'<textarea name="channels"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, "the editor has a channels textarea"
    return page, html.unescape(match.group(1))


def _signed_delivery(monkeypatch) -> dict[str, Any]:
    """Fire the rule, send its webhook delivery, and return what would have been posted."""
    posted: dict[str, Any] = {}

    def post_json(url: str, body: bytes, headers: dict[str, str], **kwargs: Any) -> svc.Outcome:
        posted.update(url=url, body=body, headers=headers)
        return svc.Outcome(True, 200)

    monkeypatch.setattr(svc, "post_json", post_json)
    alert_services.alerts_evaluate(at=timezone.now())
    svc.delivery_send(delivery_id=Delivery.objects.get(channel_type="webhook").pk)
    return posted


def _verifies(posted: dict[str, Any], secret: str) -> bool:
    headers = posted["headers"]
    return svc.verify_signature(
        secret, headers[svc.TIMESTAMP_HEADER], posted["body"], headers[svc.SIGNATURE_HEADER]
    )


def test_the_editor_never_shows_a_stored_secret(analyst, entity):
    rule, after_create = _create(analyst, entity, [{"type": "webhook", "url": HOOK, "secret": SECRET}])

    assert "1 webhook secret(s) stored" in after_create and MASK in after_create
    assert SECRET not in after_create  # the flash message (a cookie) does not carry it
    page, channels = _editor_channels(analyst, rule)
    assert SECRET not in page
    assert json.loads(channels) == [{"type": "webhook", "url": HOOK, "secret": MASK}]
    assert SECRET not in analyst.get("/sentiment/rules/").content.decode()


def test_saving_with_the_mask_keeps_the_secret_and_deliveries_still_sign_with_it(
    analyst, entity, monkeypatch
):
    rule, _ = _create(analyst, entity, [{"type": "webhook", "url": HOOK, "secret": SECRET}])
    _, channels = _editor_channels(analyst, rule)

    saved = analyst.post(
        f"/sentiment/rules/{rule.pk}/", _form(entity, channels, threshold="2.5"), follow=True
    )

    assert saved.status_code == 200 and "secret(s) stored" not in saved.content.decode()
    rule.refresh_from_db()
    assert rule.threshold == 2.5 and rule.channels[0]["secret"] == SECRET
    posted = _signed_delivery(monkeypatch)
    assert posted["url"] == HOOK and _verifies(posted, SECRET)


def test_typing_a_new_secret_replaces_it(analyst, entity, monkeypatch):
    rule, _ = _create(analyst, entity, [{"type": "webhook", "url": HOOK, "secret": SECRET}])
    _, channels = _editor_channels(analyst, rule)

    new = channels.replace(MASK, "a-brand-new-secret")
    saved = analyst.post(f"/sentiment/rules/{rule.pk}/", _form(entity, new), follow=True)

    assert "1 webhook secret(s) stored" in saved.content.decode()
    rule.refresh_from_db()
    assert rule.channels[0]["secret"] == "a-brand-new-secret"
    posted = _signed_delivery(monkeypatch)
    assert _verifies(posted, "a-brand-new-secret") and not _verifies(posted, SECRET)


def test_masks_follow_their_webhook_by_url_when_channels_are_reordered(analyst, entity):
    other = "https://93.184.216.35/other"
    rule, _ = _create(
        analyst,
        entity,
        [
            {"type": "webhook", "url": HOOK, "secret": SECRET},
            {"type": "webhook", "url": other, "secret": "second-secret"},
        ],
    )
    _, channels = _editor_channels(analyst, rule)
    reordered = json.dumps(list(reversed(json.loads(channels))))

    assert analyst.post(f"/sentiment/rules/{rule.pk}/", _form(entity, reordered)).status_code == 302
    rule.refresh_from_db()
    assert [(c["url"], c["secret"]) for c in rule.channels] == [(other, "second-secret"), (HOOK, SECRET)]


def test_a_mask_is_not_a_secret_for_a_new_or_moved_webhook(analyst, entity):
    refused_new = analyst.post(
        "/sentiment/rules/new/", _form(entity, json.dumps([{"type": "webhook", "url": HOOK, "secret": MASK}]))
    )
    assert refused_new.status_code == 400 and "type the webhook secret" in refused_new.content.decode()
    assert not AlertRule.objects.exists()

    rule, _ = _create(analyst, entity, [{"type": "webhook", "url": HOOK, "secret": SECRET}])
    _, channels = _editor_channels(analyst, rule)
    moved = channels.replace(HOOK, "https://93.184.216.99/elsewhere")  # the stored secret must not follow it
    refused_moved = analyst.post(f"/sentiment/rules/{rule.pk}/", _form(entity, moved))

    page = refused_moved.content.decode()
    assert refused_moved.status_code == 400 and "type the webhook secret" in page and SECRET not in page
    rule.refresh_from_db()
    assert rule.channels == [{"type": "webhook", "url": HOOK, "secret": SECRET}]


def test_a_backtest_of_a_masked_rule_does_not_reveal_the_secret(analyst, entity):
    rule, _ = _create(analyst, entity, [{"type": "webhook", "url": HOOK, "secret": SECRET}])
    _, channels = _editor_channels(analyst, rule)

    page = analyst.post(f"/sentiment/rules/{rule.pk}/", _form(entity, channels, action="backtest"))

    assert page.status_code == 200 and "would have fired" in page.content.decode()
    assert SECRET not in page.content.decode() and MASK in page.content.decode()


def test_the_api_never_returns_a_secret(analyst, entity, monkeypatch):
    rule, _ = _create(analyst, entity, [{"type": "webhook", "url": HOOK, "secret": SECRET}])
    _signed_delivery(monkeypatch)
    alert = rule.alerts.get()

    listed = analyst.get("/api/sentiment/alerts/?status=all")
    detail = analyst.get(f"/api/sentiment/alerts/{alert.pk}/")

    assert listed.status_code == detail.status_code == 200
    assert detail.json()["deliveries"][0]["channel"] == "webhook 93.184.216.34"
    assert SECRET not in listed.content.decode() and SECRET not in detail.content.decode()
    assert SECRET not in analyst.get(f"/sentiment/alerts/{alert.pk}/").content.decode()


def test_the_admin_shows_channels_masked_and_cannot_overwrite_them(client, make_user, entity):
    analyst = make_user("analyst", username="ana2")
    client.force_login(analyst)
    rule, _ = _create(client, entity, [{"type": "webhook", "url": HOOK, "secret": SECRET}])
    root = make_user(None, "root")
    root.is_superuser = root.is_staff = True
    root.save()
    client.force_login(root)
    page = client.get(f"/admin/sentiment/alertrule/{rule.pk}/change/").content.decode()
    assert page.count(MASK) >= 1 and SECRET not in page
    assert 'name="channels"' not in page


def test_the_admin_refuses_a_feed_at_an_internal_address(client, make_user):
    root = make_user(None, "root")
    root.is_superuser = root.is_staff = True
    root.save()
    client.force_login(root)
    response = client.post(
        "/admin/sentiment/source/add/",
        {"name": "inside", "kind": "feed", "url": "http://169.254.169.254/latest/", "enabled": "on",
         "poll_interval_seconds": "900", "items_total": "0", "consecutive_failures": "0"},
    )  # fmt: skip
    assert response.status_code == 200 and "a cloud metadata endpoint" in response.content.decode()
    from apps.sentiment.models import Source

    assert not Source.objects.filter(name="inside").exists()
