"""The shared UI components (apps/core/templatetags/ui.py, templates/components/) and the pages that use them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import timezone

from apps.core.models import JobStatus, TrainingJob
from apps.sentiment.models import Alert, AlertRule, Delivery

BADGE = re.compile(r'<span class="badge tone-(\w+)[^"]*">([^<]+)</span>')


def render(source: str, **context: Any) -> str:
    return Template("{% load ui %}" + source).render(Context(context))


def badges(html: str) -> list[tuple[str, str]]:
    return BADGE.findall(html)


@pytest.mark.parametrize(
    "value",
    [
        *JobStatus.values,
        *Alert.Status.values,
        *AlertRule.Severity.values,
        *Delivery.Status.values,
        "active",
    ],
)
def test_every_known_status_and_severity_gets_a_coloured_badge_with_its_text(value):
    [(tone, text)] = badges(render("{% badge value %}", value=value))

    assert tone != "neutral", f"{value!r} has no colour of its own"
    assert text.strip().lower() == value.replace("_", " ")


def test_a_badge_says_bad_and_good_outcomes_apart_and_takes_a_label_and_class():
    html = render(
        '{% badge "failed" %}{% badge "succeeded" %}{% badge s label="Fired" cls="alert-status" %}', s="fired"
    )

    assert badges(html) == [("bad", "Failed"), ("ok", "Succeeded"), ("bad", "Fired")]
    assert 'class="badge tone-bad alert-status"' in html


def test_an_unknown_value_gets_a_neutral_badge_with_its_text_escaped():
    html = render("{% badge value %}", value="<b>weird_state</b>")

    assert 'class="badge tone-neutral"' in html
    assert "&lt;b&gt;weird state&lt;/b&gt;" in html and "<b>" not in html


def test_when_shows_the_server_zone_by_name_and_utc_in_the_machine_readable_parts(settings):
    settings.TIME_ZONE = "Europe/Helsinki"
    moment = datetime(2026, 12, 2, 18, 51, 7, tzinfo=UTC)

    with timezone.override("Europe/Helsinki"):
        html = render("{% when dt %}", dt=moment)

    assert html == (
        '<time datetime="2026-12-02T18:51:07Z" title="2026-12-02 18:51:07 UTC" data-local="minutes">'
        "2026-12-02 20:51 EET</time>"
    )


def test_when_with_seconds_and_in_utc():
    html = render("{% when dt seconds=True %}", dt=datetime(2026, 6, 1, 9, 5, 3, tzinfo=UTC))

    assert ">2026-06-01 09:05:03 UTC</time>" in html and 'data-local="seconds"' in html


@pytest.mark.parametrize(
    "offset,wording",
    [
        (timedelta(minutes=-3, seconds=-10), " · 3 min ago"),
        (timedelta(hours=2, minutes=1), " · in 2 h"),
        (timedelta(hours=-5), " · 5 h ago"),
        (timedelta(days=3, hours=1), " · in 3 d"),
        (timedelta(seconds=-20), " · just now"),
    ],
)
def test_when_relative_says_how_long_ago_or_how_soon(offset, wording):
    html = render("{% when dt relative=True %}", dt=timezone.now() + offset)

    assert html.endswith(f'<span class="ago">{wording}</span>')


def test_when_without_a_time_says_never_or_what_it_is_told():
    assert render("{% when dt %}", dt=None) == '<span class="muted">never</span>'
    assert render('{% when dt empty="not yet" %}', dt=None) == '<span class="muted">not yet</span>'


def test_when_reads_an_iso_time_kept_in_json():
    assert ">2026-01-05 10:00 UTC</time>" in render("{% when dt %}", dt="2026-01-05T10:00:00+00:00")


def test_kv_table_puts_keys_in_row_headers_and_floats_to_four_significant_digits():
    html = render("{% kv_table m %}", m={"lr": 0.000123456, "accuracy": 0.912345, "epochs": 3, "soup": False})

    assert html.startswith('<table class="kv">')
    rows = re.findall(r'<tr><th scope="row">(.*?)</th><td>(.*?)</td></tr>', html)
    assert rows == [("lr", "0.0001235"), ("accuracy", "0.9123"), ("epochs", "3"), ("soup", "no")]


def test_kv_table_escapes_html_in_keys_and_values():
    html = render(
        "{% kv_table m %}", m={"<script>k</script>": "<img src=x onerror=alert(1)>", "n": {"<i>": "<b>"}}
    )

    assert "<script>" not in html and "<img" not in html and "<i>" not in html and "<b>" not in html
    assert "&lt;script&gt;k&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_kv_table_nests_dicts_joins_scalar_lists_and_prints_other_lists_as_json():
    html = render(
        "{% kv_table m %}",
        m={"report": {"positive": {"f1": 0.5}}, "labels": ["neg", "pos"], "rows": [{"a": 1}], "none": []},
    )

    assert html.count('<table class="kv">') == 3  # the outer table, report, report.positive
    assert "<td>neg, pos</td>" in html
    assert '<pre class="kv-json">[\n  {\n    &quot;a&quot;: 1\n  }\n]</pre>' in html
    assert '<th scope="row">none</th><td><span class="muted">none</span></td>' in html


def test_kv_table_of_nothing_says_none():
    assert render("{% kv_table m %}", m={}) == '<span class="muted">none</span>'
    assert render("{% kv_table m %}", m=None) == '<span class="muted">none</span>'


def test_sort_th_marks_the_sorted_column_and_links_the_other_way():
    request = RequestFactory().get("/sentiment/", {"sort": "score", "dir": "asc", "days": "7"})
    source = '{% sort_th "Score" "score" sort descending %}{% sort_th "Items" "volume" sort descending first="desc" %}'

    html = render(source, request=request, sort="score", descending=False)

    score, volume = re.findall(r"<th.*?</th>", html)
    assert 'aria-sort="ascending"' in score and 'href="?days=7&amp;sort=score&amp;dir=desc"' in score
    assert '<span aria-hidden="true">▲</span>' in score
    assert 'aria-sort="none"' in volume and "dir=desc" in volume and "▲" not in volume


def test_subnav_marks_the_longest_matching_item_current_and_shows_counts():
    request = RequestFactory().get("/sentiment/alerts/7/")
    source = (
        '{% nav_item "Overview" "/sentiment/" as items %}'
        '{% nav_item "Alerts" "/sentiment/alerts/" count=3 after=items as items %}'
        '{% subnav items label="Sentiment" %}'
    )

    html = render(source, request=request)

    assert 'aria-label="Sentiment"' in html
    current = re.findall(r'<a href="([^"]+)" class="active" aria-current="page">', html)
    assert current == ["/sentiment/alerts/"]
    assert '<b class="count">3</b>' in html


def test_the_empty_state_says_what_is_missing_and_what_to_do():
    html = render(
        '{% include "components/empty.html" with message="No jobs yet." action_url="/jobs/" action_label="Start" %}'
    )

    assert "No jobs yet." in html and '<a class="button" href="/jobs/">Start</a>' in html


@pytest.mark.django_db
def test_job_detail_shows_params_metrics_and_result_as_tables_with_a_status_badge(client, make_user):
    job = TrainingJob.objects.create(
        kind="text_classifier",
        status=JobStatus.FAILED,
        params={"dataset": "tfns", "lr": 2e-5, "<b>odd</b>": "<script>x</script>"},
        metrics={"val_accuracy": 0.876543, "report": {"neg": {"f1": 0.81}}},
        result={"version": 3},
        error="boom",
        started_at=timezone.now() - timedelta(minutes=5),
        finished_at=timezone.now(),
    )
    client.force_login(make_user("admin"))

    page = client.get(f"/jobs/{job.pk}/").content.decode()

    assert "{'" not in page and "{&#x27;" not in page
    assert '<th scope="row">dataset</th><td>tfns</td>' in page
    assert '<th scope="row">val_accuracy</th><td>0.8765</td>' in page
    assert '<th scope="row">version</th><td>3</td>' in page
    assert "<script>x</script>" not in page and "&lt;b&gt;odd&lt;/b&gt;" in page
    assert 'data-status="failed"><span class="badge tone-bad">Failed</span>' in page
    assert 'id="job-live" data-live="job.' in page and 'role="progressbar"' in page
    assert "<time datetime=" in page


@pytest.mark.django_db
def test_the_jobs_page_without_jobs_shows_an_empty_state_with_the_next_step(client, make_user):
    client.force_login(make_user("admin"))

    page = client.get("/jobs/").content.decode()

    assert 'id="job-table"' in page and 'class="empty"' in page
    assert '<a class="button" href="/jobs/#start">Start a job</a>' in page and 'id="start"' in page


@pytest.mark.django_db
def test_the_alerts_page_shows_status_and_severity_badges(client, make_user):
    rule = AlertRule.objects.create(name="drop", condition="score_drop", threshold=3, severity="critical")
    Alert.objects.create(
        rule=rule, severity="critical", value=-4.2, fired_at=timezone.now() - timedelta(minutes=5)
    )
    client.force_login(make_user("analyst"))

    page = client.get("/sentiment/alerts/").content.decode()

    found = badges(page)
    assert ("bad", "Critical") in found and ("bad", "Fired") in found
    assert " · 5 min ago" in page
    assert 'id="sentiment-nav" data-live="sentiment.alerts"' in page
    assert re.search(
        r'<a href="/sentiment/alerts/" class="active" aria-current="page">Alerts <b class="count">1', page
    )
