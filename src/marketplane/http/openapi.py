"""What every route documents: the problem+json error shape and the statuses it may return."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ProblemFieldError(BaseModel):
    field: str
    code: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details; `code` is stable and snake_case."""

    type: str = Field(examples=["urn:marketplane:problem:validation_error"])
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None
    errors: list[ProblemFieldError]


_DESCRIPTIONS = {
    400: "Bad request (for example a bad cursor or Idempotency-Key)",
    401: "Missing, invalid or revoked key",
    403: "The key may not do this (wrong side, role, or a publishable key writing)",
    404: "Not found, or not visible to this key",
    409: "Conflict with the current state, or the same Idempotency-Key is in flight",
    413: "Request body too large",
    422: "Validation failed; `errors` names each field",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS[status],
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }


READ = problems(400, 401, 403, 404, 422)
WRITE = problems(400, 401, 403, 404, 409, 413, 422)
