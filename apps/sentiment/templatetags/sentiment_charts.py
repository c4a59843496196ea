"""Template helpers of the sentiment pages. The entity chart itself is a Plotly figure (apps/sentiment/charts.py)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from django import template
from django.contrib.staticfiles import finders
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

register = template.Library()
PLOTLY_JS = "vendor/plotly.min.js"
# CSS that plotly.js's bundler inlined (MapLibre's, for map traces) is injected on load as
# `if(!document.getElementById("<id>")){var e=document.createElement("style")...`: a <style> the CSP refuses.
INJECTED_STYLE = re.compile(rb'getElementById\("([\w.-]+)"\)\)\{var \w+=document\.createElement\("style"\)')


@register.filter
def signed(value: float | None, digits: int = 2) -> str:
    return "\u2013" if value is None else f"{value:+.{int(digits)}f}"


@cache
def plotly_injected_style_ids() -> tuple[str, ...]:
    """The ids of the <style> elements the installed plotly.min.js adds on load unless they exist."""
    path = finders.find(PLOTLY_JS)
    if not isinstance(path, str):
        return ()
    return tuple(dict.fromkeys(m.decode() for m in INJECTED_STYLE.findall(Path(path).read_bytes())))


@register.simple_tag
def plotly_style_guards() -> SafeString:
    """An element with each of those ids, so plotly.js injects none of them (the page needs none)."""
    return format_html_join(
        "\n",
        '<meta name="plotly-style-guard" content="CSS plotly.js would inject, not needed here" id="{}">',
        ((style_id,) for style_id in plotly_injected_style_ids()),
    )
