from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.models import ModelPrice
from billing.pricing import PriceBook, Usage, compute_cost

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def price(**fields):
    defaults = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "effective_from": T0,
        "input_per_million": Decimal("0.15"),
        "output_per_million": Decimal("0.60"),
    }
    return ModelPrice(**(defaults | fields))


def test_cached_and_cache_write_tokens_are_part_of_input_and_billed_at_their_rates():
    anthropic = price(
        input_per_million=Decimal("1"),
        output_per_million=Decimal("5"),
        cached_input_per_million=Decimal("0.1"),
        cache_write_per_million=Decimal("1.25"),
    )
    usage = Usage(input_tokens=10_000, cached_input_tokens=6_000, cache_write_tokens=2_000, output_tokens=1_000)

    # (2,000 fresh at 1 + 6,000 cached at 0.1 + 2,000 written at 1.25 + 1,000 out at 5) per million
    assert compute_cost(anthropic, usage) == Decimal("0.0101")


def test_cached_tokens_fall_back_to_the_input_rate_when_the_catalog_has_none():
    assert compute_cost(price(), Usage(input_tokens=1000, cached_input_tokens=1000)) == Decimal("0.00015")


def test_a_failed_request_pays_no_per_request_fee():
    flat = price(input_per_million=Decimal(0), output_per_million=Decimal(0), per_request=Decimal("0.002"))
    assert compute_cost(flat, Usage(is_success=True)) == Decimal("0.002")
    assert compute_cost(flat, Usage(is_success=False)) == 0


def test_images_and_gpu_seconds_are_priced():
    gpu = price(per_image=Decimal("0.04"), per_gpu_second=Decimal("0.0011"))
    assert compute_cost(gpu, Usage(images=3, gpu_seconds=Decimal("12.5"))) == Decimal("0.13375")


def test_the_most_specific_pattern_in_effect_wins():
    rows = [
        price(model="claude-*", provider="anthropic", input_per_million=Decimal("9")),
        price(model="claude-haiku-4-5*", provider="anthropic", input_per_million=Decimal("1")),
        price(
            model="claude-haiku-4-5-20251001",
            provider="anthropic",
            input_per_million=Decimal("0.8"),
            effective_from=datetime(2026, 6, 1, tzinfo=UTC),
        ),
    ]
    for n, row in enumerate(rows):
        row.pk = n + 1
    book = PriceBook(rows)

    before_exact = book.match("anthropic", "claude-haiku-4-5-20251001", datetime(2026, 3, 1, tzinfo=UTC))
    after_exact = book.match("anthropic", "claude-haiku-4-5-20251001", datetime(2026, 7, 1, tzinfo=UTC))
    other = book.match("anthropic", "claude-sonnet-4-5", datetime(2026, 3, 1, tzinfo=UTC))

    assert before_exact and after_exact and other
    assert (before_exact.input_per_million, after_exact.input_per_million, other.input_per_million) == (
        Decimal("1"),
        Decimal("0.8"),
        Decimal("9"),
    )
    assert book.match("anthropic", "claude-haiku-4-5", datetime(2025, 1, 1, tzinfo=UTC)) is None


def test_gateway_provider_aliases_find_the_catalog_price():
    row = price(provider="google", model="gemini-2.5-flash")
    row.pk = 1
    assert PriceBook([row]).match("vertex", "gemini-2.5-flash", T0) is row


def test_the_shipped_catalog_is_loaded_and_prices_the_common_models():
    book = PriceBook.load()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    for provider, model in [
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-haiku-4-5-20251001"),
        ("google", "gemini-2.5-flash"),
        ("mistral", "mistral-small-latest"),
    ]:
        assert book.match(provider, model, now) is not None, model
    mini = book.match("openai", "gpt-4o-mini", now)
    assert mini is not None
    assert (mini.input_per_million, mini.output_per_million) == (Decimal("0.15"), Decimal("0.6"))
