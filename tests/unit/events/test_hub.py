"""The hub hands each event to the streams that take it; one that cannot keep up is dropped
without holding back the others."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from marketplane.events.hub import (
    HEARTBEAT,
    RENDER_SLICE,
    Frames,
    Hub,
    Subscriber,
    TooManyStreams,
)
from marketplane.events.model import Event, EventType


def event(seq: int, supplier: str = "sup_a") -> Event:
    return Event(
        seq, f"evt_{seq}", EventType.OFFER_CREATED, EventType.OFFER_CREATED, f"off_{seq}", 1,
        supplier, "cat_books", {"id": f"off_{seq}"}, datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip


def taking(supplier: str, rendered: list[int]) -> Subscriber:
    def frame(e: Event, frames: Frames) -> bytes | None:
        if e.supplier_id != supplier:
            return None
        if supplier not in frames:
            rendered.append(e.seq)
            frames[supplier] = b"%d" % e.seq
        return frames[supplier]

    return Subscriber(key_id=f"key_{supplier}", frame=frame, limit=3)


async def nothing(after: int, limit: int) -> list[Event]:
    return []


async def test_events_reach_the_streams_that_take_them() -> None:
    hub = Hub(nothing, max_per_key=5)
    rendered: list[int] = []
    a1, a2, b = taking("sup_a", rendered), taking("sup_a", rendered), taking("sup_b", rendered)
    for s in (a1, a2, b):
        assert hub.subscribe(s) == 0
    await hub.fan_out([event(1), event(2, "sup_b")])
    committed = event(1).occurred_at.timestamp()
    assert [a1.take(10), a2.take(10)] == [[(1, b"1", committed)]] * 2
    assert b.take(10) == [(2, b"2", committed)]
    assert rendered == [1, 2]  # one rendering per event, shared by streams alike
    assert hub.cursor == 2


async def test_a_slow_stream_is_dropped_and_the_others_go_on() -> None:
    hub = Hub(nothing, max_per_key=5)
    slow, quick = taking("sup_a", []), taking("sup_a", [])
    hub.subscribe(slow)
    hub.subscribe(quick)
    for seq in range(1, 8):
        await hub.fan_out([event(seq)])
        assert len(quick.take(10)) == 1  # this one keeps up
    assert slow.dropped and not quick.dropped
    assert [item[0] for item in slow.take(10)] == [1, 2, 3]  # what came before it fell behind


async def test_streams_per_key_are_capped() -> None:
    hub = Hub(nothing, max_per_key=2)
    first, second, third = (taking("sup_a", []) for _ in range(3))
    hub.subscribe(first)
    hub.subscribe(second)
    with pytest.raises(TooManyStreams):
        hub.subscribe(third)
    hub.unsubscribe(first)
    hub.subscribe(third)  # room again
    assert hub.subscribers == 2


async def test_dispatch_reads_on_from_its_cursor() -> None:
    log = [event(n) for n in range(1, 2501)]
    asked: list[int] = []

    async def read_after(after: int, limit: int) -> list[Event]:
        asked.append(after)
        return [e for e in log if e.seq > after][:limit]

    hub = Hub(read_after)
    await hub.start(1000)
    await hub.stop()
    assert await hub.dispatch() == 1500
    assert asked == [1000, 2000] and hub.cursor == 2500


async def test_streams_watching_some_offers_or_categories_are_asked_only_about_those() -> None:
    hub = Hub(nothing)
    asked: dict[str, list[int]] = {"offer": [], "category": [], "all": []}

    def asking(name: str) -> Subscriber:
        def frame(e: Event, frames: Frames) -> bytes | None:
            asked[name].append(e.seq)
            return b"x"

        kinds = {"offer": {"objects": frozenset({"off_2"})},
                 "category": {"categories": frozenset({"cat_stays"})}, "all": {}}  # fmt: skip
        return Subscriber(f"key_{name}", frame, **kinds[name])  # type: ignore[arg-type]

    watchers = {name: asking(name) for name in asked}
    for watcher in watchers.values():
        hub.subscribe(watcher)
    await hub.fan_out([event(1), event(2), event(3)])  # all books; off_1, off_2, off_3
    assert asked == {"offer": [2], "category": [], "all": [1, 2, 3]}
    hub.unsubscribe(watchers["offer"])
    await hub.fan_out([event(2)])
    assert asked["offer"] == [2]  # gone from the index too


async def test_idle_streams_get_a_heartbeat_to_send() -> None:
    hub = Hub(nothing, heartbeat_seconds=0.01)
    idle, busy = taking("sup_a", []), taking("sup_a", [])
    hub.subscribe(idle)
    hub.subscribe(busy)
    await hub.start(0)
    await hub.fan_out([event(1)])  # busy has an event waiting; so has idle, until it takes it
    idle.take(10)
    await asyncio.sleep(0.05)
    await hub.stop()
    assert idle.take(1) == [HEARTBEAT] and not idle.pending
    assert busy.take(1)[0][0] == 1  # its event first; a heartbeat only once idle


async def test_a_waiting_stream_wakes_for_an_event_and_when_dropped() -> None:
    stream = taking("sup_a", [])
    waiting = asyncio.create_task(stream.ready())
    await asyncio.sleep(0)
    assert not waiting.done()
    stream.offer([(1, b"1", 0.0)])
    await asyncio.wait_for(waiting, 1)
    assert stream.take(2) == [(1, b"1", 0.0)]
    for seq in range(2, 5):
        stream.offer([(seq, b"x", 0.0)])  # 3 fit; the fourth drops it
    assert not stream.dropped
    stream.take(3)
    waiting = asyncio.create_task(stream.ready())
    await asyncio.sleep(0)
    for seq in range(5, 9):
        stream.offer([(seq, b"x", 0.0)])
    await asyncio.wait_for(waiting, 1)
    assert stream.dropped and [s for s, _, _ in stream.take(10)] == [5, 6, 7]
    await asyncio.wait_for(stream.ready(), 1)  # dropped: never waits again
    assert stream.take(10) == []


class Connection:
    """A stream's connection as the hub writes to it: each write taken at once, or, while
    `full`, held until the test lets it through (back-pressure)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.full: asyncio.Future[None] | None = None
        self.broken = False

    def push(self, data: bytes) -> asyncio.Future[None] | None:
        if self.broken:
            raise ConnectionResetError("gone")
        if self.full is not None:
            held = self.full

            async def later() -> None:
                await held
                self.written.append(data)

            return asyncio.ensure_future(later())
        self.written.append(data)
        return None


def pushed(supplier: str, connection: Connection, delivered: list[float]) -> Subscriber:
    stream = taking(supplier, [])
    stream.push = connection.push
    stream.delivered = delivered.append
    return stream


async def test_a_waiting_stream_is_written_by_the_hub_one_write_a_batch() -> None:
    hub = Hub(nothing, max_per_key=5)
    connection, delivered = Connection(), []
    stream = pushed("sup_a", connection, delivered)
    hub.subscribe(stream)
    waiting = asyncio.create_task(stream.ready())
    await asyncio.sleep(0)
    await hub.fan_out([event(1), event(2, "sup_b"), event(3)])
    assert connection.written == [b"13"]  # its two events in one write, no wake-up
    assert not waiting.done() and stream.last == 3 and len(delivered) == 2
    await hub.fan_out([event(3), event(4)])  # 3 again (read from the log meanwhile): skipped
    assert connection.written == [b"13", b"4"] and stream.last == 4
    waiting.cancel()


async def test_a_stream_not_waiting_gets_its_events_queued_not_written() -> None:
    connection = Connection()
    stream = pushed("sup_a", connection, [])
    stream.offer([(1, b"1", 0.0)])  # still reading the log: its task writes it later
    assert connection.written == [] and stream.take(5) == [(1, b"1", 0.0)]


async def test_a_write_held_by_back_pressure_is_finished_by_the_stream_first() -> None:
    connection, delivered = Connection(), []
    stream = pushed("sup_a", connection, delivered)
    connection.full = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(stream.ready())
    await asyncio.sleep(0)
    stream.offer([(1, b"1", 0.0)])
    await asyncio.wait_for(waiting, 1)  # woken: the write is unfinished
    stream.offer([(2, b"2", 0.0)])  # meanwhile queued, behind it
    assert stream.unfinished is not None and stream.pending == [(2, b"2", 0.0)]
    finishing = asyncio.create_task(stream.finish())
    await asyncio.sleep(0)
    assert not finishing.done() and stream.last == 0
    connection.full.set_result(None)
    await asyncio.wait_for(finishing, 1)
    assert connection.written == [b"1"] and stream.last == 1 and delivered == [0.0]
    assert stream.take(5) == [(2, b"2", 0.0)]


async def test_a_broken_connection_ends_the_stream_through_its_task() -> None:
    connection = Connection()
    stream = pushed("sup_a", connection, [])
    connection.broken = True
    waiting = asyncio.create_task(stream.ready())
    await asyncio.sleep(0)
    stream.offer([(1, b"1", 0.0)])
    await asyncio.wait_for(waiting, 1)
    with pytest.raises(ConnectionResetError):
        await stream.finish()
    assert stream.last == 0  # not written: a resumed stream gets it again


async def _turned_during(work: object) -> bool:
    """Whether the loop ran anything else while `work` (a coroutine) was awaited."""
    turned = asyncio.Event()
    asyncio.get_running_loop().call_soon(turned.set)
    await work  # type: ignore[misc]
    return turned.is_set()


async def test_events_for_a_stream_or_two_are_handed_out_in_one_turn() -> None:
    # given 20 streams each watching two offers, and an event about each of the 40 offers
    hub = Hub(nothing, max_per_key=100)
    streams = [
        Subscriber(
            key_id="key",
            frame=lambda e, frames: b"%d" % e.seq,
            objects=frozenset({f"off_{n}", f"off_{n + 20}"}),
        )
        for n in range(1, 21)
    ]
    for stream in streams:
        hub.subscribe(stream)
    events = [event(seq) for seq in range(1, 41)]
    # when they are fanned out, then nothing else waited for a turn meanwhile
    assert not await _turned_during(hub.fan_out(events))
    assert all(len(s.take(10)) == 2 for s in streams)


async def test_a_fan_out_to_many_streams_lets_the_loop_turn() -> None:
    # given more streams taking every event than are rendered between two turns
    hub = Hub(nothing, max_per_key=RENDER_SLICE + 10)
    streams = [taking("sup_a", []) for _ in range(RENDER_SLICE + 10)]
    for stream in streams:
        hub.subscribe(stream)
    # when two events go to all of them, then the loop turned in between
    assert await _turned_during(hub.fan_out([event(1), event(2)]))
    assert all(len(s.take(10)) == 2 for s in streams)


async def test_a_wake_reaches_the_hub_and_its_poll_goes_on_without_one() -> None:
    # given a hub whose log grows, polling every 10 ms
    log: list[Event] = []

    async def read_after(after: int, limit: int) -> list[Event]:
        return [e for e in log if e.seq > after][:limit]

    hub = Hub(read_after, poll_seconds=0.01, max_per_key=5)
    stream = taking("sup_a", [])
    hub.subscribe(stream)
    await hub.start(0)
    try:
        # when an event is written and the hub woken, then it is handed out
        log.append(event(1))
        hub.wake()
        await asyncio.wait_for(stream.ready(), 5)
        first = stream.take(10)
        # and when one is written without a wake, the poll finds it
        log.append(event(2))
        await asyncio.wait_for(stream.ready(), 5)
    finally:
        await hub.stop()
    assert [item[0] for item in [*first, *stream.take(10)]] == [1, 2]
