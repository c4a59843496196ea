"""Server-side inline SVG charts: a score line (with gaps where no items came) and volume bars.

No JavaScript and no chart library: the page stays light, prints, and works without network access.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from apps.sentiment.selectors import Point

register = template.Library()
WIDTH, HEIGHT, PAD = 720, 160, 4


def _x(points: Sequence[Point], i: int) -> float:
    first, last = points[0].start, points[-1].start
    span = (last - first).total_seconds() or 1.0
    return PAD + (WIDTH - 2 * PAD) * (points[i].start - first).total_seconds() / span


def _segments(points: Sequence[Point], step: timedelta) -> list[list[int]]:
    """Runs of consecutive periods; a missing period breaks the line instead of drawing across it."""
    runs: list[list[int]] = []
    for i, p in enumerate(points):
        if runs and p.start - points[runs[-1][-1]].start <= step:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _frame(label: str, body: str) -> SafeString:
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" width="100%" preserveAspectRatio="none" role="img" '
        'aria-label="{}">{}</svg>',  # styled by .chart rules in app.css (no inline style under the CSP)
        WIDTH,
        HEIGHT,
        label,
        mark_safe(body),  # noqa: S308 (built below from numbers and escaped text only)  # nosec B308, B703 # numbers and escaped text only, built above
    )


@register.simple_tag
def score_chart(points: Sequence[Point], granularity: str = "hour") -> SafeString:
    """Mean score per period on a fixed -1..1 scale, with the zero line."""
    if not points:
        return format_html('<p class="muted">{}</p>', "No scored items in this period.")
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)

    def y(score: float) -> float:
        return PAD + (HEIGHT - 2 * PAD) * (1 - (max(-1.0, min(1.0, score)) + 1) / 2)

    parts = [f'<line class="zero" x1="0" x2="{WIDTH}" y1="{y(0):.1f}" y2="{y(0):.1f}" />']
    for run in _segments(points, step):
        coords = " ".join(f"{_x(points, i):.1f},{y(points[i].mean_score):.1f}" for i in run)
        if len(run) == 1:
            i = run[0]
            parts.append(
                f'<circle class="score" cx="{_x(points, i):.1f}" cy="{y(points[i].mean_score):.1f}" r="2" />'
            )
        else:
            parts.append(f'<polyline class="score" fill="none" points="{coords}" />')
    for i, p in enumerate(points):
        title = escape(f"{p.start:%Y-%m-%d %H:%M} · mean score {p.mean_score:+.2f} · {p.count} items")
        parts.append(
            f'<circle class="hit" cx="{_x(points, i):.1f}" cy="{y(p.mean_score):.1f}" r="4"><title>{title}</title></circle>'
        )
    return _frame("Mean sentiment score over time", "".join(parts))


@register.simple_tag
def volume_chart(points: Sequence[Point], granularity: str = "hour") -> SafeString:
    """Items per period as bars, scaled to the busiest period."""
    if not points:
        return format_html('<p class="muted">{}</p>', "No items in this period.")
    top = max(p.count for p in points) or 1
    span = (points[-1].start - points[0].start).total_seconds()
    step = 3600 if granularity == "hour" else 86400
    bar = max(1.0, (WIDTH - 2 * PAD) * step / (span + step) * 0.8)
    parts = []
    for i, p in enumerate(points):
        h = (HEIGHT - 2 * PAD) * p.count / top
        title = escape(f"{p.start:%Y-%m-%d %H:%M} · {p.count} items")
        x = min(_x(points, i), WIDTH - PAD - bar)
        parts.append(
            f'<rect class="volume" x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{bar:.1f}" height="{h:.1f}">'
            f"<title>{title}</title></rect>"
        )
    return _frame(f"Items per {granularity}, at most {top}", "".join(parts))


@register.filter
def signed(value: float | None, digits: int = 2) -> str:
    return "\u2013" if value is None else f"{value:+.{int(digits)}f}"
