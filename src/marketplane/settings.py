"""Configuration: environment variables `MARKETPLANE_*` and an optional TOML file, read once."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARKETPLANE_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///marketplane.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://…",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    key_cache_seconds: float = Field(
        default=1.0, ge=0, description="How long a process trusts a key it verified."
    )
    store_cache_mb: int = Field(
        default=64,
        ge=0,
        description="Memory for store answers kept until the next commit (0 turns it off).",
    )
    stream_heartbeat_seconds: float = Field(
        default=15, gt=0, description="An idle event stream sends a comment this often."
    )
    stream_queue: int = Field(
        default=1000,
        ge=1,
        description="Events a stream may fall behind; past it the client is told and dropped.",
    )
    stream_max_per_key: int = Field(
        default=10, ge=1, description="Open event streams per API key, per process."
    )
    events_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often each process reads the event log unwoken (commits wake it).",
    )
    search_upkeep_seconds: float = Field(
        default=1.0,
        ge=0,
        description="PostgreSQL: how often each server process merges the full-text index's "
        "pending entries, so that no offer write waits for it (0: never; the write that fills "
        "the pending list then merges it).",
    )
    webhook_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often a worker looks for new events and due webhook deliveries "
        "unwoken (on PostgreSQL, commits wake it).",
    )
    webhook_timeout_seconds: float = Field(
        default=15, gt=0, description="How long a webhook attempt may take."
    )
    webhook_lease_seconds: float = Field(
        default=60,
        gt=0,
        description="How long a worker holds a delivery it claimed: longer than an attempt "
        "takes (a dead worker's claims lapse after it, and another worker retries).",
    )
    webhook_secret_overlap_hours: float = Field(
        default=24,
        ge=0,
        description="After a secret rotation, how long deliveries are signed by the old one too.",
    )
    order_hold_seconds: int = Field(
        default=15 * 60,
        ge=60,
        description="How long a new order waits for payment before it expires (per client too).",
    )
    order_accept_hours: float = Field(
        default=24,
        gt=0,
        description="How long a supplier has to accept a paid order before it is rejected.",
    )
    order_sweep_seconds: float = Field(
        default=5,
        gt=0,
        description="How often the worker expires unpaid orders and enforces deadlines.",
    )
    payout_hold_hours: float = Field(
        default=7 * 24,
        ge=0,
        description="How long a supplier's share of a sale stays held after fulfilment before "
        "it can be paid out (returns and disputes come out of it first).",
    )
    payout_minimum: int = Field(
        default=1000,
        ge=1,
        description="The smallest payout, in minor units, unless a supplier's settings say more.",
    )
    payout_test_secret: str = Field(
        default="test-payout-callback-secret",
        min_length=16,
        description="What the built-in test payout provider signs its callbacks with.",
    )
    billing_sweep_seconds: float = Field(
        default=60,
        gt=0,
        description="How often the worker bills subscriptions and runs scheduled payouts.",
    )
    payment_test_secret: str = Field(
        default="test-provider-callback-secret",
        min_length=16,
        description="What the built-in test payment provider signs its callbacks with.",
    )
    data_dir: Path = Field(
        default=Path("marketplane-data"),
        description="Where uploaded and fetched feed files wait for their runs.",
    )
    feed_max_bytes: int = Field(default=2 * 1024**3, ge=1024, description="Largest feed file.")
    feed_hold_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A full feed deactivating more than this share of live offers is held.",
    )
    feed_process_bytes: int = Field(
        default=8 * 1024**2,
        ge=0,
        description="A feed file this large or larger is read, mapped and checked by a "
        "separate process while its rows are written; 0: never.",
    )
    feed_stale_seconds: float = Field(
        default=300,
        gt=0,
        description="A running feed with no progress for this long, whose process cannot be "
        "checked, is marked failed.",
    )
    feed_worker: bool = Field(
        default=True, description="`serve` also starts a feed worker process."
    )
    fetch_timeout: float = Field(default=60, gt=0)
    allow_private_targets: str = Field(
        default="",
        description="Comma-separated IPs or CIDRs that feed URLs (and later webhooks) may "
        "reach although private or loopback; empty in production.",
    )
    batch_max_items: int = Field(default=1000, ge=1)
    pg_pool_size: int = Field(
        default=20,
        ge=1,
        description="PostgreSQL connections per process: opened as needed and kept; a "
        "request finding them all busy waits for one.",
    )
    sqlite_inline_write_ms: float = Field(
        default=5.0,
        ge=0,
        description="SQLite: how long a write transaction's statements may run on the event "
        "loop itself before the rest go to the connection's thread (0: always the thread).",
    )
    log_level: str = "warning"
    access_log: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("MARKETPLANE_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @field_validator("allow_private_targets")
    @classmethod
    def _networks(cls, value: str) -> str:
        for entry in (part.strip() for part in value.split(",")):
            if entry:
                ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return value

    @model_validator(mode="after")
    def _lease_outlasts_attempts(self) -> Settings:
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "webhook_lease_seconds must be longer than webhook_timeout_seconds, or two "
                "workers could attempt the same delivery at once"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
