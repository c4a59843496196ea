"""The process refuses to start on missing or malformed environment, naming the variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from apps.env import env_choice, env_float

ROOT = Path(__file__).resolve().parents[3]
PROD = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "x9" * 20 + "abcdefghijklmnop",
    "ALLOWED_HOSTS": "contexta.example.com",
    "DATABASE_URL": "postgres://contexta:pw@db:5432/contexta",
    "CELERY_BROKER_URL": "redis://redis:6379/0",
    "REDIS_URL": "redis://redis:6379/1",
}


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in PROD and not k.startswith("CELERY")}
    clean.update(VAR_DIR=str(tmp_path / "var"), MODEL_STORE=str(tmp_path / "models"), **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATABASE_URL": "mysql//nope"}, "DATABASE_URL"),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
        ({"CONTEXTA_LOCAL": "0"}, "DJANGO_SECRET_KEY"),
        ({"BIND": "0.0.0.0:8000"}, "BIND"),
        ({"DJANGO_SECRET_KEY": "short"}, "DJANGO_SECRET_KEY"),
        ({"CELERY_BROKER_URL": "localhost:6379"}, "CELERY_BROKER_URL"),
        ({"REDIS_URL": "http://cache"}, "REDIS_URL"),
        ({"CELERY_TASK_TIME_LIMIT": "ten"}, "CELERY_TASK_TIME_LIMIT"),
        ({"ML_DEVICE": "tpu"}, "ML_DEVICE"),
        ({"CONTEXTA_ADMIN_PASSWORD": "short"}, "CONTEXTA_ADMIN_PASSWORD"),
        ({"SENTIMENT_BACKEND": "gpu-magic"}, "SENTIMENT_BACKEND"),
    ],
)
def test_bad_environment_stops_the_process_naming_the_variable(tmp_path, env, named):
    result = _manage(tmp_path, "check", **env)
    assert result.returncode != 0
    assert named in result.stderr


def test_check_deploy_is_clean_with_production_values(tmp_path):
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PROD)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_embedded_default_is_local_with_debug_off(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.LOCAL, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.SECRET_KEY == '')"
    )
    result = _manage(tmp_path, "shell", "-c", code)
    assert result.stdout.strip().splitlines()[-1] == "False True False False False", result.stderr
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o077 == 0


def test_debug_is_on_only_when_asked_and_production_is_strict(tmp_path):
    code = "from django.conf import settings as s; print(s.DEBUG, s.LOCAL, s.SECURE_SSL_REDIRECT)"
    assert _manage(tmp_path, "shell", "-c", code, DJANGO_DEBUG="1").stdout.split()[-3:] == [
        "True",
        "True",
        "False",
    ]
    strict = _manage(tmp_path, "shell", "-c", code, **PROD)
    assert strict.stdout.split()[-3:] == ["False", "False", "True"], strict.stderr


def test_no_eager_celery_outside_tests(tmp_path):
    code = "from django.conf import settings; print(settings.CELERY_TASK_ALWAYS_EAGER)"
    result = _manage(tmp_path, "shell", "-c", code)
    assert result.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(
    ("reader", "raw", "message"),
    [
        (lambda: env_float("X_FLOAT", 1.0, minimum=0.1), "nan", "X_FLOAT must be >= 0.1"),
        (lambda: env_float("X_FLOAT", 1.0, minimum=0.1), "fast", "X_FLOAT must be a number"),
        (lambda: env_choice("X_CHOICE", "a", choices=("a", "b")), "c", "X_CHOICE must be one of a, b"),
    ],
)
def test_typed_readers_name_the_variable_and_what_it_takes(monkeypatch, reader, raw, message):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv(message.split()[0], raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        reader()


def test_typed_readers_return_defaults_and_parse_values(monkeypatch):
    assert env_float("X_FLOAT", 2.5) == 2.5
    monkeypatch.setenv("X_FLOAT", "0.25")
    assert env_float("X_FLOAT", 2.5) == 0.25
    assert env_choice("X_CHOICE", "b", choices=("a", "b")) == "b"


def test_apps_read_settings_only_through_the_settings_module():
    """Every setting is read once, typed, in apps/settings.py: no module reads the environment itself."""
    allowed = {"settings.py", "env.py", "celery.py", "wsgi.py", "asgi.py"}  # the last three set the module
    offenders = []
    for path in (ROOT / "apps").rglob("*.py"):
        if "migrations" in path.parts or (path.parent == ROOT / "apps" and path.name in allowed):
            continue
        text = path.read_text(encoding="utf-8")
        for needle in (
            r"os\.environ",
            r"os\.getenv",
            r"getattr\(settings,[^,()]+,",
        ):  # a default: a hidden setting
            if re.search(needle, text):
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []
