"""From a feed's rows to offer drafts: a supplier's saved mapping, checked once, applied per row.

A mapping names, for each offer field and category attribute, where its value comes from:

    {"fields": {"sku": "id", "title": "name", "price": {"column": "price_eur"},
                "currency": {"value": "EUR"}, "category": {"value": "books"}},
     "attributes": {"author": "writer", "nights": {"path": "stay.nights"},
                    "weight_g": {"column": "weight_kg", "scale": 1000}}}

A source is a column name (a string, or {"column": …}), a JMESPath expression over a JSON row
({"path": …}) or a constant ({"value": …}); optional: "type" (string, integer, number, boolean,
list), "scale" (a factor), "units" (price only: "major", the default, as in "12.99"; or "minor",
as in 1299), "separator" (lists, default ","), "default" (when the row has no value).

Without a mapping, or for what it leaves out, columns named after the fields map to them
(`sku`, `title`, `description`, `category`, `price`, `price_amount`, `currency`, `quantity`,
`status`, `delete`), `attr.<name>` columns to attributes, and a JSON row shaped like the supply
API's offer body (`price: {amount|decimal, currency}`, `attributes: {…}`) maps as it is.
Attribute values are typed by the category's schema: a CSV's "2001" is 2001 where the schema says
integer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from marketplane.catalog.model import OfferDraft, OfferStatus
from marketplane.kernel.errors import FieldError, ValidationFailed

FIELDS = (
    "sku",
    "title",
    "description",
    "category",
    "price",
    "price_amount",
    "currency",
    "quantity",
    "status",
    "delete",
)
TYPES = ("string", "integer", "number", "boolean", "list")
_OPTIONS = {"column", "path", "value", "type", "scale", "units", "separator", "default"}
_TRUE = {"1", "true", "yes", "y", "x", "t", "deleted", "delete"}
_FALSE = {"0", "false", "no", "n", "f", ""}
ATTR_PREFIXES = ("attr.", "attributes.")


@dataclass(frozen=True, slots=True)
class Source:
    column: str | None = None
    path: Any = None  # a compiled JMESPath expression
    expression: str | None = None
    value: Any = None
    constant: bool = False
    type: str | None = None
    scale: Decimal | None = None
    units: str = "major"
    separator: str = ","
    default: Any = None

    def read(self, row: Mapping[str, Any]) -> Any:
        if self.constant:
            return self.value
        found = row.get(self.column) if self.column is not None else self.path.search(row)
        if found is None or found == "":
            return self.default
        return found


def _source(where: str, spec: Any, errors: list[FieldError], *, price: bool = False) -> Source:
    if isinstance(spec, str):
        spec = {"column": spec}
    if not isinstance(spec, dict):
        errors.append(FieldError(where, "invalid_source", "a column name or an object"))
        return Source(constant=True)
    unknown = sorted(set(spec) - _OPTIONS)
    if unknown:
        errors.append(FieldError(where, "unknown_option", f"unknown: {', '.join(unknown)}"))
    kinds = [k for k in ("column", "path", "value") if k in spec]
    if len(kinds) != 1:
        errors.append(FieldError(where, "invalid_source", "exactly one of column, path or value"))
        return Source(constant=True)
    options: dict[str, Any] = {}
    kind = spec.get("type")
    if kind is not None and kind not in TYPES:
        errors.append(FieldError(f"{where}.type", "invalid_type", f"one of {', '.join(TYPES)}"))
    options["type"] = kind
    if "scale" in spec:
        try:
            options["scale"] = Decimal(str(spec["scale"]))
        except InvalidOperation:
            errors.append(FieldError(f"{where}.scale", "invalid_number", "a number"))
    units = spec.get("units", "major")
    if units not in ("major", "minor") or ("units" in spec and not price):
        errors.append(FieldError(f"{where}.units", "invalid_units", "price only: major or minor"))
    options["units"] = units
    separator = spec.get("separator", ",")
    if not isinstance(separator, str) or not separator:
        errors.append(FieldError(f"{where}.separator", "invalid_separator", "a non-empty string"))
        separator = ","
    options["separator"] = separator
    options["default"] = spec.get("default")
    if "column" in spec:
        if not isinstance(spec["column"], str) or not spec["column"]:
            errors.append(FieldError(f"{where}.column", "invalid_column", "a column name"))
        return Source(column=str(spec["column"]), **options)
    if "path" in spec:
        try:
            compiled = jmespath.compile(str(spec["path"]))
        except JMESPathError as exc:
            errors.append(FieldError(f"{where}.path", "invalid_path", f"JMESPath: {exc}"))
            return Source(constant=True)
        return Source(path=compiled, expression=str(spec["path"]), **options)
    return Source(value=spec["value"], constant=True, **options)


@dataclass(frozen=True, slots=True)
class FeedMapping:
    """A checked mapping: field sources and attribute sources."""

    fields: dict[str, Source]
    attributes: dict[str, Source]
    spec: dict[str, Any]

    @property
    def columns(self) -> set[str]:
        named = [*self.fields.values(), *self.attributes.values()]
        return {s.column for s in named if s.column is not None}


def parse_mapping(spec: Any) -> FeedMapping:
    """Checks a mapping as a supplier saves it; every problem is reported with its place."""
    errors: list[FieldError] = []
    if not isinstance(spec, dict):
        raise ValidationFailed(
            "a mapping is an object", errors=[FieldError("mapping", "invalid", "an object")]
        )
    unknown = sorted(set(spec) - {"fields", "attributes"})
    if unknown:
        errors.append(FieldError("mapping", "unknown_key", f"unknown: {', '.join(unknown)}"))
    raw_fields = spec.get("fields") or {}
    raw_attrs = spec.get("attributes") or {}
    if not isinstance(raw_fields, dict) or not isinstance(raw_attrs, dict):
        raise ValidationFailed(
            "fields and attributes are objects",
            errors=[FieldError("mapping", "invalid", "fields and attributes are objects")],
        )
    fields: dict[str, Source] = {}
    for name, source in raw_fields.items():
        if name not in FIELDS:
            errors.append(
                FieldError(f"fields.{name}", "unknown_field", f"one of {', '.join(FIELDS)}")
            )
            continue
        fields[name] = _source(f"fields.{name}", source, errors, price=name == "price")
    attributes = {
        name: _source(f"attributes.{name}", source, errors) for name, source in raw_attrs.items()
    }
    if errors:
        raise ValidationFailed(f"the mapping is not valid: {errors[0].message}", errors=errors)
    return FeedMapping(fields=fields, attributes=attributes, spec=spec)


EMPTY = FeedMapping(fields={}, attributes={}, spec={})


def missing_columns(mapping: FeedMapping, header: list[str]) -> list[str]:
    return sorted(mapping.columns - set(header))


# --- applying a mapping to rows --------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, error: FieldError, value: Any) -> None:
        self.error, self.value = error, value


def _integer(where: str, value: Any) -> int:
    if isinstance(value, bool):
        raise _Bad(FieldError(where, "invalid_integer", "a whole number"), value)
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _Bad(FieldError(where, "invalid_integer", "a whole number"), value) from None
    if number != number.to_integral_value():
        raise _Bad(FieldError(where, "invalid_integer", "a whole number"), value)
    return int(number)


def _number(where: str, value: Any) -> int | float:
    if isinstance(value, bool):
        raise _Bad(FieldError(where, "invalid_number", "a number"), value)
    if isinstance(value, int | float):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _Bad(FieldError(where, "invalid_number", "a number"), value) from None
    if not number.is_finite():
        raise _Bad(FieldError(where, "invalid_number", "a finite number"), value)
    return int(number) if number == number.to_integral_value() else float(number)


def _boolean(where: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Bad(FieldError(where, "invalid_boolean", "true/false, yes/no or 1/0"), value)


def _scaled(where: str, source: Source, value: Any) -> Any:
    if source.scale is None or value is None:
        return value
    try:
        scaled = Decimal(str(value).strip()) * source.scale
    except InvalidOperation:
        raise _Bad(FieldError(where, "invalid_number", "a number to scale"), value) from None
    return int(scaled) if scaled == scaled.to_integral_value() else float(scaled)


def _typed(where: str, kind: str | None, source: Source, value: Any) -> Any:
    if value is None:
        return None
    value = _scaled(where, source, value)
    if kind == "integer":
        return _integer(where, value)
    if kind == "number":
        return _number(where, value)
    if kind == "boolean":
        return _boolean(where, value)
    if kind == "list":
        if isinstance(value, list):
            return value
        return [part.strip() for part in str(value).split(source.separator) if part.strip()]
    if kind == "string":
        return value if isinstance(value, str) else str(value)
    return value


def schema_types(attribute_schema: Mapping[str, Any]) -> dict[str, str]:
    """Attribute name → the type a feed value is converted to, from a category's JSON Schema."""
    types: dict[str, str] = {}
    for name, prop in (attribute_schema.get("properties") or {}).items():
        declared = prop.get("type") if isinstance(prop, dict) else None
        if isinstance(declared, list):
            declared = next((t for t in declared if t != "null"), None)
        types[name] = ("list" if declared == "array" else str(declared)) if declared else "any"
    return types


@dataclass(slots=True)  # not frozen, as OfferDraft
class Mapped:
    """One row mapped: the draft to upsert, or a delete, or what is wrong."""

    sku: str | None
    draft: OfferDraft | None = None
    delete: bool = False
    errors: tuple[tuple[FieldError, Any], ...] = ()


_PLAIN = Source()
# A value of exactly this class needs no conversion to the type (`_typed` returns it as it is).
_SAME_AS: dict[str | None, type] = {"string": str, "integer": int, "list": list}
_AS_IT_IS = (None, "any")  # attribute types that convert nothing


class Mapper:
    """Applies a mapping to rows. `types_for(category)` gives a category's attribute types (None
    for an unknown category, which validation then reports)."""

    def __init__(
        self,
        mapping: FeedMapping,
        *,
        types_for: Callable[[str], dict[str, str] | None],
        implicit: bool = True,
    ) -> None:
        self.mapping = mapping
        self.types_for = types_for
        self.implicit = implicit

    def _field(self, row: Mapping[str, Any], name: str) -> tuple[Source, Any]:
        source = self.mapping.fields.get(name)
        if source is not None:
            return source, source.read(row)
        if self.implicit:
            value = row.get(name)
            return _PLAIN, None if value == "" else value
        return _PLAIN, None

    def map(self, row: Mapping[str, Any]) -> Mapped:
        bad: list[tuple[FieldError, Any]] = []

        def get(name: str, kind: str) -> Any:
            source, value = self._field(row, name)
            if value is None:
                return None
            if source is _PLAIN and value.__class__ is _SAME_AS.get(kind):
                return value  # already of its type: as it is
            try:
                return _typed(name, source.type or kind, source, value)
            except _Bad as exc:
                bad.append((exc.error, exc.value))
                return None

        sku = get("sku", "string")
        if sku is not None:
            sku = sku.strip()
        if not sku:
            return Mapped(None, errors=((FieldError("sku", "required", "no sku"), None),))
        if get("delete", "boolean"):
            return Mapped(sku, delete=True, errors=tuple(bad))
        category = get("category", "string")
        price_source, price = self._field(row, "price")
        price_amount = get("price_amount", "integer")
        currency = get("currency", "string")
        price_decimal: str | None = None
        if isinstance(price, dict) and price_source is _PLAIN:  # the API's body shape
            currency = currency or price.get("currency")
            if price.get("amount") is not None:
                try:
                    price_amount = _integer("price.amount", price["amount"])
                except _Bad as exc:
                    bad.append((exc.error, exc.value))
                price = None
            else:
                price = price.get("decimal")
        if price is not None:
            try:
                price = _scaled("price", price_source, price)
                if price_source.units == "minor":
                    price_amount = _integer("price", price)
                else:
                    price_decimal = str(Decimal(str(price).strip()))
            except (_Bad, InvalidOperation) as exc:
                error = (
                    exc.error
                    if isinstance(exc, _Bad)
                    else FieldError("price", "invalid_price", "a price such as 12.99")
                )
                bad.append((error, price))
        quantity = get("quantity", "integer")
        status_text = get("status", "string")
        status = OfferStatus.ACTIVE
        if status_text is not None:
            try:
                status = OfferStatus(status_text.strip().lower())
            except ValueError:
                bad.append(
                    (FieldError("status", "invalid_status", "active or inactive"), status_text)
                )
            if status is OfferStatus.DELETED:
                return Mapped(sku, delete=True, errors=tuple(bad))
        attributes = self._attributes(row, str(category) if category else None, bad)
        if bad:
            return Mapped(sku, errors=tuple(bad))
        return Mapped(
            sku,
            draft=OfferDraft(
                sku=sku,
                category=str(category or ""),
                title=str(get("title", "string") or ""),
                description=str(get("description", "string") or ""),
                price_currency=str(currency or ""),
                price_amount=price_amount,
                price_decimal=price_decimal,
                quantity=quantity if quantity is not None else 0,
                attributes=attributes,
                status=status,
            ),
        )

    def _attributes(
        self, row: Mapping[str, Any], category: str | None, bad: list[tuple[FieldError, Any]]
    ) -> dict[str, Any]:
        types = (self.types_for(category) if category else None) or {}
        found: dict[str, Any] = {}
        if self.implicit:
            nested = row.get("attributes")
            if isinstance(nested, dict):
                found.update(nested)
            for column, value in row.items():
                if column.startswith(ATTR_PREFIXES):
                    prefix = next(p for p in ATTR_PREFIXES if column.startswith(p))
                    found[column[len(prefix) :]] = value
        sources = self.mapping.attributes
        for name, source in sources.items():
            found[name] = source.read(row)
        attributes: dict[str, Any] = {}
        for name, value in found.items():
            if value is None or value == "":
                continue
            source = sources.get(name, _PLAIN)
            kind = source.type or types.get(name)
            if source is _PLAIN and (kind in _AS_IT_IS or value.__class__ is _SAME_AS.get(kind)):
                attributes[name] = value  # nothing to convert
                continue
            try:
                attributes[name] = _typed(
                    f"attributes.{name}", None if kind == "any" else kind, source, value
                )
            except _Bad as exc:
                bad.append((exc.error, exc.value))
        return attributes
