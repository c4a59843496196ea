"""Shared fixtures: an isolated model store, eager Celery for unit tests, users per role, real models once."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    services = bool(os.environ.get("REDIS_URL")) and os.environ.get("DATABASE_URL", "").startswith("postgres")
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    for item in items:
        if "services" in item.keywords and not services:
            item.add_marker(pytest.mark.skip(reason="needs DATABASE_URL=postgres://… and REDIS_URL"))
        if "gpu" in item.keywords and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))


@pytest.fixture(autouse=True)
def model_store(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes artifacts to its own temporary model store."""
    store = tmp_path / "models"
    store.mkdir()
    settings.MODEL_STORE = store
    monkeypatch.setenv("MODEL_STORE", str(store))
    return store


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """Password hashing is deliberately slow; tests make many users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def own_cache(settings: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test its own empty cache: rate-limit counts must not leak from one test into the next.

    The `services` tests keep the configured cache (Redis there), which they check; it is emptied too.
    """
    from django.core.cache import cache

    if request.node.get_closest_marker("services") is None:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def eager_celery(settings: Any) -> Iterator[None]:
    """Unit tests run tasks in-process; the product itself always uses worker processes."""
    from apps.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def make_user(db: None) -> Any:
    from django.contrib.auth.models import Group, User

    from apps.core.roles import ensure_roles

    def make(role: str | None, username: str | None = None) -> User:
        ensure_roles()
        user = User.objects.create_user(
            username=username or f"user-{role or 'none'}", password="pw-123456789"
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread while a module's tests run: on the shared 2-core test machines, SmolLM2 decoding and
    LoRA steps ran 3-6 times faster with one thread than with two competing for cores already in use."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def minilm_embedder() -> Any:
    """The real packaged all-MiniLM-L6-v2 on torch fp32, loaded once for the session."""
    from ml.api import embedder

    return embedder("torch-fp32")


@pytest.fixture
def asgi_site(tmp_path: Path) -> Iterator[Any]:
    """The web process as `make run` serves it (tests/asgi_site.py), for tests of live pages."""
    from tests.asgi_site import AsgiSite

    with AsgiSite(tmp_path).serving() as site:
        yield site


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium page (Debian's chromium driven by Playwright), for tests marked `browser`."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.fail("chromium is not installed: run `make browser` (make test does it)")
    # Playwright's sync API runs an event loop in the test thread; the ORM calls made there are safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page()
        refused: list[str] = []  # what the Content-Security-Policy blocked: the pages must need none of it
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        yield page
        browser.close()
    assert not refused, "the page needed what its Content-Security-Policy refuses:\n" + "\n".join(refused)
