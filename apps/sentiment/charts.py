"""The entity chart as a Plotly figure: mean score and volume on one shared time axis, alert windows shaded.

Pure: plain points and windows in, a JSON-ready figure dict out (no ORM, no request). The page passes the
dict to static/js/charts.js with `json_script`, which draws it with plotly.js.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import plotly.graph_objects as go
from plotly.subplots import make_subplots

STEPS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
SCORE_COLOUR, VOLUME_COLOUR, ALERT_COLOUR = "#2f6fde", "#8fb0ea", "#d9480f"


class SeriesPoint(Protocol):
    @property
    def start(self) -> datetime: ...
    @property
    def count(self) -> int: ...
    @property
    def mean_score(self) -> float: ...


@dataclass(frozen=True)
class AlertWindow:
    start: datetime
    end: datetime
    rule: str


def _iso(at: datetime) -> str:
    """UTC wall time as plotly.js reads it (it has no time zones; the axis title says UTC)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _period(start: datetime, granularity: str) -> str:
    if granularity == "day":
        return f"{start.astimezone(UTC):%Y-%m-%d} (UTC)"
    end = start + STEPS["hour"]
    return f"{start.astimezone(UTC):%Y-%m-%d %H:%M}\u2013{end.astimezone(UTC):%H:%M} UTC"


def _score_series(points: Sequence[SeriesPoint], step: timedelta) -> tuple[list[str], list[float | None]]:
    """Mid-period x and y, with a None between periods that are not adjacent: the line breaks at gaps."""
    xs: list[str] = []
    ys: list[float | None] = []
    for i, p in enumerate(points):
        if i and p.start - points[i - 1].start > step:
            xs.append(_iso(points[i - 1].start + step + step / 2))
            ys.append(None)
        xs.append(_iso(p.start + step / 2))
        ys.append(p.mean_score)
    return xs, ys


def _traces(points: Sequence[SeriesPoint], granularity: str) -> tuple[go.Scatter, go.Bar]:
    step = STEPS[granularity]
    xs, ys = _score_series(points, step)
    by_x = {_iso(p.start + step / 2): p for p in points}
    # The signed score is formatted here: plotly.js 3.7 refuses "%{y:+.2f}" ("bad format") and shows raw floats.
    score_data = [
        [_period(by_x[x].start, granularity), by_x[x].count, f"{by_x[x].mean_score:+.2f}"]
        if x in by_x
        else ["", 0, ""]
        for x in xs
    ]
    score = go.Scatter(
        name="mean score", x=xs, y=ys, customdata=score_data, mode="lines+markers", connectgaps=False,
        line={"color": SCORE_COLOUR, "width": 2}, marker={"size": 5, "color": SCORE_COLOUR},
        hovertemplate="%{customdata[0]}<br>mean score %{customdata[2]}<br>%{customdata[1]} items<extra></extra>",
    )  # fmt: skip
    volume = go.Bar(
        name=f"items per {granularity}", x=[_iso(p.start + step / 2) for p in points],
        y=[p.count for p in points], customdata=[[_period(p.start, granularity)] for p in points],
        width=step.total_seconds() * 1000 * 0.8, marker={"color": VOLUME_COLOUR},
        hovertemplate="%{customdata[0]}<br>%{y} items<extra></extra>",
    )  # fmt: skip
    return score, volume


def windows_in(
    windows: Sequence[AlertWindow], start: datetime, end: datetime, granularity: str
) -> list[AlertWindow]:
    """The windows overlapping [start, end], clipped to it and at least one period wide (so they show)."""
    step = STEPS[granularity]
    out = []
    for w in windows:
        if w.end < start or w.start > end:
            continue
        lo, hi = max(w.start, start), min(w.end, end)
        if hi - lo < step:
            hi = min(lo + step, end)
            lo = max(start, hi - step)
        out.append(AlertWindow(lo, hi, w.rule))
    return out


def _shape(w: AlertWindow) -> dict[str, Any]:
    return {
        "type": "rect", "xref": "x", "yref": "paper", "x0": _iso(w.start), "x1": _iso(w.end), "y0": 0, "y1": 1,
        "fillcolor": ALERT_COLOUR, "opacity": 0.15, "line": {"width": 0}, "layer": "below",
        "label": {"text": w.rule, "textposition": "top left", "font": {"size": 11, "color": ALERT_COLOUR}},
    }  # fmt: skip


def entity_figure(
    points: Sequence[SeriesPoint],
    windows: Sequence[AlertWindow],
    *,
    start: datetime,
    end: datetime,
    granularity: str,
) -> dict[str, Any]:
    """Two rows on one shared x: mean score (-1..+1) above, items per period below; alert windows shaded."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.6, 0.4])
    score, volume = _traces(points, granularity)
    fig.add_trace(score, row=1, col=1)
    fig.add_trace(volume, row=2, col=1)
    fig.update_yaxes(title_text="mean score (-1 to +1)", range=[-1.05, 1.05], tickvals=[-1, -0.5, 0, 0.5, 1],
                     zeroline=True, zerolinecolor="#c9ced8", fixedrange=True, row=1, col=1)  # fmt: skip
    fig.update_yaxes(title_text=f"items per {granularity}", rangemode="tozero", fixedrange=True, row=2, col=1)
    fig.update_xaxes(range=[_iso(start), _iso(end)], type="date", showgrid=True)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    fig.update_layout(
        template="plotly_white", height=420, margin={"l": 56, "r": 12, "t": 24, "b": 48},
        showlegend=False, hovermode="closest", bargap=0.1,
        shapes=[_shape(w) for w in windows_in(windows, start, end, granularity)],
    )  # fmt: skip
    return dict(json.loads(fig.to_json()))
