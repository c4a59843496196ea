"""Fault tests with real processes: kill -9 a worker in the middle of a job, or under run_suite.

The processes share a SQLite file and the filesystem broker under a temporary VAR_DIR, and run with
tests/faults/settings.py, which adds a training kind that sleeps through its steps (ML_BACKEND=fake, no model).
The filesystem broker never redelivers a message whose worker died, so a job comes back only through the
reaper that beat runs every minute: what these tests show is that nothing else is needed.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from apps.core.heartbeat import process_alive

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CELERY = [sys.executable, "-m", "celery", "-A", "apps"]


@dataclass
class Suite:
    """Processes of one temporary installation, all stopped (their whole process groups) at the end."""

    tmp: Path
    env: dict[str, str]
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def var(self) -> Path:
        return self.tmp / "var"

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

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append(proc)
        return proc

    def worker(self, name: str, *queues: str, beat: bool = False) -> subprocess.Popen[bytes]:
        argv = [*CELERY, "worker", "-Q", ",".join(queues), "-n", f"{name}@faults", "--concurrency", "1"]
        argv += ["--without-gossip", "--without-mingle", "--loglevel", "INFO"]
        if beat:
            argv += ["-B", "-s", str(self.var / "celerybeat-schedule")]
        return self.start(name, argv)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.var / "db.sqlite3", timeout=30) as db:
            return db.execute(sql, args).fetchall()

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(what: str, check: Callable[[], Any], timeout: float, logs: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.25)
    pytest.fail(f"{what}: not within {timeout:g} s\n{logs()[-4000:]}")


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[Suite]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY", "DJANGO", "REDIS", "DATABASE"))}
    var = tmp_path / "var"
    env.update(
        DJANGO_SETTINGS_MODULE="tests.faults.settings",
        VAR_DIR=str(var),
        DATABASE_URL=f"sqlite:///{var / 'db.sqlite3'}",
        MODEL_STORE=str(var / "models"),
        CELERY_BROKER_URL="filesystem://",
        ML_BACKEND="fake",
        PYTHONUNBUFFERED="1",
    )
    made = Suite(tmp_path, env)
    made.manage("migrate", "--noinput", "-v", "0")
    yield made
    made.stop_all()


def _heartbeats(suite: Suite) -> set[str]:
    return {row[0] for row in suite.rows("SELECT hostname FROM core_workerheartbeat")}


def _job(suite: Suite, pk: int) -> dict[str, Any]:
    sql = "SELECT status, step, attempts, claimed_by, log_tail, error FROM core_trainingjob WHERE id = ?"
    cols = ("status", "step", "attempts", "claimed_by", "log_tail", "error")
    return dict(zip(cols, suite.rows(sql, pk)[0], strict=True))


def test_a_job_whose_worker_was_killed_is_finished_by_the_next_worker_exactly_once(suite: Suite) -> None:
    # given a default worker with beat (the reaper runs there) and a training worker in the middle of a job
    suite.worker("default", "default", beat=True)
    first = suite.worker("training-1", "training")
    wait_for("both workers up", lambda: {"default@faults", "training-1@faults"} <= _heartbeats(suite), 120)
    create = (
        "from apps.core.services.jobs import job_create; "
        "print(job_create(kind='fault_slow_train', params={'steps': 20, 'step_seconds': 0.5}, user=None).pk)"
    )
    pk = int(suite.manage("shell", "-c", create).split()[-1])
    running = wait_for(
        "the job running on the first worker",
        lambda: (job := _job(suite, pk))["status"] == "running" and job["step"] >= 3 and job,
        60,
        lambda: suite.log("training-1"),
    )
    holder = running["claimed_by"]
    holder_pid = int(holder.split(":")[1])

    # when the worker is killed (its pool process, which runs the job, dies with it) and another one starts
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    killed_at = time.monotonic()
    wait_for("the job's process gone with its worker", lambda: not process_alive(holder_pid), 10)
    assert _job(suite, pk)["status"] == "running"  # nobody finished it for the dead worker
    suite.worker("training-2", "training")

    # then the job is requeued and finished, once, by the new worker
    done = wait_for(
        "the job finished",
        lambda: (job := _job(suite, pk))["status"] not in ("pending", "running") and job,
        120,
        lambda: suite.log("default") + suite.log("training-2"),
    )
    took = time.monotonic() - killed_at
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2 and done["claimed_by"] != holder
    assert f"requeued: worker {holder} stopped responding" in done["log_tail"]
    assert suite.rows("SELECT COUNT(*) FROM core_modelversion WHERE task = 'fault-slow'") == [(1,)]
    print(f"fault: the killed job finished {took:.0f} s after the kill, on attempt {done['attempts']}")
    assert took < 120, f"took {took:.0f} s after the kill"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, opener: urllib.request.OpenerDirector | None = None) -> tuple[int, dict[str, Any]]:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _staff_session(base: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    form = {"username": "ops", "password": "a-long-secret-9", "csrfmiddlewaretoken": token.group(1)}
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=urllib.parse.urlencode(form).encode(), headers={"Referer": base + "/"}
    )
    opener.open(request, timeout=10)
    assert any(cookie.name == "sessionid" for cookie in jar), "the staff login did not take"
    return opener


def _supervised(suite: Suite) -> dict[str, Any]:
    try:
        return dict(json.loads((suite.var / "supervisor.json").read_text())["processes"])
    except (FileNotFoundError, ValueError):
        return {}


def test_run_suite_restarts_a_killed_worker_while_the_web_keeps_answering(suite: Suite) -> None:
    suite.env.update(DJANGO_SUPERUSER_PASSWORD="a-long-secret-9")
    suite.manage("createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    run = suite.start(
        "suite",
        [sys.executable, "manage.py", "run_suite", "--bind", f"127.0.0.1:{port}", "--web-workers", "1"],
    )
    everyone = {"default@%s", "inference@%s", "training@%s"}
    hostname = socket.gethostname()
    wait_for(
        "every worker and beat up",
        lambda: {name % hostname for name in everyone} | {"beat"} <= _heartbeats(suite),
        180,
        lambda: suite.log("suite"),
    )
    wait_for(
        "the web answering", lambda: _get(f"{base}/healthz")[0] in (200, 503), 60, lambda: suite.log("suite")
    )
    victim = _supervised(suite)["worker-default"]["pid"]

    os.kill(victim, signal.SIGKILL)

    restarted = wait_for(
        "worker-default restarted",
        lambda: (
            (p := _supervised(suite).get("worker-default", {}))["state"] == "running"
            and p["pid"] != victim
            and p
        ),
        30,
        lambda: suite.log("suite"),
    )
    assert restarted["restarts"] == 1 and restarted["last_exit"]["code"] == -9
    assert "worker-default exited with code -9 (SIGKILL); restarting in 1 s (restart 1)" in suite.log("suite")
    status, anonymous = _get(f"{base}/healthz")
    assert status in (200, 503) and set(anonymous) == {
        "status"
    }  # the web kept answering, and tells no details
    _, staff = _get(f"{base}/healthz", _staff_session(base))
    seen = staff["checks"]["process:worker-default"]
    assert seen["restarts"] == 1 and seen["state"] == "running" and seen["last_exit"]["code"] == -9
    assert all(p["restarts"] == 0 for name, p in _supervised(suite).items() if name != "worker-default")

    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 0
    assert suite.log("suite").rstrip().endswith("all processes stopped")
    assert not (suite.var / "supervisor.json").exists()


def _counts(suite: Suite) -> tuple[int, int, int, int]:
    """(items, scores, distinct scored items, items counted in the all-items hour buckets)."""
    items = suite.rows("SELECT COUNT(*) FROM sentiment_item")[0][0]
    scores, scored = suite.rows("SELECT COUNT(*), COUNT(DISTINCT item_id) FROM sentiment_score")[0]
    bucketed = suite.rows(
        "SELECT COALESCE(SUM(count), 0) FROM sentiment_bucket WHERE entity_id IS NULL AND topic_id IS NULL "
        "AND granularity = 'hour'"
    )[0][0]
    return items, scores, scored, bucketed


def test_an_inference_worker_killed_mid_scoring_loses_and_doubles_nothing(
    suite: Suite, tmp_path: Path
) -> None:
    # given an active (fake) sentiment model and an inference worker that scores slowly
    model = tmp_path / "model"
    suite.manage(
        "shell",
        "-c",
        "from pathlib import Path; from tests.apps.sentiment.scoring_data import train_fake; "
        "from apps.core.services.registry import model_version_register; "
        f"model_version_register(task='sentiment', artifact_dir=train_fake(Path({str(model)!r})))",
    )
    suite.env["FAULT_SCORE_SECONDS"] = "0.02"  # a chunk of 256 texts takes about 5 s
    first = suite.worker("inference-1", "inference")
    wait_for("the inference worker up", lambda: "inference-1@faults" in _heartbeats(suite), 120)
    ingest = (
        "from apps.sentiment.services import ingest; "
        "src = ingest.source_get_or_create(name='wire', kind='push'); "
        "records = [ingest.ItemRecord(text=f'Company {i} beats estimates and lifts its outlook, report {i}') "
        "for i in range(600)]; "
        "print(ingest.items_ingest(source=src, records=records).created)"
    )
    assert suite.manage("shell", "-c", ingest).split()[-1] == "600"

    # when the worker is killed in the middle of scoring
    wait_for("the first chunk scored", lambda: _counts(suite)[1] >= 256, 60, lambda: suite.log("inference-1"))
    time.sleep(1.0)  # into the second chunk
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    partial = _counts(suite)
    assert 256 <= partial[1] < 600, "the worker finished before it could be killed: slow scoring down further"

    # then a new worker and the straggler sweep (what beat runs every 10 minutes) score the rest, once
    suite.worker("inference-2", "inference")
    wait_for("the new worker up", lambda: "inference-2@faults" in _heartbeats(suite), 120)
    sweep = (
        "from datetime import timedelta; from django.utils import timezone; "
        "from apps.sentiment import selectors; from apps.sentiment.services.ingest import enqueue_scoring; "
        "ids = selectors.items_stragglers(now=timezone.now() + timedelta(minutes=16)); "
        "enqueue_scoring(ids); print(len(ids))"
    )
    requeued = int(suite.manage("shell", "-c", sweep).split()[-1])
    done = wait_for(
        "every item scored",
        lambda: (c := _counts(suite))[2] == 600 and c,
        120,
        lambda: suite.log("inference-2"),
    )
    time.sleep(2.0)  # a late duplicate would show now
    items, scores, scored, bucketed = _counts(suite)
    print(f"fault: killed mid-scoring with {partial[1]} of 600 scored; {requeued} re-queued; now {done}")
    assert (items, scores, scored) == (600, 600, 600)
    assert bucketed == 600  # every score in the series once
