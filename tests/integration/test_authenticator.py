"""Keys resolve to principals once per expiry, however many requests arrive together."""

from __future__ import annotations

import asyncio

import pytest

from marketplane.access import service as access
from marketplane.access.service import Authenticator
from marketplane.bootstrap import Platform
from marketplane.kernel.errors import Unauthorized


class CountingAuthenticator(Authenticator):
    lookups = 0

    async def _look_up(self, token: str) -> access.Principal:
        self.lookups += 1
        await asyncio.sleep(0)  # let the other requests arrive while this one is in flight
        return await super()._look_up(token)


async def test_concurrent_requests_with_one_key_share_one_lookup(platform: Platform) -> None:
    # given a key and an authenticator that has not seen it
    async with platform.uow() as uow:
        created = await access.bootstrap_owner(uow)
        await uow.commit()
    assert created is not None
    auth = CountingAuthenticator(platform.db, ttl=60)
    # when 20 requests carry it at once
    principals = await asyncio.gather(*(auth.authenticate(created[1]) for _ in range(20)))
    # then one lookup served them all
    assert auth.lookups == 1
    assert {p.owner_id for p in principals} == {created[0].id}


async def test_a_bad_key_fails_every_waiting_request(platform: Platform) -> None:
    auth = CountingAuthenticator(platform.db, ttl=60)
    token = "mk_live_" + "a" * 48
    results = await asyncio.gather(
        *(auth.authenticate(token) for _ in range(5)), return_exceptions=True
    )
    assert auth.lookups == 1
    assert all(isinstance(r, Unauthorized) for r in results)
    with pytest.raises(Unauthorized):
        await auth.authenticate(token)
