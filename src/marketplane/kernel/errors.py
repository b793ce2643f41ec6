"""One exception tree for the whole platform, each with a stable snake_case code.

The HTTP layer maps them to `application/problem+json`; nothing else needs to know HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass
class MarketplaneError(Exception):
    detail: str
    code: str = "error"
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    status = 400
    title = "Bad request"

    def __post_init__(self) -> None:
        Exception.__init__(self, self.detail)

    def __str__(self) -> str:
        return self.detail


@dataclass
class BadRequest(MarketplaneError):
    code: str = "bad_request"


@dataclass
class ValidationFailed(MarketplaneError):
    code: str = "validation_error"
    status = 422
    title = "Validation failed"


@dataclass
class Unauthorized(MarketplaneError):
    code: str = "unauthorized"
    status = 401
    title = "Unauthorized"


@dataclass
class Forbidden(MarketplaneError):
    code: str = "forbidden"
    status = 403
    title = "Forbidden"


@dataclass
class NotFound(MarketplaneError):
    code: str = "not_found"
    status = 404
    title = "Not found"


@dataclass
class Conflict(MarketplaneError):
    code: str = "conflict"
    status = 409
    title = "Conflict"


@dataclass
class TooManyRequests(MarketplaneError):
    code: str = "too_many_requests"
    status = 429
    title = "Too many requests"


@dataclass
class InvalidTransition(Conflict):
    code: str = "invalid_transition"


def field_error(path: str, code: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[FieldError(path, code, message)])
