"""The native event (``api.md``): what every format is normalised to, validated alone.

pydantic (v2, Rust core) validates an event in microseconds and reports every field at
fault, so one bad event is rejected with its reasons and the rest of the batch is kept.
Unknown keys are ignored, which is also how prompt and response text never get in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

# No NUL: PostgreSQL text cannot hold it, and no gateway name needs it.
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
ShortName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]
Count = Annotated[int, Field(ge=0, le=10**12)]
# Events stamped further ahead than this are a gateway clock problem, not usage.
MAX_CLOCK_SKEW = timedelta(days=1)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# One request above this is a unit error (cents, micro-dollars), not a bill; it also keeps
# hourly and period sums far inside their numeric(20, 10) columns.
MAX_COST = 100_000
OPERATIONS = ("chat", "completion", "embedding", "image", "audio", "rerank", "other")


class NativeEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    request_id: Name
    timestamp: AwareDatetime
    provider: ShortName
    model: Name
    virtual_key: Name | None = None
    customer: Name | None = None
    team: Name | None = None
    end_user: Name | None = None
    operation: Literal["chat", "completion", "embedding", "image", "audio", "rerank", "other"] = "chat"
    input_tokens: Count = 0
    output_tokens: Count = 0
    cached_input_tokens: Count = 0
    cache_write_tokens: Count = 0
    images: Annotated[int, Field(ge=0, le=10**6)] = 0
    gpu_seconds: Annotated[Decimal, Field(ge=0, le=10**7, allow_inf_nan=False, decimal_places=6)] = Decimal(0)
    cost: Annotated[Decimal, Field(ge=0, le=MAX_COST, allow_inf_nan=False)] | None = None
    latency_ms: Annotated[int, Field(ge=0, le=86_400_000)] | None = None
    ttft_ms: Annotated[int, Field(ge=0, le=86_400_000)] | None = None
    status: Annotated[int, Field(ge=100, le=599)] = 200
    cache: Literal["none", "exact", "semantic"] = "none"
    fallback: bool = False
    node: ShortName | None = None
    pipeline_stage: ShortName | None = None
    units: dict[Annotated[str, Field(max_length=50)], Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=20
    )
    tags: dict[Annotated[str, Field(max_length=100)], str | int | float | bool | None] = Field(
        default_factory=dict, max_length=50
    )

    @field_validator("timestamp")
    @classmethod
    def _within_range(cls, value: datetime) -> datetime:
        try:
            utc = value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValueError("is out of range") from None
        if utc < EARLIEST:
            raise ValueError("is before 2000-01-01; check the gateway's clock")
        if utc > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError("is more than a day in the future; check the gateway's clock")
        return utc

    @field_validator("tags")
    @classmethod
    def _short_tag_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if isinstance(item, str) and len(item) > 500:
                raise ValueError(f"tag {key!r} is longer than 500 characters")
            if "\x00" in key or (isinstance(item, str) and "\x00" in item):
                raise ValueError(f"tag {key!r} holds a NUL character")
        return value

    @model_validator(mode="after")
    def _cache_tokens_are_part_of_input(self) -> NativeEvent:
        if self.cached_input_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "cached_input_tokens + cache_write_tokens must not exceed input_tokens (they are part of it)"
            )
        return self


def validate_event(raw: Any) -> tuple[dict[str, Any] | None, dict[str, list[str]] | None]:
    """(the event as JSON-safe dict, None) or (None, errors by field)."""
    if not isinstance(raw, dict):
        return None, {"non_field_errors": [f"an event is a JSON object, not {type(raw).__name__}"]}
    try:
        event = NativeEvent.model_validate(raw)
    except ValidationError as error:
        errors: dict[str, list[str]] = {}
        for item in error.errors(include_url=False, include_input=False):
            field = ".".join(str(part) for part in item["loc"]) or "non_field_errors"
            errors.setdefault(field, []).append(item["msg"].removeprefix("Value error, "))
        return None, errors
    return event.model_dump(mode="json"), None


_EVENT_LIST = TypeAdapter(list[NativeEvent])


def validate_json_array(body: bytes) -> tuple[bytes, int] | None:
    """The fast path for a clean JSON array of native events: validated and re-serialised
    in one pass inside pydantic's Rust core. None when anything is off (not an array, a
    bad event): the caller then validates item by item and reports each one at fault."""
    try:
        events = _EVENT_LIST.validate_json(body)
    except ValidationError:
        return None
    if not events:
        return None
    return _EVENT_LIST.dump_json(events), len(events)
