"""Encryption for credentials Bursar must use later (gateway admin tokens).

Fernet (AES-128-CBC + HMAC-SHA256, from the ``cryptography`` package) keyed by
``CREDENTIALS_KEY`` or, when that is unset, a key derived from ``SECRET_KEY``: rotating
the key means re-entering the gateway admin tokens.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    material = settings.CREDENTIALS_KEY or settings.SECRET_KEY
    key = base64.urlsafe_b64encode(hashlib.sha256(f"bursar-credentials:{material}".encode()).digest())
    return Fernet(key)


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def decrypt(token: str) -> str:
    """The plain value, or "" when there is none or the key changed since it was stored."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return ""
