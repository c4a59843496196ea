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
    assert job.error == "unexpected error (RuntimeError: disk full); the traceback is in its log"
    assert "Traceback (most recent call last)" in job.log_tail and "_raise" in job.log_tail


def test_a_crash_page_says_what_to_do_and_shows_the_traceback_to_admins_only(client, make_user):
    analyst = make_user("analyst")
    with override_kinds(_kind("boom", f"{__name__}.boom_crash")):
        job = job_services.job_create(kind="boom", params={}, user=analyst)
        run_job(job.pk)
        client.force_login(analyst)
        page = client.get(f"/jobs/{job.pk}/").content.decode()
        api = client.get(f"/api/jobs/{job.pk}/").json()
        client.force_login(make_user("admin"))
        admin_page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "unexpected error (RuntimeError: disk full)" in page and "What to do" in page
    assert "Traceback" not in page and "Traceback" not in api["log_tail"]
    assert "the traceback is shown to admins" in page
    assert "Traceback (most recent call last)" in admin_page


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
        pytest.raises(CommandError, match=r"failed: unexpected error \(RuntimeError: disk full\)"),
    ):
        call_command("run_job", "boom")
    job = TrainingJob.objects.get(kind="boom")
    assert (
        job.status == JobStatus.FAILED
        and job.error == "unexpected error (RuntimeError: disk full); the traceback is in its log"
    )
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


# --- a job held by a dead process is taken over quickly, and only then -----------------------------------
@pytest.fixture
def dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _here(pid: int) -> str:
    """A claim by `pid` on this host and in this pid namespace, as a worker here writes it."""
    host, _, namespace = job_services.worker_identity().split(":")
    return f"{host}:{pid}:{namespace}"


def _held(job: TrainingJob, claimed_by: str, age: float = 0.0, attempts: int = 1) -> None:
    TrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        claimed_by=claimed_by,
        heartbeat_at=timezone.now() - timedelta(seconds=age),
        attempts=attempts,
    )


def _is_dead(claimed_by: str, age: float = 0.0) -> bool:
    now = timezone.now()
    return job_services.claimant_is_dead(
        claimed_by=claimed_by, heartbeat_at=now - timedelta(seconds=age), now=now
    )


def test_a_claimant_here_is_dead_once_its_pid_is_gone(dead_pid, live_pid):
    assert _is_dead(_here(dead_pid)) is True
    assert _is_dead(_here(live_pid)) is False
    assert _is_dead(job_services.worker_identity()) is False  # this very process


def test_a_zombie_claimant_is_dead():
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        proc.send_signal(signal.SIGKILL)
        time.sleep(0.5)  # killed, not yet reaped by us: a zombie
        assert _is_dead(_here(proc.pid)) is True
    finally:
        proc.wait()


def test_a_pid_in_another_host_or_pid_namespace_is_not_judged_here(dead_pid, settings):
    host, _, namespace = job_services.worker_identity().split(":")
    # Containers sharing the host name (host networking) have pids of their own: wait for the lease instead.
    assert _is_dead(f"{host}:{dead_pid}:0ther000") is False
    assert _is_dead(f"elsewhere:{dead_pid}:{namespace}") is False
    assert _is_dead(f"elsewhere:{dead_pid}:{namespace}", age=settings.JOB_LEASE_SECONDS + 1) is True


def test_a_lease_unrenewed_for_job_lease_seconds_is_dead_anywhere(settings, live_pid):
    settings.JOB_LEASE_SECONDS = 30
    assert _is_dead("web-2:17:abcdef12", age=29) is False
    assert _is_dead("web-2:17:abcdef12", age=31) is True
    assert _is_dead(_here(live_pid), age=31) is True  # alive but cut off for three beats: its claim lapses


def test_a_claim_from_before_leases_waits_for_job_stale_seconds(settings):
    settings.JOB_LEASE_SECONDS, settings.JOB_STALE_SECONDS = 30, 600
    assert _is_dead("oldhost:4242", age=300) is False
    assert _is_dead("oldhost:4242", age=601) is True


def test_a_redelivered_job_whose_worker_died_here_is_taken_over_at_once(counting_kind, dead_pid):
    job = job_services.job_create(kind=counting_kind, params={"steps": 2}, user=None)
    _held(job, _here(dead_pid))  # heartbeat fresh: the worker died a moment ago
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert f"taken over by {job_services.worker_identity()}: {_here(dead_pid)} had died" in job.log_tail


def test_a_redelivered_job_whose_worker_is_alive_is_left_alone(counting_kind, live_pid):
    job = job_services.job_create(kind=counting_kind, params={"steps": 2}, user=None)
    _held(job, _here(live_pid))
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == 1 and job.claimed_by == _here(live_pid)


def test_the_take_over_is_a_compare_and_set_on_the_holder_judged_dead(counting_kind, dead_pid, monkeypatch):
    job = job_services.job_create(kind=counting_kind, params={"steps": 2}, user=None)
    _held(job, _here(dead_pid), age=5)
    judge = job_services.claimant_is_dead

    def judged_dead_then_renewed(**kwargs):
        verdict = judge(**kwargs)
        TrainingJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())  # the holder beat meanwhile
        return verdict

    monkeypatch.setattr(job_services, "claimant_is_dead", judged_dead_then_renewed)
    assert job_services.job_claim(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == 1 and job.claimed_by == _here(dead_pid)


def test_reaper_requeues_a_job_whose_worker_died_here_without_waiting(counting_kind, dead_pid):
    job = job_services.job_create(kind=counting_kind, params={"steps": 2}, user=None)
    _held(job, _here(dead_pid))
    assert reap_stuck_jobs() == {"requeued": 1, "failed": 0}
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2


def test_reaper_requeues_a_job_whose_lease_lapsed_on_another_host(counting_kind, settings):
    job = job_services.job_create(kind=counting_kind, params={"steps": 2}, user=None)
    _held(job, "worker-7:31:0a1b2c3d", age=settings.JOB_LEASE_SECONDS + 1)
    assert reap_stuck_jobs() == {"requeued": 1, "failed": 0}
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert "requeued: worker worker-7:31:0a1b2c3d stopped responding" in job.log_tail


def test_reaper_leaves_jobs_of_live_workers_running(counting_kind, live_pid, settings):
    here, there = (job_services.job_create(kind=counting_kind, params={}, user=None) for _ in range(2))
    _held(here, _here(live_pid))
    _held(there, "worker-7:31:0a1b2c3d", age=settings.JOB_LEASE_SECONDS - 5)
    assert reap_stuck_jobs() == {"requeued": 0, "failed": 0}
    assert set(TrainingJob.objects.values_list("status", flat=True)) == {JobStatus.RUNNING}


def test_reaper_fails_a_dead_workers_job_past_max_attempts(counting_kind, dead_pid, settings):
    settings.JOB_MAX_ATTEMPTS = 2
    job = job_services.job_create(kind=counting_kind, params={}, user=None)
    _held(job, _here(dead_pid), attempts=2)
    assert reap_stuck_jobs() == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and f"the worker {_here(dead_pid)} stopped responding" in job.error


def test_a_process_that_lost_its_claim_stops_and_changes_nothing(counting_kind):
    job = job_services.job_create(kind=counting_kind, params={"steps": 5}, user=None)
    mine = job_services.job_claim(job_id=job.pk)
    assert mine is not None
    _held(job, "worker-7:31:0a1b2c3d", attempts=2)  # taken over while this process was cut off
    assert job_services.job_progress(job=mine, step=3, total=5, loss=0.1, eta_seconds=1.0) is True
    job_services.job_succeed(job=mine, metrics={"steps": 5}, result={})
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.claimed_by == "worker-7:31:0a1b2c3d" and job.step == 0


@pytest.mark.django_db(transaction=True)  # the lease thread has its own connection: commit for real
def test_the_lease_thread_renews_the_claim_until_it_is_taken_over(counting_kind, settings):
    import time

    from django.db import OperationalError

    from apps.core.heartbeat import release_job_lease

    settings.WORKER_HEARTBEAT_SECONDS = 0.2
    job = TrainingJob.objects.create(kind=counting_kind, params={})  # not enqueued: nobody runs it
    old = timezone.now() - timedelta(seconds=3600)

    def heartbeat() -> object:
        for _ in range(50):  # SQLite in memory fails at once with "table is locked" while the thread writes
            try:
                return TrainingJob.objects.values_list("heartbeat_at", flat=True).get(pk=job.pk)
            except OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                time.sleep(0.05)
        raise AssertionError("the jobs table stayed locked for 2.5 s")

    claimed = job_services.job_claim(job_id=job.pk)
    assert claimed is not None
    try:
        TrainingJob.objects.filter(pk=job.pk).update(heartbeat_at=old)
        deadline = time.monotonic() + 30
        while heartbeat() == old:
            assert time.monotonic() < deadline, "the lease was not renewed in 30 s"
            time.sleep(0.1)
        TrainingJob.objects.filter(pk=job.pk).update(claimed_by="worker-7:31:0a1b2c3d", heartbeat_at=old)
        time.sleep(1.0)  # five renewal periods
        assert heartbeat() == old  # someone else's claim now: the thread left it alone and stopped
    finally:
        release_job_lease(job_id=job.pk)
