"""The unit of work: writes commit together or not at all; reads run inline within a budget."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from marketplane.bootstrap import Platform
from marketplane.catalog.store import categories
from marketplane.db import uow as uow_module
from marketplane.kernel.clock import utcnow


async def _add_category(platform: Platform, slug: str, *, commit: bool, fail: bool = False) -> None:
    async with platform.uow() as uow:
        now = utcnow()
        await (await uow.connection()).execute(
            categories.insert().values(
                id=f"cat_{slug:0>26}",
                slug=slug,
                name=slug,
                attribute_schema={},
                schema_version=1,
                created_at=now,
                updated_at=now,
            )
        )
        if fail:
            raise RuntimeError("boom")
        if commit:
            await uow.commit()


async def _slugs(platform: Platform) -> list[str]:
    async with platform.uow(write=False) as uow:
        rows = await uow.fetch(sa.select(categories.c.slug).order_by(categories.c.slug))
    return [r.slug for r in rows]


async def test_only_a_commit_keeps_writes(platform: Platform) -> None:
    await _add_category(platform, "kept", commit=True)
    await _add_category(platform, "dropped", commit=False)
    with pytest.raises(RuntimeError, match="boom"):
        await _add_category(platform, "failed", commit=True, fail=True)
    assert await _slugs(platform) == ["kept"]


async def test_a_read_over_its_inline_budget_is_finished_off_the_loop(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given rows to read and a budget too small for any query
    for slug in ("a", "b", "c"):
        await _add_category(platform, slug, commit=True)
    monkeypatch.setattr(uow_module, "INLINE_BUDGET", 1)
    # when
    async with platform.uow(write=False) as uow:
        rows = await uow.fetch(sa.select(categories.c.slug).order_by(categories.c.slug))
    # then the answer is whole, and on SQLite it came from the second attempt
    assert [r.slug for r in rows] == ["a", "b", "c"]
    assert uow.inline_overruns == (1 if platform.db.dialect == "sqlite" else 0)


async def test_a_read_only_unit_of_work_cannot_commit(platform: Platform) -> None:
    async with platform.uow(write=False) as uow:
        with pytest.raises(RuntimeError, match="read-only"):
            await uow.commit()
