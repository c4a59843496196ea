"""Sentiment classification throughput and accuracy: ours (onnx-int8 and torch-fp32, batched and length-sorted,
through ml.api.classify) against `transformers.pipeline("text-classification")` fp32 on the same fine-tuned model.

The model: MiniLM fully fine-tuned for one epoch on a stratified sample of TFNS `sent_train.csv` (2,500 tweets;
600 with --quick) with ml.training.classifier, cached in var/bench so later runs reuse it; a directory passed
as `classifier_dir` is used instead. Evaluation: TFNS `sent_valid.csv` (1,910 tweets; 400 with --quick), the
evaluation split, only predicted on, never tuned on. The pipeline runs at batch 32 with truncation (its
default is one text at a time, which would flatter us). Each engine keeps its best of interleaved rounds.

Run: `.venv/bin/python -m benchmarks.bench_classify [--quick] [DATA_DIR]` prints the figures as JSON.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml.api import load_tfns, stratified_sample

SEED = 0
PIPELINE_BATCH = 32
TARGET_SPEEDUP = 2.5
MAX_ACCURACY_GAP = 0.005
CACHE_DIR = Path(__file__).resolve().parent.parent / "var" / "bench"


def _classifier(data_dir: Path, quick: bool) -> Path:
    """Train (or reuse from var/bench) the sentiment classifier the benchmark measures."""
    from ml.api import ClassifierSpec, SilentCallbacks, read_meta, train_classifier
    from ml.errors import ArtifactError

    train = stratified_sample(
        load_tfns(data_dir / "twitter_financial_news_sentiment" / "sent_train.csv"),
        600 if quick else 2500,
        SEED,
    )
    spec = ClassifierSpec(
        task="bench-sentiment",
        texts=train.texts,
        labels=train.labels,
        method="full",
        epochs=1,
        batch_size=16,
        max_length=64,
        seed=SEED,
        data_sources={"tfns/sent_train.csv": train.sha256},
    )
    key = hashlib.sha256(repr((spec.texts, spec.labels, spec.epochs, spec.max_length)).encode()).hexdigest()[
        :12
    ]
    out = CACHE_DIR / f"sentiment-classifier-{key}"
    try:
        read_meta(out)
        return out
    except ArtifactError:
        train_classifier(
            spec, out, SilentCallbacks(), backend="torch"
        )  # the real model, whatever ML_BACKEND says
        return out


def _best_times(
    engines: dict[str, Callable[[], list[str]]], rounds: int
) -> tuple[dict[str, float], dict[str, list[str]]]:
    best = dict.fromkeys(engines, float("inf"))
    predictions: dict[str, list[str]] = {}
    for _ in range(rounds):
        for name, fn in engines.items():
            start = time.perf_counter()
            predictions[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, predictions


def run(data_dir: Path, quick: bool = False, classifier_dir: str | None = None) -> dict[str, Any]:
    """Throughput ratio against the transformers pipeline and accuracy of both on sent_valid.csv."""
    from transformers import pipeline

    from ml.api import accuracy, classifier, classify, macro_f1

    model_dir = Path(classifier_dir) if classifier_dir else _classifier(data_dir, quick)
    valid = load_tfns(data_dir / "twitter_financial_news_sentiment" / "sent_valid.csv")
    if quick:
        valid = stratified_sample(valid, 400, SEED)
    texts, truth = list(valid.texts), list(valid.labels)
    baseline = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1)
    classifier(model_dir, backend="onnx-int8")  # load (and export once) before timing
    classifier(model_dir, backend="torch-fp32")
    warm = texts[:32]
    baseline(warm, batch_size=PIPELINE_BATCH, truncation=True)
    classify(model_dir, warm, backend="onnx-int8")

    def ours(backend: str) -> Callable[[], list[str]]:
        return lambda: [p.label for p in classify(model_dir, texts, backend=backend)]

    seconds, predicted = _best_times(
        {
            "baseline_pipeline_fp32": lambda: [
                r["label"] for r in baseline(texts, batch_size=PIPELINE_BATCH, truncation=True)
            ],
            "ours_onnx_int8": ours("onnx-int8"),
            "ours_torch_fp32": ours("torch-fp32"),
        },
        rounds=1 if quick else 2,
    )
    labels = sorted(set(truth))
    acc = {k: round(accuracy(truth, v), 4) for k, v in predicted.items()}
    speedup = seconds["baseline_pipeline_fp32"] / seconds["ours_onnx_int8"]
    gap = abs(acc["ours_onnx_int8"] - acc["baseline_pipeline_fp32"])
    return {
        "classifier_dir": str(model_dir),
        "eval_texts": len(texts),
        "texts_per_second": {k: round(len(texts) / v, 1) for k, v in seconds.items()},
        "speedup_int8_vs_pipeline": round(speedup, 2),
        "speedup_fp32_ours_vs_pipeline": round(
            seconds["baseline_pipeline_fp32"] / seconds["ours_torch_fp32"], 2
        ),
        "accuracy": acc,
        "macro_f1": {k: round(macro_f1(truth, v, labels), 4) for k, v in predicted.items()},
        "int8_vs_fp32_agreement": round(
            accuracy(predicted["ours_torch_fp32"], predicted["ours_onnx_int8"]), 4
        ),
        "accuracy_gap_int8_vs_pipeline": round(gap, 4),
        "targets": {"speedup": TARGET_SPEEDUP, "accuracy_gap_max": MAX_ACCURACY_GAP},
        "speedup_target_met": speedup >= TARGET_SPEEDUP,
        "accuracy_target_met": gap <= MAX_ACCURACY_GAP,
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    data_dir = Path(args[0]) if args else Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    print(json.dumps(run(data_dir, quick="--quick" in sys.argv), indent=1))


if __name__ == "__main__":
    main()
