"""The process refuses to start on missing or malformed environment, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        ({"DJANGO_DEBUG": "0"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "short"}, "DJANGO_SECRET_KEY"),
        ({"CELERY_BROKER_URL": "localhost:6379"}, "CELERY_BROKER_URL"),
        ({"REDIS_URL": "http://cache"}, "REDIS_URL"),
        ({"CELERY_TASK_TIME_LIMIT": "ten"}, "CELERY_TASK_TIME_LIMIT"),
        ({"ML_DEVICE": "tpu"}, "ML_DEVICE"),
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


def test_no_eager_celery_outside_tests(tmp_path):
    code = "from django.conf import settings; print(settings.CELERY_TASK_ALWAYS_EAGER)"
    result = _manage(tmp_path, "shell", "-c", code)
    assert result.stdout.strip().splitlines()[-1] == "False"
