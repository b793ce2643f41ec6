"""What the platform measures about itself, in Prometheus form (`GET /metrics`).

Request latency per side, client, route and status class; how fresh events are when streams
hand them to clients (commit to delivery); open streams. Webhook outcomes are read from the
database when scraped, so they count every worker process's attempts.
"""

from __future__ import annotations

import re
import statistics
import time
from collections import deque

from prometheus_client import CollectorRegistry, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_SECONDS = Histogram(
    "marketplane_http_request_seconds",
    "Time to answer a request, from its first byte in to its last byte out.",
    ["side", "client", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
FRESHNESS_SECONDS = Histogram(
    "marketplane_event_freshness_seconds",
    "From an event's commit to a stream handing it to its client.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
STREAMS = Gauge(
    "marketplane_event_streams", "Event streams open in this process.", registry=REGISTRY
)
WEBHOOK_DELIVERIES = Gauge(
    "marketplane_webhook_deliveries",
    "Webhook deliveries by status (all processes: read from the database).",
    ["status"],
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Gauge(
    "marketplane_webhook_attempts",
    "Webhook attempts by outcome (all processes: read from the database).",
    ["outcome"],
    registry=REGISTRY,
)

_ID = re.compile(r"/[a-z]{2,4}_[0-9a-z]{26}(?=/|$)")


def route_label(path: str) -> str:
    """A route's path with ids as {id}: bounded, whatever ids are asked for."""
    return _ID.sub("/{id}", path)


class RecentFreshness:
    """The latest deliveries' freshness in this process, for exact p50/p99 on the admin API."""

    def __init__(self, size: int = 10_000) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)
        FRESHNESS_SECONDS.observe(seconds)

    def summary(self) -> dict[str, float | int | None]:
        samples = sorted(self._samples)
        if not samples:
            return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}

        def at(share: float) -> float:
            return round(samples[min(len(samples) - 1, int(share * len(samples)))] * 1000, 2)

        return {
            "count": len(samples),
            "p50_ms": at(0.50),
            "p99_ms": at(0.99),
            "max_ms": round(samples[-1] * 1000, 2),
            "mean_ms": round(statistics.fmean(samples) * 1000, 2),
        }


FRESHNESS = RecentFreshness()


class OpenStreams:
    def __init__(self) -> None:
        self.count = 0

    def opened(self) -> None:
        self.count += 1
        STREAMS.inc()

    def closed(self) -> None:
        self.count -= 1
        STREAMS.dec()


OPEN_STREAMS = OpenStreams()


def since(epoch_seconds: float) -> float:
    return max(0.0, time.time() - epoch_seconds)
