"""Thin Celery wrappers: take ids, call services."""

from __future__ import annotations

import logging
import traceback

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
    from apps.core.job_kinds import JobReporter, get_kind
    from ml.errors import Cancelled, MLError

    job = job_services.job_claim(job_id=job_id)
    if job is None:
        logger.info("job %s is not claimable (finished, cancelled or held by a live worker)", job_id)
        return
    reporter = JobReporter(job)
    try:
        outcome = get_kind(job.kind).run(job, reporter)
    except Cancelled as exc:
        job_services.job_mark_cancelled(job=job, reason=str(exc))
    except MLError as exc:
        job_services.job_fail(job=job, reason=str(exc))
    except Exception as exc:
        logger.exception("job %s crashed", job_id)
        tail = traceback.format_exc(limit=3)
        job_services.job_fail(job=job, reason=f"{type(exc).__name__}: {exc}\n{tail}")
    else:
        job_services.job_succeed(job=job, metrics=outcome.metrics, result=outcome.result)


@shared_task(name="core.reap_stuck_jobs", acks_late=True, ignore_result=True)
def reap_stuck_jobs() -> dict[str, int]:
    counts = job_services.jobs_reap_stuck()
    if any(counts.values()):
        logger.warning("reaper: %s", counts)
    return counts
