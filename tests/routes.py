"""Every URL pattern of the project, for tests that must cover each route (a new one is covered by itself)."""

from __future__ import annotations

import re
from typing import Any

from django.urls import URLPattern, URLResolver

CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


def walk(patterns: list[Any], prefix: str = "") -> list[tuple[str, URLPattern]]:
    """(route, pattern) for every URL pattern under `patterns`, resolvers followed."""
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            found.append((prefix + str(pattern.pattern), pattern))
    return found
