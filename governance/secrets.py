"""Generating and hashing bearer secrets (virtual keys, API tokens, node tokens)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class GeneratedSecret:
    value: str
    sha256: str
    prefix: str


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def generate_secret(kind_prefix: str, *, display_chars: int = 8) -> GeneratedSecret:
    """A 256-bit random secret such as ``vk_…``; ``prefix`` is safe to display."""
    value = f"{kind_prefix}{secrets.token_urlsafe(32)}"
    return GeneratedSecret(value=value, sha256=sha256_hex(value), prefix=value[: len(kind_prefix) + display_chars])
