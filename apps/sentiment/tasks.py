"""Thin Celery tasks of the sentiment app: take ids, call a service.

Periodic entries (feed polling, stragglers, alert evaluation, the delivery sweeper) are declared on
SentimentConfig.periodic_tasks; beat fans out one task per due row with `expires`.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from apps.sentiment import selectors
from apps.sentiment.services import alerts as alert_services
from apps.sentiment.services import delivery as delivery_services
from apps.sentiment.services import feeds, scoring

logger = logging.getLogger(__name__)

POLL_EXPIRES_SECONDS = 300
DELIVERY_EXPIRES_SECONDS = 120


@shared_task(name="sentiment.poll_due_feeds", acks_late=True, ignore_result=True)
def poll_due_feeds() -> int:
    """Fan out one poll task per feed that is due (each expires if no worker takes it in time)."""
    ids = selectors.feeds_due()
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

    ids = selectors.items_stragglers()
    enqueue_scoring(ids)
    if ids:
        logger.warning("re-queued %d items that were never scored", len(ids))
    return len(ids)


@shared_task(name="sentiment.alerts_evaluate", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def evaluate_alerts(
    entity_ids: list[int] | None = None, topic_ids: list[int] | None = None, rule_ids: list[int] | None = None
) -> dict[str, int]:
    summary = alert_services.alerts_evaluate(entity_ids=entity_ids, topic_ids=topic_ids, rule_ids=rule_ids)
    if summary.fired or summary.resolved:
        logger.info("alerts: %s", summary.as_dict())
    return summary.as_dict()


@shared_task(name="sentiment.delivery_send", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def send_delivery(delivery_id: int) -> str | None:
    delivery = delivery_services.delivery_send(delivery_id=delivery_id)
    return None if delivery is None else delivery.status


@shared_task(name="sentiment.deliveries_sweep", acks_late=True, ignore_result=True)
def sweep_deliveries() -> int:
    due = selectors.deliveries_due()
    for pk in due:
        send_delivery.apply_async((pk,), expires=DELIVERY_EXPIRES_SECONDS)
    return len(due)
