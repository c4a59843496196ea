"""The web process never loads the heavy ML stack: model code runs in workers only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "transformers", "sentence_transformers", "faiss", "onnxruntime", "llama_cpp", "peft")

# What gunicorn loads, then every URL conf, view and API module a request can reach, every admin and form.
PROBE = """
import importlib, pkgutil, sys
import apps.wsgi  # django.setup(): settings, every AppConfig.ready(), admin autodiscovery
from django.urls import get_resolver
def walk(patterns):
    for p in patterns:
        if hasattr(p, "url_patterns"):
            walk(p.url_patterns)
walk(get_resolver().url_patterns)
from apps.core.platform import contexta_apps
for config in contexta_apps():
    for room in ("views", "api", "api_urls", "urls", "forms", "selectors", "admin", "jobs"):
        try:
            importlib.import_module(f"{config.name}.{room}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.{room}":
                raise
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print("HEAVY:" + ",".join(heavy))
"""


def test_the_web_process_imports_no_heavy_ml_library(tmp_path):
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    env = {
        "PATH": "/usr/bin:/bin",
        "VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "apps.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY:"
