"""Live pages end to end: the web process as `make run` serves it (gunicorn with uvicorn workers, the embedded
database layer), a browser on a page, and changes made by another process (as a worker makes them)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "pw-live-123456789"


class Server:
    def __init__(self, tmp: Path) -> None:
        self.env = {
            **os.environ,
            "VAR_DIR": str(tmp / "var"),
            "DATABASE_URL": f"sqlite:///{tmp / 'live.sqlite3'}",
            "CONTEXTA_ADMIN_USER": "ada",
            "CONTEXTA_ADMIN_PASSWORD": PASSWORD,
            "LIVE_POLL_SECONDS": "0.2",
        }
        for name in ("REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY", "DJANGO_SETTINGS_MODULE"):
            self.env.pop(name, None)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def python(self, code: str) -> str:
        return self.manage("shell", "-c", code).strip().splitlines()[-1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    srv.manage("migrate", "--noinput", "-v", "0")
    srv.manage("bootstrap")
    srv.manage("collectstatic", "--noinput", "-v", "0")
    command = [sys.executable, "-m", "gunicorn", "apps.asgi:application", "--worker-class",
               "uvicorn_worker.UvicornWorker", "--bind", f"127.0.0.1:{srv.port}", "--workers", "1", "--graceful-timeout", "2"]  # fmt: skip
    log = (tmp_path / "web.log").open("wb")
    web = subprocess.Popen(command, cwd=ROOT, env=srv.env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(srv.url + "/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        yield srv
    finally:
        web.terminate()
        web.wait(timeout=20)
        log.close()


def _login(page: Any, base: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


NEW_JOB = (
    "from apps.core.services.jobs import job_create_local; "
    "print(job_create_local(kind='text_classifier', params={}, trusted=True).pk)"
)


def test_a_job_made_elsewhere_appears_and_changes_without_a_reload(server: Server, page: Any) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _login(page, server.url)
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
