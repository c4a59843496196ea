"""The web process as `make run` serves it, for the live-page browser tests: gunicorn with a uvicorn worker
on a database of its own (the embedded layer carries live events between processes), migrated and
bootstrapped, with an admin `ada`. Changes are made from other processes (`manage.py shell -c`), as a worker
or a command would make them. The `asgi_site` fixture (tests/conftest.py) starts one per test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ADMIN, PASSWORD = "ada", "pw-live-123456789"


class AsgiSite:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {
            **os.environ,
            "VAR_DIR": str(tmp / "var"),
            "DATABASE_URL": f"sqlite:///{tmp / 'live.sqlite3'}",
            "CONTEXTA_ADMIN_USER": ADMIN,
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
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def python(self, code: str) -> str:
        """Run `code` in another process on the site's database; the last line it printed."""
        return self.manage("shell", "-c", code).strip().splitlines()[-1]

    def login(self, page: Any, next_path: str = "/") -> None:
        page.goto(f"{self.url}/accounts/login/?next={next_path}")
        page.fill("input[name=username]", ADMIN)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.url}{next_path}")

    @contextmanager
    def serving(self) -> Iterator[AsgiSite]:
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("bootstrap")
        self.manage("collectstatic", "--noinput", "-v", "0")
        command = [sys.executable, "-m", "gunicorn", "apps.asgi:application", "--worker-class",
                   "uvicorn_worker.UvicornWorker", "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
                   "--graceful-timeout", "2"]  # fmt: skip
        with (self.tmp / "web.log").open("wb") as log:
            web = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            try:
                for _ in range(100):
                    try:
                        urllib.request.urlopen(self.url + "/healthz", timeout=2)
                        break
                    except OSError:
                        time.sleep(0.2)
                yield self
            finally:
                web.terminate()
                web.wait(timeout=20)
