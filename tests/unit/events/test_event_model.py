from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketplane.access.model import ClientView
from marketplane.events.model import Event, EventType, present, store_type, visible_to

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OFFER = {
    "id": "off_1",
    "sku": "SECRET-SKU",
    "supplier": "sup_a",
    "category": "cat_books",
    "title": "A book",
    "price": {"amount": 1000, "currency": "EUR"},
    "quantity": 3,
    "status": "active",
    "source": "feed",
    "version": 2,
}


def offer_event(kind: EventType, shown: EventType | None) -> Event:
    return Event(2, "evt_1", kind, shown, "off_1", 2, "sup_a", "cat_books", OFFER, NOW)


def view(**changes: object) -> ClientView:
    values: dict[str, object] = {
        "client_id": "cli_1",
        "markup_bps": 250,
        "allowed_suppliers": None,
        "allowed_categories": None,
    }
    values.update(changes)
    return ClientView(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("before", "after", "seen"),
    [
        (True, True, EventType.OFFER_PRICE_CHANGED),
        (False, True, EventType.OFFER_CREATED),
        (True, False, EventType.OFFER_REMOVED),
        (False, False, None),
    ],
)
def test_what_a_client_sees_of_an_offer_change(
    before: bool, after: bool, seen: EventType | None
) -> None:
    kind = EventType.OFFER_PRICE_CHANGED
    assert store_type(kind, live_before=before, live_after=after) is seen


def test_a_client_sees_the_offer_marked_up_and_nothing_supplier_private() -> None:
    shown = present(
        offer_event(EventType.OFFER_PRICE_CHANGED, EventType.OFFER_PRICE_CHANGED), view=view()
    )
    assert shown["type"] == "offer.price_changed"
    assert shown["data"]["price"] == {"amount": 1025, "currency": "EUR"}
    assert not {"sku", "status", "source"} & set(shown["data"])
    assert shown["object"] == {"type": "offer", "id": "off_1", "version": 2}
    assert shown["occurred_at"] == "2026-01-01T00:00:00Z"


def test_a_removal_shows_a_client_only_which_offer_went() -> None:
    shown = present(offer_event(EventType.OFFER_UPDATED, EventType.OFFER_REMOVED), view=view())
    assert shown["type"] == "offer.removed"
    assert shown["data"] == {"id": "off_1", "version": 2}


def test_the_supplier_view_is_the_event_as_written() -> None:
    shown = present(offer_event(EventType.OFFER_UPDATED, None))
    assert shown["type"] == "offer.updated" and shown["data"]["sku"] == "SECRET-SKU"


def test_a_client_never_sees_events_outside_its_view() -> None:
    event = offer_event(EventType.OFFER_CREATED, EventType.OFFER_CREATED)
    assert visible_to(event, view())
    assert not visible_to(event, view(allowed_suppliers=frozenset({"sup_b"})))
    assert not visible_to(event, view(allowed_categories=frozenset({"cat_stays"})))
    assert visible_to(event, view(allowed_suppliers=frozenset({"sup_a"})))
    assert not visible_to(offer_event(EventType.OFFER_CREATED, None), view())


def order_event(client_id: str) -> Event:
    payload = {"id": "ord_1", "total": {"amount": 1100, "currency": "EUR"}}
    return Event(
        3, "evt_2", EventType.ORDER_PAID, EventType.ORDER_PAID, "ord_1", 2, None, None, payload,
        NOW, client_id=client_id,
    )  # fmt: skip


def test_an_order_event_goes_to_its_client_alone_as_written() -> None:
    # given
    event = order_event("cli_1")
    # then: its own client sees it whatever its configuration, in the client's own terms
    assert visible_to(event, view())
    assert visible_to(event, view(allowed_suppliers=frozenset({"sup_b"})))
    assert not visible_to(event, view(client_id="cli_2"))
    shown = present(event, view=view())
    assert shown["type"] == "order.paid"
    assert shown["data"] == event.payload  # no markup applied twice, no offer fields picked
