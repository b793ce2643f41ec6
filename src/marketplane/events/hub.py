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
SLICE = 25  # streams written to between two turns of the event loop
RENDER_SLICE = 250  # frames rendered (streams an event concerns) between two turns
BATCH = 50  # events handed out together: a stream gets them in one write
HEARTBEAT = (0, b": heartbeat\n\n", 0.0)  # a queue item with no event: seq 0


Frames = dict[object, bytes]  # an event's rendered frames, by presentation: shared while fanned out


Pending = tuple[int, bytes, float]  # seq (0: a heartbeat), frame, committed (epoch seconds)
# Writes a frame to the stream's client at once: None once written, else what the stream's own
# task must await to finish writing it (the connection is applying back-pressure).
Push = Callable[[bytes], Awaitable[None] | None]


@dataclass(eq=False)
class Subscriber:
    """One stream. `frame` renders an event for it (None: not for it), reusing a frame another
    subscriber with the same presentation rendered (`Frames`).

    A stream that is caught up and waiting, with a `push`, is written by the hub itself as it
    fans events out: every frame it has for the stream in one write, and no task switch per
    delivery (at 1,000 streams those were a third of the process's time). Otherwise frames wait
    in `pending`, at most `limit` of them, until the stream's task takes them; a write that had
    to wait is finished by that task (`unfinished`) before anything later."""

    key_id: str
    frame: Callable[[Event, Frames], bytes | None]
    limit: int = 1000
    # What it watches, if narrower than everything (the hub asks only the subscribers an event
    # could concern; `frame` still decides): these objects, else these categories.
    objects: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    last: int = 0  # the last event handed to the stream: it resumes after this one
    delivered: Callable[[float], None] | None = None  # told each event's commit time, once sent
    push: Push | None = field(default=None, repr=False)
    pending: list[Pending] = field(init=False, default_factory=list)
    dropped: bool = False
    unfinished: tuple[Awaitable[None], list[Pending]] | None = field(init=False, default=None)
    failure: BaseException | None = field(init=False, default=None)
    _idle: bool = field(init=False, default=False)
    _waiter: asyncio.Future[None] | None = field(init=False, default=None, repr=False)

    def attach(self, push: Push) -> None:
        """How to write to the stream's connection at once (its response, once started)."""
        self.push = push

    def offer(self, items: list[Pending]) -> None:
        """Hands the stream these frames, oldest first."""
        if self.dropped:
            return
        if self._idle and self.push is not None:
            self._push(self.push, items)
            return
        room = max(0, self.limit - len(self.pending))
        self.pending.extend(items[:room])
        if len(items) > room:
            self.dropped = True  # nothing more is queued: the stream ends, saying where it was
        self._wake()

    def _push(self, push: Push, items: list[Pending]) -> None:
        fresh = [item for item in items if item[0] > self.last or not item[0]]
        if not fresh:
            return  # the stream read them from the log itself
        data = fresh[0][1] if len(fresh) == 1 else b"".join(frame for _, frame, _ in fresh)
        try:
            rest = push(data)
        except Exception as exc:  # the connection is broken: its task ends the stream
            self.failure = exc
            self._wake()
            return
        if rest is None:
            self.sent(fresh)
        else:
            self.unfinished = (rest, fresh)
            self._wake()

    def sent(self, items: list[Pending]) -> None:
        """These frames reached the connection."""
        for seq, _, committed in items:
            if seq:
                self.last = seq
                if self.delivered is not None:
                    self.delivered(committed)

    def _wake(self) -> None:
        self._idle = False
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def ready(self) -> None:
        """Returns once something is pending, a write is unfinished, or the stream was dropped or
        broken; meanwhile the hub writes what comes to the stream itself."""
        while not (self.pending or self.dropped or self.unfinished or self.failure):
            self._waiter = asyncio.get_running_loop().create_future()
            self._idle = True
            try:
                await self._waiter
            finally:
                self._idle = False

    async def finish(self) -> None:
        """Raises the failure of a write, or finishes one that had to wait."""
        if self.failure is not None:
            raise self.failure
        if self.unfinished is not None:
            rest, items = self.unfinished
            await rest
            self.unfinished = None
            self.sent(items)

    def take(self, most: int) -> list[Pending]:
        """The oldest pending frames, at most `most`, no longer pending."""
        if len(self.pending) <= most:
            taken, self.pending = self.pending, []
            return taken
        taken = self.pending[:most]
        del self.pending[:most]
        return taken


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


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
        self._woken = False
        self._waiter: asyncio.Future[None] | None = None
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
        """Something new may be in the log: the hub reads it at its loop's next turn."""
        self._woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

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
                    subscriber.offer([HEARTBEAT])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._woken:
                # A bare future, woken directly: one turn of the loop after the commit (an
                # Event under wait_for took three, each behind whatever else was ready).
                self._waiter = waiter = loop.create_future()
                timer = loop.call_later(self._poll, _resolve, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    self._waiter = None
            self._woken = False
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
            await self.fan_out(found)
            total += len(found)
            if len(found) < PAGE:
                return total

    async def fan_out(self, found: Iterable[Event]) -> None:
        """Hands out the events, `BATCH` at a time: each stream gets what a batch holds for it
        at once, so when events come faster than they are written, streams are written less
        often, not later. The loop runs other work after every `RENDER_SLICE` frames rendered
        and every `SLICE` streams written: writing to 1,000 streams takes tens of milliseconds,
        which requests would otherwise wait for; but events that concern a stream or two are
        handed out together (a turn per event let each wait behind every request ready). A
        stream that subscribes meanwhile reads the batch from the log itself (`cursor` is not
        past it)."""
        events = list(found)
        rendered = 0
        for first in range(0, len(events), BATCH):
            batch = events[first : first + BATCH]
            handed: dict[Subscriber, list[Pending]] = {}
            for event in batch:
                if rendered >= RENDER_SLICE:
                    await asyncio.sleep(0)
                    rendered = 0
                committed = event.occurred_at.timestamp()
                frames: Frames = {}
                concerned = self._concerned(event)
                rendered += len(concerned)
                for subscriber in concerned:
                    data = subscriber.frame(event, frames)
                    if data is not None:
                        item = (event.seq, data, committed)
                        if subscriber in handed:
                            handed[subscriber].append(item)
                        else:
                            handed[subscriber] = [item]
            streams = list(handed.items())
            for start in range(0, len(streams), SLICE):
                if start:
                    await asyncio.sleep(0)
                    rendered = 0
                for subscriber, items in streams[start : start + SLICE]:
                    subscriber.offer(items)
            self.cursor = batch[-1].seq

    def _concerned(self, event: Event) -> list[Subscriber]:
        subscribers = list(self._everything)
        if event.object_id in self._by_object:
            subscribers.extend(self._by_object[event.object_id])
        if event.category_id is not None and event.category_id in self._by_category:
            subscribers.extend(self._by_category[event.category_id])
        return subscribers
