"""SQLite writers wait for each other (IMMEDIATE transactions, a busy timeout) instead of failing at once.

The probe: during a large upload every heartbeat failed with "database is locked", an API write answered
500 and a finished training job lost its result in model_version_register. A deferred transaction that
reads and then writes while another process writes gets SQLITE_BUSY without waiting; IMMEDIATE takes the
lock at BEGIN, where the busy timeout applies.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connections, transaction

from apps.core.db import retry_while_locked

ALIAS = "locktest"


@pytest.fixture
def shared_file(tmp_path: Path, django_db_blocker: Any) -> Iterator[Path]:
    """A second database alias on a file, configured exactly as the default SQLite database is."""
    from django.conf import settings

    path = tmp_path / "shared.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE beat (name TEXT PRIMARY KEY, seen INTEGER)")
        db.execute("INSERT INTO beat VALUES ('worker', 0)")
    configured = settings.DATABASES["default"]
    if configured["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("SQLite locking: the suite runs on another database here")
    connections.settings[ALIAS] = {**connections["default"].settings_dict, "NAME": str(path)}
    with django_db_blocker.unblock():
        yield path
        connections[ALIAS].close()
    del connections.settings[ALIAS]


def _hold_write_lock(path: Path, seconds: float, started: threading.Event) -> None:
    """Another process's writer: an open write transaction for `seconds`."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE beat SET seen = seen + 1")
    started.set()
    time.sleep(seconds)
    db.execute("COMMIT")
    db.close()


def _read_then_write() -> int:
    """What update_or_create does: a read, then a write, in one transaction."""
    with transaction.atomic(using=ALIAS), connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT seen FROM beat WHERE name = 'worker'")
        (seen,) = cursor.fetchone()
        cursor.execute("UPDATE beat SET seen = %s WHERE name = 'worker'", [seen + 10])
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT seen FROM beat")
        return int(cursor.fetchone()[0])


def _with_lock_held(path: Path, action: Any) -> Any:
    started = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 1.0, started))
    with connections[ALIAS].cursor() as cursor:  # open the connection before the lock is taken
        cursor.execute("SELECT 1")
    holder.start()
    started.wait(5)
    try:
        return action()
    finally:
        holder.join()


def test_a_read_then_write_transaction_waits_for_another_writer(shared_file: Path) -> None:
    assert _with_lock_held(shared_file, _read_then_write) == 11  # the other writer's +1, then ours


def test_deferred_transactions_fail_at_once_which_is_why_the_setting_exists(shared_file: Path) -> None:
    connections[ALIAS].close()
    options = connections.settings[ALIAS]["OPTIONS"]
    connections.settings[ALIAS]["OPTIONS"] = {**options, "transaction_mode": "DEFERRED"}
    del connections[ALIAS]
    started = time.monotonic()
    with pytest.raises(OperationalError, match="locked"):
        _with_lock_held(shared_file, _read_then_write)
    assert time.monotonic() - started < 5  # it did not wait out the 30 s busy timeout


def test_retry_while_locked_repeats_a_write_until_the_lock_is_gone() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("database is locked")
        return "written"

    assert retry_while_locked(flaky, delays=(0.01, 0.01, 0.01)) == "written"
    assert len(calls) == 3


def test_retry_while_locked_gives_up_and_leaves_other_errors_alone() -> None:
    def locked() -> None:
        raise OperationalError("database is locked")

    def broken() -> None:
        raise OperationalError("no such table: beat")

    with pytest.raises(OperationalError, match="locked"):
        retry_while_locked(locked, delays=(0.01,))
    with pytest.raises(OperationalError, match="no such table"):
        retry_while_locked(broken, delays=(0.01, 0.01))
