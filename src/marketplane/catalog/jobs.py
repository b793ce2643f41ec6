"""The catalog's background upkeep, run by each server process (PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from marketplane.catalog import store
from marketplane.db.uow import UnitOfWork

log = logging.getLogger("marketplane.catalog")
NOT_OWNER = "42501"  # PostgreSQL's insufficient_privilege


async def keep_search_index(
    new_uow: Callable[[], UnitOfWork], *, every: float, stop: asyncio.Event
) -> None:
    """PostgreSQL: merges the full-text index's pending entries every `every` seconds until
    `stop` is set, so that no offer write has to (see store.merge_pending_search). A role that
    does not own the index may not merge it: then it is said once and left to autovacuum."""
    while not stop.is_set():
        try:
            async with new_uow() as uow:
                await store.merge_pending_search(await uow.connection())
                await uow.commit()
        except Exception as exc:  # the database may be briefly away: say so, try again
            if getattr(getattr(exc, "orig", None), "sqlstate", None) == NOT_OWNER:
                log.warning("the search index is not this role's to merge: left to autovacuum")
                return
            log.exception("merging the search index's pending entries failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
