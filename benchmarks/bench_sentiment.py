"""Sentiment ingestion speed: real tweets through dedupe, entity and topic linking, scoring, storing and the
hour/day aggregation, on one process (target: >= 300 items/s), and int8 / fp32 scoring throughput.

Runs in a child process against a throw-away SQLite database in a temporary directory (the project's
database and model store are never touched). The watchlist is the demo watchlist plus 1,000 generated
companies, so linking runs at 1,000+ entities; topics are the defaults. The model is the packaged MiniLM with
a 3-class head: a trained sentiment artifact when BENCH_SENTIMENT_MODEL names one, otherwise an untrained
head reading text the way sentiment training does (links stripped); speed does not depend on the head's
weights, and agreement figures are only reported for a trained one.

Figures:
- `end_to_end_items_per_s`: tweets ingested and scored per second, batches of 256, with the configured
  backend (`auto`: ONNX int8 when available); the ONNX export happens before timing;
- `stage_seconds`: ingest (validate, dedupe, link, store) vs score (model + Score rows + buckets);
- `classify_items_per_s` per backend on the same texts, and `int8_over_fp32`;
- `linking`: texts per second of the token-dict matcher vs one compiled alternation regex (same matches).

    .venv/bin/python -m benchmarks.bench_sentiment [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_ITEMS_PER_S = 300.0
BATCH = 256


def run(data_dir: Path | None = None, quick: bool = False) -> dict[str, Any]:
    """Run the benchmark in a child process against a fresh temporary SQLite database."""
    data_dir = Path(data_dir or os.environ.get("DATA_DIR") or ROOT.parent / "shared" / "data")
    with tempfile.TemporaryDirectory(prefix="bench-sentiment-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "apps.settings",
            "VAR_DIR": tmp,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "MODEL_STORE": f"{tmp}/models",
            "CELERY_BROKER_URL": "filesystem://",
            "DATA_DIR": str(data_dir),
            "LOG_LEVEL": "WARNING",
        }
        args = [
            sys.executable,
            "-m",
            "benchmarks.bench_sentiment",
            "--child",
            *(["--quick"] if quick else []),
        ]
        out = subprocess.run(
            args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600, check=False
        )
    if out.returncode != 0:
        raise RuntimeError(f"bench_sentiment failed: {out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- the child process ----------------------------------------------------------------------------------
def _tweets(data_dir: Path, n: int) -> list[str]:
    path = data_dir / "twitter_financial_news_sentiment" / "sent_train.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        texts = [row["text"].strip() for row in csv.DictReader(fh) if row.get("text", "").strip()]
    return texts[:n]


def _artifact(store: Path) -> tuple[Path, str]:
    """A trained artifact (BENCH_SENTIMENT_MODEL) or MiniLM with an untrained 3-class head, saved as one."""
    given = os.environ.get("BENCH_SENTIMENT_MODEL")
    if given:
        return Path(given), "trained"
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from apps.sentiment.services.training import TEXT_PREPROCESS
    from ml.api import ArtifactMeta, write_meta
    from ml.packaged import MINILM, minilm_path  # the raw packaged weights, to build an untrained head

    labels = ("negative", "neutral", "positive")
    out = store / "sentiment" / "bench"
    path = minilm_path()
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=3, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(path).save_pretrained(out)
    write_meta(out, ArtifactMeta(task="sentiment", kind="sequence-classifier", base_model=MINILM, labels=labels,
                                 hyperparameters={"max_length": 96, "temperature": 1.0,
                                                  "text_preprocess": TEXT_PREPROCESS}))  # fmt: skip
    return out, "untrained head"


def _watchlist(n: int) -> list[tuple[str, str, list[str]]]:
    from apps.sentiment.services.entities import DEMO_WATCHLIST

    generated = [(f"Z{i:04d}", f"Zenith{i} Holdings", [f"Zenith{i}"]) for i in range(n)]
    return [*DEMO_WATCHLIST, *generated]


def _linking(texts: list[str], watchlist: list[tuple[str, str, list[str]]]) -> dict[str, Any]:
    from apps.sentiment.services.entities import EntityMatcher

    rows = [(i, t, [name, *aliases]) for i, (t, name, aliases) in enumerate(watchlist)]
    matcher = EntityMatcher(rows)
    started = time.perf_counter()
    ours = [set(matcher.match(t)) for t in texts]
    token_dict = len(texts) / (time.perf_counter() - started)
    # The alternative: one case-sensitive alternation of every alias with word boundaries (plus cashtags).
    alias_to_id = {alias: i for i, _, aliases in rows for alias in aliases}
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(a) for a in sorted(alias_to_id, key=len, reverse=True))
                         + r")(?!\w)")  # fmt: skip
    tickers = {t.upper(): i for i, t, _ in rows}
    cashtag = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,9}(?:\.[A-Za-z]{1,2})?)\b")
    started = time.perf_counter()
    theirs = []
    for t in texts:
        found = {alias_to_id[m.group(1)] for m in pattern.finditer(t)}
        found |= {tickers[m.group(1).upper()] for m in cashtag.finditer(t) if m.group(1).upper() in tickers}
        theirs.append(found)
    single_regex = len(texts) / (time.perf_counter() - started)
    agree = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(texts)
    return {"entities": len(rows), "token_dict_texts_per_s": round(token_dict, 1),
            "single_regex_texts_per_s": round(single_regex, 1), "same_matches": round(agree, 4),
            "texts_linked": sum(bool(x) for x in ours)}  # fmt: skip


def _classify_speed(artifact: Path, texts: list[str], backend: str) -> tuple[float, list[dict[str, float]]]:
    from apps.sentiment.services.scoring import classify_texts

    classify_texts(str(artifact), texts[:64], backend)  # load (and export) before timing
    started = time.perf_counter()
    probs = classify_texts(str(artifact), texts, backend)
    return len(texts) / (time.perf_counter() - started), probs


def _child(quick: bool) -> dict[str, Any]:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from apps.core.services.registry import model_version_register
    from apps.sentiment.models import Bucket, Score, Source
    from apps.sentiment.services import ingest, scoring
    from apps.sentiment.services.entities import entity_upsert
    from apps.sentiment.services.topics import topics_ensure_defaults

    call_command("migrate", verbosity=0)
    n_items = 512 if quick else 3000
    texts = _tweets(Path(settings.DATA_DIR), n_items)
    watchlist = _watchlist(1000)
    for ticker, name, aliases in watchlist:
        entity_upsert(ticker=ticker, name=name, aliases=aliases)
    topics_ensure_defaults()
    artifact, kind = _artifact(Path(settings.MODEL_STORE))
    version = model_version_register(task="sentiment", artifact_dir=artifact)
    backend = (
        "onnx-int8" if scoring.configured_backend() == "auto" and scoring._onnx_available() else "torch-fp32"
    )
    if scoring.configured_backend() != "auto":
        backend = scoring.configured_backend()
    scoring.classify_texts(str(artifact), texts[:64], backend)  # warm: load the model / build the ONNX export

    source = ingest.source_get_or_create(name="bench", kind=Source.Kind.PUSH)
    ingest_s = score_s = 0.0
    created = duplicates = 0
    for start in range(0, len(texts), BATCH):
        records = [ingest.ItemRecord(text=t) for t in texts[start : start + BATCH]]
        t0 = time.perf_counter()
        report = ingest.items_ingest(source=source, records=records, score=False)
        t1 = time.perf_counter()
        scoring.items_score(item_ids=report.item_ids, version=version, backend=backend)
        t2 = time.perf_counter()
        ingest_s += t1 - t0
        score_s += t2 - t1
        created += report.created
        duplicates += report.duplicates
    total = ingest_s + score_s
    e2e = len(texts) / total

    sample = texts[: 256 if quick else 1024]
    speeds: dict[str, float] = {}
    outputs: dict[str, list[dict[str, float]]] = {}
    for name in ("torch-fp32", "onnx-int8"):
        try:
            speeds[name], outputs[name] = _classify_speed(artifact, sample, name)
        except Exception as exc:  # a backend that is not installed is reported, not fatal
            speeds[name] = float("nan")
            outputs[name] = []
            print(f"{name} unavailable: {exc}", file=sys.stderr)
    result: dict[str, Any] = {
        "items": len(texts),
        "created": created,
        "duplicates": duplicates,
        "scores": Score.objects.count(),
        "buckets": Bucket.objects.count(),
        "backend": backend,
        "model": kind,
        "end_to_end_items_per_s": round(e2e, 1),
        "target_items_per_s": TARGET_ITEMS_PER_S,
        "meets_target": e2e >= TARGET_ITEMS_PER_S,
        "stage_seconds": {"ingest": round(ingest_s, 3), "score_and_series": round(score_s, 3)},
        "classify_items_per_s": {k: round(v, 1) for k, v in speeds.items()},
        "int8_over_fp32": round(speeds["onnx-int8"] / speeds["torch-fp32"], 3),
        # what is left of the score stage once the model's share (at the measured speed) is taken out
        "store_and_series_items_per_s": round(
            len(texts) / max(1e-9, score_s - len(texts) / speeds[backend]), 1
        ),
        "ingest_items_per_s": round(len(texts) / ingest_s, 1),
        "linking": _linking(texts, watchlist),
    }
    if kind == "trained" and outputs["onnx-int8"]:
        a, b = outputs["torch-fp32"], outputs["onnx-int8"]
        result["int8_label_agreement"] = round(
            sum(max(x, key=x.__getitem__) == max(y, key=y.__getitem__) for x, y in zip(a, b, strict=True))
            / len(a),
            4,
        )
        result["int8_mean_abs_score_diff"] = round(
            sum(abs(scoring.signed_score(x) - scoring.signed_score(y)) for x, y in zip(a, b, strict=True))
            / len(a),
            4,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.quick)))
    else:
        print(json.dumps(run(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
