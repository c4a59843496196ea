"""The quality gate that decides whether int8 embeddings may be the CPU default.

int8 passes when, on a corpus of real sentences, every int8 vector keeps cosine >= 0.99 to its fp32 vector
(the minimum, not the mean: one badly distorted text is a wrong search result) and the top-10 nearest
neighbours of each sentence within the corpus overlap at least 90 % between int8 and fp32. The benchmark
computes the report and stores it beside the export it measured (`MODEL_STORE/onnx/<key>/quality.json`), so a
new export (new weights, new quantization settings) has no report until it is measured again; `auto` then
stays on fp32.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml.errors import InvalidInput

if TYPE_CHECKING:
    from ml.embeddings import Embedder

COSINE_MIN = 0.99
OVERLAP_MIN = 0.9
NEIGHBOURS = 10
GATE_FILE = "quality.json"


@dataclass(frozen=True)
class QualityReport:
    cosine_min: float
    cosine_mean: float
    top10_overlap: float
    passed: bool
    reason: str
    n: int = 0


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Mean share of each row's k nearest other rows (by dot product) that `a` and `b` agree on."""
    n = a.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return 1.0
    overlaps = []
    for start in range(0, n, 512):  # blocks keep the similarity matrix small for large corpora
        rows = np.arange(start, min(start + 512, n))
        sa, sb = a[rows] @ a.T, b[rows] @ b.T
        sa[np.arange(len(rows)), rows] = -np.inf
        sb[np.arange(len(rows)), rows] = -np.inf
        top_a = np.argpartition(-sa, k, axis=1)[:, :k]
        top_b = np.argpartition(-sb, k, axis=1)[:, :k]
        overlaps += [len(set(x) & set(y)) / k for x, y in zip(top_a.tolist(), top_b.tolist(), strict=True)]
    return float(np.mean(overlaps))


def compare(candidate: np.ndarray, reference: np.ndarray) -> QualityReport:
    """Judge `candidate` vectors against `reference` (both L2-normalised, same rows)."""
    if candidate.shape != reference.shape or candidate.shape[0] < 2:
        raise InvalidInput(
            f"need two same-shaped sets of >= 2 vectors, got {candidate.shape} and {reference.shape}"
        )
    cosines = (candidate * reference).sum(axis=1)
    overlap = neighbour_overlap(candidate, reference)
    low, mean = float(cosines.min()), float(cosines.mean())
    failures = []
    if low < COSINE_MIN:
        failures.append(f"cosine min {low:.4f} < {COSINE_MIN}")
    if overlap < OVERLAP_MIN:
        failures.append(f"top-{NEIGHBOURS} overlap {overlap:.4f} < {OVERLAP_MIN}")
    reason = "; ".join(failures) or (
        f"cosine min {low:.4f} >= {COSINE_MIN} and top-{NEIGHBOURS} overlap {overlap:.4f} >= {OVERLAP_MIN}"
    )
    return QualityReport(low, mean, overlap, not failures, reason, n=int(candidate.shape[0]))


def check_int8_quality(texts: list[str], int8: Embedder, fp32: Embedder) -> QualityReport:
    """Embed `texts` with both embedders and judge the `int8` vectors against the `fp32` ones.

    The caller chooses the embedders (`ml.api.embedder("onnx-int8")`, `ml.api.embedder("torch-fp32")`), so this
    module never reaches back into `ml.api`.
    """
    return compare(int8.encode(texts), fp32.encode(texts))


def gate_path(store: Path, model_path: str) -> Path:
    """Where the report for the int8 export of `model_path` lives."""
    from ml.onnx_export import cache_dir

    return cache_dir(store, Path(model_path), "encoder") / GATE_FILE


def write_gate(report: QualityReport, store: Path, model_path: str) -> Path:
    """Store `report` beside the export it measured (atomically)."""
    path = gate_path(store, model_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(GATE_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def read_gate(store: Path, model_path: str) -> QualityReport | None:
    """The stored report for `model_path`'s current int8 export, or None when there is none or it is unreadable."""
    try:
        path = gate_path(store, model_path)
        raw = json.loads(path.read_text(encoding="utf-8"))
        return QualityReport(**raw)
    except (OSError, ValueError, TypeError):  # no local model, no file, bad JSON, wrong fields
        return None


def int8_gate_passed(store: Path, model_path: str) -> bool:
    """True only when a measured report for the current export says int8 passed."""
    report = read_gate(store, model_path)
    return (
        report is not None and report.passed and (gate_path(store, model_path).parent / "meta.json").is_file()
    )
