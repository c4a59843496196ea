"""Training jobs: create, claim (compare-and-set), run, progress, cancel, finish, and reap stuck ones."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import socket
import traceback
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.errors import QuotaExceeded, ServiceError
from apps.core.heartbeat import hold_job_lease, process_alive, release_job_lease
from apps.core.live import publish
from apps.core.models import JobStatus, TrainingJob

if TYPE_CHECKING:
    from apps.core.job_registry import JobKind
    from apps.core.job_reporter import JobReporter

logger = logging.getLogger(__name__)
LOG_TAIL_CHARS = 8000
# A crash's traceback in a job's log sits between these lines, so pages can show it to admins only.
CRASH_MARK, CRASH_END = "crashed:", "(end of traceback)"


def worker_identity() -> str:
    """Who holds a claim: `host:pid:namespace`, the namespace naming the pid namespace (machine boot and
    container) in which that pid means this process, since containers on one host may share its name."""
    return f"{socket.gethostname()}:{os.getpid()}:{_pid_namespace()}"


@functools.cache
def _pid_namespace() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""  # not Linux: a claim then dies by its lease alone
    return hashlib.sha256(f"{boot} {namespace}".encode()).hexdigest()[:8]


def claimant_is_dead(*, claimed_by: str, heartbeat_at: datetime | None, now: datetime) -> bool:
    """Whether the process holding a RUNNING job is gone, so that another may take the job over:

    - its lease went unrenewed for JOB_LEASE_SECONDS: the lease thread renews it every
      WORKER_HEARTBEAT_SECONDS whatever the job does, so only a dead or cut-off process misses three beats;
    - or it ran here (same host and pid namespace) and its pid is gone or a zombie: that is known at once;
    - a claim from before leases (`host:pid`) counts as abandoned after JOB_STALE_SECONDS without progress.
    """
    if heartbeat_at is None:
        return True
    age = (now - heartbeat_at).total_seconds()
    parts = claimed_by.split(":")
    if len(parts) != 3:
        return age > settings.JOB_STALE_SECONDS
    host, pid, namespace = parts
    if age > settings.JOB_LEASE_SECONDS:
        return True
    here = bool(namespace) and namespace == _pid_namespace() and host == socket.gethostname()
    return here and pid.isdigit() and not process_alive(int(pid))


def job_create(*, kind: str, params: dict[str, Any], user: User | AnonymousUser | None) -> TrainingJob:
    """Validate the parameters for `kind`, store a PENDING job and enqueue it once the row is committed.

    `user` must be allowed everything the job would do (`Forbidden` otherwise); None is the suite itself.
    """
    from apps.core.job_registry import get_kind

    job_kind = get_kind(kind)
    clean = job_kind.validate(params, user=user)
    creator = user if isinstance(user, User) else None
    with transaction.atomic():
        if user is not None:
            _check_quota(job_kind, creator)
        job = TrainingJob.objects.create(kind=kind, params=clean, created_by=creator)
        transaction.on_commit(lambda: job_enqueue(job=job))
        announce(job.pk)
    return job


def _check_quota(kind: JobKind, user: User | None) -> None:
    """QuotaExceeded when `user` (or everyone) already has the kind's limit of jobs queued or running.

    The user's row is locked first, so one user's concurrent requests are counted one after the other.
    """
    per_user, total = kind.quotas()
    busy = TrainingJob.objects.filter(kind=kind.name, status__in=[JobStatus.PENDING, JobStatus.RUNNING])
    if user is not None:
        User.objects.select_for_update().filter(pk=user.pk).first()
        if busy.filter(created_by=user).count() >= per_user:
            raise QuotaExceeded(
                f"you already have {per_user} {kind.name} jobs queued or running, the most one person may: "
                "wait for one to finish or cancel one",
                field="kind",
            )
    if busy.count() >= total:
        raise QuotaExceeded(
            f"{total} {kind.name} jobs are already queued or running, the most at once: try again later",
            field="kind",
        )


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
    job = TrainingJob.objects.create(kind=kind, params=clean, created_by=creator)
    announce(job.pk)
    return job


def announce(job_id: int, *, coalesce: bool = False) -> None:
    """Tell the pages that show this job (its own page, the jobs lists) that it changed."""
    publish("jobs", f"job.{job_id}", coalesce=coalesce)


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
        job_log(job=job, line=CRASH_MARK + "\n" + traceback.format_exc(limit=12) + CRASH_END)
        job_fail(
            job=job, reason=f"unexpected error ({type(exc).__name__}: {exc}); the traceback is in its log"
        )
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
    """Move a job to RUNNING for this process, or return None when it is finished or held by a live one.

    A PENDING job is claimed with a compare-and-set on its status. A RUNNING job is taken over only when its
    holder is dead (`claimant_is_dead`; the broker redelivered the message, or the reaper requeued it), with
    a compare-and-set on the holder and heartbeat judged: a holder that renewed meanwhile keeps the job, and
    of two processes taking over, one wins. Past JOB_MAX_ATTEMPTS claims, the job is failed instead of
    retried forever. A lease thread keeps the claim alive until the job finishes (`hold_job_lease`).
    """
    seen = (
        TrainingJob.objects.filter(pk=job_id)
        .values("status", "cancel_requested", "claimed_by", "heartbeat_at")
        .first()
    )
    if seen is None:
        return None
    now = timezone.now()
    if seen["status"] == JobStatus.PENDING and not seen["cancel_requested"]:
        expected = Q(status=JobStatus.PENDING, cancel_requested=False)
    elif seen["status"] == JobStatus.RUNNING and claimant_is_dead(
        claimed_by=seen["claimed_by"], heartbeat_at=seen["heartbeat_at"], now=now
    ):
        expected = Q(
            status=JobStatus.RUNNING, claimed_by=seen["claimed_by"], heartbeat_at=seen["heartbeat_at"]
        )
    else:
        return None
    me = worker_identity()
    claimed = TrainingJob.objects.filter(expected, pk=job_id).update(
        status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        claimed_by=me,
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
    if seen["status"] == JobStatus.RUNNING:
        job_log(job=job, line=f"taken over by {me}: {seen['claimed_by']} had died (attempt {job.attempts})")
    hold_job_lease(job_id=job.pk, claimant=me)
    announce(job.pk)
    return job


def job_lease_renew(*, job_id: int, claimant: str) -> bool:
    """Renew `claimant`'s lease on a running job; False when the job is no longer its to hold."""
    held = TrainingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, claimed_by=claimant)
    return bool(held.update(heartbeat_at=timezone.now()))


def job_progress(
    *, job: TrainingJob, step: int, total: int, loss: float | None, eta_seconds: float | None
) -> bool:
    """Record progress and renew the claim; returns True when the job must stop: cancellation was requested,
    or the claim is no longer this process's (the job was taken over, or finished elsewhere)."""
    held = TrainingJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, claimed_by=job.claimed_by)
    if not held.update(
        step=step, total_steps=total, loss=loss, eta_seconds=eta_seconds, heartbeat_at=timezone.now()
    ):
        logger.warning("job %s is no longer held by %s: stopping it here", job.pk, job.claimed_by)
        return True
    announce(job.pk, coalesce=True)
    return bool(TrainingJob.objects.filter(pk=job.pk).values_list("cancel_requested", flat=True).first())


def job_log(*, job: TrainingJob, line: str) -> None:
    stamp = timezone.now().strftime("%H:%M:%S")
    tail = TrainingJob.objects.filter(pk=job.pk).values_list("log_tail", flat=True).first() or ""
    tail = (tail + f"{stamp} {line}\n")[-LOG_TAIL_CHARS:]
    TrainingJob.objects.filter(pk=job.pk).update(log_tail=tail)
    publish(f"job.{job.pk}", coalesce=True)


def job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel now when still pending; ask the worker to stop between steps when running."""
    if job.is_finished:
        raise ServiceError(f"job #{job.pk} has already {job.status}")
    now = timezone.now()
    if TrainingJob.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
        status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now
    ):
        job.refresh_from_db()
        announce(job.pk)
        return job
    TrainingJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    announce(job.pk)
    return job


def job_retry(*, job: TrainingJob, user: User | AnonymousUser | None) -> TrainingJob:
    """A new job of the same kind and parameters as a failed or cancelled one, checked like any new job."""
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ServiceError(f"job #{job.pk} is {job.status}: only a failed or cancelled job can be run again")
    return job_create(kind=job.kind, params=dict(job.params), user=user)


def _finish(job: TrainingJob, status: str, **fields: Any) -> None:
    # Only the claim's holder ends a job: a process that lost its claim (taken over) changes nothing.
    TrainingJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, claimed_by=job.claimed_by).update(
        status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(), **fields
    )
    release_job_lease(job_id=job.pk)
    job.refresh_from_db()
    announce(job.pk)


def job_succeed(*, job: TrainingJob, metrics: dict[str, Any], result: dict[str, Any]) -> None:
    _finish(job, JobStatus.SUCCEEDED, metrics=metrics, result=result, eta_seconds=0)


def job_fail(*, job: TrainingJob, reason: str) -> None:
    logger.warning("job %s failed: %s", job.pk, reason)
    _finish(job, JobStatus.FAILED, error=reason[:4000])


def job_mark_cancelled(*, job: TrainingJob, reason: str) -> None:
    _finish(job, JobStatus.CANCELLED, error=reason)


def jobs_reap_stuck() -> dict[str, int]:
    """RUNNING jobs whose holder is dead (`claimant_is_dead`): requeue them, or fail them past max attempts.

    Beat runs this every minute, so a job whose worker died is queued again at the next tick after its death
    is known, whether or not the broker redelivers. Returns counts, for the beat log.
    """
    now = timezone.now()
    requeued = failed = 0
    for job in TrainingJob.objects.filter(status=JobStatus.RUNNING):
        if not claimant_is_dead(claimed_by=job.claimed_by, heartbeat_at=job.heartbeat_at, now=now):
            continue
        if job.attempts >= settings.JOB_MAX_ATTEMPTS or job.cancel_requested:
            last = f"{job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if job.heartbeat_at else "none"
            reason = (
                f"the worker {job.claimed_by or '?'} stopped responding "
                f"(last heartbeat {last}) after {job.attempts} attempt(s)"
            )
            job_fail(job=job, reason=reason)  # a no-op if another process took the job over meanwhile
            if job.status == JobStatus.FAILED:
                failed += 1
            continue
        reset = TrainingJob.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, claimed_by=job.claimed_by, heartbeat_at=job.heartbeat_at
        ).update(status=JobStatus.PENDING, claimed_by="")
        if reset:
            job_log(job=job, line=f"requeued: worker {job.claimed_by} stopped responding")
            announce(job.pk)
            job_enqueue(job=job)
            requeued += 1
    return {"requeued": requeued, "failed": failed}
