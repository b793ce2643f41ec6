"""Catalog: categories (with an attribute JSON Schema), offers, products, and search.

Invariants: an offer is unique per (supplier, supplier SKU); its price is integer minor units in
an ISO 4217 currency with no more precision than the currency has; quantity ≥ 0; `version` grows
by one on every real change (an identical upsert changes nothing); the search index changes in
the same transaction as the offer. Offers with the same GTIN/ISBN share one product.
"""
