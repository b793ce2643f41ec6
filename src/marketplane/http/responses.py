"""JSON bodies rendered with orjson, and problem+json."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

JSON = "application/json"
PROBLEM = "application/problem+json"
DIRECT_SEND = "marketplane.direct_send"  # the server's own `send`, in the scope (DirectSend)


class Json(JSONResponse):
    """JSON rendered by orjson. A JSONResponse, so FastAPI documents routes' response models."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str | None,
    errors: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:marketplane:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
        "errors": errors or [],
    }
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


class EventStream(StreamingResponse):
    """A streaming response whose start (status and headers) goes through every middleware
    and whose body chunks go straight to the server's `send` when `DirectSend` put it in the
    scope; the end goes through the middleware again."""

    _direct: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._direct = scope.get(DIRECT_SEND)
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        direct = self._direct or send
        async for chunk in self.body_iterator:
            await direct({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
