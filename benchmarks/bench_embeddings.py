"""Embedding throughput and int8 quality: ours (onnx-int8 and torch-fp32, through ml.api) against
`SentenceTransformer.encode` fp32 with default settings at batch 32, on the same real sentences.

Corpus: unique sentences from TFNS tweets (40 %), BANKING77 questions (40 %) and StackFAQ answers (20 %, long:
many hit the 256-token window), shuffled with a fixed seed; 2,000 of them (400 with --quick).
Timing: the three encoders run in interleaved rounds after a warm-up, and each keeps its best round, because
these 2-core machines are shared and noisy.
Quality: int8 vectors against fp32 vectors of the same texts, cosine min/mean and top-10 neighbour overlap
within the corpus. The result is the quality gate `auto` reads (ml.embeddings.quality): it is written beside
the int8 export in the model store (a quick run does not replace a report measured on more sentences), and
`auto` picks onnx-int8 only if it passed.

Run: `.venv/bin/python -m benchmarks.bench_embeddings [--quick] [DATA_DIR]` prints the figures as JSON.
"""

from __future__ import annotations

import csv
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ml.api import load_banking77, load_tfns

SEED = 0
BASELINE_BATCH = 32
TARGET_SPEEDUP = 2.5


def corpus(data_dir: Path, n: int) -> list[str]:
    """`n` unique real sentences: 40 % tweets, 40 % banking questions, 20 % FAQ answers, shuffled."""
    rng = random.Random(SEED)
    tweets = list(
        dict.fromkeys(load_tfns(data_dir / "twitter_financial_news_sentiment" / "sent_train.csv").texts)
    )
    banking = list(dict.fromkeys(load_banking77(data_dir / "banking77" / "train.csv").texts))
    with (data_dir / "stackfaq" / "faq_answers.csv").open(encoding="utf-8", newline="") as fh:
        answers = list(dict.fromkeys(r["answer"].strip() for r in csv.DictReader(fh) if r["answer"].strip()))
    n_answers = min(len(answers), n // 5)
    n_tweets = (n - n_answers) // 2
    texts = rng.sample(tweets, n_tweets) + rng.sample(banking, n - n_answers - n_tweets)
    texts += rng.sample(answers, n_answers)
    rng.shuffle(texts)
    return texts


def _padding_share(tokenizer: Any, texts: list[str], batch: int, max_length: int, order_by: str) -> float:
    """Share of token slots that are padding in batches ordered by token count, by characters, or as given."""
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    keys = {"tokens": lambda i: lengths[i], "characters": lambda i: len(texts[i]), "input": lambda i: 0}
    order = sorted(range(len(texts)), key=keys[order_by])
    slots = real = 0
    for start in range(0, len(order), batch):
        chunk = [lengths[i] for i in order[start : start + batch]]
        slots += max(chunk) * len(chunk)
        real += sum(chunk)
    return 1 - real / slots


def _best_times(encoders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    best = dict.fromkeys(encoders, float("inf"))
    for _ in range(rounds):
        for name, fn in encoders.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def run(data_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Throughput ratios against sentence-transformers, int8 quality, and the stored gate."""
    from sentence_transformers import SentenceTransformer

    from ml.api import choose_backend, embed, embedder
    from ml.config import load_config
    from ml.embeddings.quality import compare, gate_path, read_gate, write_gate
    from ml.packaged import resolve_model

    texts = corpus(data_dir, 400 if quick else 2000)
    cfg = load_config()
    model_path = resolve_model(cfg.embed_model, default=cfg.embed_model)
    baseline = SentenceTransformer(model_path, device="cpu", local_files_only=True)
    int8 = embedder("onnx-int8")  # loads both (exporting int8 once) before timing
    embedder("torch-fp32")
    warm = texts[:32]
    baseline.encode(warm, batch_size=BASELINE_BATCH)
    embed(warm, backend="onnx-int8")
    embed(warm, backend="torch-fp32")
    vectors: dict[str, np.ndarray] = {}

    def timed(name: str, fn: Callable[[], np.ndarray]) -> Callable[[], None]:
        def call() -> None:
            vectors[name] = fn()

        return call

    seconds = _best_times(
        {
            "baseline_st_fp32": timed(
                "baseline",
                lambda: baseline.encode(texts, batch_size=BASELINE_BATCH, normalize_embeddings=True),
            ),
            "ours_onnx_int8": timed("int8", lambda: embed(texts, backend="onnx-int8")),
            "ours_torch_fp32": timed("fp32", lambda: embed(texts, backend="torch-fp32")),
        },
        rounds=1 if quick else 2,
    )
    report = compare(vectors["int8"], vectors["baseline"])
    # A quick run on 400 sentences must not replace a gate measured on the full corpus.
    previous = read_gate(cfg.model_store, model_path)
    gate_written = previous is None or previous.n <= report.n
    if gate_written:
        write_gate(report, cfg.model_store, model_path)
    throughput = {k: round(len(texts) / v, 1) for k, v in seconds.items()}
    speedup = seconds["baseline_st_fp32"] / seconds["ours_onnx_int8"]
    tokenizer, window = int8.tokenizer, int8.max_length  # the onnx backend's own tokenizer and window
    return {
        "sentences": len(texts),
        "sentences_per_second": throughput,
        "speedup_int8_vs_baseline": round(speedup, 2),
        "speedup_fp32_ours_vs_baseline": round(seconds["baseline_st_fp32"] / seconds["ours_torch_fp32"], 2),
        "fp32_ours_vs_baseline_cosine_min": round(
            float((vectors["fp32"] * vectors["baseline"]).sum(1).min()), 5
        ),
        "int8_cosine_min": round(report.cosine_min, 4),
        "int8_cosine_mean": round(report.cosine_mean, 4),
        "int8_top10_overlap": round(report.top10_overlap, 4),
        "int8_gate_passed": report.passed,
        "int8_gate_reason": report.reason,
        "gate_file": str(gate_path(cfg.model_store, model_path)),
        "gate_written": gate_written,
        "auto_backend_now": choose_backend("embedding", model=model_path),
        "padding_share_batch32": {  # int8 sorts by tokens; torch-fp32 and sentence-transformers by characters
            how: round(_padding_share(tokenizer, texts, 32, window, how), 3)
            for how in ("tokens", "characters", "input")
        },
        "targets": {"speedup": TARGET_SPEEDUP, "cosine_min": 0.99, "top10_overlap": 0.9},
        "speedup_target_met": speedup >= TARGET_SPEEDUP,
        "int8_export": str(gate_path(cfg.model_store, model_path).parent),
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    data_dir = Path(args[0]) if args else Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    print(json.dumps(run(data_dir, quick="--quick" in sys.argv), indent=1))


if __name__ == "__main__":
    main()
