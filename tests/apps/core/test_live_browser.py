"""Live pages end to end: the web process as `make run` serves it (gunicorn with uvicorn workers, the embedded
database layer), a browser on a page, and changes made by another process (as a worker makes them)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.asgi_site import AsgiSite

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NEW_JOB = (
    "from apps.core.services.jobs import job_create_local; "
    "print(job_create_local(kind='text_classifier', params={}, trusted=True).pk)"
)


def test_a_job_made_elsewhere_appears_and_changes_without_a_reload(asgi_site: AsgiSite, page: Any) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    server = asgi_site
    server.login(page)
    page.goto(f"{server.url}/jobs/")
    page.wait_for_selector("html[data-live-state=open]", timeout=10_000)
    page.evaluate("window.__notReloaded = true")

    job_id = server.python(NEW_JOB)  # another process, as a worker or a command would
    row = page.locator(f"#job-table a[href='/jobs/{job_id}/']")
    row.wait_for(timeout=10_000)

    # A worker claims it and reports progress: the bar follows, in the same page.
    server.python(
        "from apps.core.services.jobs import job_claim, job_progress; "
        f"job = job_claim(job_id={job_id}); "
        "print(job_progress(job=job, step=3, total=4, loss=0.42, eta_seconds=30))"
    )
    progress = page.locator(f"#job-{job_id}-progress")
    expect(progress.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "75", timeout=10_000)
    assert "loss 0.4200" in progress.inner_text()
    assert page.evaluate("window.__notReloaded") is True

    page.goto(f"{server.url}/jobs/{job_id}/")
    page.wait_for_selector("html[data-live-state=open]", timeout=10_000)
    page.evaluate("window.__notReloaded = true")
    server.python(
        "from apps.core.models import TrainingJob; from apps.core.services.jobs import job_succeed; "
        f"job_succeed(job=TrainingJob.objects.get(pk={job_id}), metrics={{'f1': 0.5}}, result={{}}); print('ok')"
    )
    page.locator("#job-live [data-status=succeeded]").first.wait_for(timeout=10_000)
    assert page.evaluate("window.__notReloaded") is True
    assert not errors, errors
