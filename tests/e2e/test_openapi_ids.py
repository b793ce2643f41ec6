"""Operation ids are part of the contract: generated clients name their methods after them."""

from __future__ import annotations

from marketplane.http.app import create_app

# Add new operations here; never rename or remove one.
KNOWN = {
    ("POST", "/admin/v1/suppliers/{supplier_id}/approve"): "admin_approve_supplier",
    ("POST", "/admin/v1/categories"): "admin_create_category",
    ("POST", "/admin/v1/clients"): "admin_create_client",
    ("POST", "/admin/v1/clients/{client_id}/keys"): "admin_create_client_key",
    ("POST", "/admin/v1/operators"): "admin_create_operator",
    ("POST", "/admin/v1/operators/{operator_id}/keys"): "admin_create_operator_key",
    ("POST", "/admin/v1/suppliers"): "admin_create_supplier",
    ("POST", "/admin/v1/suppliers/{supplier_id}/keys"): "admin_create_supplier_key",
    ("GET", "/admin/v1/categories/{ref}"): "admin_get_category",
    ("GET", "/admin/v1/clients/{client_id}"): "admin_get_client",
    ("GET", "/admin/v1/offers/{offer_id}"): "admin_get_offer",
    ("GET", "/admin/v1/suppliers/{supplier_id}"): "admin_get_supplier",
    ("GET", "/admin/v1/categories"): "admin_list_categories",
    ("GET", "/admin/v1/clients"): "admin_list_clients",
    ("GET", "/admin/v1/keys"): "admin_list_keys",
    ("GET", "/admin/v1/offers"): "admin_list_offers",
    ("GET", "/admin/v1/operators"): "admin_list_operators",
    ("GET", "/admin/v1/suppliers"): "admin_list_suppliers",
    ("POST", "/admin/v1/keys/{key_id}/revoke"): "admin_revoke_key",
    ("GET", "/admin/v1/suppliers/{supplier_id}/history"): "admin_supplier_history",
    ("POST", "/admin/v1/suppliers/{supplier_id}/suspend"): "admin_suspend_supplier",
    ("PATCH", "/admin/v1/categories/{ref}"): "admin_update_category",
    ("PATCH", "/admin/v1/clients/{client_id}"): "admin_update_client",
    ("GET", "/healthz"): "healthz",
    ("GET", "/readyz"): "readyz",
    ("GET", "/store/v1/offers/{offer_id}"): "store_get_offer",
    ("GET", "/store/v1/products/{product_id}"): "store_get_product",
    ("GET", "/store/v1/categories"): "store_list_categories",
    ("GET", "/store/v1/offers"): "store_list_offers",
    ("POST", "/supply/v1/offers/batch"): "supply_batch_offers",
    ("DELETE", "/supply/v1/offers/{sku}"): "supply_delete_offer",
    ("GET", "/supply/v1/offers/{sku}"): "supply_get_offer",
    ("GET", "/supply/v1/categories"): "supply_list_categories",
    ("GET", "/supply/v1/offers"): "supply_list_offers",
    ("PUT", "/supply/v1/offers/{sku}"): "supply_put_offer",
    ("GET", "/supply/v1/feed-mapping"): "supply_get_mapping",
    ("PUT", "/supply/v1/feed-mapping"): "supply_put_mapping",
    ("POST", "/supply/v1/feed-mapping/preview"): "supply_preview_feed",
    ("POST", "/supply/v1/feeds"): "supply_upload_feed",
    ("GET", "/supply/v1/feeds"): "supply_list_feeds",
    ("GET", "/supply/v1/feeds/{run_id}"): "supply_get_feed",
    ("GET", "/supply/v1/feeds/{run_id}/errors"): "supply_feed_errors",
    ("GET", "/supply/v1/feeds/{run_id}/error-report"): "supply_feed_error_report",
    ("POST", "/supply/v1/feeds/{run_id}/confirm"): "supply_confirm_feed",
    ("POST", "/supply/v1/feeds/{run_id}/discard"): "supply_discard_feed",
    ("GET", "/supply/v1/feed-sources"): "supply_list_feed_sources",
    ("POST", "/supply/v1/feed-sources"): "supply_add_feed_source",
    ("POST", "/supply/v1/feed-sources/{source_id}/disable"): "supply_disable_feed_source",
    ("GET", "/supply/v1/integration"): "supply_integration",
    ("GET", "/admin/v1/feeds"): "admin_list_feeds",
    ("GET", "/admin/v1/feeds/{run_id}"): "admin_get_feed",
    ("GET", "/admin/v1/feeds/{run_id}/errors"): "admin_feed_errors",
    ("GET", "/admin/v1/feeds/{run_id}/error-report"): "admin_feed_error_report",
    ("POST", "/admin/v1/suppliers/{supplier_id}/feeds"): "admin_upload_feed",
    ("POST", "/admin/v1/feeds/{run_id}/confirm"): "admin_confirm_feed",
    ("POST", "/admin/v1/feeds/{run_id}/discard"): "admin_discard_feed",
    ("GET", "/admin/v1/suppliers/{supplier_id}/integration"): "admin_supplier_integration",
    ("GET", "/admin/v1/feed-metrics"): "admin_feed_metrics",
    ("GET", "/store/v1/events"): "store_list_events",
    ("GET", "/store/v1/stream"): "store_stream",
    ("GET", "/supply/v1/events"): "supply_list_events",
    ("GET", "/admin/v1/events"): "admin_list_events",
}


def test_operation_ids_are_stable_and_unique() -> None:
    spec = create_app().openapi()
    current = {
        (method.upper(), path): operation["operationId"]
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }
    for route, operation_id in KNOWN.items():
        assert current.get(route) == operation_id, route
    assert len(set(current.values())) == len(current)


def test_every_side_lives_under_its_own_prefix() -> None:
    spec = create_app().openapi()
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            side = operation["operationId"].split("_", 1)[0]
            if side in ("admin", "supply", "store"):
                assert path.startswith(f"/{side}/v1/"), path
