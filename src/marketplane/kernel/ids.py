"""Prefixed, sortable identifiers (`off_01j…`): a ULID in lowercase Crockford base32.

Ids made by one process are strictly increasing, so they sort in creation order.
"""

from __future__ import annotations

import base64
import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


# Base32 "extended hex" has the digits in the same order as Crockford's: the C encoder, then
# one translation (measured: 0.4 µs an id, against 2.4 µs for ten bits at a time in Python).
_CROCKFORD = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUV", _ALPHABET.encode())


def _encode(value: int) -> str:
    """A 128-bit value as 26 Crockford digits: 20 bytes are 32 digits, the first 6 of them zero."""
    return base64.b32hexencode(value.to_bytes(20, "big"))[6:].translate(_CROCKFORD).decode()


def new_ulid() -> str:
    global _last_ms, _last_rand
    with _lock:
        now = time.time_ns() // 1_000_000
        if now <= _last_ms:
            # Same millisecond (or a clock step back): keep order by counting up.
            now = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last_ms, _last_rand = now, rand
    return _encode((now << 80) | (rand & ((1 << 80) - 1)))


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and len(value) == len(prefix) + 27
