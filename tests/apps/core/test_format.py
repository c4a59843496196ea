"""The `duration` filter: seconds shown as a person reads them, in the job progress ETA and elsewhere."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.template.loader import render_to_string

from apps.core.models import JobStatus, TrainingJob
from apps.core.templatetags.core_format import format_duration


@pytest.mark.parametrize(
    "seconds,shown",
    [
        (0, "0 s"),
        (45.2, "45 s"),
        (59.6, "1 min"),
        (375, "6 min"),
        (3599, "1 h"),
        (3600 + 23 * 60, "1 h 23 min"),
        (28998, "8 h 3 min"),
        (86399, "1 d"),
        (2 * 86400 + 4 * 3600 + 600, "2 d 4 h"),
        (-3, "0 s"),
    ],
)
def test_format_duration(seconds, shown):
    assert format_duration(seconds) == shown


@pytest.mark.parametrize(
    "value,shown", [(375.0, "6 min"), ("90", "2 min"), (None, ""), ("soon", ""), (1e400, "")]
)
def test_duration_filter_in_a_template(value, shown):
    template = Template("{% load core_format %}{{ value|duration }}")
    assert template.render(Context({"value": value})) == shown


def test_job_progress_shows_a_long_eta_in_hours_and_minutes():
    job = TrainingJob(
        pk=7, kind="train", status=JobStatus.RUNNING, step=10, total_steps=3000, eta_seconds=28998
    )

    html = render_to_string("core/_job_progress.html", {"job": job})

    assert "ETA 8 h 3 min" in html
    assert "28998" not in html
