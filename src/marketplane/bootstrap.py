"""Wiring: settings → database → services. Nothing here runs at import time."""

from __future__ import annotations

from dataclasses import dataclass

from marketplane.access.service import Authenticator
from marketplane.db import migrate
from marketplane.db.engine import Database, connect
from marketplane.db.uow import UnitOfWork
from marketplane.kernel.versioned_cache import VersionedCache
from marketplane.money.payout_provider import PayoutProvider, TestPayoutProvider
from marketplane.orders.payments import PaymentProvider, TestProvider
from marketplane.settings import Settings


@dataclass
class Platform:
    settings: Settings
    db: Database
    auth: Authenticator
    store_cache: VersionedCache
    payments: PaymentProvider
    payouts: PayoutProvider

    def uow(self, *, write: bool = True) -> UnitOfWork:
        return UnitOfWork(self.db, write=write)

    async def close(self) -> None:
        await self.db.dispose()


def build(settings: Settings) -> Platform:
    db = connect(
        settings.database_url,
        pool_size=settings.pg_pool_size,
        inline_write_seconds=settings.sqlite_inline_write_ms / 1000,
    )
    return Platform(
        settings=settings,
        db=db,
        auth=Authenticator(db, ttl=settings.key_cache_seconds),
        store_cache=VersionedCache(settings.store_cache_mb * 1024 * 1024),
        payments=TestProvider(settings.payment_test_secret),
        payouts=TestPayoutProvider(settings.payout_test_secret),
    )


async def migrated(settings: Settings) -> Platform:
    platform = build(settings)
    await migrate.upgrade(platform.db)
    return platform
