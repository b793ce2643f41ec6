"""The live side of the log: one tailer per process fans new events out to its subscribers.

The outbox stays the truth. The hub reads it after the last event it dispatched, woken when this
process commits events, when another process does (PostgreSQL NOTIFY, see `listen`), and every
`poll_seconds` regardless. Each subscriber has a bounded queue: one that cannot keep up is told
so and dropped (its stream ends with where to resume), so it never slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from marketplane.events.model import Event

log = logging.getLogger("marketplane.events")
ReadAfter = Callable[[int, int], Awaitable[list[Event]]]  # (after seq, limit) -> events
PAGE = 1000
HEARTBEAT = (0, b": heartbeat\n\n", 0.0)  # a queue item with no event: seq 0


Frames = dict[object, bytes]  # an event's rendered frames, by presentation: shared while fanned out


Pending = tuple[int, bytes, float]  # seq (0: a heartbeat), frame, committed (epoch seconds)


@dataclass(eq=False)
class Subscriber:
    """One stream. `frame` renders an event for it (None: not for it), reusing a frame another
    subscriber with the same presentation rendered (`Frames`); frames wait in `pending`, at
    most `limit` of them, until the stream takes them (a list and one future: an asyncio.Queue
    per stream cost a tenth of a process's time at 20,000 deliveries a second)."""

    key_id: str
    frame: Callable[[Event, Frames], bytes | None]
    limit: int = 1000
    # What it watches, if narrower than everything (the hub asks only the subscribers an event
    # could concern; `frame` still decides): these objects, else these categories.
    objects: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    pending: list[Pending] = field(init=False, default_factory=list)
    dropped: bool = False
    _waiter: asyncio.Future[None] | None = field(init=False, default=None, repr=False)

    def offer(self, seq: int, data: bytes, committed: float) -> None:
        if self.dropped:
            return
        if len(self.pending) >= self.limit:
            self.dropped = True  # nothing more is queued: the stream ends, saying where it was
        else:
            self.pending.append((seq, data, committed))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def ready(self) -> None:
        """Returns once something is pending or the stream was dropped."""
        while not self.pending and not self.dropped:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def take(self, most: int) -> list[Pending]:
        """The oldest pending frames, at most `most`, no longer pending."""
        if len(self.pending) <= most:
            taken, self.pending = self.pending, []
            return taken
        taken = self.pending[:most]
        del self.pending[:most]
        return taken


class TooManyStreams(Exception):
    pass


class Hub:
    def __init__(
        self,
        read_after: ReadAfter,
        *,
        poll_seconds: float = 1.0,
        max_per_key: int = 10,
        heartbeat_seconds: float = 15.0,
    ) -> None:
        self._read_after = read_after
        self._poll = poll_seconds
        self._heartbeat = heartbeat_seconds
        self._beating: asyncio.Task[None] | None = None
        self._max_per_key = max_per_key
        self._subscribers: set[Subscriber] = set()
        self._everything: set[Subscriber] = set()
        self._by_object: dict[str, set[Subscriber]] = {}
        self._by_category: dict[str, set[Subscriber]] = {}
        self._per_key: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.cursor = 0  # the last event dispatched

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, subscriber: Subscriber) -> int:
        """Registers the stream; returns the cursor from which its queue receives events (every
        later one is queued for it; earlier ones it reads from the log itself)."""
        if self._per_key[subscriber.key_id] >= self._max_per_key:
            raise TooManyStreams(subscriber.key_id)
        self._per_key[subscriber.key_id] += 1
        self._subscribers.add(subscriber)
        for index, keys in self._places(subscriber):
            for key in keys:
                index.setdefault(key, set()).add(subscriber)
        if subscriber.objects is None and subscriber.categories is None:
            self._everything.add(subscriber)
        return self.cursor

    def _places(
        self, subscriber: Subscriber
    ) -> list[tuple[dict[str, set[Subscriber]], frozenset[str]]]:
        if subscriber.objects is not None:
            return [(self._by_object, subscriber.objects)]
        if subscriber.categories is not None:
            return [(self._by_category, subscriber.categories)]
        return []

    def unsubscribe(self, subscriber: Subscriber) -> bool:
        """Ends the subscription; False if it had ended already."""
        if subscriber not in self._subscribers:
            return False
        self._subscribers.discard(subscriber)
        self._everything.discard(subscriber)
        for index, keys in self._places(subscriber):
            for key in keys:
                watching = index.get(key)
                if watching is not None:
                    watching.discard(subscriber)
                    if not watching:
                        del index[key]
        self._per_key[subscriber.key_id] -= 1
        return True

    def wake(self) -> None:
        self._wake.set()

    async def start(self, last_seq: int) -> None:
        self.cursor = last_seq
        self._task = asyncio.create_task(self._run(), name="events-hub")
        self._beating = asyncio.create_task(self._beat(), name="events-heartbeat")

    async def stop(self) -> None:
        for task in (self._task, self._beating):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._beating = None

    async def _beat(self) -> None:
        """Every heartbeat interval, an idle stream gets a heartbeat to send: streams wait on
        their queue alone, with no timer of their own per event."""
        while True:
            await asyncio.sleep(self._heartbeat)
            for subscriber in list(self._subscribers):
                if not subscriber.pending:
                    subscriber.offer(*HEARTBEAT)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()
            try:
                await self.dispatch()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be briefly away: say so, poll again
                log.exception("reading the event log failed; retrying")
                await asyncio.sleep(self._poll)

    async def dispatch(self) -> int:
        """Reads what is new and hands it out; returns how many events."""
        total = 0
        while True:
            found = await self._read_after(self.cursor, PAGE)
            if not found:
                return total
            self.fan_out(found)
            total += len(found)
            if len(found) < PAGE:
                return total

    def fan_out(self, found: Iterable[Event]) -> None:
        for event in found:
            committed = event.occurred_at.timestamp()
            frames: Frames = {}
            subscribers = list(self._everything)
            if event.object_id in self._by_object:
                subscribers.extend(self._by_object[event.object_id])
            if event.category_id is not None and event.category_id in self._by_category:
                subscribers.extend(self._by_category[event.category_id])
            for subscriber in subscribers:
                data = subscriber.frame(event, frames)
                if data is not None:
                    subscriber.offer(event.seq, data, committed)
            self.cursor = event.seq
