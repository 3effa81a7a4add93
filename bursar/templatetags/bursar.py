"""Template filters for the dashboard: money, percentages, durations, URLs."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from django import template
from django.conf import settings

register = template.Library()
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


@register.filter
def money(value: Any, currency: str = "USD") -> str:
    """``1234.5`` → ``$1,234.50``; an amount in USD shown in ``currency`` at
    ``EXCHANGE_RATES`` (left in USD when no rate is configured). Small amounts keep
    four decimals so a cent-fraction of spend is not shown as zero."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    rate = settings.EXCHANGE_RATES.get(currency)
    if rate is None:
        currency, rate = "USD", Decimal(1)
    return _formatted(amount * rate, currency)


@register.filter
def usd_amount(value: Any, currency: str = "USD") -> str:
    """An amount already in ``currency`` (a budget's), formatted."""
    if value is None:
        return "—"
    return _formatted(Decimal(str(value)), currency)


def _formatted(amount: Decimal, currency: str) -> str:
    places = Decimal("0.01") if abs(amount) >= 1 or amount == 0 else Decimal("0.0001")
    text = f"{amount.quantize(places, rounding=ROUND_HALF_UP):,}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


@register.filter
def percent(value: Any, places: int = 1) -> str:
    if value is None:
        return "—"
    return f"{Decimal(str(value)):.{places}f}%"


@register.filter
def change(value: Any) -> str:
    """A relative change as ``+12.3%`` / ``-4.0%``; ``new`` when there was nothing before."""
    if value is None:
        return "new"
    number = float(value)
    sign = "+" if number >= 0 else "-"
    return f"{sign}{abs(number):.1f}%"


@register.filter
def clamp100(value: Any) -> str:
    try:
        return str(max(0.0, min(100.0, float(value))))
    except (TypeError, ValueError):
        return "0"


@register.simple_tag(takes_context=True)
def query(context: Any, **changes: Any) -> str:
    """The current query string with ``changes`` applied (None removes a parameter), so
    filters stay in the URL when sorting, paging or exporting."""
    params = context["request"].GET.copy()
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return "?" + urlencode(sorted(params.lists()), doseq=True)


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def effective_status(key: Any, now: Any) -> str:
    return str(key.effective_status(now))


@register.filter
def split(value: str) -> list[str]:
    return value.split()
