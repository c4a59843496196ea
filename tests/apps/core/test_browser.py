"""The jobs page in a real browser: progress bars follow the job row without a reload (HTMX polling)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.core.models import JobStatus, TrainingJob

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(page, live_server, username):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_progress_bar_updates_live_and_stops_polling_when_done(page, live_server, make_user):
    make_user("analyst", username="ana")
    job = TrainingJob.objects.create(kind="text_classifier", status=JobStatus.RUNNING, step=1, total_steps=4)
    _login(page, live_server, "ana")
    page.goto(f"{live_server.url}/jobs/")
    bar = page.locator(f"#job-{job.pk}-progress [role=progressbar]")
    assert bar.get_attribute("aria-valuenow") == "25"

    TrainingJob.objects.filter(pk=job.pk).update(step=3, loss=0.42)
    # Playwright's expect polls from its own context: wait_for_function would eval in the page, which the
    # Content-Security-Policy rightly refuses
    expect(page.locator(f"#job-{job.pk}-progress [role=progressbar]")).to_have_attribute(
        "aria-valuenow", "75", timeout=10_000
    )
    assert "loss 0.4200" in page.locator(f"#job-{job.pk}-progress").inner_text()

    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, step=4)
    expect(page.locator(f"#job-{job.pk}-progress .status")).to_have_attribute(
        "data-status", "succeeded", timeout=10_000
    )
    assert page.locator(f"#job-{job.pk}-progress").get_attribute("hx-get") is None  # polling stopped


def test_agent_cannot_open_the_jobs_page(page, live_server, make_user):
    make_user("agent", username="agnes")
    _login(page, live_server, "agnes")
    response = page.goto(f"{live_server.url}/jobs/")
    assert response.status == 403
    assert "Jobs" not in page.locator("header nav").inner_text()
