"""Opaque keyset cursors.

A cursor is the sort key of the last row a page showed plus a fingerprint of the query that made
it, so it survives concurrent writes (the next page starts strictly after that key) and cannot be
replayed against another query.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marketplane.kernel.errors import BadRequest, FieldError


@dataclass(frozen=True, slots=True)
class Cursor:
    sort: str
    key: tuple[Any, ...]
    fingerprint: str


def fingerprint(params: Mapping[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([cursor.sort, list(cursor.key), cursor.fingerprint], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _invalid(message: str) -> BadRequest:
    return BadRequest(
        message, code="invalid_cursor", errors=[FieldError("cursor", "invalid", message)]
    )


def decode_cursor(
    token: str, *, expected_sort: str, expected_fingerprint: str, arity: int
) -> Cursor:
    try:
        padded = token + "=" * (-len(token) % 4)
        sort, key, fp = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise _invalid("the cursor is not one this API issued") from exc
    if not isinstance(sort, str) or not isinstance(key, list) or not isinstance(fp, str):
        raise _invalid("the cursor is not one this API issued")
    if sort != expected_sort or fp != expected_fingerprint:
        raise _invalid("the cursor belongs to another query; start again without it")
    if len(key) != arity or not all(
        isinstance(k, int | str) and not isinstance(k, bool) for k in key
    ):
        raise _invalid("the cursor is not one this API issued")
    return Cursor(sort=sort, key=tuple(key), fingerprint=fp)
