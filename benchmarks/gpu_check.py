"""One-shot check on a CUDA machine: the `gpu` tests, then generation speed in bf16, 8-bit and 4-bit.

    .venv/bin/python -m benchmarks.gpu_check [--install]

Prints a Markdown table. 8-bit and 4-bit weights need `bitsandbytes` (or, failing that, `torchao`); with
--install the script tries `pip install bitsandbytes` first. Designed to finish in under five minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST_TIMEOUT_S = 150
BENCH_TIMEOUT_S = 120


def _cuda() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _quant_package(install: bool) -> str | None:
    for name in ("bitsandbytes", "torchao"):
        if importlib.util.find_spec(name) is not None:
            return name
    if install:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "bitsandbytes"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode == 0:
            return "bitsandbytes"
        print(f"pip install bitsandbytes failed: {done.stderr.strip()[-300:]}")
    return None


def _gpu_tests() -> tuple[str, float]:
    start = time.perf_counter()
    env = {**os.environ, "ML_DEVICE": "cuda", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/ml", "-q", "-p", "no:cacheprovider"]
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"timed out after {TEST_TIMEOUT_S} s", time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return (lines[-1] if lines else f"exit {done.returncode}"), time.perf_counter() - start


def _bench(variants: tuple[str, ...]) -> dict[str, Any]:
    """The generation benchmark in its own process, so a crash or a hang in one quantizer cannot stop the table."""
    code = (
        "import json, sys; from benchmarks.bench_generation import run; "
        f"print(json.dumps(run(True, device='cuda', variants={variants!r})))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=BENCH_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {BENCH_TIMEOUT_S} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-500:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _table(report: dict[str, Any]) -> str:
    rows = [
        "| variant | tokens/s | TTFT (s) | same greedy text as fp32 | ratio to fp32 generate() | meets targets |",
        "|---|---|---|---|---|---|",
    ]
    base = report.get("baseline_model_generate_fp32")
    if base:
        rows.append(
            f"| fp32 `model.generate()` | {base['tokens_per_s']:.1f} | {base['ttft_s']:.3f} | - | 1.00 | - |"
        )
    for label, r in report.get("variants", {}).items():
        if "error" in r:
            rows.append(f"| {label} | error: {r['error'][:80]} | | | | |")
            continue
        rows.append(
            f"| {label} | {r['tokens_per_s']:.1f} | {r['ttft_s']:.3f} | {r['same_text_as_baseline']}/{r['prompts']}"
            f" | {r['ratio_to_baseline']:.2f} | {'yes' if r['meets_targets'] else 'no'} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="pip install bitsandbytes when missing")
    args = parser.parse_args()
    device = _cuda()
    if device is None:
        print(
            "gpu_check: no CUDA device is available (torch.cuda.is_available() is False); run it on a GPU machine."
        )
        return 2
    start = time.perf_counter()
    quant = _quant_package(args.install)
    variants = ("bf16", "8bit", "4bit") if quant else ("bf16",)
    tests, tests_s = _gpu_tests()
    report = _bench(variants)
    print(f"## GPU check on {device}\n")
    print(f"- `pytest -m gpu tests/ml`: {tests} ({tests_s:.0f} s)")
    print(f"- 8/4-bit weights via: {quant or 'none installed (pip install bitsandbytes); 8bit/4bit skipped'}")
    if "error" in report:
        print(f"- generation benchmark failed: {report['error']}")
    else:
        print(
            f"- generation: {report['model']}, {report['prompts']} prompts, {report['new_tokens']} new tokens\n"
        )
        print(_table(report))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0 if "passed" in tests and "failed" not in tests and "error" not in report else 1


if __name__ == "__main__":
    sys.exit(main())
