"""What every dashboard page shares: the role guard, the date range in the URL, CSV."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from governance import permissions
from governance.permissions import Access

PRESETS = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "mtd": "Month to date",
}
DEFAULT_PRESET = "30d"
MAX_RANGE = timedelta(days=400)


def page(rule: Callable[[Access], bool]) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Login required, then ``rule`` on the user's access (403 page otherwise). The view
    finds the access as ``request.access`` and must keep to its scopes."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            access = permissions.access_for(request.user)
            if not access.roles:
                raise PermissionDenied("Your account has no role yet; ask an admin to grant one.")
            if not rule(access):
                raise PermissionDenied("Your role does not allow this page.")
            request.access = access  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        return guarded

    return decorate


def access_of(request: HttpRequest) -> Access:
    """The access ``page`` found for this request."""
    access: Access = request.access  # type: ignore[attr-defined]
    return access


@dataclass(frozen=True)
class DateRange:
    """``[start, end)`` in UTC, from ``?range=7d`` or ``?start=YYYY-MM-DD&end=YYYY-MM-DD``
    (dates inclusive, UTC days); the previous range of the same length for comparisons."""

    start: datetime
    end: datetime
    preset: str  # a PRESETS key, or "custom"
    error: str = ""

    @property
    def previous(self) -> DateRange:
        length = self.end - self.start
        return DateRange(self.start - length, self.start, "custom")

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    @property
    def label(self) -> str:
        if self.preset in PRESETS:
            return PRESETS[self.preset]
        last = self.end - timedelta(seconds=1)
        return f"{self.start:%Y-%m-%d} to {last:%Y-%m-%d}"

    @property
    def start_date(self) -> date:
        return self.start.date()

    @property
    def end_date(self) -> date:
        return (self.end - timedelta(seconds=1)).date()

    @property
    def granularity(self) -> str:
        return "hour" if self.days <= 2 else "day"


def _hour_ceiling(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def date_range(request: HttpRequest, *, now: datetime | None = None) -> DateRange:
    now = now or timezone.now()
    end = _hour_ceiling(now)
    preset = request.GET.get("range", "")
    raw_start, raw_end = request.GET.get("start", ""), request.GET.get("end", "")
    if raw_start or raw_end:
        try:
            first = date.fromisoformat(raw_start)
            last = date.fromisoformat(raw_end) if raw_end else now.date()
        except ValueError:
            return _preset(DEFAULT_PRESET, now, end, error="Dates are YYYY-MM-DD; showing the last 30 days.")
        if not date(2000, 1, 1) <= first <= last <= date(2100, 1, 1):
            return _preset(
                DEFAULT_PRESET, now, end, error="Dates run from 2000 to 2100, start first; showing the last 30 days."
            )
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        stop = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        if stop <= start:
            return _preset(
                DEFAULT_PRESET, now, end, error="The end date is before the start; showing the last 30 days."
            )
        if stop - start > MAX_RANGE or start.year < 2000:
            return _preset(DEFAULT_PRESET, now, end, error="Ranges cover at most 400 days; showing the last 30 days.")
        return DateRange(start, stop, "custom")
    return _preset(preset if preset in PRESETS else DEFAULT_PRESET, now, end)


def _preset(preset: str, now: datetime, end: datetime, error: str = "") -> DateRange:
    if preset == "mtd":
        return DateRange(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), end, preset, error)
    spans = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
    return DateRange(end - spans[preset], end, preset, error)


def int_param(raw: str | None, *, default: int, minimum: int = 0, maximum: int = 10**9) -> int | None:
    """A whole number from a URL or form value, clamped to ``[minimum, maximum]``; None
    when the value is there but is not a plain ASCII number (``²`` is a digit to
    ``str.isdigit``, not to ``int``)."""
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdecimal()) or len(text) > 12:
        return None
    return max(minimum, min(maximum, int(text)))


def page_number(request: HttpRequest) -> int:
    return int_param(request.GET.get("page"), default=1, minimum=1, maximum=100_000) or 1


def page_of(items: Sequence[Any] | QuerySet[Any], request: HttpRequest, size: int = 100) -> tuple[list[Any], int, bool]:
    """``?page=`` of ``items``: the rows, the page number, whether more follow. No
    COUNT(*): over millions of rows a page only needs to know if another comes next."""
    number = page_number(request)
    chunk = list(items[(number - 1) * size : number * size + 1])
    return chunk[:size], number, len(chunk) > size


def percentages(raw: str) -> list[int] | None:
    """``"50, 80%"`` → ``[50, 80]``; None when an item is not a whole percentage."""
    values = []
    for item in raw.replace(",", " ").split():
        number = int_param(item.rstrip("%"), default=-1, maximum=1000)
        if number is None or number < 0:
            return None
        values.append(number)
    return values


def wants_csv(request: HttpRequest) -> bool:
    return request.GET.get("format") == "csv"


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> HttpResponse:
    """A CSV download; cells that a spreadsheet would run as a formula are quoted inert."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_inert(value) for value in row])
    return response


def _inert(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


def percent_change(current: Any, previous: Any) -> float | None:
    if not previous:
        return None
    return (float(current) - float(previous)) / float(previous) * 100
