from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from marketplane.settings import Settings


def test_defaults_to_an_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETPLANE_DATABASE_URL", raising=False)
    monkeypatch.delenv("MARKETPLANE_CONFIG", raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///marketplane.db"
    assert settings.is_sqlite


def test_environment_and_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "marketplane.toml"
    config.write_text(
        'port = 9001\nmax_body_bytes = 4096\ndatabase_url = "sqlite+aiosqlite:///x.db"\n'
    )
    monkeypatch.setenv("MARKETPLANE_CONFIG", str(config))
    monkeypatch.setenv("MARKETPLANE_DATABASE_URL", "postgresql+asyncpg://u@127.0.0.1/db")
    settings = Settings()
    # the environment wins over the file
    assert settings.database_url == "postgresql+asyncpg://u@127.0.0.1/db"
    assert not settings.is_sqlite
    assert (settings.port, settings.max_body_bytes) == (9001, 4096)


def test_private_targets_must_be_addresses_or_networks() -> None:
    # when / then
    assert Settings(allow_private_targets="127.0.0.1, 10.0.0.0/8").allow_private_targets
    with pytest.raises(ValidationError, match="not-an-address"):
        Settings(allow_private_targets="127.0.0.1,not-an-address")


def test_a_webhook_claim_must_outlast_an_attempt() -> None:
    assert Settings(webhook_timeout_seconds=2, webhook_lease_seconds=3).webhook_lease_seconds == 3
    with pytest.raises(ValidationError, match="webhook_lease_seconds must be longer"):
        Settings(webhook_timeout_seconds=15, webhook_lease_seconds=15)
