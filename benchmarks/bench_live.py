"""Live updates: one web process holding many idle streams, and what that costs the dashboard.

A real web process as `make run` starts it (gunicorn, one uvicorn worker, SQLite, the database channel
layer) in a temporary VAR_DIR. Measured: the jobs page's latency with no stream open (the baseline), then
with `streams` idle /live/ streams held open by raw sockets, as a ratio; and the fan-out time of one
event published by another process (a `manage.py shell`, as a worker would) until every stream has it.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-live-123456789"  # noqa: S105 (a throw-away installation)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def _login(base: str) -> tuple[urllib.request.OpenerDirector, str]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    form = {"csrfmiddlewaretoken": token.group(1), "username": "bench", "password": PASSWORD}
    request = urllib.request.Request(  # noqa: S310 (http on loopback, built here)
        base + "/accounts/login/", data=urllib.parse.urlencode(form).encode(), headers={"Referer": base}
    )
    opener.open(request).read()
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return opener, cookie


def _latencies(opener: urllib.request.OpenerDirector, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        opener.open(url).read()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def _open_stream(port: int, cookie: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        f"GET /live/?topic=jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    head = b""
    while b": open" not in head:
        head += sock.recv(4096)
    assert b" 200 " in head.split(b"\r\n", 1)[0], head[:200]
    return sock


def run(quick: bool = False) -> dict[str, Any]:
    streams = 50 if quick else 200
    requests = 40 if quick else 150
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env = {
            k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SECRET_KEY", "DATABASE_URL")
        }
        env.update(
            VAR_DIR=tmp,
            CONTEXTA_ADMIN_USER="bench",
            CONTEXTA_ADMIN_PASSWORD=PASSWORD,
            LIVE_POLL_SECONDS="0.1",
        )
        env["LIVE_STREAM_SECONDS"] = "3600"
        for args in (
            ("migrate", "--noinput", "-v", "0"),
            ("bootstrap",),
            ("collectstatic", "--noinput", "-v", "0"),
        ):
            _manage(env, *args)
        command = [sys.executable, "-m", "gunicorn", "apps.asgi:application", "--worker-class",
                   "uvicorn_worker.UvicornWorker", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                   "--graceful-timeout", "2"]  # fmt: skip
        web = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{port}"
        held: list[socket.socket] = []
        try:
            for _ in range(150):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2)  # noqa: S310 (loopback)
                    break
                except OSError:
                    time.sleep(0.2)
            opener, cookie = _login(base)
            page = base + "/jobs/"
            _latencies(opener, page, 10)  # warm-up
            before = _latencies(opener, page, requests)
            held = [_open_stream(port, cookie) for _ in range(streams)]
            during = _latencies(opener, page, requests)
            start = time.perf_counter()
            _manage(env, "shell", "-c", "from apps.core.live import _send; _send(['jobs'])")
            sent = time.perf_counter()
            for sock in held:
                got = b""
                while b"data:" not in got:
                    got += sock.recv(4096)
            fanout_ms = (time.perf_counter() - sent) * 1000  # after the publishing process exited
            total_ms = (time.perf_counter() - start) * 1000
        finally:
            for sock in held:
                sock.close()
            web.terminate()
            web.wait(timeout=30)
    return {
        "streams_held": streams,
        "jobs_page_p50_ms_no_streams": round(_p(before, 50), 1),
        "jobs_page_p95_ms_no_streams": round(_p(before, 95), 1),
        "jobs_page_p50_ms_with_streams": round(_p(during, 50), 1),
        "jobs_page_p95_ms_with_streams": round(_p(during, 95), 1),
        "p95_ratio_with_vs_without": round(_p(during, 95) / _p(before, 95), 2),
        "all_streams_had_it_ms_after_the_publisher_exited": round(fanout_ms, 1),
        "publisher_start_to_all_streams_ms": round(total_ms, 1),  # includes a `manage.py shell` start
    }


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
