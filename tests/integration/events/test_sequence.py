"""Event numbers become visible in order: a reader paging with `after` never skips an event whose
transaction took its number first and committed late."""

from __future__ import annotations

import asyncio

from marketplane.bootstrap import Platform
from marketplane.events import service as events
from marketplane.events.model import EventType, NewEvent


def event(name: str) -> NewEvent:
    return NewEvent(EventType.SUPPLIER_CREATED, name, 1, {"id": name}, supplier_id=name)


async def visible(platform: Platform) -> list[str]:
    async with platform.uow(write=False) as uow:
        return [e.object_id for e in await events.read(uow, after=0, limit=100)]


async def test_an_event_committing_late_is_not_overtaken(platform: Platform) -> None:
    # given: a transaction that has written its event and is slow to commit
    written, release = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        async with platform.uow() as uow:
            await events.emit(uow, event("first"))

            async def hold() -> None:  # runs after the event is written, before COMMIT
                written.set()
                await release.wait()

            uow.before_commit(hold)
            await uow.commit()

    async def quick() -> None:
        async with platform.uow() as uow:
            await events.emit(uow, event("second"))
            await uow.commit()

    first = asyncio.create_task(slow())
    await written.wait()
    # when: a second transaction writes and commits meanwhile
    second = asyncio.create_task(quick())
    await asyncio.sleep(0.3)
    # then: a reader sees neither yet (the second waits for the first, or it would be read now
    # and the first, committing later with a smaller number, skipped by a reader past it)
    assert await visible(platform) == []
    assert not second.done()
    release.set()
    await asyncio.gather(first, second)
    assert await visible(platform) == ["first", "second"]


async def test_events_are_written_only_with_their_transaction(platform: Platform) -> None:
    # given
    async with platform.uow() as uow:
        await events.emit(uow, event("rolled back"))
        # leaves without committing
    async with platform.uow() as uow:
        await events.emit(uow, *(event(f"e{n}") for n in range(events.FLUSH_AT + 3)))
        await uow.commit()
    # then: nothing of the first; all of the second, in order, with increasing numbers
    async with platform.uow(write=False) as uow:
        found = await events.read(uow, after=0, limit=events.FLUSH_AT + 10)
    assert [e.object_id for e in found] == [f"e{n}" for n in range(events.FLUSH_AT + 3)]
    assert [e.seq for e in found] == sorted({e.seq for e in found})


async def test_a_few_events_of_a_transaction_keep_their_order(platform: Platform) -> None:
    # given a transaction writing fewer events than a bulk write takes (one statement there)
    names = [f"f{n}" for n in range(30)]
    async with platform.uow() as uow:
        await events.emit(uow, *(event(name) for name in names))
        await uow.commit()
    # then they are numbered in the order they were emitted, payloads whole
    async with platform.uow(write=False) as uow:
        found = await events.read(uow, after=0, limit=100)
    assert [e.object_id for e in found] == names
    assert [e.payload for e in found] == [{"id": name} for name in names]
    assert [e.seq for e in found] == sorted({e.seq for e in found})
