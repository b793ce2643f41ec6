"""HMAC-SHA256 signatures of request bodies, as the built-in test providers sign callbacks."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """Compared as bytes: a header of any characters is a mismatch, never an error."""
    given = signature.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, sign(secret, body).encode())
