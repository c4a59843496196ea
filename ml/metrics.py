"""Evaluation metrics shared by every task: classification, retrieval and ranking."""

from __future__ import annotations

import math
from collections.abc import Sequence


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    if not y_true:
        return 0.0
    return sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / len(y_true)


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Unweighted mean of per-class F1 over `labels` (default: every label seen in y_true)."""
    classes = list(labels) if labels is not None else sorted(set(y_true))
    if not classes:
        return 0.0
    scores = []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred, strict=True))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred, strict=True))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred, strict=True))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores)


def hit_at_k(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    if not ranked:
        return 0.0
    return sum(bool(set(r[:k]) & rel) for r, rel in zip(ranked, relevant, strict=True)) / len(ranked)


def mrr_at_k(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    total = 0.0
    for r, rel in zip(ranked, relevant, strict=True):
        for i, item in enumerate(r[:k]):
            if item in rel:
                total += 1.0 / (i + 1)
                break
    return total / len(ranked) if ranked else 0.0


def recall_at_k(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    scores = [len(set(r[:k]) & rel) / len(rel) for r, rel in zip(ranked, relevant, strict=True) if rel]
    return sum(scores) / len(scores) if scores else 0.0


def ndcg_at_k(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    scores = []
    for r, rel in zip(ranked, relevant, strict=True):
        if not rel:
            continue
        dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(r[:k]) if item in rel)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(rel))))
        scores.append(dcg / ideal)
    return sum(scores) / len(scores) if scores else 0.0
