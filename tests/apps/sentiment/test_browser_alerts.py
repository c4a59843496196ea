"""Acknowledging an alert in a real browser: log in, open the alerts page, click Acknowledge."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.sentiment.models import Alert
from apps.sentiment.services import alerts as alert_services
from tests.apps.sentiment import alert_factories as f

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_acknowledge_an_alert(page, live_server, make_user):
    make_user("analyst", username="ana")
    now = timezone.now()
    ent = f.entity("ACME")
    f.series([*f.calm(48), f.stats(12, -0.6, 11)], end=now, ent=ent)
    f.rule(name="ACME drop", entity=ent)
    alert_services.alerts_evaluate(at=now)
    alert = Alert.objects.get()

    page.goto(f"{live_server.url}/accounts/login/?next=/sentiment/alerts/")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/sentiment/alerts/")

    row = page.locator(f"#alert-{alert.pk}")
    assert row.locator(".alert-status").inner_text() == "Fired"
    row.get_by_role("button", name="Acknowledge").click()

    row = page.locator(f"#alert-{alert.pk}")
    row.locator(".acked-by").wait_for(timeout=10_000)
    assert row.locator(".alert-status").inner_text() == "Acknowledged"
    assert "acknowledged by ana" in row.locator(".acked-by").inner_text()
    assert row.get_by_role("button", name="Acknowledge").count() == 0
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.acknowledged_by.username == "ana"
