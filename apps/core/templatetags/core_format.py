"""Formatting filters every app's templates share: `duration` turns seconds into "45 s", "6 min", "1 h 23 min"."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()
MINUTE, HOUR, DAY = 60, 3600, 86400


def format_duration(seconds: float) -> str:
    """Two units at most, rounded to the smaller: "45 s", "6 min", "1 h 23 min", "2 d 4 h" (negatives are 0 s)."""
    total = max(round(seconds), 0)
    if total < MINUTE:
        return f"{total} s"
    minutes = round(total / MINUTE)
    if minutes < HOUR // MINUTE:
        return f"{minutes} min"
    if minutes < DAY // MINUTE:
        return _two_units(*divmod(minutes, 60), "h", "min")
    return _two_units(*divmod(round(total / HOUR), 24), "d", "h")


def _two_units(big: int, small: int, big_unit: str, small_unit: str) -> str:
    return f"{big} {big_unit} {small} {small_unit}" if small else f"{big} {big_unit}"


@register.filter
def duration(value: Any) -> str:
    """`{{ job.eta_seconds|duration }}`: seconds as a person reads them; empty for None or a non-number."""
    try:
        return format_duration(float(value))
    except (TypeError, ValueError, OverflowError):
        return ""
