"""Every error leaves as `application/problem+json` with a stable code and the request id."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

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
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "Error"))
    return problem(
        status=exc.status_code,
        code=code,
        title=title,
        detail=str(exc.detail),
        request_id=_request_id(request),
        headers=dict(exc.headers) if exc.headers else None,
    )


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
    app.add_exception_handler(Exception, on_unexpected)
