"""UI components every app's templates share: `{% load ui %}`.

- `{% badge value %}`: a status, state or severity as a coloured badge that also says it in words.
- `{% when dt %}` / `{% when dt relative=True %}`: a timestamp in the server's zone, named; app.js rewrites it
  to the reader's zone.
- `{% kv_table mapping %}`: params, metrics and results as a key/value table, never a Python dict.
- `{% nav_item %}` + `{% subnav %}`: a section's sub-navigation; `{% sort_th %}`: a sortable column header.
- `"components/empty.html"` (an include): what an empty table says, and what to do next.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

# Tones are the colour classes in static/css/app.css (.badge.tone-*). Values are the ones the apps store
# (job status, model-version state, alert status and severity, delivery status, health); core names no app,
# only the words. A value missing here still gets a badge: neutral, with its text.
TONES: dict[str, str] = {
    # work that waits, runs, ends
    "pending": "idle",
    "running": "info",
    "succeeded": "ok",
    "failed": "bad",
    "cancelled": "idle",
    "indexing": "info",
    "ready": "ok",
    "deleting": "warn",
    # model versions
    "active": "ok",
    "inactive": "idle",
    # alerts
    "fired": "bad",
    "acknowledged": "warn",
    "resolved": "ok",
    # severities
    "info": "info",
    "warning": "warn",
    "critical": "bad",
    # deliveries
    "sent": "ok",
    "retrying": "warn",
    # health
    "ok": "ok",
    "degraded": "warn",
    "unhealthy": "bad",
    # on / off switches (sources, rules)
    "enabled": "ok",
    "off": "idle",
}
NEUTRAL = "neutral"


def badge_tone(value: Any) -> str:
    return TONES.get(str(value).strip().lower(), NEUTRAL)


def badge_text(value: Any) -> str:
    text = str(value).strip().replace("_", " ")
    return text[:1].upper() + text[1:] if text else "Unknown"


@register.inclusion_tag("components/badge.html")
def badge(value: Any, label: Any = None, cls: str = "") -> dict[str, Any]:
    """`{% badge job.status %}`, `{% badge alert.status label=alert.get_status_display cls="alert-status" %}`."""
    return {"tone": badge_tone(value), "text": label or badge_text(value), "value": value, "cls": cls}


# --- timestamps --------------------------------------------------------------------------------------------


def format_relative(moment: datetime, now: datetime) -> str:
    """One unit, rounded: "just now", "3 min ago", "in 2 h", "5 d ago"."""
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    if size < 60:
        return "just now"
    if size < 3600:
        amount = f"{round(size / 60)} min"
    elif size < 48 * 3600:
        amount = f"{round(size / 3600)} h"
    else:
        amount = f"{round(size / 86400)} d"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def render_when(
    moment: datetime | str | None,
    *,
    relative: bool = False,
    empty: str = "never",
    seconds: bool = False,
    now: datetime | None = None,
) -> SafeString:
    if moment is None or moment == "":
        return format_html('<span class="muted">{}</span>', empty)
    if isinstance(moment, str):  # an ISO-8601 time kept in JSON (alert details)
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return format_html("{}", moment)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    shown = timezone.localtime(moment)
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    utc = moment.astimezone(UTC)
    html = format_html(
        '<time datetime="{}" title="{} UTC" data-local="{}">{} {}</time>',
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        utc.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds" if seconds else "minutes",
        shown.strftime(pattern),
        shown.tzname() or timezone.get_current_timezone_name(),
    )
    if relative:
        html += format_html('<span class="ago"> · {}</span>', format_relative(moment, now or timezone.now()))
    return html


@register.simple_tag(name="when")
def when_tag(
    moment: datetime | None, relative: bool = False, empty: str = "never", seconds: bool = False
) -> str:
    """`{% when job.created_at %}`, `{% when s.next_poll_at relative=True empty="soon" %}`."""
    return render_when(moment, relative=relative, empty=empty, seconds=seconds)


# --- key/value tables --------------------------------------------------------------------------------------

MAX_DEPTH = 4
NONE_HTML = format_html('<span class="muted">{}</span>', "none")


def format_scalar(value: Any) -> str:
    if value is None:
        return "\N{EN DASH}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if 1e4 <= abs(value) < 1e15:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 1e4 else str(value)
    return str(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _cell(value: Any, depth: int) -> SafeString:
    if isinstance(value, Mapping):
        return _table(value, depth + 1) if depth < MAX_DEPTH else _json(value)
    if isinstance(value, list | tuple):
        if not value:
            return NONE_HTML
        if all(_is_scalar(v) for v in value):
            return format_html("{}", ", ".join(format_scalar(v) for v in value))
        return _json(value)
    if value is None:
        return format_html('<span class="muted">{}</span>', format_scalar(value))
    return format_html("{}", format_scalar(value))


def _json(value: Any) -> SafeString:
    return format_html(
        '<pre class="kv-json">{}</pre>', json.dumps(value, indent=2, default=str, ensure_ascii=False)
    )


def _table(mapping: Mapping[Any, Any], depth: int = 0) -> SafeString:
    if not mapping:
        return NONE_HTML
    rows = format_html_join(
        "",
        '<tr><th scope="row">{}</th><td>{}</td></tr>',
        ((str(k), _cell(v, depth)) for k, v in mapping.items()),
    )
    return format_html('<table class="kv"><tbody>{}</tbody></table>', rows)


@register.simple_tag
def kv_table(value: Any) -> str:
    """`{% kv_table job.params %}`: keys as row headers, floats to 4 significant digits, nesting as nested tables."""
    if value is None or value == "" or value == [] or value == {}:
        return NONE_HTML
    return _cell(value, -1) if isinstance(value, Mapping) else _cell(value, 0)


@register.filter
def pick(mapping: Any, keys: str) -> dict[str, Any]:
    """`{{ v.metrics|pick:"accuracy,macro_f1" }}`: those keys of a mapping that it has, in that order."""
    if not isinstance(mapping, Mapping):
        return {}
    return {k: mapping[k] for k in (k.strip() for k in keys.split(",")) if k in mapping}


# --- sub-navigation and sortable headers ------------------------------------------------------------------


def _url(target: str) -> str:
    if target.startswith(("/", "?", "#", "http")):
        return target
    try:
        return reverse(target)
    except NoReverseMatch:
        return target


@register.simple_tag
def nav_item(label: str, url: str, count: Any = None, after: list[dict[str, Any]] | None = None) -> list[Any]:
    """`{% nav_item "Alerts" "sentiment:alerts" count=open_alerts after=items as items %}`: items plus one."""
    return [*(after or []), {"label": label, "url": _url(url), "count": count, "active": None}]


def mark_active(items: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    """An item keeps an explicit `active`; otherwise the one whose URL is the longest prefix of the path."""
    if any(item.get("active") for item in items):
        return items
    prefixes = [item["url"] for item in items if path.startswith(item["url"])]
    best = max(prefixes, key=len, default=None)
    return [{**item, "active": item["url"] == best} for item in items]


@register.inclusion_tag("components/subnav.html", takes_context=True)
def subnav(context: template.Context, items: list[dict[str, Any]], label: str = "Section") -> dict[str, Any]:
    """`{% subnav items label="Sentiment" %}`: the items as links, the current one marked aria-current."""
    request = context.get("request")
    return {"items": mark_active(list(items), request.path if request else ""), "label": label}


@register.inclusion_tag("components/sort_th.html", takes_context=True)
def sort_th(
    context: template.Context,
    label: str,
    key: str,
    current: str = "",
    descending: bool = False,
    first: str = "asc",
) -> dict[str, Any]:
    """`{% sort_th "Items 24 h" "volume" sort descending first="desc" %}`: a header link that sorts by `key`,
    first in the `first` direction, then the other way; other query parameters are kept (the page is not)."""
    active = current == key
    direction = ("asc" if descending else "desc") if active else first
    request = context.get("request")
    query = {k: v for k, v in (request.GET.items() if request else []) if k not in ("sort", "dir", "page")}
    query.update(sort=key, dir=direction)
    aria = ("descending" if descending else "ascending") if active else "none"
    arrow = ("▼" if descending else "▲") if active else ""
    return {"label": label, "href": "?" + urlencode(query), "aria_sort": aria, "arrow": arrow}
