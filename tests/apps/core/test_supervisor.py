"""run_suite's supervision: back-off, restarts of real child processes, the state file, a clean stop."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest

from apps.core.heartbeat import process_alive
from apps.core.supervisor import (
    Backoff,
    Child,
    Supervisor,
    describe_exit,
    process_summary,
    read_state,
    write_json_atomically,
)

PY = sys.executable
CRASH = [PY, "-c", "import sys; sys.exit(3)"]
SLEEP = [PY, "-c", "import time; time.sleep(120)"]


class Clock:
    """A monotonic clock the test moves by hand, so back-off delays need no waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Supervised:
    """Makes supervisors that write to a temporary state file and a list; stops their children afterwards."""

    def __init__(self, tmp_path: Path, clock: Clock) -> None:
        self.tmp_path, self.clock, self.said, self.made = tmp_path, clock, [], []

    def __call__(self, **commands: list[str]) -> Supervisor:
        sup = Supervisor(
            commands=commands,
            say=self.said.append,
            state_path=self.tmp_path / "supervisor.json",
            clock=self.clock,
        )
        self.made.append(sup)
        return sup


@pytest.fixture
def supervised(tmp_path: Path, clock: Clock) -> Iterator[Supervised]:
    made = Supervised(tmp_path, clock)
    yield made
    for sup in made.made:
        sup.stop_all(grace=2)


def _wait_exited(sup: Supervisor, name: str) -> None:
    process = sup.children[name].process
    assert process is not None
    process.wait(timeout=30)


def test_backoff_doubles_from_one_second_up_to_the_cap():
    backoff = Backoff(initial=1, cap=60)
    assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_child_that_ran_stably_starts_its_back_off_again():
    backoff = Backoff(initial=1, cap=60, stable_after=60)
    child = Child("worker-default", SLEEP)
    delays = []
    for started in (0, 1, 3):  # three quick crashes in a row
        child.started = started
        delays.append(child.on_exit(-9, started + 0.5, 0.0, backoff))
    child.started = 10
    delays.append(child.on_exit(-9, 10 + 61, 0.0, backoff))  # this run lasted 61 s
    assert delays == [1, 2, 4, 1]
    assert child.restarts == 4


def test_exit_codes_are_described_with_their_signal():
    assert describe_exit(-9) == "code -9 (SIGKILL)"
    assert describe_exit(-15) == "code -15 (SIGTERM)"
    assert describe_exit(1) == "code 1"
    assert describe_exit(-999) == "code -999"


def test_a_crashed_child_is_restarted_after_its_delay_and_the_others_keep_running(supervised, clock):
    said = supervised.said
    sup = supervised(crasher=CRASH, sleeper=SLEEP)
    sup.start_all()
    sleeper_pid = sup.children["sleeper"].process.pid
    _wait_exited(sup, "crasher")

    sup.step()
    assert "crasher exited with code 3; restarting in 1 s (restart 1)" in said
    state = json.loads(sup.state_path.read_text())["processes"]
    assert state["crasher"]["state"] == "restarting" and state["crasher"]["restarts"] == 1
    assert state["crasher"]["last_exit"]["code"] == 3
    assert state["sleeper"] == {
        "state": "running",
        "pid": sleeper_pid,
        "restarts": 0,
        "last_exit": None,
        "restart_in": None,
    }

    clock.now += 0.5
    sup.step()
    assert sup.children["crasher"].state == "restarting"  # not yet: the delay is 1 s
    clock.now += 0.5
    sup.step()
    assert sup.children["crasher"].state == "running"
    _wait_exited(sup, "crasher")
    sup.step()  # second crash within a second of the restart: the delay doubles
    assert "crasher exited with code 3; restarting in 2 s (restart 2)" in said
    assert sup.children["sleeper"].process.pid == sleeper_pid


def test_kill_9_is_reported_with_the_signal(supervised):
    said = supervised.said
    sup = supervised(**{"worker-default": SLEEP})
    sup.start_all()
    os.kill(sup.children["worker-default"].process.pid, signal.SIGKILL)
    _wait_exited(sup, "worker-default")
    sup.step()
    assert said[-1] == "worker-default exited with code -9 (SIGKILL); restarting in 1 s (restart 1)"


def test_what_a_crashed_child_started_does_not_outlive_it(supervised, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    spawner = [
        PY,
        "-c",
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))",
    ]
    sup = supervised(web=spawner)
    sup.start_all()
    _wait_exited(sup, "web")
    grandchild = int(pid_file.read_text())
    assert process_alive(grandchild)
    sup.step()
    deadline = time.monotonic() + 10
    while process_alive(grandchild):
        assert time.monotonic() < deadline, "the crashed child's own child is still running"
        time.sleep(0.05)


def test_stop_terminates_then_kills_and_removes_the_state_file(supervised):
    said = supervised.said
    stubborn = [
        PY,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)",
    ]
    sup = supervised(polite=SLEEP, stubborn=stubborn)
    sup.start_all()
    processes = [c.process for c in sup.children.values()]
    time.sleep(0.5)  # let the stubborn one install its handler
    sup.stop_all(grace=1)
    assert [p.returncode for p in processes] == [-signal.SIGTERM, -signal.SIGKILL]
    assert "stubborn did not stop in 1 s: killing it" in said
    assert not sup.state_path.exists()


def test_the_state_file_counts_only_while_fresh(tmp_path):
    path = tmp_path / "var" / "supervisor.json"
    assert read_state(path) is None
    write_json_atomically(path, {"updated_at": 100.0, "processes": {}})
    assert read_state(path, now=110.0) == {"updated_at": 100.0, "processes": {}}
    assert read_state(path, now=100.0 + 60) is None  # left behind by a supervisor that is gone
    assert [p.name for p in path.parent.iterdir()] == ["supervisor.json"]  # no temporary files left over


def test_process_summary_reads_like_the_console():
    last = {"code": -9, "description": "code -9 (SIGKILL)", "at": "2026-01-02T03:04:05+00:00"}
    assert (
        process_summary({"state": "running", "pid": 12, "restarts": 0, "last_exit": None})
        == "running (pid 12)"
    )
    assert process_summary(
        {"state": "restarting", "pid": None, "restarts": 3, "last_exit": last, "restart_in": 2}
    ) == ("restarting in 2 s; 3 restarts, last exit code -9 (SIGKILL) at 2026-01-02T03:04:05+00:00")


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_run_suite_restarts_a_crashed_process_and_stops_on_sigterm(
    settings, tmp_path, monkeypatch, restore_signals
):
    from django.core.management import call_command

    from apps.core.management.commands import run_suite

    settings.VAR_DIR = tmp_path
    monkeypatch.setattr(
        run_suite, "process_commands", lambda bind, workers: {"crasher": CRASH, "sleeper": SLEEP}
    )
    state_file = tmp_path / "supervisor.json"

    def stop_after_a_restart() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = read_state(state_file)
            if state and state["processes"]["crasher"]["restarts"] >= 2:
                break
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_after_a_restart, daemon=True).start()
    out = StringIO()
    call_command("run_suite", "--bind", "127.0.0.1:1", stdout=out)
    lines = out.getvalue().splitlines()
    assert "crasher exited with code 3; restarting in 1 s (restart 1)" in lines
    assert "crasher exited with code 3; restarting in 2 s (restart 2)" in lines
    assert "stopping sleeper" in lines and lines[-1] == "all processes stopped"
    assert not state_file.exists()


def test_a_state_file_that_cannot_be_written_stops_nothing(supervised, tmp_path):
    said = supervised.said
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    sup = supervised(sleeper=SLEEP)
    sup.state_path = blocker / "supervisor.json"  # below a regular file: every write fails
    sup.start_all()
    sup.clock.now += 10
    sup.step()
    assert sup.children["sleeper"].state == "running"
    complaints = [line for line in said if line.startswith("cannot write")]
    assert len(complaints) == 1, said  # said once, not at every write
    assert complaints[0].startswith(f"cannot write {sup.state_path}: ")
