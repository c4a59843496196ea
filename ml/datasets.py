"""Readers for the labelled data sets the suite trains and evaluates on. Paths come from the caller."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ml.artifacts import sha256_file
from ml.errors import InvalidInput

SENTIMENT_LABELS = ("negative", "neutral", "positive")
TFNS_LABELS = {"0": "negative", "1": "positive", "2": "neutral"}  # Bearish, Bullish, Neutral


@dataclass(frozen=True)
class LabelledTexts:
    name: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    sha256: str
    skipped: int = 0


def _require(path: Path) -> Path:
    if not path.is_file():
        raise InvalidInput(f"data file {path} does not exist")
    return path


def load_phrasebank(path: Path) -> LabelledTexts:
    """Financial PhraseBank: latin-1 lines `sentence@label` (label negative/neutral/positive)."""
    texts, labels, skipped = [], [], 0
    for line in _require(path).read_text(encoding="latin-1").splitlines():
        sentence, sep, label = line.rpartition("@")
        label = label.strip().lower()
        if not sep or label not in SENTIMENT_LABELS or not sentence.strip():
            skipped += line.strip() != ""
            continue
        texts.append(sentence.strip())
        labels.append(label)
    if not texts:
        raise InvalidInput(f"{path} has no `sentence@label` lines")
    return LabelledTexts("phrasebank", tuple(texts), tuple(labels), sha256_file(path), skipped)


def _read_csv(path: Path, text_col: str, label_col: str) -> tuple[list[str], list[str], int]:
    try:
        with _require(path).open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or {text_col, label_col} - set(reader.fieldnames):
                raise InvalidInput(
                    f"{path} needs columns {text_col!r} and {label_col!r}, has {reader.fieldnames}"
                )
            rows = [(r[text_col] or "", r[label_col] or "") for r in reader]
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8: {exc}") from None
    texts = [t.strip() for t, _ in rows]
    labels = [y.strip() for _, y in rows]
    return texts, labels, 0


def load_tfns(path: Path) -> LabelledTexts:
    """Twitter Financial News Sentiment CSV: `text,label` with 0 Bearish, 1 Bullish, 2 Neutral."""
    texts, raw, _ = _read_csv(path, "text", "label")
    keep = [i for i, y in enumerate(raw) if y in TFNS_LABELS and texts[i]]
    return LabelledTexts(
        "tfns",
        tuple(texts[i] for i in keep),
        tuple(TFNS_LABELS[raw[i]] for i in keep),
        sha256_file(path),
        len(raw) - len(keep),
    )


def load_banking77(path: Path) -> LabelledTexts:
    """BANKING77 CSV: `text,category`."""
    texts, labels, _ = _read_csv(path, "text", "category")
    keep = [i for i, t in enumerate(texts) if t and labels[i]]
    return LabelledTexts(
        "banking77",
        tuple(texts[i] for i in keep),
        tuple(labels[i] for i in keep),
        sha256_file(path),
        len(texts) - len(keep),
    )


def stratified_sample(data: LabelledTexts, n: int, seed: int) -> LabelledTexts:
    """At most `n` examples keeping class proportions (every class keeps at least one)."""
    if n <= 0 or n >= len(data.texts):
        return data
    rng = random.Random(seed)  # nosec B311 # seeded shuffling and sampling for reproducible training, never secrets
    by_class: dict[str, list[int]] = {}
    for i, y in enumerate(data.labels):
        by_class.setdefault(y, []).append(i)
    chosen: list[int] = []
    for idx in by_class.values():
        take = max(1, round(len(idx) * n / len(data.texts)))
        chosen.extend(rng.sample(idx, min(take, len(idx))))
    chosen.sort()
    return LabelledTexts(
        data.name, _pick(data.texts, chosen), _pick(data.labels, chosen), data.sha256, data.skipped
    )


def _pick(values: Sequence[str], idx: list[int]) -> tuple[str, ...]:
    return tuple(values[i] for i in idx)


# The readers by the name a job or command stores (no getattr on the module: the names are the contract).
LOADERS: dict[str, Callable[[Path], LabelledTexts]] = {
    "phrasebank": load_phrasebank,
    "tfns": load_tfns,
    "banking77": load_banking77,
}


def load_dataset(name: str, path: Path | str) -> LabelledTexts:
    """Read the data set `name` ("phrasebank", "tfns" or "banking77") from `path`."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise InvalidInput(f"unknown data set {name!r}; known: {', '.join(sorted(LOADERS))}") from None
    return loader(Path(path))
