"""Catalog routes, one module per side: admin, supply, store."""
