"""Every error leaves as `application/problem+json` with a stable code and the request id."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from marketplane.http.middleware import BodyTooLarge
from marketplane.http.responses import problem
from marketplane.kernel.errors import MarketplaneError

log = logging.getLogger("marketplane.http")

_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def field_path(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


async def on_marketplane_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MarketplaneError)
    return problem(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        request_id=_request_id(request),
        errors=[e.as_dict() for e in exc.errors],
        extra=exc.extra,
    )


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": field_path(tuple(e["loc"])), "code": str(e["type"]), "message": str(e["msg"])}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    return problem(
        status=422,
        code="validation_error",
        title="Validation failed",
        detail=f"{first['field']}: {first['message']}",
        request_id=_request_id(request),
        errors=errors,
    )


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, BodyTooLarge):
        # FastAPI turns any failure while reading the body into "400 error parsing the body";
        # a body over the limit is BodyLimit's to answer (413).
        raise exc.__cause__
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "Error"))
    return problem(
        status=exc.status_code,
        code=code,
        title=title,
        detail=str(exc.detail),
        request_id=_request_id(request),
        headers=dict(exc.headers) if exc.headers else None,
    )


# PostgreSQL cannot store NUL in text (22021) nor \u0000 in JSONB (22P05); SQLite can.
_UNSTORABLE_TEXT = {"22021", "22P05"}


async def on_database_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBAPIError)
    if getattr(exc.orig, "sqlstate", None) in _UNSTORABLE_TEXT:
        return problem(
            status=400,
            code="invalid_text",
            title="Bad request",
            detail="text may not contain NUL (U+0000) characters",
            request_id=_request_id(request),
        )
    return await on_unexpected(request, exc)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(
        status=500,
        code="internal_error",
        title="Internal error",
        detail="something failed on our side; the request id identifies it in our logs",
        request_id=_request_id(request),
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(MarketplaneError, on_marketplane_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
