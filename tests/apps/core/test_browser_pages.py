"""Every dashboard page in a real browser at 1366 px and 390 px: no horizontal overflow, no console errors,
no serious accessibility violations (axe-core), and a screenshot of each under var/test-screenshots/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from apps.core.models import JobStatus, PromptTemplate, TrainingJob
from apps.core.services.prompts import prompt_template_create
from apps.sentiment.models import Alert, AlertRule, Entity
from apps.support.models import Document, KnowledgeBase
from tests.apps.sentiment import alert_factories as f

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = Path(settings.BASE_DIR) / "var" / "test-screenshots"
WIDTHS = (1366, 390)
SERIOUS = {"serious", "critical"}


@pytest.fixture
def pages(make_user: Any) -> list[tuple[str, str]]:
    """(name, path) of every dashboard page, with one object of each kind to show."""
    admin = make_user("admin", username="ada")
    job = TrainingJob.objects.create(kind="text_classifier", status=JobStatus.RUNNING, step=1, total_steps=4)
    prompt_template_create(user=admin, name="greeting", description="Hello", body="Hello {{ customer_name }}")
    entity = Entity.objects.create(ticker="ACME", name="Acme Corp", aliases=["Acme"])
    now = timezone.now()
    f.series([*f.calm(47), f.stats(12, -0.6, 11)], end=now, ent=entity)  # two calm days, then a drop
    f.item(entity, now - timedelta(minutes=10), -0.9, title="Acme recalls every widget it sold this year")
    rule = AlertRule.objects.create(name="ACME drop", entity=entity, condition="score_drop", threshold=3)
    alert = Alert.objects.create(
        rule=rule,
        entity=entity,
        severity="warning",
        value=-4.2,
        fired_at=now - timedelta(minutes=5),
        detail={
            "window_start": (now - timedelta(hours=1)).isoformat(),
            "window_end": now.isoformat(),
            "count": 12,
        },
    )
    assert PromptTemplate.objects.filter(name="greeting").exists()
    kb = KnowledgeBase.objects.create(name="Help centre", slug="help", index_name="support-help")
    Document.objects.create(
        kb=kb, title="Refunds", source="paste", format="markdown", status="ready", version=1
    )
    Document.objects.create(
        kb=kb, title="Terms.pdf", source="upload", format="pdf", status="failed",
        error="the PDF is password-protected: upload a copy without a password", visibility="internal",
    )  # fmt: skip
    return [
        ("overview", "/"),
        ("jobs", "/jobs/"),
        ("job", f"/jobs/{job.pk}/"),
        ("models", "/models/"),
        ("prompts", "/prompts/"),
        ("prompt", "/prompts/greeting/"),
        ("sentiment", "/sentiment/"),
        ("entity", "/sentiment/entities/ACME/"),
        ("alerts", "/sentiment/alerts/"),
        ("alert", f"/sentiment/alerts/{alert.pk}/"),
        ("rules", "/sentiment/rules/"),
        ("rule", f"/sentiment/rules/{rule.pk}/"),
        ("rule-new", "/sentiment/rules/new/"),
        ("notifications", "/sentiment/notifications/"),
        ("sources", "/sentiment/sources/"),
        ("support", "/support/"),
        ("support-kb", "/support/kb/help/"),
        ("password", "/accounts/password/"),
    ]


def _login(page: Any, base: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_every_page_fits_has_no_errors_and_no_serious_accessibility_violations(page, live_server, pages):
    from axe_playwright_python.sync_playwright import Axe

    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
    _login(page, live_server.url)
    axe, problems = Axe(), []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in pages:
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None and response.status == 200, f"{path}: {response and response.status}"
            if page.locator("[data-figure]").count():  # a chart: measured and scanned once drawn
                page.wait_for_selector("[data-figure][data-drawn] .main-svg", timeout=10_000)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 0:
                problems.append(f"{path} at {width} px: {overflow} px wider than the window")
            for violation in axe.run(page).response["violations"]:
                if violation["impact"] in SERIOUS:
                    where = ", ".join(n["target"][0] for n in violation["nodes"][:3])
                    problems.append(f"{path} at {width} px: {violation['id']} ({violation['help']}): {where}")
            page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    assert not errors, "\n".join(errors)
    assert not problems, "\n".join(problems)
