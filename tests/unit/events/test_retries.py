"""The retry schedule: back-off with jitter, Retry-After honoured within bounds, at least 72 hours
of attempts, and what each answer does to a delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from marketplane.events.model import (
    GIVE_UP_AFTER,
    MAX_RETRY_AFTER,
    RETRY_SCHEDULE,
    retry_delay,
)
from marketplane.events.webhooks import outcome_of

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_delays_grow_and_jitter_stays_within_a_fifth() -> None:
    low = [retry_delay(n, retry_after=None, draw=0.0) for n in range(1, 10)]
    high = [retry_delay(n, retry_after=None, draw=0.999) for n in range(1, 10)]
    assert low == sorted(low) and low[0] == RETRY_SCHEDULE[0]
    assert all(h <= d * 1.2 for d, h in zip(low, high, strict=True))
    assert low[-1] == RETRY_SCHEDULE[-1]


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    assert retry_delay(1, retry_after=120, draw=0.0) == 120
    assert retry_delay(5, retry_after=1, draw=0.0) == RETRY_SCHEDULE[4]
    assert retry_delay(1, retry_after=10**9, draw=0.0) == MAX_RETRY_AFTER


def delivery(attempts: int, age: timedelta) -> SimpleNamespace:
    """A delivery created `age` before START."""
    return SimpleNamespace(attempts=attempts, created_at=START - age)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_succeeds(status: int) -> None:
    state, disable = outcome_of(delivery(0, timedelta()), status, None, None, START)
    assert state["status"] == "succeeded" and not disable


@pytest.mark.parametrize("status", [None, 199, 301, 302, 400, 404, 429, 500, 503])
def test_anything_else_is_retried(status: int | None) -> None:
    state, disable = outcome_of(delivery(0, timedelta()), status, "no", None, START)
    assert "status" not in state and state["next_attempt_at"] > START and not disable


def test_410_fails_it_and_disables_the_endpoint() -> None:
    state, disable = outcome_of(delivery(0, timedelta()), 410, "gone", None, START)
    assert state["status"] == "failed" and disable


def test_attempts_go_on_for_at_least_72_hours() -> None:
    # walking the schedule without jitter: the last retry is scheduled past 72 h
    at, attempts = START, 0
    while True:
        state, _ = outcome_of(delivery(attempts, timedelta()), 500, "no", None, at)
        attempts += 1
        if state.get("status") == "failed":
            break
        at = state["next_attempt_at"]
    assert (at - START).total_seconds() >= GIVE_UP_AFTER
    assert 12 <= attempts <= 20
