"""Prefixed, sortable identifiers (`off_01j…`): a ULID in lowercase Crockford base32.

Ids made by one process are strictly increasing, so they sort in creation order.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # ten bits at a time: 13 steps, not 26


def _encode(value: int) -> str:
    pairs = []
    for _ in range(13):
        pairs.append(_PAIRS[value & 1023])
        value >>= 10
    return "".join(reversed(pairs))


_head = (-1, "")  # the last id's value but its last 10 bits, and its text


def new_ulid() -> str:
    global _head
    with _lock:
        value = _take(1)
        # Ids made in a row differ in their last characters only: the rest is encoded once
        # for 1,024 of them (a feed import makes two ids a row; encoding each whole took 8%
        # of its writing process).
        if _head[0] != value >> 10:
            _head = (value >> 10, _encode(value)[:24])
        return _head[1] + _PAIRS[value & 1023]


def _take(count: int) -> int:
    """The value of the next id, `count` of them taken in a row (under `_lock`)."""
    global _last_ms, _last_rand
    now = time.time_ns() // 1_000_000
    if now <= _last_ms:
        # Same millisecond (or a clock step back): keep order by counting up.
        now = _last_ms
        rand = _last_rand + 1
    else:
        rand = int.from_bytes(os.urandom(10), "big")
    value = (now << 80) | (rand & _RANDOM)
    last = value + count - 1  # past the random part, counting goes on into the time
    _last_ms, _last_rand = last >> 80, last & _RANDOM
    return value


_RANDOM = (1 << 80) - 1


def new_ids(prefix: str, count: int) -> list[str]:
    """`count` ids, as `count` calls of new_id in a row would make them: each one more than the
    one before. A feed batch takes thousands at once, at 0.2 µs each instead of 1.5 (measured)."""
    with _lock:
        value = _take(count)
    ids: list[str] = []
    end = value + count
    while value < end:
        block_end = min(end, (value | 1023) + 1)  # ids sharing all but their last 10 bits
        head = f"{prefix}_{_encode(value)[:24]}"
        ids.extend([head + pair for pair in _PAIRS[value & 1023 : ((block_end - 1) & 1023) + 1]])
        value = block_end
    return ids


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and len(value) == len(prefix) + 27
