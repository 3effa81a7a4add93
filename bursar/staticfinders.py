"""Serves plotly.js from the installed ``plotly`` package (pinned in requirements.txt),
so charts work offline with the exact library version, without a CDN and without a
copy of the file in the repository."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
STATIC_PATH = "vendor/plotly.min.js"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(PLOTLY_JS.parent))

    def check(self, **kwargs: Any) -> list[Any]:
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> Any:
        if path == STATIC_PATH and PLOTLY_JS.exists():
            return [str(PLOTLY_JS)] if find_all or kwargs.get("all") else str(PLOTLY_JS)
        return [] if find_all or kwargs.get("all") else None

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, Any]]:
        storage = _PrefixedStorage(location=str(PLOTLY_JS.parent))
        yield PLOTLY_JS.name, storage


class _PrefixedStorage(FileSystemStorage):
    """collectstatic copies ``plotly.min.js`` to ``vendor/plotly.min.js``."""

    prefix = "vendor"
