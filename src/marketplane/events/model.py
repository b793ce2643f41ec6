"""What an event is, which types there are, and what a client may see of one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from marketplane.access.model import ClientView
from marketplane.catalog.model import STORE_FIELDS
from marketplane.kernel.clock import rfc3339
from marketplane.kernel.money import apply_markup


class EventType(StrEnum):
    OFFER_CREATED = "offer.created"
    OFFER_UPDATED = "offer.updated"
    OFFER_PRICE_CHANGED = "offer.price_changed"
    OFFER_STOCK_CHANGED = "offer.stock_changed"
    OFFER_REMOVED = "offer.removed"
    OFFER_LISTED = "offer.listed"  # its supplier was approved: clients see it from now
    OFFER_UNLISTED = "offer.unlisted"  # its supplier was suspended: clients no longer see it
    SUPPLIER_CREATED = "supplier.created"
    SUPPLIER_STATUS_CHANGED = "supplier.status_changed"
    FEED_RUN_QUEUED = "feed_run.queued"
    FEED_RUN_STARTED = "feed_run.started"
    FEED_RUN_COMPLETED = "feed_run.completed"
    FEED_RUN_FAILED = "feed_run.failed"
    FEED_RUN_HELD = "feed_run.held"
    # to the client whose order it is (the whole order, priced as its customer pays)
    ORDER_PLACED = "order.placed"
    ORDER_PAID = "order.paid"
    ORDER_PAYMENT_FAILED = "order.payment_failed"
    ORDER_EXPIRED = "order.expired"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_ACCEPTED = "order.accepted"  # a supplier accepted its part
    ORDER_REJECTED = "order.rejected"  # a supplier rejected its part (or its deadline passed)
    ORDER_FULFILLED = "order.fulfilled"  # a part was shipped
    ORDER_COMPLETED = "order.completed"  # a part was completed
    ORDER_CLOSED = "order.closed"  # every part has ended
    ORDER_REFUNDED = "order.refunded"
    # to the supplier whose part it is (its supplier order, at its own prices)
    SUPPLIER_ORDER_CREATED = "supplier_order.created"  # paid: waiting for its acceptance
    SUPPLIER_ORDER_ACCEPTED = "supplier_order.accepted"
    SUPPLIER_ORDER_REJECTED = "supplier_order.rejected"
    SUPPLIER_ORDER_CANCELLED = "supplier_order.cancelled"
    SUPPLIER_ORDER_FULFILLED = "supplier_order.fulfilled"
    SUPPLIER_ORDER_COMPLETED = "supplier_order.completed"
    SUPPLIER_ORDER_REFUNDED = "supplier_order.refunded"
    # to the supplier paid
    PAYOUT_PENDING = "payout.pending"  # opened: its money left the supplier's balance
    PAYOUT_IN_TRANSIT = "payout.in_transit"
    PAYOUT_PAID = "payout.paid"
    PAYOUT_FAILED = "payout.failed"  # its money is back in the supplier's balance


@dataclass(slots=True)  # not frozen: a feed makes one a row (see OfferDraft)
class NewEvent:
    """An event to write. `store_type`: the type a client sees (None: clients never see it),
    which differs from `type` when an offer enters or leaves the store (a new live offer is
    `offer.created` to a client whatever happened at the supplier, a withdrawn one
    `offer.removed`)."""

    type: EventType
    object_id: str
    version: int
    payload: Mapping[str, Any]
    supplier_id: str | None = None
    category_id: str | None = None
    store_type: EventType | None = None
    client_id: str | None = None  # addressed to this client alone


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    id: str
    type: EventType
    store_type: EventType | None
    object_id: str
    version: int
    supplier_id: str | None
    category_id: str | None
    payload: Mapping[str, Any]
    occurred_at: datetime
    client_id: str | None = None


OFFER_CHANGES = {
    "created": EventType.OFFER_CREATED,
    "content": EventType.OFFER_UPDATED,
    "price": EventType.OFFER_PRICE_CHANGED,
    "quantity": EventType.OFFER_STOCK_CHANGED,
    "removed": EventType.OFFER_REMOVED,
    "listed": EventType.OFFER_LISTED,
    "unlisted": EventType.OFFER_UNLISTED,
}


def store_type(kind: EventType, *, live_before: bool, live_after: bool) -> EventType | None:
    """The type a client sees of an offer event (None: nothing it could see changed). An offer
    entering the store is new to clients, one leaving it removed, whatever the supplier did."""
    if live_after:
        return kind if live_before else EventType.OFFER_CREATED
    return EventType.OFFER_REMOVED if live_before else None


def visible_to(event: Event, view: ClientView) -> bool:
    """Whether a client may see this event: about an offer it may see, in the store, or
    addressed to it alone (its own orders)."""
    if event.store_type is None:
        return False
    if event.client_id is not None:
        return event.client_id == view.client_id
    if view.allowed_suppliers is not None and event.supplier_id not in view.allowed_suppliers:
        return False
    return view.allowed_categories is None or event.category_id in view.allowed_categories


def present(event: Event, *, view: ClientView | None = None) -> dict[str, Any]:
    """The event on the wire. For a client (`view`): its store type and the offer as the store
    shows it, priced with the client's markup; a removal carries the offer's id and version.
    An event addressed to the client (its order) is already in the client's terms."""
    kind = event.type if view is None else event.store_type
    data: Mapping[str, Any] = event.payload
    if view is not None and event.client_id is None:
        if kind is EventType.OFFER_REMOVED:
            data = {"id": event.object_id, "version": event.version}
        else:
            # the store's own view of the offer: never supplier-private fields (sku, status, …)
            data = {name: data[name] for name in STORE_FIELDS if name in data}
            price = data.get("price")
            if price is not None:
                marked = apply_markup(price["amount"], view.markup_bps)
                data = {**data, "price": {**price, "amount": marked}}
    return {
        "seq": event.seq,
        "id": event.id,
        "type": str(kind),
        "object": {
            "type": str(event.type).split(".", 1)[0],
            "id": event.object_id,
            "version": event.version,
        },
        "occurred_at": rfc3339(event.occurred_at),
        "data": data,
    }


# --- webhooks -------------------------------------------------------------------------------

# After attempt n fails, the next comes RETRY_SCHEDULE[n - 1] seconds later (the last repeats),
# plus up to 20% random jitter; a delivery is given up only when an attempt fails GIVE_UP_AFTER
# or more after it was created, so it is retried for at least 72 hours: attempts 5 s, 1 min,
# 5 min, 30 min, 1 h and 2 h apart, then every 6 h (about 17 in all).
RETRY_SCHEDULE = (5, 60, 300, 1800, 3600, 7200, 21600)
GIVE_UP_AFTER = 72 * 3600
JITTER = 0.2
MAX_RETRY_AFTER = 24 * 3600  # a Retry-After asking for longer is held to this


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EndpointOwner(StrEnum):
    CLIENT = "client"
    SUPPLIER = "supplier"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    owner_kind: EndpointOwner
    owner_id: str
    url: str
    types: tuple[str, ...] | None  # None: every type its owner may see
    secret: str
    previous_secret: str | None
    previous_until: datetime | None
    enabled: bool
    disabled_reason: str | None
    cursor: int  # the last event considered for it
    created_at: datetime
    updated_at: datetime

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, and during a rotation's overlap the previous one too."""
        if self.previous_secret and self.previous_until and now < self.previous_until:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def takes(self, event: Event, view: ClientView | None) -> bool:
        """Whether this endpoint gets `event` (its owner may see it, and it asked for its type)."""
        if self.owner_kind is EndpointOwner.CLIENT:
            if view is None or not visible_to(event, view):
                return False
            kind = str(event.store_type)
        else:
            if event.supplier_id != self.owner_id:
                return False
            kind = str(event.type)
        return self.types is None or kind in self.types


def retry_delay(attempts: int, *, retry_after: float | None, draw: float) -> float:
    """Seconds until the next attempt after `attempts` failed ones. `draw` in [0, 1) adds the
    jitter; a receiver's Retry-After, when longer, wins (up to MAX_RETRY_AFTER)."""
    base = RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1]
    delay = base * (1 + JITTER * draw)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay
