from __future__ import annotations

import random

import pytest
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


def test_merged_values_are_still_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compact_set, "MERGE_AT", 100)
    draw = random.Random(7)
    values = list({draw.randint(-(2**62), 2**62) for _ in range(1000)})
    seen = CompactIntSet()
    for start in range(0, len(values), 30):
        seen.update(values[start : start + 30])
    assert len(seen) == len(values) and len(seen._recent) < 100
    assert all(v in seen for v in values)
    assert not any(v + 1 in seen for v in values if v + 1 not in set(values))
