"""Small factories for the alerting tests: rows are built directly, without the ingestion services."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from apps.core.models import ModelVersion
from apps.sentiment.models import AlertRule, Bucket, Entity, Item, ItemEntity, Score, Source, Topic

HOUR = timedelta(hours=1)
ALPHA = 0.2
_seq = itertools.count(1)


def entity(ticker: str = "ACME", **kw: Any) -> Entity:
    return Entity.objects.create(ticker=ticker, name=kw.pop("name", f"{ticker} Corp"), **kw)


def topic(slug: str = "earnings") -> Topic:
    return Topic.objects.create(slug=slug, name=slug.title())


def source(name: str = "test feed") -> Source:
    return Source.objects.get_or_create(name=name, defaults={"kind": Source.Kind.PUSH})[0]


def model_version() -> ModelVersion:
    return ModelVersion.objects.get_or_create(
        task="sentiment", version=1, defaults={"artifact_dir": "/nonexistent/sentiment-v1"}
    )[0]


def item(ent: Entity | None, published_at: datetime, score: float, title: str | None = None) -> Item:
    n = next(_seq)
    title = title or f"headline {n} for {ent.ticker if ent else 'all'}"
    it = Item.objects.create(
        source=source(),
        url=f"https://news.example/{n}",
        title=title,
        text=title,
        text_hash=hashlib.sha256(f"{title}-{n}".encode()).hexdigest(),
        published_at=published_at,
    )
    if ent is not None:
        ItemEntity.objects.create(item=it, entity=ent, matched=ent.ticker)
    label = "negative" if score < -0.2 else "positive" if score > 0.2 else "neutral"
    p_neg, p_pos = max(-score, 0.0), max(score, 0.0)
    Score.objects.create(
        item=it, model_version=model_version(), label=label, p_negative=p_neg, p_neutral=1 - p_neg - p_pos,
        p_positive=p_pos, score=score,
    )  # fmt: skip
    return it


def baseline_after(history: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """EWMA mean and variance of each statistic over `history` (the buckets before the one it belongs to)."""
    out: dict[str, dict[str, float]] = {}
    for stat in ("mean_score", "negative_share", "positive_share", "count"):
        ewma, ewmvar, n = 0.0, 0.0, 0
        for row in history:
            x = float(row[stat])
            if n == 0:
                ewma = x
            else:
                diff = x - ewma
                ewma += ALPHA * diff
                ewmvar = (1 - ALPHA) * (ewmvar + ALPHA * diff * diff)
            n += 1
        out[stat] = {"ewma": ewma, "ewmvar": ewmvar, "n": n}
    return out


def stats(count: int, mean_score: float, negative: int, positive: int = 0) -> dict[str, float]:
    return {
        "count": count,
        "mean_score": mean_score,
        "negative": negative,
        "positive": positive,
        "negative_share": negative / count if count else 0.0,
        "positive_share": positive / count if count else 0.0,
    }


def series(
    rows: Sequence[dict[str, float]], *, end: datetime, ent: Entity | None = None, top: Topic | None = None
) -> list[Bucket]:
    """Hour buckets for consecutive hours ending with the hour of `end`, each with the baseline of those before."""
    first = end.replace(minute=0, second=0, microsecond=0) - (len(rows) - 1) * HOUR
    buckets = []
    for i, row in enumerate(rows):
        buckets.append(
            Bucket(
                entity=ent,
                topic=top,
                granularity=Bucket.Granularity.HOUR,
                start=first + i * HOUR,
                count=int(row["count"]),
                score_sum=row["mean_score"] * row["count"],
                negative=int(row["negative"]),
                positive=int(row["positive"]),
                mean_score=row["mean_score"],
                negative_share=row["negative_share"],
                positive_share=row["positive_share"],
                baseline=baseline_after(rows[:i]),
            )
        )
    return Bucket.objects.bulk_create(buckets)


def calm(
    hours: int, count: int = 10, mean: float = 0.1, negative: int = 2, wobble: float = 0.02
) -> list[dict]:
    """A steady history with a little variation."""
    return [
        stats(count + (i % 3) - 1, mean + wobble * ((i % 5) - 2), negative + (i % 2)) for i in range(hours)
    ]


def rule(**kw: Any) -> AlertRule:
    defaults: dict[str, Any] = {
        "name": f"rule {next(_seq)}",
        "condition": AlertRule.Condition.SCORE_DROP,
        "threshold": 3.0,
        "window_minutes": 60,
        "min_count": 5,
        "cooldown_minutes": 240,
        "channels": [],
    }
    return AlertRule.objects.create(**{**defaults, **kw})
