"""Peak resident memory of one inference worker process with embedder, classifier and generator loaded.

Runs in a fresh subprocess so the figure is that process alone, loading the models the way an inference
worker does (through ml.api and its per-process cache), then doing one call on each. Measured twice: with the
default generator backend (llama.cpp on the GGUF on CPU) and with the transformers one ("local", fp32).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

_CHILD = r"""
import json, sys
from pathlib import Path
import ml.api as api

def kib(field):
    # /proc/self/status, not getrusage: ru_maxrss keeps the high-water mark of the process this one was forked
    # from (make bench's own, several GB), while VmHWM belongs to this program's memory alone.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field + " not in /proc/self/status")

base = kib("VmHWM")
api.embed(["warm up the embedder"])
clf = sys.argv[1]
if clf:
    api.classify(clf, ["warm up the classifier"], backend=sys.argv[2])
gen = api.generator()
gen.generate(api.GenerationRequest(messages=[{"role": "user", "content": "Say hello."}], max_new_tokens=8))
peak = kib("VmHWM")
print(json.dumps({"peak_rss_mib": peak / 1024, "python_baseline_mib": base / 1024, "generator": gen.name}))
"""


def _probe(classifier_dir: str | None, classifier_backend: str, generator_backend: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, classifier_dir or "", classifier_backend],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "ML_GENERATOR_BACKEND": generator_backend},
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed: {out.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def run(classifier_dir: str | None = None, classifier_backend: str = "onnx-int8") -> dict[str, Any]:
    figures = _probe(classifier_dir, classifier_backend, "auto")
    figures["target_mib"] = 1536
    figures["meets_target"] = figures["peak_rss_mib"] <= 1536
    figures["loaded"] = [
        "embedder (default backend)",
        f"classifier ({classifier_backend})" if classifier_dir else "no classifier",
        f"generator (SmolLM2, {figures['generator']})",
    ]
    local = _probe(classifier_dir, classifier_backend, "local")
    figures["with_local_fp32_generator_peak_rss_mib"] = local["peak_rss_mib"]
    return figures
