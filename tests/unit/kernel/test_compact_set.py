from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from marketplane.kernel import compact_set
from marketplane.kernel.compact_set import CompactIntSet

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(st.lists(st.lists(INT64, max_size=50), max_size=20), st.lists(INT64, max_size=50))
def test_it_holds_exactly_what_was_added(batches: list[list[int]], probes: list[int]) -> None:
    seen = CompactIntSet()
    expected: set[int] = set()
    for batch in batches:
        seen.update(batch)
        expected.update(batch)
    assert len(seen) == len(expected)
    for value in [*expected, *probes]:
        assert (value in seen) == (value in expected)


def test_values_are_still_found_after_the_slots_grow() -> None:
    # given more values than the first slots hold, in batches, some of them colliding
    draw = random.Random(7)
    values = list({draw.randint(-(2**62), 2**62) for _ in range(5000)})
    values += [v + compact_set.FIRST_SLOTS for v in values[:100]]  # the same slot at first
    seen = CompactIntSet()
    for start in range(0, len(values), 30):
        seen.update(values[start : start + 30])
    # then every value is there once, and no other
    held = set(values)
    assert len(seen) == len(held) and len(seen._slots) >= 2 * len(held)
    assert all(v in seen for v in values)
    assert not any(v + 1 in seen for v in values if v + 1 not in held)


def test_the_value_marking_an_empty_slot_can_be_held_too() -> None:
    seen = CompactIntSet()
    assert compact_set.EMPTY not in seen
    seen.update([compact_set.EMPTY, 5, compact_set.EMPTY])
    assert compact_set.EMPTY in seen and 5 in seen and len(seen) == 2
