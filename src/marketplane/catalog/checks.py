"""Checking offers against their category (CPU only, no database): what a feed's preparing
process imports, so it stays small."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import fastjsonschema

from marketplane import currency
from marketplane.catalog.model import Category, OfferDraft, SchemaCheck, ValidOffer, validate_offer
from marketplane.kernel.errors import FieldError

_validators: dict[tuple[str, int], Any] = {}


def schema_check(category: Category) -> SchemaCheck:
    """A compiled validator for the category's attribute schema (compiled once per version)."""
    cache_key = (category.id, category.schema_version)
    validate = _validators.get(cache_key)
    if validate is None:
        validate = fastjsonschema.compile(category.attribute_schema)
        _validators[cache_key] = validate

    def check(attributes: dict[str, Any]) -> list[FieldError]:
        try:
            validate(attributes)
        except fastjsonschema.JsonSchemaValueException as exc:
            path = ".".join(str(p) for p in exc.path[1:])
            where = f"attributes.{path}" if path else "attributes"
            return [FieldError(where, f"schema_{exc.rule or 'violation'}", exc.message)]
        return []

    return check


def check_drafts(
    drafts: Sequence[OfferDraft], categories: dict[str, Category]
) -> list[ValidOffer | list[FieldError]]:
    """Each draft checked against every rule (CPU only): the offer as it would be stored, or its
    errors. `categories` by id and by slug, as `categories_by_ref` gives them."""
    checked: list[ValidOffer | list[FieldError]] = []
    checks: dict[str, SchemaCheck] = {}  # by category reference, for these drafts
    precisions: dict[str, int | None] = {}
    for draft in drafts:
        category = categories.get(draft.category)
        check = checks.get(draft.category)
        if check is None:
            check = checks[draft.category] = schema_check(category) if category else _nothing
        code = draft.price_currency
        if code not in precisions:
            precisions[code] = currency.precision(code)
        checked.append(
            validate_offer(
                draft,
                category=category,
                precision=precisions[code],
                check_attributes=check,
            )
        )
    return checked


def _nothing(_: dict[str, Any]) -> list[FieldError]:
    return []
