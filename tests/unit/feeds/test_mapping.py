"""Applying a mapping to rows: the values that need no conversion take a shorter way through
the mapper, and must come out exactly as the conversions would make them."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from marketplane.feeds.mapping import _PLAIN, EMPTY, Mapper, _Bad, _typed, parse_mapping

TYPES = {
    "year": "integer",
    "author": "string",
    "tags": "list",
    "weight": "number",
    "new": "boolean",
}
NAMES = [*TYPES, "free"]  # "free": an attribute the schema does not type

# A small alphabet: digits (numbers as text), a separator, a space, a letter with an accent.
words = st.text(alphabet="12a é,.-", max_size=8)
values = st.one_of(
    st.none(),
    st.just(""),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    words,
    st.lists(words, max_size=3),
)


def _mapper(spec: Any = None) -> Mapper:
    mapping = EMPTY if spec is None else parse_mapping(spec)
    return Mapper(mapping, types_for=lambda ref: TYPES if ref == "books" else None)


def _expected(attributes: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What the conversions make of each attribute, one at a time: values and error fields."""
    out: dict[str, Any] = {}
    bad: list[str] = []
    for name, value in attributes.items():
        if value is None or value == "":
            continue
        kind = TYPES.get(name)
        try:
            out[name] = _typed(f"attributes.{name}", kind, _PLAIN, value)
        except _Bad as exc:
            bad.append(exc.error.field)
    return out, bad


@given(st.dictionaries(st.sampled_from(NAMES), values, max_size=6))
def test_attributes_come_out_as_the_conversions_make_them(attributes: dict[str, Any]) -> None:
    row = {"sku": "B-1", "category": "books", "title": "A book", "attributes": attributes}
    mapped = _mapper().map(row)
    expected, bad = _expected(attributes)
    if bad:
        assert mapped.draft is None
        assert sorted(error.field for error, _ in mapped.errors) == sorted(bad)
        return
    assert mapped.draft is not None
    assert mapped.draft.attributes == expected
    assert [type(v) for v in mapped.draft.attributes.values()] == [
        type(v) for v in expected.values()
    ]


@given(st.one_of(st.booleans(), st.integers(0, 10**6), words))
def test_a_quantity_is_a_whole_number_whatever_way_it_comes(quantity: Any) -> None:
    row = {"sku": "B-1", "category": "books", "title": "A book", "quantity": quantity}
    mapped = _mapper().map(row)
    try:
        expected = _typed("quantity", "integer", _PLAIN, None if quantity == "" else quantity)
    except _Bad:
        assert [error.code for error, _ in mapped.errors] == ["invalid_integer"]
        return
    assert mapped.draft is not None
    assert mapped.draft.quantity == (0 if expected is None else expected)


def test_a_true_is_not_a_year_and_a_csv_year_is_a_number() -> None:
    mapper = _mapper()
    refused = mapper.map({"sku": "B-1", "category": "books", "attributes": {"year": True}})
    assert [(e.field, e.code) for e, _ in refused.errors] == [
        ("attributes.year", "invalid_integer")
    ]
    row = {"sku": "B-1", "category": "books", "attr.year": "2001", "attr.tags": "a, b"}
    mapped = mapper.map(row)
    assert mapped.draft is not None
    assert mapped.draft.attributes == {"year": 2001, "tags": ["a", "b"]}


def test_a_mapped_attribute_is_converted_by_its_own_source_over_an_implicit_column() -> None:
    mapper = _mapper({"attributes": {"weight": {"column": "kg", "scale": 1000}}})
    row = {"sku": "B-1", "category": "books", "kg": "1.5", "attr.weight": 7}
    mapped = mapper.map(row)
    assert mapped.draft is not None
    assert mapped.draft.attributes == {"weight": 1500}
