from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplane.catalog.model import (
    MAX_TOKEN,
    Category,
    OfferDraft,
    ValidOffer,
    attribute_rows,
    canonical_scalar,
    normalize_gtin,
    query_value_forms,
    tokens,
    validate_offer,
)
from marketplane.kernel.errors import FieldError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BOOKS = Category(
    id="cat_x",
    slug="books",
    name="Books",
    attribute_schema={"type": "object", "properties": {"isbn": {"type": "string", "x-gtin": True}}},
    schema_version=1,
    created_at=NOW,
    updated_at=NOW,
)


def _draft(**changes: Any) -> OfferDraft:
    values: dict[str, Any] = {
        "sku": "SKU-1",
        "category": "books",
        "title": "A book",
        "price_currency": "EUR",
        "price_amount": 1299,
        "quantity": 1,
    }
    values.update(changes)
    return OfferDraft(**values)


def _validate(draft: OfferDraft, precision: int | None = 2) -> ValidOffer | list[FieldError]:
    return validate_offer(draft, category=BOOKS, precision=precision, check_attributes=lambda _: [])


@pytest.mark.parametrize(
    ("raw", "gtin"),
    [
        ("9780306406157", "9780306406157"),
        ("978-0-306-40615-7", "9780306406157"),
        ("0306406152", "9780306406157"),  # ISBN-10 → ISBN-13
        ("96385074", "0000096385074"),  # GTIN-8
        ("036000291452", "0036000291452"),  # UPC-A
    ],
)
def test_gtins_and_isbns_normalise(raw: str, gtin: str) -> None:
    assert normalize_gtin(raw) == gtin


@pytest.mark.parametrize(
    "raw",
    [
        "9780306406158",
        "0306406153",
        "12345",
        "abcdefghijklm",
        "",
        "٩٧٨٠٣٠٦٤٠٦١٥٧",  # the right digits, but Arabic-Indic ones: a GTIN is ASCII
        "０３０６４０６１５２",  # an ISBN-10 in full-width digits
    ],
)
def test_bad_check_digits_are_refused(raw: str) -> None:
    assert normalize_gtin(raw) is None


def test_tokens_fold_case_and_accents_and_split_punctuation() -> None:
    assert tokens("Crème-Brûlée, São PAULO_2027!") == ["creme", "brulee", "sao", "paulo", "2027"]


ASCII_TEXT = st.text(alphabet="aZ09_-. \t\x00!", max_size=80) | st.builds(
    lambda n, tail: "x" * n + tail, st.integers(60, 70), st.sampled_from(["", " Y", "_7"])
)


@given(ASCII_TEXT)
def test_ascii_text_gives_the_tokens_the_general_rule_gives(text: str) -> None:
    # the rule for any text: Unicode word characters less the underscore, at most MAX_TOKEN long
    expected = [t for t in re.findall(r"[^\W_]+", text.lower()) if len(t) <= MAX_TOKEN]
    assert tokens(text) == expected


def test_a_valid_draft_becomes_a_valid_offer_with_its_gtin_from_the_attribute() -> None:
    offer = _validate(_draft(attributes={"isbn": "0306406152"}))
    assert isinstance(offer, ValidOffer)
    assert offer.gtin == "9780306406157"
    assert offer.search_title == "a book"


def test_every_problem_is_reported_at_once() -> None:
    errors = _validate(_draft(sku="bad sku!", title=" ", quantity=-1, price_amount=-5))
    assert isinstance(errors, list)
    assert {e.field for e in errors} == {"sku", "title", "quantity", "price.amount"}


def test_unknown_currency_and_precision() -> None:
    unknown = _validate(_draft(price_currency="XXQ"), precision=None)
    assert isinstance(unknown, list) and unknown[0].code == "unknown_currency"
    precise = _validate(_draft(price_amount=None, price_decimal="1.999"))
    assert isinstance(precise, list) and precise[0].code == "currency_precision"
    both = _validate(_draft(price_decimal="1.99"))
    assert isinstance(both, list) and both[0].code == "invalid_price"


def test_the_content_hash_changes_only_with_content() -> None:
    first = _validate(_draft())
    again = _validate(_draft())
    cheaper = _validate(_draft(price_amount=999))
    assert isinstance(first, ValidOffer) and isinstance(again, ValidOffer)
    assert isinstance(cheaper, ValidOffer)
    assert first.content_hash == again.content_hash != cheaper.content_hash


@pytest.mark.parametrize(
    "attributes",
    [
        {"b": 1, "a": [2.5, "x"], "nested": {"z": None, "y": True}},
        {"name": 'Ærø — 東京 \u0001 "quoted" \\ tab\t', "emoji": "📚"},
        {"big": 2**70, "small": -(2**63)},  # past 64 bits: the json module's form
    ],
)
def test_the_content_hash_is_the_canonical_json_one(attributes: dict[str, Any]) -> None:
    """Hashes stored before the hash went through orjson stay valid: same canonical bytes."""
    draft = _draft(attributes=attributes)
    offer = _validate(draft)
    assert isinstance(offer, ValidOffer)
    canonical = json.dumps(
        ["cat_x", "A book", "", attributes, 1299, "EUR", 1, None, "active"],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hashlib.blake2b(canonical.encode(), digest_size=16)
    assert offer.content_hash == digest.hexdigest()


def test_attribute_rows_index_scalars_and_arrays() -> None:
    attributes = {"nights": 3, "city": "Lisbon", "tags": ["sea", "quiet"], "x": {"a": 1}}
    rows = attribute_rows(attributes, 7)
    assert sorted(rows) == [
        (7, "city", "Lisbon", None),
        (7, "nights", "3", 3.0),
        (7, "tags", "quiet", None),
        (7, "tags", "sea", None),
    ]


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet="ab1", max_size=3),
    st.text(alphabet="x", min_size=199, max_size=202),  # around the indexed length
)


@given(
    st.dictionaries(
        st.one_of(st.sampled_from(["city", "tags", "n"]), st.just("k" * 101)),
        st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.just("a"), scalars)),
        max_size=4,
    )
)
def test_attribute_rows_are_the_canonical_form_of_each_scalar_a_repeat_once(
    attributes: dict[str, Any],
) -> None:
    expected: dict[tuple[str, str], float | None] = {}
    for name, value in attributes.items():
        for item in value if isinstance(value, list) else [value]:
            indexed = canonical_scalar(item)
            if indexed is not None and len(name) <= 100:
                expected[(name, indexed[0])] = indexed[1]
    rows = attribute_rows(attributes, 7)
    assert rows == [(7, name, text, number) for (name, text), number in expected.items()]


def test_numeric_query_values_match_their_canonical_form() -> None:
    assert query_value_forms("3.0") == ["3.0", "3"]
    assert query_value_forms("007") == ["007", "7"]
    assert query_value_forms("Lisbon") == ["Lisbon"]
