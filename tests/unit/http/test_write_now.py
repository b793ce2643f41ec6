"""A body chunk written at once from outside the response's task, or, when the server must
wait, finished by whoever awaits the rest."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from marketplane.http.responses import write_now


class Server:
    """An ASGI `send` that waits while `paused` is set, as a server applying back-pressure."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.paused: asyncio.Future[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.paused is not None:
            await self.paused
        self.sent.append(message["body"])
        assert message["more_body"] is True


async def test_a_send_that_need_not_wait_is_done_at_once() -> None:
    server = Server()
    assert write_now(server.send, b"a") is None
    assert server.sent == [b"a"]


async def test_a_send_that_must_wait_is_finished_by_awaiting_the_rest() -> None:
    server = Server()
    server.paused = asyncio.get_running_loop().create_future()
    rest = write_now(server.send, b"a")
    assert rest is not None and server.sent == []
    finishing = asyncio.create_task(_await(rest))
    await asyncio.sleep(0)
    assert not finishing.done()
    server.paused.set_result(None)
    await asyncio.wait_for(finishing, 1)
    assert server.sent == [b"a"]


async def test_cancelling_the_rest_cancels_the_send() -> None:
    server = Server()
    server.paused = asyncio.get_running_loop().create_future()
    rest = write_now(server.send, b"a")
    assert rest is not None
    finishing = asyncio.create_task(_await(rest))
    await asyncio.sleep(0)
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    assert server.paused.cancelled() and server.sent == []


async def _await(rest: Any) -> None:
    await rest
