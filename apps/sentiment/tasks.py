"""Thin Celery tasks of the sentiment app: take ids, call a service.

Periodic work: `sentiment.poll_due_feeds` runs every FEED_SCAN_SECONDS from beat, `sentiment.score_stragglers`
every STRAGGLER_SECONDS. The entries are added with
`app.add_periodic_task` when this module is imported (SentimentConfig.ready imports it, and Celery's Django
fix-up sets Django up in the beat process before the scheduler reads `beat_schedule`), because the project
settings module is not this app's to edit.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from apps.celery import app
from apps.sentiment.services import feeds, scoring

logger = logging.getLogger(__name__)

FEED_SCAN_SECONDS = 60.0
POLL_EXPIRES_SECONDS = 300
STRAGGLER_SECONDS = 600.0


@shared_task(name="sentiment.poll_due_feeds", acks_late=True, ignore_result=True)
def poll_due_feeds() -> int:
    """Fan out one poll task per feed that is due (each expires if no worker takes it in time)."""
    ids = feeds.feeds_due()
    for source_id in ids:
        poll_feed.apply_async(args=[source_id], expires=POLL_EXPIRES_SECONDS)
    return len(ids)


@shared_task(
    name="sentiment.poll_feed",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=120,
    time_limit=150,
)
def poll_feed(source_id: int) -> dict[str, object] | None:
    source = feeds.feed_claim(source_id=source_id)
    if source is None:
        return None  # not due any more (another worker has it) or disabled
    try:
        return feeds.feed_poll(source=source).as_dict()
    except feeds.FeedError:
        return None  # recorded on the source, retried after its back-off by the next scan


@shared_task(
    name="sentiment.inference.score_items",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def score_items(item_ids: list[int]) -> dict[str, object]:
    report = scoring.items_score(item_ids=item_ids)
    if report.entity_ids or report.topic_ids or report.bucket_rows:
        # the series moved: evaluate the alert rules of the touched scopes now rather than at the next beat
        evaluate_alerts.delay(entity_ids=list(report.entity_ids), topic_ids=list(report.topic_ids))
    return {"scored": report.scored, "skipped": report.skipped, "version": report.version}


@shared_task(name="sentiment.score_stragglers", acks_late=True, ignore_result=True)
def score_stragglers() -> int:
    """Re-queue items whose scoring task was lost (scoring is idempotent, so a late duplicate is harmless)."""
    from apps.sentiment.services.ingest import enqueue_scoring

    ids = scoring.items_stragglers()
    enqueue_scoring(ids)
    if ids:
        logger.warning("re-queued %d items that were never scored", len(ids))
    return len(ids)


app.add_periodic_task(
    FEED_SCAN_SECONDS, poll_due_feeds.s(), name="sentiment-poll-feeds", expires=FEED_SCAN_SECONDS - 5
)
app.add_periodic_task(
    STRAGGLER_SECONDS, score_stragglers.s(), name="sentiment-score-stragglers", expires=STRAGGLER_SECONDS - 5
)

# The alerting half's tasks (evaluation, delivery, the delivery sweeper) and their beat entries.
from apps.sentiment.alert_tasks import evaluate_alerts, send_delivery, sweep_deliveries  # noqa: E402, F401
