"""Limits on expensive work: job quotas per kind, write throttling, login lock-outs.

The probe: 27 training jobs of 7,100 steps in about a minute (the training queue blocked for hours), and
10 wrong logins in a row not throttled on the dashboard or the token endpoint.
"""

from __future__ import annotations

import pytest

from apps.core import roles
from apps.core.errors import QuotaExceeded
from apps.core.models import JobStatus, TrainingJob
from apps.core.services.jobs import job_cancel, job_create

KIND, PARAMS = "text_classifier", {"max_examples": 50, "promote": "never"}


def test_one_user_may_queue_only_so_many_jobs_of_a_kind(make_user, settings):
    settings.JOB_QUOTA_PER_USER = 2
    analyst, other = make_user(roles.ANALYST), make_user(roles.ANALYST, "other")
    first = job_create(kind=KIND, params=PARAMS, user=analyst)
    job_create(kind=KIND, params=PARAMS, user=analyst)
    with pytest.raises(QuotaExceeded, match="you already have 2 text_classifier jobs"):
        job_create(kind=KIND, params=PARAMS, user=analyst)
    assert job_create(kind=KIND, params=PARAMS, user=other).created_by == other  # per user
    job_cancel(job=first)
    assert job_create(kind=KIND, params=PARAMS, user=analyst).status == JobStatus.PENDING  # room again


def test_everyone_together_may_queue_only_so_many(make_user, settings):
    settings.JOB_QUOTA_TOTAL = 3
    for n in range(3):
        job_create(kind=KIND, params=PARAMS, user=make_user(roles.ANALYST, f"a{n}"))
    with pytest.raises(QuotaExceeded, match="3 text_classifier jobs are already queued or running"):
        job_create(kind=KIND, params=PARAMS, user=make_user(roles.ANALYST, "late"))
    assert TrainingJob.objects.count() == 3


def test_the_api_answers_429_and_creates_nothing(client, make_user, settings):
    settings.JOB_QUOTA_PER_USER = 1
    client.force_login(make_user(roles.ANALYST))
    body = {"kind": KIND, "params": PARAMS}
    assert client.post("/api/jobs/", body, content_type="application/json").status_code == 201
    refused = client.post("/api/jobs/", body, content_type="application/json")
    assert refused.status_code == 429 and "queued or running" in refused.json()["detail"]
    assert TrainingJob.objects.count() == 1


def test_api_writes_are_throttled_per_user_reads_are_not(client, make_user, settings):
    settings.API_WRITE_RATE = "3/min"
    client.force_login(make_user(roles.ADMIN))
    answers = [
        client.post("/api/prompts/", {"name": f"p{n}", "body": "hi"}, content_type="application/json")
        for n in range(4)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert int(answers[-1]["Retry-After"]) > 0
    assert client.get("/api/prompts/").status_code == 200


def test_dashboard_form_posts_are_throttled_too(client, make_user, settings):
    settings.API_WRITE_RATE = "2/min"
    client.force_login(make_user(roles.ADMIN))
    codes = [client.post("/prompts/", {"name": f"p{n}", "body": "hi"}).status_code for n in range(3)]
    assert codes[-1] == 429 and 429 not in codes[:2]


def _wrong_token_logins(client, count):
    return [
        client.post("/api/auth/token/", {"username": "victim", "password": f"guess-{n}"}).status_code
        for n in range(count)
    ]


def test_wrong_passwords_on_the_token_endpoint_lock_the_username_out(client, make_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    victim = make_user(roles.ANALYST, "victim")
    victim.set_password("right-password-123")
    victim.save()
    assert _wrong_token_logins(client, 4) == [400, 400, 429, 429]  # the third failure locks out
    locked = client.post("/api/auth/token/", {"username": "victim", "password": "right-password-123"})
    assert locked.status_code == 429 and "token" not in locked.json()
    assert "Too many failed logins" in locked.json()["detail"]


def test_wrong_passwords_on_the_dashboard_login_lock_out(client, make_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    victim = make_user(roles.ANALYST, "victim")
    victim.set_password("right-password-123")
    victim.save()
    for n in range(3):
        client.post("/accounts/login/", {"username": "victim", "password": f"guess-{n}"})
    locked = client.post("/accounts/login/", {"username": "victim", "password": "right-password-123"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
