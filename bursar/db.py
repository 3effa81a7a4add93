"""Helpers for the few set-based statements written in SQL (ingest's hot path)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models


def prepare_rows(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Values as the model's fields would write them on this database (UUIDs, aware
    datetimes, decimals, JSON), so raw statements store exactly what the ORM reads back."""
    fields = [model._meta.get_field(name) for name in columns]
    return [
        [field.get_db_prep_save(value, connection) for field, value in zip(fields, row, strict=True)]  # type: ignore[union-attr]
        for row in rows
    ]
