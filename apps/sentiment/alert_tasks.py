"""Celery tasks of the alerting half: evaluation, delivery, the delivery sweeper (thin: ids in, services do it).

Importing this module adds two periodic entries to the beat schedule (`app.conf.beat_schedule`), so beat runs
them as soon as the worker's task modules are loaded (apps/sentiment/tasks.py imports this module):

- `sentiment-alerts-evaluate`: every SENTIMENT_ALERT_EVAL_SECONDS (default 300 s), all rules, all scopes;
- `sentiment-deliveries-sweep`: every 30 s, re-sends deliveries whose retry time has come.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings

from apps.celery import app
from apps.sentiment.services import alerts as alert_services
from apps.sentiment.services import delivery as delivery_services

logger = logging.getLogger(__name__)

EVAL_SECONDS = int(getattr(settings, "SENTIMENT_ALERT_EVAL_SECONDS", 300))
SWEEP_SECONDS = 30

__all__ = ["evaluate_alerts", "send_delivery", "sweep_deliveries"]


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
    due = delivery_services.deliveries_due()
    for pk in due:
        send_delivery.apply_async((pk,), expires=SWEEP_SECONDS * 4)
    return len(due)


def _schedule() -> dict[str, dict[str, Any]]:
    return {
        "sentiment-alerts-evaluate": {
            "task": "sentiment.alerts_evaluate",
            "schedule": timedelta(seconds=EVAL_SECONDS),
            "options": {"expires": max(EVAL_SECONDS - 5, 5)},
        },
        "sentiment-deliveries-sweep": {
            "task": "sentiment.deliveries_sweep",
            "schedule": timedelta(seconds=SWEEP_SECONDS),
            "options": {"expires": SWEEP_SECONDS - 5},
        },
    }


for _name, _entry in _schedule().items():
    app.conf.beat_schedule.setdefault(_name, _entry)
