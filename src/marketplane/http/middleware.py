"""Pure ASGI middleware: request ids on every response, a request body size limit, and request
metrics."""

from __future__ import annotations

import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplane.http.responses import DIRECT_SEND, problem
from marketplane.kernel.ids import new_id
from marketplane.observability import REQUEST_SECONDS, route_label

_INBOUND_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inbound = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode(
            "latin-1"
        )
        request_id = inbound if _INBOUND_ID.match(inbound) else new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyTooLarge(Exception):
    """Raised while reading a body past the limit; BodyLimit answers it with 413."""


class BodyLimit:
    """Refuses bodies over `limit` bytes with 413, by Content-Length or while streaming; paths
    matching `uploads` (file uploads) have `upload_limit` instead."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        uploads: re.Pattern[str] | None = None,
        upload_limit: int = 0,
    ) -> None:
        self.app = app
        self.default = limit
        self.uploads = uploads
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope.get("state", {}).get("request_id")
        limit = self.default
        if self.uploads is not None and self.uploads.match(scope["path"]):
            limit = self.upload_limit
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, request_id, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, request_id, limit)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, request_id: str | None, limit: int
    ) -> None:
        response = problem(
            status=413,
            code="payload_too_large",
            title="Payload too large",
            detail=f"the request body is over {limit} bytes",
            request_id=request_id,
        )
        await response(scope, receive, send)


class Metrics:
    """Records each request's time (first byte in to last byte out) by side, client, route and
    status class. A stream is recorded when it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting)
        finally:
            path: str = scope["path"]
            route = scope.get("route")
            template = getattr(route, "path", None) or route_label(path)
            principal = scope.get("state", {}).get("principal")
            client = principal.client.client_id if principal and principal.client else "-"
            side = path.split("/", 2)[1] if path.count("/") >= 2 else "-"
            REQUEST_SECONDS.labels(
                side if side in _SIDES else "-", client, template, f"{status // 100}xx"
            ).observe(time.perf_counter() - started)


_SIDES = frozenset({"admin", "supply", "store"})


class DirectSend:
    """Outermost of ours: puts the server's `send` in the scope, so a long stream can send its
    body past the layers within, which act on a response's start and end but pass every body
    message through (`EventStream`). Measured on 1,000 event streams: five coroutine layers
    per write, a tenth of the process's time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[DIRECT_SEND] = send
        await self.app(scope, receive, send)
