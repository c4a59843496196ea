"""`make bench`: run every benchmark, write benchmarks/results/latest.json and latest.md.

Each module exposes `run(...)` returning a dict of figures; speed figures are ratios against a baseline
measured in the same run (these machines are small and noisy, so absolute numbers vary between runs).
A module that fails is recorded with its error and the others still run; the command then exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ORDER = [
    "bench_embeddings",
    "bench_classify",
    "bench_search",
    "bench_support_retrieval",
    "bench_generation",
    "bench_memory",
    "bench_sentiment",
    "bench_alerts",
    "bench_live",
]


def _data_dir() -> Path:
    default = ROOT.parent / "shared" / "data"
    return Path(os.environ.get("DATA_DIR", str(default)))


def _call(module: Any, quick: bool, context: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(module.run).parameters
    offered = {"data_dir": _data_dir(), "quick": quick, **context}
    return dict(module.run(**{k: v for k, v in offered.items() if k in params}))


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Benchmarks ({results['meta']['started_at']}, {results['meta']['machine']}; {results['meta'].get('cpu', 'cpu unknown')})",
        "",
        "| benchmark | figure | value |",
        "|---|---|---|",
    ]
    for name, figures in results["benchmarks"].items():
        for key, value in _flatten(figures):
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            lines.append(f"| {name} | {key} | {shown} |")
    return "\n".join(lines) + "\n"


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows.extend(_flatten(v, key + "."))
        elif isinstance(v, list) and len(v) > 6:
            rows.append((key, f"[{len(v)} values]"))
        else:
            rows.append((key, v))
    return rows


# int8 speed depends on these more than on anything else: with AVX2 alone int8 products go through 16-bit
# pairs; VNNI (AVX-512 or AVX) has a fused int8 dot product; AMX has tile instructions. Runs on machines
# with different flags are not comparable.
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_description() -> str:
    """The CPU's model name and the instruction sets that decide int8 speed (Linux; "unknown" elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown"
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "flags"):
            fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    found = [flag for flag in INT8_FLAGS if flag in flags]
    return f"{fields.get('model name', 'unknown')}; {' '.join(found) or 'no AVX2'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    parser.add_argument("--only", nargs="*", default=None, help="module names to run")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")
    started = time.monotonic()
    results: dict[str, Any] = {
        "meta": {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "cpu": cpu_description(),
            "quick": args.quick,
        },
        "benchmarks": {},
        "errors": {},
    }
    context: dict[str, Any] = {}
    failed = False
    for name in args.only or ORDER:
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            figures = _call(module, args.quick, context)
        except Exception as exc:  # record and go on: one broken benchmark must not hide the others
            traceback.print_exc()
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            failed = True
            continue
        figures["seconds"] = round(time.monotonic() - t0, 1)
        results["benchmarks"][name] = figures
        if isinstance(figures.get("classifier_dir"), str):
            context["classifier_dir"] = figures["classifier_dir"]
        print(json.dumps(figures, indent=1, default=str)[:3000], flush=True)
    results["meta"]["total_seconds"] = round(time.monotonic() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    (RESULTS / "latest.md").write_text(_markdown(results), encoding="utf-8")
    print(f"wrote {RESULTS / 'latest.json'} and latest.md in {results['meta']['total_seconds']} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
