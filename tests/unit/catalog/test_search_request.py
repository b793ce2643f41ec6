from __future__ import annotations

from marketplane.catalog.model import SearchRequest, Sort, parse_search


def _parse(**params: str) -> SearchRequest:
    parsed = parse_search(list(params.items()))
    assert isinstance(parsed, SearchRequest), parsed
    return parsed


def test_defaults_newest_first_and_relevance_with_a_query() -> None:
    assert _parse().sort is Sort.NEWEST
    assert _parse(q="Golden River").sort is Sort.RELEVANCE
    assert _parse(q="Golden River").terms == ("golden", "river")


def test_attribute_filters_and_ranges() -> None:
    parsed = parse_search(
        [
            ("attr.city", "Lisbon"),
            ("attr.city", "Porto"),
            ("attr.nights_min", "3"),
            ("attr.nights_max", "7"),
        ]
    )
    assert isinstance(parsed, SearchRequest)
    assert parsed.attr_equals == (("city", ("Lisbon", "Porto")),)
    assert parsed.attr_ranges == (("nights", 3.0, 7.0),)


def test_bad_parameters_name_their_field() -> None:
    errors = parse_search(
        [
            ("limit", "0"),
            ("sort", "cheapest"),
            ("fields", "title,cost"),
            ("attr.nights_min", "x"),
            ("price_min", "-1"),
            ("facets", "colour"),
        ]
    )
    assert isinstance(errors, list)
    assert {e.field for e in errors} == {
        "limit",
        "sort",
        "fields",
        "attr.nights_min",
        "price_min",
        "facets",
    }


def test_fields_always_include_the_id() -> None:
    assert _parse(fields="title").fields == ("id", "title")


def test_the_fingerprint_ignores_paging() -> None:
    assert (
        _parse(q="a", limit="5").fingerprint_params()
        == _parse(q="a", limit="50").fingerprint_params()
    )
    assert _parse(q="a").fingerprint_params() != _parse(q="b").fingerprint_params()


def test_free_text_parameters_over_their_limit_are_refused_not_cut() -> None:
    errors = parse_search([("q", "a" * 201), ("cursor", "c" * 501)])
    assert isinstance(errors, list)
    assert {(e.field, e.code) for e in errors} == {("q", "too_long"), ("cursor", "too_long")}
