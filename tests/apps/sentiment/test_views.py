"""Sentiment dashboard pages and the alerts API: roles, acknowledge/resolve, rule editor with backtest, charts."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from apps.sentiment.models import Alert, AlertRule, Delivery, DeliveryAttempt, Notification, Source
from apps.sentiment.services import alerts as alert_services
from tests.apps.sentiment import alert_factories as f

pytestmark = pytest.mark.django_db
ROLES = [None, "agent", "analyst", "admin"]


@pytest.fixture
def world(make_user):
    """Users of every role, an entity with history and a fired alert with a webhook delivery that failed once."""
    users = {role: make_user(role, username=f"{role}-user") for role in ROLES[1:]}
    now = timezone.now()
    ent = f.entity("ACME")
    f.series([*f.calm(48), f.stats(12, -0.6, 11)], end=now, ent=ent)
    hour = now.replace(minute=0, second=0, microsecond=0)
    f.item(ent, hour + (now - hour) / 2, -0.9, title="ACME warns on profits")
    channel = {"type": "webhook", "url": "https://hooks.example/x", "secret": "do-not-show-me"}
    rule = f.rule(name="ACME drop", entity=ent, channels=[channel])
    alert_services.alerts_evaluate(at=now)
    alert = Alert.objects.get()
    delivery = Delivery.objects.get()
    DeliveryAttempt.objects.create(delivery=delivery, number=1, ok=False, status_code=503, error="HTTP 503")
    Source.objects.filter(name="test feed").update(last_error="timed out", consecutive_failures=2)
    return {"users": users, "entity": ent, "rule": rule, "alert": alert}


PAGES = [
    "/sentiment/",
    "/sentiment/?sort=volume&dir=desc",
    "/sentiment/entities/ACME/",
    "/sentiment/entities/ACME/?days=30",
    "/sentiment/alerts/",
    "/sentiment/alerts/?status=all",
    "/sentiment/alerts/{alert}/",
    "/sentiment/rules/",
    "/sentiment/rules/new/",
    "/sentiment/rules/{rule}/",
    "/sentiment/notifications/",
    "/sentiment/sources/",
]


@pytest.mark.parametrize("url", PAGES)
def test_pages_by_role(client, world, url):
    url = url.format(alert=world["alert"].pk, rule=world["rule"].pk)
    expected = {None: 302, "agent": 403, "analyst": 200, "admin": 200}
    for role, status in expected.items():
        client.logout()
        if role:
            client.force_login(world["users"][role])
        response = client.get(url)
        assert response.status_code == status, (role, url)
        if role is None:
            assert response["Location"].startswith("/accounts/login/")


API = [
    ("get", "/api/sentiment/alerts/", (401, 403, 200, 200)),
    ("get", "/api/sentiment/alerts/{alert}/", (401, 403, 200, 200)),
    ("post", "/api/sentiment/alerts/{alert}/acknowledge/", (401, 403, 200, 200)),
    ("post", "/api/sentiment/alerts/{alert}/resolve/", (401, 403, 200, 200)),
]


@pytest.mark.parametrize("method,url,statuses", API, ids=[f"{m} {u}" for m, u, _ in API])
def test_api_by_role(client, world, method, url, statuses):
    url = url.format(alert=world["alert"].pk)
    for role, status in zip(ROLES, statuses, strict=True):
        Alert.objects.update(status="fired", acknowledged_by=None, acknowledged_at=None, resolved_at=None)
        client.defaults.pop("HTTP_AUTHORIZATION", None)
        if role:
            token, _ = Token.objects.get_or_create(user=world["users"][role])
            client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
        response = getattr(client, method)(url)
        assert response.status_code == status, (role, response.content[:200])


def test_api_lists_and_acts_on_alerts(client, world):
    alert = world["alert"]
    client.force_login(world["users"]["analyst"])
    listed = client.get("/api/sentiment/alerts/?status=open&ticker=acme").json()["results"]
    assert [a["id"] for a in listed] == [alert.pk]
    assert listed[0]["entity"] == "ACME" and listed[0]["rule"]["name"] == "ACME drop"
    assert client.get("/api/sentiment/alerts/?status=resolved").json()["results"] == []
    assert client.get("/api/sentiment/alerts/?status=bogus").status_code == 400

    detail = client.get(f"/api/sentiment/alerts/{alert.pk}/").json()
    assert detail["items"][0]["title"] == "ACME warns on profits"
    assert detail["deliveries"][0]["attempt_log"][0]["status_code"] == 503
    assert "do-not-show-me" not in str(detail)  # webhook secrets never leave the server

    acked = client.post(f"/api/sentiment/alerts/{alert.pk}/acknowledge/").json()
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "analyst-user"
    again = client.post(f"/api/sentiment/alerts/{alert.pk}/acknowledge/")
    assert again.status_code == 400 and "already acknowledged by analyst-user" in again.json()["detail"]
    resolved = client.post(f"/api/sentiment/alerts/{alert.pk}/resolve/").json()
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == "analyst-user"


def test_acknowledge_and_resolve_from_the_alerts_page(client, world):
    alert = world["alert"]
    client.force_login(world["users"]["analyst"])
    page = client.get("/sentiment/alerts/").content.decode()
    assert f'id="alert-{alert.pk}"' in page and "Acknowledge</button>" in page

    response = client.post(f"/sentiment/alerts/{alert.pk}/acknowledge/", {"next": "/sentiment/alerts/"})
    assert response.status_code == 302 and response["Location"] == "/sentiment/alerts/"
    page = client.get("/sentiment/alerts/").content.decode()
    assert "acknowledged by analyst-user" in page and "Acknowledge</button>" not in page

    # HTMX swaps just the row
    row = client.post(f"/sentiment/alerts/{alert.pk}/resolve/", HTTP_HX_REQUEST="true").content.decode()
    assert row.startswith(f'<tr id="alert-{alert.pk}"') and "resolved by analyst-user" in row
    alert.refresh_from_db()
    assert alert.status == "resolved"
    # an off-site `next` is ignored
    other = client.post(f"/sentiment/alerts/{alert.pk}/resolve/", {"next": "https://evil.example/"})
    assert other["Location"] == "/sentiment/alerts/"


def test_agents_cannot_acknowledge(client, world):
    client.force_login(world["users"]["agent"])
    assert client.post(f"/sentiment/alerts/{world['alert'].pk}/acknowledge/").status_code == 403
    assert Alert.objects.get().status == "fired"


def test_alert_page_shows_the_items_with_links_and_the_delivery_log(client, world):
    client.force_login(world["users"]["admin"])
    page = client.get(f"/sentiment/alerts/{world['alert'].pk}/").content.decode()
    assert re.search(r'<a href="https://news\.example/\d+"[^>]*>ACME warns on profits</a>', page)
    assert "webhook hooks.example" in page and "HTTP 503" in page
    assert "do-not-show-me" not in page


def test_rule_editor_backtests_without_saving_then_saves(client, world):
    ent = world["entity"]
    client.force_login(world["users"]["analyst"])
    form = {
        "name": "ACME big drop",
        "enabled": "on",
        "entity": ent.pk,
        "condition": "score_drop",
        "threshold": "3",
        "window_minutes": "60",
        "min_count": "5",
        "cooldown_minutes": "240",
        "severity": "critical",
        "channels": '[{"type": "email", "to": ["ops@example.com"]}]',
    }
    backtest = client.post("/sentiment/rules/new/", {**form, "action": "backtest"})
    page = backtest.content.decode()
    assert backtest.status_code == 200
    assert "would have fired <b>1</b> time in the last 30 days" in page  # the drop in the current hour
    assert '<a href="/sentiment/entities/ACME/">ACME</a>' in page
    assert not AlertRule.objects.filter(name="ACME big drop").exists()

    saved = client.post("/sentiment/rules/new/", {**form, "action": "save"})
    assert saved.status_code == 302
    rule = AlertRule.objects.get(name="ACME big drop")
    assert (rule.entity, rule.severity, rule.channels) == (
        ent,
        "critical",
        [{"type": "email", "to": ["ops@example.com"]}],
    )
    assert rule.created_by == world["users"]["analyst"]

    edited = client.post(f"/sentiment/rules/{rule.pk}/", {**form, "threshold": "4.5", "action": "save"})
    assert edited.status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == 4.5


def test_rule_editor_shows_errors(client, world):
    client.force_login(world["users"]["analyst"])
    base = {"name": "x", "condition": "score_drop", "threshold": "3", "window_minutes": "60", "min_count": "5",
            "cooldown_minutes": "0", "severity": "info", "action": "save"}  # fmt: skip
    bad_channel = client.post(
        "/sentiment/rules/new/", {**base, "channels": '[{"type": "webhook", "url": "https://x"}]'}
    )
    assert bad_channel.status_code == 400 and "a webhook needs" in bad_channel.content.decode()
    not_json = client.post("/sentiment/rules/new/", {**base, "channels": "[{"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.content.decode()
    both = client.post("/sentiment/rules/new/", {**base, "entity": world["entity"].pk, "topic": f.topic().pk})
    assert both.status_code == 400 and "not both" in both.content.decode()
    assert AlertRule.objects.count() == 1


def test_rule_editor_refuses_a_webhook_to_an_internal_address(client, world):
    client.force_login(world["users"]["analyst"])
    base = {"name": "internal", "condition": "score_drop", "threshold": "3", "window_minutes": "60",
            "min_count": "5", "cooldown_minutes": "0", "severity": "info", "action": "save"}  # fmt: skip
    channels = '[{"type": "webhook", "url": "http://10.0.0.5/", "secret": "long-enough-secret"}]'

    response = client.post("/sentiment/rules/new/", {**base, "channels": channels})

    page = response.content.decode()
    assert response.status_code == 400
    assert "channel 1: webhook URL http://10.0.0.5/ resolves to 10.0.0.5, a private address" in page
    assert "set OUTBOUND_ALLOW_NETWORKS to allow it" in page
    assert not AlertRule.objects.filter(name="internal").exists()


def test_rule_editor_masks_the_stored_secret(client, world):
    client.force_login(world["users"]["analyst"])
    page = client.get(f"/sentiment/rules/{world['rule'].pk}/").content.decode()
    assert "do-not-show-me" not in page and "********" in page
    assert "hooks.example/x" in page  # the rest of the channel is shown as it is


def test_overview_sorts_by_change(client, world):
    now = timezone.now()
    for ticker, recent in (("UP", 0.5), ("DOWN", -0.5)):
        rows = [f.stats(10, 0.0, 2)] * 24 + [f.stats(10, recent, 2)] * 24
        f.series(rows, end=now, ent=f.entity(ticker))
    f.entity("EMPTY")
    client.force_login(world["users"]["analyst"])

    def order(query):
        page = client.get(f"/sentiment/?{query}").content.decode()
        return re.findall(r'data-ticker="(\w+)"', page)

    ascending = order("sort=change")
    assert ascending[:2] == ["DOWN", "ACME"] and ascending[-1] == "EMPTY"
    assert order("sort=change&dir=desc")[:1] == ["UP"] and order("sort=change&dir=desc")[-1] == "EMPTY"
    assert order("sort=ticker") == ["ACME", "DOWN", "EMPTY", "UP"]


def test_overview_shows_the_counts_it_compares_and_no_change_from_one_earlier_item(client, world):
    # given MSFT whose 24 hours before hold one item, at +0.75 against 0.0 since
    f.series([f.stats(1, 0.75, 0)] + [f.stats(10, 0.0, 2)] * 24, end=timezone.now(), ent=f.entity("MSFT"))
    client.force_login(world["users"]["analyst"])

    # when the overview is shown, sorted by change (the default)
    page = client.get("/sentiment/").content.decode()

    # then MSFT shows no change, says why, comes after ACME, and shows both counts
    row = re.search(r'<tr data-ticker="MSFT">.*?</tr>', page, re.S).group(0)
    cells = [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells[2:5] == ["—", "240", "1"]
    assert 'title="fewer than 3 items in one of the windows"' in row
    assert re.findall(r'data-ticker="(\w+)"', page) == ["ACME", "MSFT"]
    assert "Items 24 h before" in page


def test_entity_page_draws_score_and_volume_in_one_plotly_figure(client, world):
    client.force_login(world["users"]["analyst"])
    page = client.get("/sentiment/entities/ACME/?days=7").content.decode()
    figure = json.loads(
        re.search(r'<script id="entity-figure" type="application/json">(.*?)</script>', page).group(1)
    )
    assert [t["type"] for t in figure["data"]] == ["scatter", "bar"]
    assert len(figure["data"][1]["y"]) == 49  # one bar per hour bucket
    assert [s["label"]["text"] for s in figure["layout"]["shapes"]] == ["ACME drop"]  # the alert's window
    assert "<svg" not in page and 'src="/static/vendor/plotly.min.js"' in page
    assert "ACME warns on profits" in page and "negative" in page
    assert "cdn" not in page.lower()
    assert client.get("/sentiment/entities/NOPE/").status_code == 404


@pytest.mark.parametrize(
    ("url", "region", "topics"),
    [
        ("/sentiment/", "overview-live", "sentiment.series sentiment.alerts"),
        ("/sentiment/entities/ACME/?range=24h", "entity-live", "sentiment.series sentiment.alerts"),
        ("/sentiment/alerts/?status=all", "alerts-live", "sentiment.alerts"),
        ("/sentiment/alerts/{alert}/", "alert-live", "sentiment.alerts"),
        ("/sentiment/rules/", "sentiment-nav", "sentiment.alerts"),
    ],
)
def test_pages_a_user_watches_are_live_regions_that_refetch_themselves(client, world, url, region, topics):
    """Each region fetches its own page again and swaps in only itself; its controls inherit none of that."""
    client.force_login(world["users"]["analyst"])
    url = url.format(alert=world["alert"].pk)
    page = client.get(url).content.decode()
    tag = re.search(rf'<div id="{region}"[^>]*>', page)
    assert tag, f"no #{region} on {url}"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(0)))
    assert attrs["data-live"] == topics
    assert attrs["hx-get"] == url.replace("&", "&amp;") and attrs["hx-trigger"] == "live"
    assert (attrs["hx-select"], attrs["hx-swap"], attrs["hx-disinherit"]) == (f"#{region}", "outerHTML", "*")
    # what the region refetches is the same page: the swapped-in copy holds the region itself
    assert f'id="{region}"' in client.get(url, HTTP_HX_REQUEST="true").content.decode()


def test_notifications_list_and_mark_read(client, world):
    user = world["users"]["analyst"]
    client.force_login(user)
    page = client.get("/sentiment/notifications/").content.decode()
    assert "ACME: mean score fell to" in page and 'class="unread"' in page
    client.post("/sentiment/notifications/read/")
    assert Notification.objects.filter(read_by=user).count() == Notification.objects.count() == 1
    assert 'class="unread"' not in client.get("/sentiment/notifications/").content.decode()


def test_sources_page_shows_health(client, world):
    Source.objects.create(name="Reuters", kind="feed", url="https://feeds.example/rss",
                          next_poll_at=timezone.now() + timedelta(minutes=5))  # fmt: skip
    client.force_login(world["users"]["analyst"])
    page = client.get("/sentiment/sources/").content.decode()
    assert "Reuters" in page and "timed out" in page
    assert re.search(r"<td>2</td>", page)  # failures in a row of the failing source


def test_csv_upload_from_the_sources_page(client, world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.sentiment.models import Item

    client.force_login(world["users"]["analyst"])
    csv = b"title,published_at\nACME cuts its outlook,2026-01-05T10:00:00Z\n,2026-01-05T11:00:00Z\n"
    response = client.post(
        "/sentiment/sources/",
        {"file": SimpleUploadedFile("news.csv", csv, "text/csv"), "encoding": "utf-8", "source": "desk"},
        follow=True,
    )
    assert response.status_code == 200
    assert "Uploaded: 1 new item(s), 0 duplicate(s), 1 rejected. row 3:" in response.content.decode()
    assert Item.objects.filter(title="ACME cuts its outlook", source__name="desk").exists()

    no_header = client.post("/sentiment/sources/", {"file": SimpleUploadedFile("x.csv", b"", "text/csv")})
    assert no_header.status_code == 400
    client.force_login(world["users"]["agent"])
    assert client.post("/sentiment/sources/", {}).status_code == 403
