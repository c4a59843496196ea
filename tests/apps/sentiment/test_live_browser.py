"""The sentiment pages follow what workers do, without a reload: an alert fired by another process appears on
the alerts page and in the sub-navigation's count, and the entity page redraws its chart in place (the same
element, the reader's zoom kept) with the new items and the alert's window."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.asgi_site import AsgiSite

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HISTORY = (
    "from django.utils import timezone; from tests.apps.sentiment import alert_factories as f; "
    "now = timezone.now(); ent = f.entity('ACME'); f.series(f.calm(48), end=now - f.HOUR, ent=ent); "
    "f.rule(name='ACME drop', entity=ent, min_count=5); print('ok')"
)
# Twelve bearish items scored in the current hour, added to the series, then the alert pass: what the
# scoring worker and the beat do.
BURST = (
    "from django.utils import timezone; from tests.apps.sentiment import alert_factories as f; "
    "from apps.sentiment.models import Entity; from apps.sentiment.series_math import ScoredItem; "
    "from apps.sentiment.services.series import series_apply; from apps.sentiment.services import alerts; "
    "now = timezone.now(); ent = Entity.objects.get(ticker='ACME'); "
    "items = [f.item(ent, now, -0.8, title=f'ACME recalls its product {n}') for n in range(12)]; "
    "series_apply(items=[ScoredItem(published_at=now, label='negative', score=-0.8, entity_ids=(ent.pk,)) "
    "for _ in items]); "
    "print(alerts.alerts_evaluate(at=now).fired)"
)


def _watch(page: Any, site: AsgiSite, path: str) -> None:
    site.login(page, path)
    page.wait_for_selector("html[data-live-state=open]", timeout=10_000)
    page.evaluate("window.__notReloaded = true")


def test_a_fired_alert_appears_on_the_alerts_page_and_in_the_count(asgi_site: AsgiSite, page: Any) -> None:
    asgi_site.python(HISTORY)
    _watch(page, asgi_site, "/sentiment/alerts/")
    expect(page.locator("#alerts-live")).to_contain_text("No open alerts.")

    assert asgi_site.python(BURST) == "1"

    expect(page.locator("#alerts-live .alert-row")).to_have_count(1, timeout=10_000)
    expect(page.locator("#alerts-live .alert-row")).to_contain_text("ACME drop")
    expect(page.locator("#sentiment-nav a[href='/sentiment/alerts/'] .count")).to_have_text("1")
    assert page.evaluate("window.__notReloaded") is True


def test_the_entity_chart_is_redrawn_in_place_with_the_new_items_and_alert(
    asgi_site: AsgiSite, page: Any
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    asgi_site.python(HISTORY)
    _watch(page, asgi_site, "/sentiment/entities/ACME/?range=7d")
    chart = page.locator("#entity-chart")
    expect(chart).to_have_attribute("data-drawn", "1", timeout=10_000)
    page.evaluate("document.getElementById('entity-chart').__same = true")
    assert page.evaluate("(document.getElementById('entity-chart').layout.shapes || []).length") == 0
    # The reader zooms in on the last two days: the refresh must keep that view.
    page.evaluate(
        "(() => { const el = document.getElementById('entity-chart'); const iso = (d) => d.toISOString()"
        ".slice(0, 19).replace('T', ' '); const end = new Date(Date.now() + 3600e3); "
        "return Plotly.relayout(el, {'xaxis.range': [iso(new Date(end - 2 * 86400e3)), iso(end)]}); })()"
    )
    zoomed = page.evaluate("document.getElementById('entity-chart').layout.xaxis.range")

    asgi_site.python(BURST)

    expect(page.locator("#entity-live .flash")).to_contain_text("ACME drop", timeout=10_000)
    expect(page.locator("#entity-live")).to_contain_text("ACME recalls its product")
    page.wait_for_function(
        "(document.getElementById('entity-chart').layout.shapes || []).length === 1", timeout=10_000
    )
    assert page.evaluate("document.getElementById('entity-chart').__same") is True  # kept, not replaced
    assert page.evaluate("document.getElementById('entity-chart').layout.xaxis.range") == zoomed
    assert page.evaluate("window.__notReloaded") is True
    assert not errors, errors
