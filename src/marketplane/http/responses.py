"""JSON bodies rendered with orjson, and problem+json."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Generator
from functools import partial
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
    scope; the end goes through the middleware again.

    `on_push`, if given, receives a function that writes a chunk at once from whatever code
    calls it, between the chunks of the body (see `write_now`)."""

    _direct: Send | None = None

    def __init__(
        self,
        content: AsyncIterable[bytes],
        *,
        on_push: Callable[[Callable[[bytes], Awaitable[None] | None]], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(content, **kwargs)
        self._on_push = on_push

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._direct = scope.get(DIRECT_SEND)
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        direct = self._direct or send
        if self._on_push is not None:
            self._on_push(partial(write_now, direct))
        async for chunk in self.body_iterator:
            await direct({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def write_now(send: Send, chunk: bytes) -> Awaitable[None] | None:
    """Sends a body chunk without a task switch: runs the server's `send` until it finishes
    (None) or must wait, as when the connection applies back-pressure; then returns the rest of
    that send, for the caller's task to await. Nothing else may be sent on the connection until
    that rest is done."""
    steps = send({"type": "http.response.body", "body": chunk, "more_body": True}).__await__()
    try:
        waiting = steps.send(None)
    except StopIteration:
        return None
    return _Rest(steps, waiting)


class _Rest:
    """The rest of a send that had to wait: awaiting it waits for what it was waiting for, then
    runs the send on (as `await` would have)."""

    def __init__(self, steps: Generator[Any, Any, Any], waiting: Any) -> None:
        self._steps = steps
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, None]:
        steps, waiting = self._steps, self._waiting
        while True:
            try:
                answer = yield waiting
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:  # cancelled while waiting: the send is told so
                try:
                    waiting = steps.throw(exc)
                except StopIteration:
                    return
                continue
            try:
                waiting = steps.send(answer)
            except StopIteration:
                return
