"""Peak resident memory of one inference worker process with embedder, classifier and generator loaded.

Runs in a fresh subprocess so the figure is that process alone, loading the models the way an inference
worker does (through ml.api and its per-process cache), then doing one call on each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_CHILD = r"""
import json, resource, sys
from pathlib import Path
import ml.api as api
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
api.embed(["warm up the embedder"])
clf = sys.argv[1]
if clf:
    api.classify(clf, ["warm up the classifier"], backend=sys.argv[2])
from ml.generation import GenerationRequest
api.generate(GenerationRequest(messages=[{"role": "user", "content": "Say hello."}], max_new_tokens=8))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_rss_mib": peak / 1024, "python_baseline_mib": base / 1024}))
"""


def run(classifier_dir: str | None = None, classifier_backend: str = "onnx-int8") -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, classifier_dir or "", classifier_backend],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed: {out.stderr[-2000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["target_mib"] = 1536
    figures["meets_target"] = figures["peak_rss_mib"] <= 1536
    figures["loaded"] = [
        "embedder (default backend)",
        f"classifier ({classifier_backend})" if classifier_dir else "no classifier",
        "generator (SmolLM2)",
    ]
    return figures
