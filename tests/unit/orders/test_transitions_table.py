"""The two order transition tables: every listed move goes where the table says, every other
(action, status) pair is an InvalidTransition naming the current status; lines for one offer
are summed before reserving."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplane.kernel.errors import Conflict, InvalidTransition
from marketplane.orders.model import (
    HOLDS_STOCK,
    ORDER_TRANSITIONS,
    SUPPLIER_ORDER_ENDS,
    SUPPLIER_ORDER_TRANSITIONS,
    SUPPLIER_SEES,
    TRANSITIONS,
    Action,
    LineRequest,
    OrderKind,
    OrderStatus,
    SupplierOrderStatus,
    next_status,
    quantities_by_offer,
)

STATUSES: dict[OrderKind, type[OrderStatus] | type[SupplierOrderStatus]] = {
    OrderKind.ORDER: OrderStatus,
    OrderKind.SUPPLIER_ORDER: SupplierOrderStatus,
}
LISTED = [
    (kind, action, current, target)
    for kind, table in TRANSITIONS.items()
    for (action, current), target in table.items()
]
UNLISTED = [
    (kind, action, current)
    for kind, statuses in STATUSES.items()
    for action in Action
    for current in statuses
    if (action, current) not in TRANSITIONS[kind]
]


@pytest.mark.parametrize(("kind", "action", "current", "target"), LISTED)
def test_every_listed_move_goes_where_the_table_says(
    kind: OrderKind, action: Action, current: str, target: str
) -> None:
    # when
    moved = next_status(kind, current, action)
    # then
    assert moved == target
    assert moved in set(STATUSES[kind])


@pytest.mark.parametrize(("kind", "action", "current"), UNLISTED)
def test_every_unlisted_move_is_an_invalid_transition_with_the_current_status(
    kind: OrderKind, action: Action, current: str
) -> None:
    # when
    with pytest.raises(InvalidTransition) as raised:
        next_status(kind, current, action)
    # then
    assert raised.value.code == "invalid_transition"
    assert raised.value.status == 409
    assert isinstance(raised.value, Conflict)
    assert raised.value.extra == {"current_status": str(current)}


def test_the_tables_cover_every_pair_exactly_once() -> None:
    # given
    pairs = {kind: len(Action) * len(STATUSES[kind]) for kind in STATUSES}
    # then: listed and unlisted together are every (action, status) pair of each kind
    for kind in STATUSES:
        listed = sum(1 for k, *_ in LISTED if k is kind)
        unlisted = sum(1 for k, *_ in UNLISTED if k is kind)
        assert listed + unlisted == pairs[kind]
        assert listed == len(TRANSITIONS[kind])


def test_the_tables_name_only_their_own_kinds_statuses() -> None:
    # then
    for (action, current), moved in ORDER_TRANSITIONS.items():
        assert isinstance(action, Action)
        assert {current, moved} <= set(OrderStatus)
    for (action, current), part_moved in SUPPLIER_ORDER_TRANSITIONS.items():
        assert isinstance(action, Action)
        assert {current, part_moved} <= set(SupplierOrderStatus)


def test_an_ended_supplier_order_never_moves_again() -> None:
    # then: ends are sinks, and a supplier order holding stock is never an end
    for action in Action:
        for end in SUPPLIER_ORDER_ENDS:
            assert (action, end) not in SUPPLIER_ORDER_TRANSITIONS
    assert not HOLDS_STOCK & SUPPLIER_ORDER_ENDS
    assert SupplierOrderStatus.PENDING_PAYMENT not in SUPPLIER_SEES


def test_every_status_but_the_first_is_reachable() -> None:
    # given
    starts: dict[OrderKind, str] = {
        OrderKind.ORDER: OrderStatus.PLACED,
        OrderKind.SUPPLIER_ORDER: SupplierOrderStatus.PENDING_PAYMENT,
    }
    for kind, table in TRANSITIONS.items():
        reached = {starts[kind]}
        frontier = [starts[kind]]
        # when: following every move from the initial status
        while frontier:
            current = frontier.pop()
            for (_, source), target in table.items():
                if source == current and target not in reached:
                    reached.add(target)
                    frontier.append(target)
        # then
        assert reached == set(STATUSES[kind])


lines = st.lists(
    st.builds(
        LineRequest,
        offer_id=st.sampled_from(["off_a", "off_b", "off_c"]),
        quantity=st.integers(min_value=1, max_value=1000),
        unit_price=st.integers(min_value=0, max_value=10_000),
        currency=st.just("EUR"),
    ),
    max_size=20,
)


@given(lines)
def test_quantities_by_offer_sums_the_lines_of_each_offer(requested: list[LineRequest]) -> None:
    # when
    summed = quantities_by_offer(requested)
    # then
    assert set(summed) == {line.offer_id for line in requested}
    for offer_id, quantity in summed.items():
        assert quantity == sum(line.quantity for line in requested if line.offer_id == offer_id)
    assert sum(summed.values()) == sum(line.quantity for line in requested)


def test_two_lines_for_one_offer_count_together() -> None:
    # given
    requested = [
        LineRequest("off_a", 2, 100, "EUR"),
        LineRequest("off_b", 1, 100, "EUR"),
        LineRequest("off_a", 2, 100, "EUR"),
    ]
    # when
    summed = quantities_by_offer(requested)
    # then
    assert summed == {"off_a": 4, "off_b": 1}
