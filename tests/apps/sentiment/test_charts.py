"""The entity chart: the Plotly figure builder, the page's time ranges, and the chart drawn in a browser."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone

from apps.sentiment.charts import AlertWindow, entity_figure
from apps.sentiment.models import Alert, Bucket
from apps.sentiment.templatetags.sentiment_charts import PLOTLY_JS, plotly_injected_style_ids
from tests.apps.sentiment import alert_factories as f

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class P:
    start: datetime
    count: int
    mean_score: float


def _figure(points: list[P], windows: list[AlertWindow] = (), days: int = 1) -> dict[str, Any]:  # type: ignore[assignment]
    return entity_figure(points, windows, start=T0 - timedelta(days=days), end=T0, granularity="hour")


# --- the figure builder ----------------------------------------------------------------------------------
def test_figure_has_score_over_volume_on_one_shared_time_axis():
    fig = _figure([P(T0 - 3 * HOUR, 4, 0.5), P(T0 - 2 * HOUR, 2, -0.25)])
    score, volume = fig["data"]
    assert (score["type"], score["xaxis"], score["yaxis"]) == ("scatter", "x", "y")
    assert (volume["type"], volume["xaxis"], volume["yaxis"]) == ("bar", "x2", "y2")
    assert fig["layout"]["xaxis"]["matches"] == "x2"  # zooming one row zooms both
    assert fig["layout"]["yaxis"]["domain"][0] > fig["layout"]["yaxis2"]["domain"][1]  # score above volume
    assert score["y"] == [0.5, -0.25] and volume["y"] == [4, 2]
    assert fig["layout"]["xaxis2"]["range"] == ["2026-01-04 12:00:00", "2026-01-05 12:00:00"]


def test_figure_names_its_axes_and_units_and_fixes_the_score_scale():
    layout = _figure([P(T0 - HOUR, 1, 0.0)])["layout"]
    assert layout["yaxis"]["title"]["text"] == "mean score (-1 to +1)"
    assert layout["yaxis"]["range"] == [-1.05, 1.05]
    assert layout["yaxis2"]["title"]["text"] == "items per hour"
    assert layout["xaxis2"]["title"]["text"] == "time (UTC)" and layout["xaxis2"]["type"] == "date"
    day = entity_figure([P(T0, 3, 0.1)], [], start=T0 - timedelta(days=30), end=T0, granularity="day")
    assert day["layout"]["yaxis2"]["title"]["text"] == "items per day"


def test_tooltips_carry_the_period_the_value_and_the_item_count():
    score, volume = _figure([P(T0 - 3 * HOUR, 4, 0.5)])["data"]
    assert score["customdata"] == [["2026-01-05 09:00\u201310:00 UTC", 4, "+0.50"]]
    assert score["hovertemplate"].startswith("%{customdata[0]}<br>mean score %{customdata[2]}<br>")
    assert "%{customdata[1]} items" in score["hovertemplate"]
    assert "%{y} items" in volume["hovertemplate"]


def test_a_missing_period_breaks_the_score_line():
    score = _figure([P(T0 - 5 * HOUR, 1, 0.2), P(T0 - 2 * HOUR, 1, 0.4)])["data"][0]
    assert score["y"] == [0.2, None, 0.4] and score["connectgaps"] is False


def test_alert_windows_in_range_become_labelled_shaded_regions_over_both_rows():
    windows = [
        AlertWindow(T0 - 4 * HOUR, T0 - 2 * HOUR, "ACME drop"),
        AlertWindow(T0 - timedelta(days=3), T0 - timedelta(days=2), "long ago"),  # outside the day shown
        AlertWindow(T0 - 30 * timedelta(minutes=1), T0 - 20 * timedelta(minutes=1), "short"),
    ]
    shapes = _figure([P(T0 - 3 * HOUR, 4, 0.5)], windows)["layout"]["shapes"]
    assert [s["label"]["text"] for s in shapes] == ["ACME drop", "short"]
    drop, short = shapes
    assert (drop["x0"], drop["x1"]) == ("2026-01-05 08:00:00", "2026-01-05 10:00:00")
    assert (drop["type"], drop["xref"], drop["yref"], drop["y0"], drop["y1"]) == ("rect", "x", "paper", 0, 1)
    assert (short["x0"], short["x1"]) == ("2026-01-05 11:00:00", "2026-01-05 12:00:00")  # widened to one hour


def test_empty_input_gives_empty_traces_and_no_shapes():
    fig = _figure([])
    assert [t["y"] for t in fig["data"]] == [[], []]
    assert fig["layout"].get("shapes", []) == []
    assert fig["layout"]["yaxis"]["title"]["text"] == "mean score (-1 to +1)"


# --- the page --------------------------------------------------------------------------------------------
@pytest.fixture
def acme(db, make_user):
    """ACME with 48 hours of buckets, 20 days of day buckets, and an alert whose window is 3-2 hours ago."""
    now = timezone.now()
    ent = f.entity("ACME")
    f.series(f.calm(48), end=now, ent=ent)
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
    Bucket.objects.bulk_create(
        Bucket(entity=ent, granularity="day", start=day0 - timedelta(days=i), count=200, score_sum=20.0,
               mean_score=0.1, negative=10, positive=30, negative_share=0.05, positive_share=0.15, baseline={})
        for i in range(20)
    )  # fmt: skip
    rule = f.rule(name="ACME drop", entity=ent)
    hour = now.replace(minute=0, second=0, microsecond=0)
    detail = {"window_start": (hour - 3 * HOUR).isoformat(), "window_end": (hour - 2 * HOUR).isoformat()}
    Alert.objects.create(rule=rule, entity=ent, severity="warning", value=-4.2, fired_at=hour - 2 * HOUR,
                         detail=detail)  # fmt: skip
    return {"user": make_user("analyst", username="ana"), "entity": ent, "now": now}


def _figure_of(page: str) -> dict[str, Any]:
    match = re.search(r'<script id="entity-figure" type="application/json">(.*?)</script>', page, re.S)
    assert match, "no figure on the page"
    return json.loads(match.group(1))


@pytest.mark.parametrize(
    ("query", "granularity", "bars"),
    [
        ("range=1h", "hour", 2),
        ("range=6h", "hour", 7),
        ("range=24h", "hour", 25),
        ("range=7d", "hour", 48),
        ("range=30d", "day", 20),
        ("range=90d", "day", 20),
        ("", "hour", 48),  # the default: 7 days
        ("days=30", "day", 20),  # the links of before
        ("days=1", "hour", 25),
        ("days=oops", "hour", 48),
    ],
)
def test_each_range_shows_its_buckets_at_a_granularity_that_fits(client, acme, query, granularity, bars):
    client.force_login(acme["user"])
    response = client.get(f"/sentiment/entities/ACME/?{query}")
    assert response.status_code == 200
    page = response.content.decode()
    fig = _figure_of(page)
    assert len(fig["data"][1]["y"]) == bars
    assert fig["layout"]["yaxis2"]["title"]["text"] == f"items per {granularity}"
    assert f"({granularity} buckets" in page
    for link in ("1h", "6h", "24h", "7d", "30d", "90d"):
        assert f'href="?range={link}"' in page or f'<b aria-current="true">{link}</b>' in page
    assert "<polyline" not in page and "cdn" not in page.lower()
    assert 'src="/static/vendor/plotly.min.js"' in page and 'src="/static/js/charts.js"' in page


def test_the_alert_window_is_shaded_on_the_hour_chart(client, acme):
    client.force_login(acme["user"])
    shapes = _figure_of(client.get("/sentiment/entities/ACME/?range=24h").content.decode())["layout"][
        "shapes"
    ]
    hour = acme["now"].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    assert [(s["label"]["text"], s["x0"], s["x1"]) for s in shapes] == [
        ("ACME drop", f"{hour - 3 * HOUR:%Y-%m-%d %H:%M:%S}", f"{hour - 2 * HOUR:%Y-%m-%d %H:%M:%S}")
    ]


def test_an_alert_still_firing_shows_its_latest_window_and_one_resolved_before_the_range_does_not(
    client, acme
):
    # given an alert fired 10 days ago whose window has moved on to 5-4 hours ago, and one resolved 3 days ago
    hour = acme["now"].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    old = Alert.objects.get()
    old.fired_at = hour - timedelta(days=10)
    old.detail = {"window_start": (hour - 5 * HOUR).isoformat(), "window_end": (hour - 4 * HOUR).isoformat()}
    old.save(update_fields=["fired_at", "detail"])
    gone = f.rule(name="ACME buzz", entity=acme["entity"])
    Alert.objects.create(rule=gone, entity=acme["entity"], severity="warning", value=3.3, status="resolved",
                         fired_at=hour - timedelta(days=4), resolved_at=hour - timedelta(days=3))  # fmt: skip
    client.force_login(acme["user"])

    # when the last 24 hours are shown
    shapes = _figure_of(client.get("/sentiment/entities/ACME/?range=24h").content.decode())["layout"][
        "shapes"
    ]

    # then only the open alert's window is shaded, where it is now
    assert [(s["label"]["text"], s["x0"]) for s in shapes] == [
        ("ACME drop", f"{hour - 5 * HOUR:%Y-%m-%d %H:%M:%S}")
    ]


def test_a_custom_range_picks_hours_or_days_by_its_length(client, acme):
    client.force_login(acme["user"])
    now = acme["now"].astimezone(UTC)
    short = f"from={now - 10 * HOUR:%Y-%m-%dT%H:%M}&to={now:%Y-%m-%dT%H:%M}"
    fig = _figure_of(client.get(f"/sentiment/entities/ACME/?{short}").content.decode())
    assert fig["layout"]["yaxis2"]["title"]["text"] == "items per hour" and len(fig["data"][1]["y"]) == 11
    long = f"from={now - timedelta(days=10):%Y-%m-%dT%H:%M}&to={now:%Y-%m-%dT%H:%M}"
    page = client.get(f"/sentiment/entities/ACME/?{long}").content.decode()
    assert _figure_of(page)["layout"]["yaxis2"]["title"]["text"] == "items per day"
    assert f'value="{now - timedelta(days=10):%Y-%m-%dT%H:%M}"' in page  # the form keeps what was asked


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=yesterday&to=2026-01-05T10:00", "Enter both dates"),
        ("from=2026-01-05T10:00", "Enter both dates"),
        ("from=2026-01-05T10:00&to=2026-01-05T09:00", "must be after"),
        ("from=2020-01-01T00:00&to=2026-01-01T00:00", "at most 730 days"),
        ("from=0001-01-01T00:00&to=0001-01-02T00:00", "Pick dates between 2000"),  # was an OverflowError
        ("from=9999-12-30T00:00&to=9999-12-31T23:59", "Pick dates between 2000"),
        ("from=2026-13-01T00:00&to=2026-12-01T00:00", "Enter both dates"),
    ],
)
def test_a_bad_custom_range_is_an_inline_error_not_a_server_error(client, acme, query, message):
    client.force_login(acme["user"])
    response = client.get(f"/sentiment/entities/ACME/?{query}")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="range-error"' in page and message in page and 'aria-invalid="true"' in page
    assert len(_figure_of(page)["data"][1]["y"]) == 48  # the default 7 days is shown meanwhile


def test_a_range_without_items_shows_the_empty_state(client, acme):
    client.force_login(acme["user"])
    page = client.get("/sentiment/entities/ACME/?from=2020-01-01T00:00&to=2020-01-02T00:00").content.decode()
    assert "No scored items in this range" in page and "Pick a longer range" in page
    assert 'id="entity-figure"' not in page and "range-error" not in page


def test_every_style_plotly_js_would_inject_is_guarded_on_the_page(client, acme):
    # given the installed bundle: plotly's own rules go into the linked sheet; any other <style> it creates on
    # load (MapLibre's CSS) is skipped when an element with its id exists
    bundle = Path(finders.find(PLOTLY_JS)).read_bytes()
    ids = plotly_injected_style_ids()
    assert bundle.count(b'createElement("style")') == 1 + len(ids), "a <style> the page does not guard"
    client.force_login(acme["user"])

    # when the entity page is shown
    page = client.get("/sentiment/entities/ACME/").content.decode()

    # then each id is on the page, and plotly's stylesheet is the linked one (no copy of its rules)
    assert all(f'id="{i}"' in page for i in ids)
    assert re.search(
        r'<link rel="stylesheet" id="plotly.js-style-global" href="/static/css/charts.css">', page
    )
    assert ".js-plotly-plot" not in Path(finders.find("css/charts.css")).read_text()


# --- in a browser ----------------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_chart_draws_under_the_csp_and_shows_a_tooltip_on_hover(page, live_server, acme):
    from axe_playwright_python.sync_playwright import Axe

    axe, problems, errors = Axe(), [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", "pw-123456789")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_server.url}/sentiment/entities/ACME/?range=24h")
        page.wait_for_selector(".plotly-chart .main-svg")
        assert page.locator(".plotly-chart .shapelayer path").count() >= 1  # the alert window
        # plotly's own rules reached the linked sheet (its SVG layers stack), and it made no <style>
        assert (
            page.locator(".plotly-chart .main-svg").first.evaluate("e => getComputedStyle(e).position")
            == "absolute"
        )
        assert page.locator("style").count() == 0
        problems += [
            f"{width} px: {v['id']} ({v['help']}): {', '.join(n['target'][0] for n in v['nodes'][:3])}"
            for v in axe.run(page).response["violations"]
            if v["impact"] in {"serious", "critical"}
        ]
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        box = page.locator(".plotly-chart .nsewdrag").first.bounding_box()
        hovered = False
        for fraction in (0.5, 0.6, 0.4, 0.7, 0.3, 0.8, 0.9):  # the mouse over the plot, until a point is near
            page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * 0.5)
            if page.locator(".hoverlayer .hovertext").count():
                hovered = True
                break
        assert hovered, "no hover label"
        label = page.locator(".hoverlayer .hovertext").first.text_content()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:00–\d\d:00 UTCmean score [+-]0\.\d\d\d+ items", label), (
            label
        )
    assert not errors, "\n".join(errors)
    assert not problems, "\n".join(problems)
