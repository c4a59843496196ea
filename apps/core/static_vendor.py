"""Static files shipped inside Python packages, served without copying them into the repository.

Only `vendor/plotly.min.js` (the plotly.js bundle of the `plotly` PyPI package) is exposed: the finder names
one file, so collectstatic, `{% static %}` and whitenoise see it like any file under static/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import CheckMessage, Error
from django.core.files.storage import FileSystemStorage

PREFIX = "vendor"
NAME = "plotly.min.js"
SOURCE = Path(plotly.__file__).parent / "package_data" / NAME


class VendorFinder(BaseFinder):
    """Finds `vendor/plotly.min.js` in the installed plotly package, and nothing else."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=SOURCE.parent)
        self.storage.prefix = PREFIX  # type: ignore[attr-defined]  # collectstatic reads the prefix

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        if SOURCE.is_file():
            return []
        return [Error(f"{SOURCE} is missing: reinstall the plotly package.", id="core.E901")]

    # The stubs overload find() on find_all; Django 5.2 also still passes the deprecated `all`.
    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str]:  # type: ignore[override]
        if path == f"{PREFIX}/{NAME}" and SOURCE.is_file():
            return [str(SOURCE)] if find_all or kwargs.get("all") else str(SOURCE)
        return [] if find_all or kwargs.get("all") else ""

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, FileSystemStorage]]:
        if SOURCE.is_file():
            yield NAME, self.storage
