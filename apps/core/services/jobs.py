"""Training jobs: create, claim (compare-and-set), run, progress, cancel, finish, and reap stuck ones."""

from __future__ import annotations

import logging
import os
import socket
import traceback
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.core.models import JobStatus, TrainingJob

if TYPE_CHECKING:
    from apps.core.job_reporter import JobReporter

logger = logging.getLogger(__name__)
LOG_TAIL_CHARS = 8000


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_create(*, kind: str, params: dict[str, Any], user: User | AnonymousUser | None) -> TrainingJob:
    """Validate the parameters for `kind`, store a PENDING job and enqueue it once the row is committed.

    `user` must be allowed everything the job would do (`Forbidden` otherwise); None is the suite itself.
    """
    from apps.core.job_registry import get_kind

    clean = get_kind(kind).validate(params, user=user)
    creator = user if isinstance(user, User) else None
    with transaction.atomic():
        job = TrainingJob.objects.create(kind=kind, params=clean, created_by=creator)
        transaction.on_commit(lambda: job_enqueue(job=job))
    return job


def job_create_local(
    *, kind: str, params: dict[str, Any], user: User | AnonymousUser | None = None, trusted: bool = False
) -> TrainingJob:
    """A job row for a command to run in this process (`job_run_local`): validated like any job, never queued.

    `trusted` is for the command line, whose user owns the machine: a kind may then accept what it refuses
    over the web (file paths outside DATA_DIR, for one).
    """
    from apps.core.job_registry import get_kind

    clean = get_kind(kind).validate(params, trusted=trusted)
    creator = user if isinstance(user, User) else None
    return TrainingJob.objects.create(kind=kind, params=clean, created_by=creator)


def job_run(*, job: TrainingJob, reporter: JobReporter) -> TrainingJob:
    """Run a claimed job's kind and finish its row; the one place a job's end is decided.

    - success: SUCCEEDED with the kind's metrics and result;
    - cancellation between steps: CANCELLED;
    - an expected failure (ServiceError, MLError): FAILED with the message as the reason, no traceback;
    - anything else is a crash: FAILED with the exception as the reason, the traceback in the job's log
      (staff read it there) and in the worker's log.
    """
    from apps.core.job_registry import get_kind
    from ml.errors import Cancelled, MLError

    try:
        outcome = get_kind(job.kind).runner()(job, reporter)
    except Cancelled as exc:
        job_mark_cancelled(job=job, reason=str(exc))
    except (ServiceError, MLError) as exc:
        job_fail(job=job, reason=str(exc))
    except Exception as exc:
        logger.exception("job %s crashed", job.pk)
        job_log(job=job, line="crashed:\n" + traceback.format_exc(limit=12))
        job_fail(job=job, reason=f"{type(exc).__name__}: {exc}")
    else:
        job_succeed(job=job, metrics=outcome.metrics, result=outcome.result)
    return job


def job_run_local(*, job: TrainingJob) -> TrainingJob:
    """Claim and run `job` in this process with a terminal progress bar (management commands)."""
    from apps.core.job_reporter import CliReporter

    claimed = job_claim(job_id=job.pk)
    if claimed is None:
        raise ServiceError(f"job #{job.pk} could not be claimed (it is finished or held by a worker)")
    try:
        return job_run(job=claimed, reporter=CliReporter(claimed))
    except KeyboardInterrupt:
        job_fail(job=claimed, reason="interrupted on the command line")
        raise


def job_enqueue(*, job: TrainingJob) -> None:
    from apps.core.job_registry import get_kind
    from apps.core.tasks import run_job

    queue = get_kind(job.kind).queue
    run_job.apply_async(args=[job.pk], queue=queue)


def job_claim(*, job_id: int) -> TrainingJob | None:
    """Move a job to RUNNING for this worker, or return None when someone else holds it.

    A RUNNING job may be re-claimed when its owner has stopped heartbeating (the worker died and the broker
    redelivered the message). Past JOB_MAX_ATTEMPTS claims, the job is failed instead of retried forever.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_SECONDS)
    claimable = Q(status=JobStatus.PENDING, cancel_requested=False) | Q(
        status=JobStatus.RUNNING, heartbeat_at__lt=stale
    )
    claimed = TrainingJob.objects.filter(claimable, pk=job_id).update(
        status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        claimed_by=worker_identity(),
        heartbeat_at=now,
        started_at=now,
        error="",
    )
    if not claimed:
        return None
    job = TrainingJob.objects.get(pk=job_id)
    if job.attempts > settings.JOB_MAX_ATTEMPTS:
        job_fail(job=job, reason=f"gave up after {job.attempts - 1} attempts: the worker was lost each time")
        return None
    return job


def job_progress(
    *, job: TrainingJob, step: int, total: int, loss: float | None, eta_seconds: float | None
) -> bool:
    """Record progress and a heartbeat; returns True when cancellation was requested."""
    TrainingJob.objects.filter(pk=job.pk).update(
        step=step, total_steps=total, loss=loss, eta_seconds=eta_seconds, heartbeat_at=timezone.now()
    )
    return bool(TrainingJob.objects.filter(pk=job.pk).values_list("cancel_requested", flat=True).first())


def job_log(*, job: TrainingJob, line: str) -> None:
    stamp = timezone.now().strftime("%H:%M:%S")
    tail = TrainingJob.objects.filter(pk=job.pk).values_list("log_tail", flat=True).first() or ""
    tail = (tail + f"{stamp} {line}\n")[-LOG_TAIL_CHARS:]
    TrainingJob.objects.filter(pk=job.pk).update(log_tail=tail)


def job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel now when still pending; ask the worker to stop between steps when running."""
    if job.is_finished:
        raise ServiceError(f"job #{job.pk} has already {job.status}")
    now = timezone.now()
    if TrainingJob.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
        status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now
    ):
        job.refresh_from_db()
        return job
    TrainingJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    return job


def _finish(job: TrainingJob, status: str, **fields: Any) -> None:
    TrainingJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(), **fields
    )
    job.refresh_from_db()


def job_succeed(*, job: TrainingJob, metrics: dict[str, Any], result: dict[str, Any]) -> None:
    _finish(job, JobStatus.SUCCEEDED, metrics=metrics, result=result, eta_seconds=0)


def job_fail(*, job: TrainingJob, reason: str) -> None:
    logger.warning("job %s failed: %s", job.pk, reason)
    _finish(job, JobStatus.FAILED, error=reason[:4000])


def job_mark_cancelled(*, job: TrainingJob, reason: str) -> None:
    _finish(job, JobStatus.CANCELLED, error=reason)


def jobs_reap_stuck() -> dict[str, int]:
    """Jobs RUNNING without a heartbeat for JOB_STALE_SECONDS: requeue them, or fail them past max attempts.

    Returns counts, for the beat log.
    """
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS)
    requeued = failed = 0
    for job in TrainingJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale):
        if job.attempts >= settings.JOB_MAX_ATTEMPTS or job.cancel_requested:
            reason = (
                f"the worker {job.claimed_by or '?'} stopped responding "
                f"(last heartbeat {job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC) after {job.attempts} attempt(s)"
            )
            job_fail(job=job, reason=reason)
            failed += 1
            continue
        reset = TrainingJob.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, heartbeat_at__lt=stale
        ).update(status=JobStatus.PENDING, claimed_by="")
        if reset:
            job_log(job=job, line=f"requeued: worker {job.claimed_by} stopped responding")
            job_enqueue(job=job)
            requeued += 1
    return {"requeued": requeued, "failed": failed}
