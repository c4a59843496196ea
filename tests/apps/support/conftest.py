"""Fixtures of the support tests: the fake ML backend, a knowledge base, and running queued work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def fake_ml(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deterministic fake embedder and index (ML_BACKEND=fake): app logic without a model."""
    monkeypatch.setenv("ML_BACKEND", "fake")


@pytest.fixture
def support_kb(db: None) -> Any:
    from apps.support.services.knowledge import kb_create

    return kb_create(name="Help centre", slug="help")


@pytest.fixture
def run_queued(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Call `write()` and run what it queued once it commits (jobs, fetches), as a worker would."""

    def run(write: Callable[[], Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return write()

    return run


@pytest.fixture
def loopback(settings: Any) -> Iterator[None]:
    """Outbound requests may reach 127.0.0.1 (the local test servers)."""
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    yield
