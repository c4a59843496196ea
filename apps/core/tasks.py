"""Thin Celery wrappers: take ids, call services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from apps.core.services import jobs as job_services

logger = logging.getLogger(__name__)


@shared_task(
    name="core.run_job",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=settings.TRAINING_TIME_LIMIT,
    soft_time_limit=settings.TRAINING_TIME_LIMIT - 30,
)
def run_job(job_id: int) -> None:
    from apps.core.job_reporter import JobReporter

    job = job_services.job_claim(job_id=job_id)
    if job is None:
        logger.info("job %s is not claimable (finished, cancelled or held by a live worker)", job_id)
        return
    job_services.job_run(job=job, reporter=JobReporter(job))


@shared_task(name="core.reap_stuck_jobs", acks_late=True, ignore_result=True)
def reap_stuck_jobs() -> dict[str, int]:
    counts = job_services.jobs_reap_stuck()
    if any(counts.values()):
        logger.warning("reaper: %s", counts)
    return counts


@shared_task(name="core.reconcile_model_store", acks_late=True, ignore_result=True)
def reconcile_model_store() -> dict[str, list[str]]:
    from apps.core.services.registry import model_store_reconcile

    found = model_store_reconcile()
    for what, paths in found.items():
        for path in paths:
            logger.warning("model store: %s %s", what, path)
    return found
