"""Scoring: the active sentiment model version classifies items; each Score keeps probabilities, the signed
score P(positive) - P(negative) and the version. Runs in inference workers (it loads the model).

Idempotent: an item already scored by the version is skipped, and the Score unique constraint (item,
version) stops a second worker from adding a row twice. Scores of the active version feed the time series in
the same transaction, so a bucket counts an item exactly once; items that already had a score from an older
version are left out of the incremental update (a re-score job rebuilds their buckets instead).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction

from apps.core.models import ModelVersion
from apps.core.selectors import active_version
from apps.sentiment import selectors
from apps.sentiment.models import Item, Score
from apps.sentiment.series_math import ScoredItem
from apps.sentiment.services.series import series_apply

logger = logging.getLogger(__name__)

TASK = "sentiment"
LABELS = ("negative", "neutral", "positive")


def scoring_text(title: str, text: str) -> str:
    """What the model reads: the headline first (it carries most of the sentiment), then the body."""
    title, text = title.strip(), text.strip()
    if title and text and not text.startswith(title):
        return f"{title}. {text}"
    return text or title


def classify_texts(
    artifact_dir: str, texts: Sequence[str], backend: str | None = None
) -> list[dict[str, float]]:
    """Class probabilities for each text with SENTIMENT_BACKEND (auto: ml chooses, int8 when it can)."""
    from ml import api

    name = backend or settings.SENTIMENT_BACKEND
    return [p.probabilities for p in api.classify(artifact_dir, list(texts), backend=name)]


def signed_score(probs: dict[str, float]) -> float:
    return float(probs.get("positive", 0.0)) - float(probs.get("negative", 0.0))


def _score_row(item_id: int, version: ModelVersion, probs: dict[str, float]) -> Score:
    label = max(LABELS, key=lambda lab: probs.get(lab, 0.0))
    return Score(
        item_id=item_id,
        model_version=version,
        label=label,
        p_negative=float(probs.get("negative", 0.0)),
        p_neutral=float(probs.get("neutral", 0.0)),
        p_positive=float(probs.get("positive", 0.0)),
        score=signed_score(probs),
    )


@dataclass(frozen=True)
class ScoreReport:
    scored: int
    skipped: int
    version: str
    bucket_rows: int = 0
    entity_ids: tuple[int, ...] = ()  # scopes whose series changed (for alert evaluation)
    topic_ids: tuple[int, ...] = ()


def items_score(
    *,
    item_ids: Sequence[int],
    version: ModelVersion | None = None,
    backend: str | None = None,
    feed_series: bool = True,
) -> ScoreReport:
    """Score the items not yet scored by `version` (default: the active one) and update the series."""
    version = version or active_version(TASK)
    if version is None:
        logger.info("no active %s model: %d items wait for the first one", TASK, len(item_ids))
        return ScoreReport(scored=0, skipped=len(item_ids), version="")
    done = set(
        Score.objects.filter(model_version=version, item_id__in=item_ids).values_list("item_id", flat=True)
    )
    rows = list(
        Item.objects.filter(pk__in=item_ids)
        .exclude(pk__in=done)
        .values_list("pk", "title", "text", "published_at")
    )
    if not rows:
        return ScoreReport(scored=0, skipped=len(item_ids), version=str(version))
    probs = classify_texts(version.artifact_dir, [scoring_text(t, x) for _, t, x, _ in rows], backend)
    scores = [_score_row(pk, version, p) for (pk, _, _, _), p in zip(rows, probs, strict=True)]
    with transaction.atomic():
        stored = _store_scores(scores)
        fed: list[ScoredItem] = []
        bucket_rows = 0
        if feed_series and version.is_active and stored:
            fed = _series_items(stored, version, {pk: published for pk, _, _, published in rows})
            bucket_rows = series_apply(items=fed) if fed else 0
    return ScoreReport(
        scored=len(stored),
        skipped=len(item_ids) - len(stored),
        version=str(version),
        bucket_rows=bucket_rows,
        entity_ids=tuple(sorted({e for item in fed for e in item.entity_ids})),
        topic_ids=tuple(sorted({t for item in fed for t in item.topic_ids})),
    )


def _store_scores(scores: list[Score]) -> list[Score]:
    """Insert; when another worker got there first for some items, keep only the rows this call inserted."""
    try:
        with transaction.atomic():
            return Score.objects.bulk_create(scores)
    except IntegrityError:
        pass
    stored = []
    for score in scores:
        try:
            with transaction.atomic():
                score.save(force_insert=True)
            stored.append(score)
        except IntegrityError:
            continue
    return stored


def _series_items(
    stored: list[Score], version: ModelVersion, published: dict[int, datetime]
) -> list[ScoredItem]:
    """The time-series view of freshly stored scores (items first scored by this version only)."""
    ids = [s.item_id for s in stored]
    rescored = selectors.items_scored_by_others(item_ids=ids, version=version)
    entities, topics = selectors.item_scope_ids(ids)
    return [
        ScoredItem(
            published_at=published[s.item_id],
            label=s.label,
            score=s.score,
            entity_ids=tuple(entities.get(s.item_id, ())),
            topic_ids=tuple(topics.get(s.item_id, ())),
        )
        for s in stored
        if s.item_id not in rescored
    ]
