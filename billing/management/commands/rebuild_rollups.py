from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from billing.services import rebuild_rollups


def _instant(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(f"{value!r} is not an RFC 3339 time with an offset, e.g. 2026-05-01T00:00:00Z")
    return parsed


class Command(BaseCommand):
    help = "Recompute the hourly rollups of [--start, --end) from stored events."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", required=True, type=_instant)
        parser.add_argument("--end", required=True, type=_instant)

    def handle(self, *args: Any, start: datetime, end: datetime, **options: Any) -> None:
        if start >= end:
            raise CommandError("--start must be before --end")
        events, rows = rebuild_rollups(start=start, end=end)
        self.stdout.write(f"rebuilt {rows} rollup rows from {events} events")
