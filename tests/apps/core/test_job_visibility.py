"""Who sees which jobs: admins all of them; others their own and the suite's, without server paths.

The probe: every user's jobs, usernames and server paths were visible to anyone who could view jobs.
"""

from __future__ import annotations

from django.conf import settings

from apps.core import roles
from apps.core.models import TrainingJob


def _job(user, **fields):
    path = f"{settings.DATA_DIR}/financial_phrasebank/Sentences_50Agree.txt"
    return TrainingJob.objects.create(
        kind="sentiment_train",
        params={"phrasebank": path},
        result={"artifact_dir": f"{settings.MODEL_STORE}/sentiment/20260101T000000000000"},
        log_tail=f"reading {path}",
        created_by=user,
        **fields,
    )


def test_an_analyst_sees_own_and_suite_jobs_only(client, make_user):
    analyst, other = make_user(roles.ANALYST), make_user(roles.ANALYST, "someone-else")
    mine, theirs, suite = _job(analyst), _job(other), _job(None)
    client.force_login(analyst)

    listed = {job["id"] for job in client.get("/api/jobs/").json()["results"]}
    assert listed == {mine.pk, suite.pk}
    assert client.get(f"/api/jobs/{theirs.pk}/").status_code == 404
    assert client.post(f"/api/jobs/{theirs.pk}/cancel/").status_code == 404
    assert client.get(f"/jobs/{theirs.pk}/").status_code == 404
    assert "someone-else" not in client.get("/jobs/").content.decode()
    TrainingJob.objects.get(pk=theirs.pk, cancel_requested=False)


def test_server_paths_are_hidden_from_non_admins_and_shown_to_admins(client, make_user):
    analyst, admin = make_user(roles.ANALYST), make_user(roles.ADMIN)
    job = _job(analyst)
    client.force_login(analyst)
    seen = client.get(f"/api/jobs/{job.pk}/").json()
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    for text in (str(seen), page):
        assert str(settings.DATA_DIR) not in text and str(settings.MODEL_STORE) not in text
    assert seen["params"]["phrasebank"] == "DATA_DIR/financial_phrasebank/Sentences_50Agree.txt"
    assert seen["result"]["artifact_dir"].startswith("MODEL_STORE/sentiment/")
    job.refresh_from_db()
    assert job.params["phrasebank"].startswith(str(settings.DATA_DIR))  # only the display changed

    client.force_login(admin)
    everything = client.get("/api/jobs/").json()["results"]
    assert any(j["params"]["phrasebank"].startswith(str(settings.DATA_DIR)) for j in everything)
