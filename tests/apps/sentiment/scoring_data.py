"""Finance sentences for scoring tests, and the tiny real classifier fine-tuned on some of them."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apps.sentiment.models import Source
from apps.sentiment.services import ingest
from apps.sentiment.services.ingest import ItemRecord
from apps.sentiment.services.training import LABELS, write_seen_texts

COMPANIES = ["Nokia", "Kone", "Fortum", "Elisa", "Orion", "Wartsila", "Neste", "Sampo", "Outokumpu", "Valmet"]
TEMPLATES = {
    "positive": ["{c} profit rose sharply and sales grew strongly", "{c} beats estimates and its shares jump",
                 "{c} raises its dividend after a record year", "{c} wins a large order and lifts its outlook"],
    "negative": ["{c} swings to a loss as sales collapse", "{c} shares plunge after a profit warning",
                 "{c} cuts jobs as demand falls sharply", "{c} misses estimates and its shares slump"],
    "neutral": ["{c} will hold its annual general meeting in April", "{c} has offices in Helsinki and Oslo",
                "{c} publishes its report on Tuesday", "The chairman of {c} is Matti Virtanen"],
}  # fmt: skip


def sentences(companies: list[str]) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for company in companies:
        for label, templates in TEMPLATES.items():
            for template in templates:
                texts.append(template.format(c=company))
                labels.append(label)
    return texts, labels


def train_tiny(out: Path, *, epochs: int = 6, max_steps: int = 0) -> Path:
    """Fine-tune MiniLM on 72 sentences (one thread: much faster than two on a busy 2-core machine)."""
    import torch

    from ml.api import ClassifierSpec, SilentCallbacks, run_training

    texts, labels = sentences(COMPANIES[:6])
    spec = ClassifierSpec(task="sentiment", texts=tuple(texts), labels=tuple(labels), label_names=LABELS,
                          epochs=epochs, max_steps=max_steps, learning_rate=3e-4, max_length=32)  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_training(spec, out, SilentCallbacks())
    finally:
        torch.set_num_threads(threads)
    write_seen_texts(out, texts)
    return out


NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


def ingest_texts(source: Source, texts: list[str], when: datetime = NOW) -> list[int]:
    return ingest.items_ingest(source=source, records=[ItemRecord(text=t, published_at=when) for t in texts],
                               now=NOW + timedelta(days=1), score=False).item_ids  # fmt: skip


def train_fake(out: Path) -> Path:
    """The fake trainer's artifact (ML_BACKEND=fake): a valid sentiment version that scores by cue words."""
    import os

    from ml.api import ClassifierSpec, SilentCallbacks, run_training

    texts, labels = sentences(COMPANIES[:6])
    spec = ClassifierSpec(task="sentiment", texts=tuple(texts), labels=tuple(labels), label_names=LABELS)
    before = os.environ.get("ML_BACKEND")
    os.environ["ML_BACKEND"] = "fake"
    try:
        run_training(spec, out, SilentCallbacks())
    finally:
        if before is None:
            del os.environ["ML_BACKEND"]
        else:
            os.environ["ML_BACKEND"] = before
    write_seen_texts(out, texts)
    return out


def tfns_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    """A file in the tweet data set's format (text, label code)."""
    code = {"negative": "0", "positive": "1", "neutral": "2"}
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows((text, code[label]) for text, label in rows)
    return path
