from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.core.job_registry import JobKind, all_kinds, override_kinds
from apps.core.models import JobStatus, TrainingJob
from apps.core.services import jobs as job_services
from apps.core.tasks import reap_stuck_jobs, run_job

pytestmark = pytest.mark.django_db


def test_job_runs_to_success_with_progress(counting_kind, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = job_services.job_create(kind=counting_kind, params={"steps": 4}, user=None)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert (job.step, job.total_steps) == (4, 4)
    assert job.loss == pytest.approx(0.25)
    assert job.metrics == {"steps": 4}
    assert job.percent == 100
    assert job.finished_at is not None and job.attempts == 1


def test_invalid_params_are_refused_and_nothing_is_saved(counting_kind):
    with pytest.raises(ServiceError, match="steps must be an integer, got 'many'"):
        job_services.job_create(kind=counting_kind, params={"steps": "many"}, user=None)
    with pytest.raises(ServiceError, match="unknown job kind"):
        job_services.job_create(kind="nope", params={}, user=None)
    assert TrainingJob.objects.count() == 0


def test_cancel_pending_job_is_immediate_and_never_runs(counting_kind):
    job = job_services.job_create(kind=counting_kind, params={"steps": 2}, user=None)
    job_services.job_cancel(job=job)
    run_job(job.pk)  # the message arrives anyway
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.step == 0


def test_cancel_running_job_stops_between_steps(counting_kind):
    job = job_services.job_create(kind=counting_kind, params={"steps": 10, "cancel_at": 3}, user=None)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.step == 3
    assert "cancelled at step 3" in job.error


def test_cancelling_a_finished_job_is_an_error(counting_kind):
    job = job_services.job_create(kind=counting_kind, params={"steps": 1}, user=None)
    run_job(job.pk)
    job.refresh_from_db()
    with pytest.raises(ServiceError, match="already succeeded"):
        job_services.job_cancel(job=job)


def test_a_second_delivery_does_not_run_a_job_held_by_a_live_worker(counting_kind):
    job = job_services.job_create(kind=counting_kind, params={"steps": 1}, user=None)
    TrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now(), attempts=1
    )
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == 1


def _lose_worker(job: TrainingJob, attempts: int, settings) -> None:
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 5)
    TrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=stale, attempts=attempts, claimed_by="deadhost:4242"
    )


def test_reaper_requeues_a_job_whose_worker_died(counting_kind, settings, django_capture_on_commit_callbacks):
    settings.JOB_MAX_ATTEMPTS = 2
    job = job_services.job_create(kind=counting_kind, params={"steps": 2}, user=None)
    _lose_worker(job, attempts=1, settings=settings)
    counts = reap_stuck_jobs()
    job.refresh_from_db()
    assert counts == {"requeued": 1, "failed": 0}
    # eager Celery ran the requeued job to completion on a second attempt
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 2
    assert "requeued: worker deadhost:4242 stopped responding" in job.log_tail


def test_reaper_fails_a_job_after_max_attempts_with_a_reason(counting_kind, settings):
    settings.JOB_MAX_ATTEMPTS = 2
    job = job_services.job_create(kind=counting_kind, params={"steps": 2}, user=None)
    _lose_worker(job, attempts=2, settings=settings)
    assert reap_stuck_jobs() == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "deadhost:4242 stopped responding" in job.error


def test_redelivered_message_reclaims_a_stale_job(counting_kind, settings):
    job = job_services.job_create(kind=counting_kind, params={"steps": 2}, user=None)
    _lose_worker(job, attempts=1, settings=settings)
    run_job(job.pk)  # what the broker does after reject_on_worker_lost
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2


def _raise(exc: BaseException) -> None:
    raise exc


def boom_crash(job, reporter):
    _raise(RuntimeError("disk full"))


def boom_expected(job, reporter):
    raise ServiceError("there is no active model to re-score with")


def boom_ml(job, reporter):
    from ml.errors import InvalidInput

    raise InvalidInput("the data set has one class")


def _kind(name: str, run: str) -> JobKind:
    return JobKind(
        name=name, label=name, queue="default", params="tests.apps.core.conftest.StepsParams", run=run
    )


def test_a_crashing_job_fails_with_a_readable_reason_and_keeps_the_traceback_in_its_log():
    with override_kinds(_kind("boom", f"{__name__}.boom_crash")):
        job = job_services.job_create(kind="boom", params={}, user=None)
        run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "RuntimeError: disk full"
    assert "Traceback (most recent call last)" in job.log_tail and "_raise" in job.log_tail


@pytest.mark.parametrize(
    ("run", "reason"),
    [
        ("boom_expected", "there is no active model to re-score with"),
        ("boom_ml", "the data set has one class"),
    ],
)
def test_an_expected_failure_fails_with_its_message_and_no_traceback(run, reason):
    with override_kinds(_kind("expected", f"{__name__}.{run}")):
        job = job_services.job_create(kind="expected", params={}, user=None)
        run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error == reason
    assert "Traceback" not in job.log_tail


def test_the_command_line_and_the_worker_end_a_job_the_same_way():
    from django.core.management import CommandError, call_command

    with (
        override_kinds(_kind("boom", f"{__name__}.boom_crash")),
        pytest.raises(CommandError, match="failed: RuntimeError: disk full"),
    ):
        call_command("run_job", "boom")
    job = TrainingJob.objects.get(kind="boom")
    assert job.status == JobStatus.FAILED and job.error == "RuntimeError: disk full"
    assert "Traceback" in job.log_tail


def test_override_kinds_is_undone_after_the_block():
    with override_kinds(_kind("boom", f"{__name__}.boom_crash")):
        assert "boom" in {k.name for k in all_kinds()}
    assert "boom" not in {k.name for k in all_kinds()}
    with pytest.raises(ServiceError, match="unknown job kind 'boom'"):
        job_services.job_create(kind="boom", params={}, user=None)


def test_run_job_command_runs_in_process_and_records_the_row(counting_kind, capsys):
    import json

    from django.core.management import call_command

    call_command("run_job", counting_kind, "--params", '{"steps": 3}', "--json")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    job = TrainingJob.objects.get(pk=summary["job"])
    assert job.status == JobStatus.SUCCEEDED and job.step == 3
    assert summary["metrics"] == {"steps": 3}


def test_run_job_command_rejects_bad_params(counting_kind):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="steps must be between 1 and 100, got 0"):
        call_command("run_job", counting_kind, "--params", '{"steps": 0}')
    with pytest.raises(CommandError, match="must be a JSON object"):
        call_command("run_job", counting_kind, "--params", "[1]")
    assert TrainingJob.objects.count() == 0
