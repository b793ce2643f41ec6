from __future__ import annotations

import itertools

import pytest

from marketplane.kernel.errors import BadRequest
from marketplane.kernel.ids import has_prefix, new_id
from marketplane.kernel.pagination import Cursor, decode_cursor, encode_cursor


def test_ids_are_prefixed_and_sort_in_creation_order() -> None:
    ids = [new_id("off") for _ in range(2000)]
    assert all(has_prefix(i, "off") for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_a_cursor_round_trips() -> None:
    token = encode_cursor(Cursor("price", (1299, 42), "abc"))
    cursor = decode_cursor(token, expected_sort="price", expected_fingerprint="abc", arity=2)
    assert cursor.key == (1299, 42)


@pytest.mark.parametrize("token", ["", "%%%", "bm90IGpzb24", "WzEsMiwzXQ", "W251bGwsW10sIiJd"])
def test_garbage_cursors_are_a_clear_400(token: str) -> None:
    with pytest.raises(BadRequest) as error:
        decode_cursor(token, expected_sort="pk", expected_fingerprint="", arity=1)
    assert error.value.code == "invalid_cursor"
    assert error.value.errors[0].field == "cursor"


def test_a_cursor_from_another_query_is_refused() -> None:
    token = encode_cursor(Cursor("price", (1, 2), "query-a"))
    with pytest.raises(BadRequest, match="another query"):
        decode_cursor(token, expected_sort="price", expected_fingerprint="query-b", arity=2)


def test_an_id_is_its_value_in_crockford_base32() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from marketplane.kernel.ids import _ALPHABET, _encode

    def by_hand(value: int) -> str:
        return "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(26)))

    @given(st.integers(min_value=0, max_value=2**128 - 1))
    def same(value: int) -> None:
        assert _encode(value) == by_hand(value)

    same()
    assert _encode(2**128 - 1) == "7" + "z" * 25


def test_ids_made_in_a_row_count_up_by_one_within_a_millisecond() -> None:
    # given ids made faster than one a millisecond, across many runs of 1,024 (each such run
    # shares all but its last two characters)
    from marketplane.kernel.ids import _ALPHABET, new_ulid

    made = [new_ulid() for _ in range(20_000)]
    values = [sum(_ALPHABET.index(c) << (5 * i) for i, c in enumerate(reversed(u))) for u in made]
    # then each is its predecessor plus one, unless its millisecond is a later one
    steps = [(b >> 80 == a >> 80, b - a) for a, b in itertools.pairwise(values)]
    assert all(step == 1 for same_ms, step in steps if same_ms)
    assert all(step > 0 for _, step in steps)


@pytest.mark.parametrize("count", [0, 1, 1023, 1024, 1025, 5000])
def test_ids_taken_at_once_are_those_taken_one_by_one(count: int) -> None:
    # given ids taken one by one around a number of them taken at once
    from marketplane.kernel.ids import _ALPHABET, new_ids

    before = [new_id("evt") for _ in range(3)]
    taken = new_ids("evt", count)
    after = [new_id("evt") for _ in range(3)]
    made = [*before, *taken, *after]
    # then there are as many as asked, each valid, and within a millisecond each counts one up
    # from the one before, across runs of 1,024 too
    assert len(taken) == count and all(has_prefix(i, "evt") for i in made)
    values = [
        sum(_ALPHABET.index(c) << (5 * n) for n, c in enumerate(reversed(i[4:]))) for i in made
    ]
    steps = [(b >> 80 == a >> 80, b - a) for a, b in itertools.pairwise(values)]
    assert all(step == 1 for same_ms, step in steps if same_ms)
    assert all(step > 0 for _, step in steps)
