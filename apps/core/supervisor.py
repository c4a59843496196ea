"""`run_suite`'s supervision: restart a child that exits on its own, with back-off, and say so.

A child that exits unasked is restarted after a delay that doubles from `Backoff.initial` to `Backoff.cap`;
once a child has run `Backoff.stable_after` seconds, its next crash starts from `initial` again. The
supervisor's view of each child (running or restarting, restarts, last exit) is written atomically to
VAR_DIR/supervisor.json, which /healthz shows to staff while it is fresh. This is deliberately small: one
host, one supervisor, no configuration. In containers the same job is Docker's (`restart: unless-stopped`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess  # nosec B404 # runs fixed argument lists only
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

RUNNING, RESTARTING, STOPPED = "running", "restarting", "stopped"
STATE_FILE = "supervisor.json"
STATE_EVERY = 5.0  # seconds between rewrites of the state file while nothing changes
STATE_FRESH = 3 * STATE_EVERY  # an older file was left by a supervisor that is gone: ignore it


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    cap: float = 60.0
    stable_after: float = 60.0

    def delay(self, streak: int) -> float:
        """Seconds before the `streak`-th restart in a row: initial, 2 x initial, ... up to cap."""
        return float(min(self.cap, self.initial * 2 ** max(0, streak - 1)))


def describe_exit(code: int) -> str:
    """'code 1', or 'code -9 (SIGKILL)' for a child killed by a signal (Popen's negative return codes)."""
    if code < 0:
        try:
            return f"code {code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"code {code}"


@dataclass
class Child:
    """What the supervisor knows about one child process; times are time.monotonic() unless named wall."""

    name: str
    command: Sequence[str]
    state: str = STOPPED
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    streak: int = 0  # restarts since the child last ran stably
    started: float = 0.0
    restart_at: float = 0.0
    last_exit_code: int | None = None
    last_exit_wall: float | None = None

    def on_start(self, process: subprocess.Popen[bytes], now: float) -> None:
        self.process, self.state, self.started = process, RUNNING, now

    def on_exit(self, code: int, now: float, wall: float, backoff: Backoff) -> float:
        """Record an exit nobody asked for; returns the delay before the restart."""
        self.streak = 1 if now - self.started >= backoff.stable_after else self.streak + 1
        self.restarts += 1
        delay = backoff.delay(self.streak)
        self.process, self.state, self.restart_at = None, RESTARTING, now + delay
        self.last_exit_code, self.last_exit_wall = code, wall
        return delay

    def as_json(self, now: float) -> dict[str, Any]:
        last_exit = None
        if self.last_exit_code is not None and self.last_exit_wall is not None:
            at = datetime.fromtimestamp(self.last_exit_wall, tz=UTC).isoformat(timespec="seconds")
            last_exit = {
                "code": self.last_exit_code,
                "description": describe_exit(self.last_exit_code),
                "at": at,
            }
        return {
            "state": self.state,
            "pid": self.process.pid if self.process else None,
            "restarts": self.restarts,
            "last_exit": last_exit,
            "restart_in": round(max(0.0, self.restart_at - now), 1) if self.state == RESTARTING else None,
        }


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pid, sig)


@dataclass
class Supervisor:
    """Starts `commands` (name -> argv), each child in its own process group, and keeps them running."""

    commands: Mapping[str, Sequence[str]]
    say: Callable[[str], None]
    state_path: Path
    backoff: Backoff = Backoff()
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    children: dict[str, Child] = field(init=False)
    _written: float = field(init=False, default=float("-inf"))
    _write_failed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.children = {name: Child(name, command) for name, command in self.commands.items()}

    def start_all(self) -> None:
        for child in self.children.values():
            self._start(child)
        self.write_state()

    def step(self) -> None:
        """One round: notice children that exited, restart those whose delay is over, refresh the state file."""
        now, changed = self.clock(), False
        for child in self.children.values():
            if child.state == RUNNING and child.process and (code := child.process.poll()) is not None:
                # Orphans of the child (gunicorn's workers, a worker's pool) must not outlive it.
                _kill_group(child.process.pid, signal.SIGKILL)
                delay = child.on_exit(code, now, self.wall(), self.backoff)
                self.say(
                    f"{child.name} exited with {describe_exit(code)}; restarting in {delay:g} s "
                    f"(restart {child.restarts})"
                )
                changed = True
            elif child.state == RESTARTING and now >= child.restart_at:
                self._start(child)
                changed = True
        if changed or now - self._written >= STATE_EVERY:
            self.write_state()

    def stop_all(self, grace: float) -> None:
        """SIGTERM every running child, SIGKILL its group if it has not stopped after `grace` seconds.

        The signal goes to the child alone, not its group: gunicorn's master and a Celery worker's main
        process stop their own workers and pool (a pool process signalled directly dies mid-task, and the
        worker logs that as an error). Whatever is left in the group afterwards is killed.
        """
        running = [(c.name, c.process) for c in self.children.values() if c.state == RUNNING and c.process]
        for name, process in running:
            self.say(f"stopping {name}")
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = self.clock() + grace
        for name, process in running:
            try:
                process.wait(timeout=max(0.1, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                self.say(f"{name} did not stop in {grace:g} s: killing it")
                _kill_group(process.pid, signal.SIGKILL)
                process.wait()
            _kill_group(process.pid, signal.SIGKILL)  # leftovers of a child that did stop
        for child in self.children.values():
            child.state, child.process = STOPPED, None
        with contextlib.suppress(OSError):
            self.state_path.unlink(missing_ok=True)

    def write_state(self) -> None:
        now = self.clock()
        state = {
            "supervisor_pid": os.getpid(),
            "updated_at": self.wall(),
            "processes": {name: child.as_json(now) for name, child in self.children.items()},
        }
        self._written = now
        try:
            write_json_atomically(self.state_path, state)
        except OSError as exc:  # /healthz loses the view, the children lose nothing
            if not self._write_failed:
                self.say(f"cannot write {self.state_path}: {exc}")
            self._write_failed = True
        else:
            self._write_failed = False

    def _start(self, child: Child) -> None:
        # Each child in its own process group: Ctrl-C reaches only us, and we stop them in order.
        process = subprocess.Popen(list(child.command), start_new_session=True)  # nosec B603 # a fixed argument list, no shell, no user input
        child.on_start(process, self.clock())
        self.say(f"started {child.name} (pid {process.pid})")


def write_json_atomically(path: Path, data: object) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def state_path() -> Path:
    return Path(settings.VAR_DIR) / STATE_FILE


def read_state(path: Path | None = None, *, now: float | None = None) -> dict[str, Any] | None:
    """The running supervisor's state, or None when there is none (no file, or one left by a dead one)."""
    path = path or state_path()
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        logger.exception("cannot read the supervisor state %s", path)
        return None
    age = (time.time() if now is None else now) - float(state.get("updated_at", 0))
    return state if age <= STATE_FRESH else None


def process_summary(process: Mapping[str, Any]) -> str:
    """One line for /healthz and the dashboard: 'running (pid 12); 1 restart, last exit code -9 (SIGKILL) …'."""
    if process["state"] == RESTARTING:
        head = f"restarting in {process['restart_in']:g} s"
    else:
        head = f"{process['state']} (pid {process['pid']})" if process.get("pid") else process["state"]
    restarts = process["restarts"]
    if not restarts:
        return head
    last = process.get("last_exit") or {}
    plural = "" if restarts == 1 else "s"
    return f"{head}; {restarts} restart{plural}, last exit {last.get('description', '?')} at {last.get('at', '?')}"
