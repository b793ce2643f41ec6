from __future__ import annotations

import pytest

from marketplane.access.model import (
    KeyKind,
    Permission,
    Role,
    SupplierStatus,
    hash_key,
    key_matches,
    may,
    mint_key,
    next_supplier_status,
    split_key,
)
from marketplane.kernel.errors import InvalidTransition


def test_keys_are_prefixed_and_only_their_hash_is_needed() -> None:
    token, lookup = mint_key(KeyKind.SECRET)
    assert token.startswith("mk_live_")
    assert split_key(token) == lookup
    assert key_matches(token, hash_key(token))
    assert not key_matches(token + "x", hash_key(token))
    publishable, _ = mint_key(KeyKind.PUBLISHABLE)
    assert publishable.startswith("mk_pub_")


@pytest.mark.parametrize(
    "token", ["", "mk_live_short", "sk_live_" + "a" * 48, "mk_live_" + "!" * 48]
)
def test_malformed_keys_have_no_lookup(token: str) -> None:
    assert split_key(token) is None


@pytest.mark.parametrize(
    ("current", "action", "target"),
    [
        (SupplierStatus.PENDING, "approve", SupplierStatus.ACTIVE),
        (SupplierStatus.ACTIVE, "suspend", SupplierStatus.SUSPENDED),
        (SupplierStatus.SUSPENDED, "approve", SupplierStatus.ACTIVE),
        (SupplierStatus.PENDING, "suspend", SupplierStatus.SUSPENDED),
    ],
)
def test_supplier_lifecycle(current: SupplierStatus, action: str, target: SupplierStatus) -> None:
    assert next_supplier_status(current, action) is target


@pytest.mark.parametrize(
    ("current", "action"),
    [(SupplierStatus.ACTIVE, "approve"), (SupplierStatus.SUSPENDED, "suspend")],
)
def test_invalid_transitions_name_the_current_status(current: SupplierStatus, action: str) -> None:
    with pytest.raises(InvalidTransition) as error:
        next_supplier_status(current, action)
    assert error.value.extra == {"current_status": str(current)}


def test_roles_limit_permissions() -> None:
    assert all(may(Role.OWNER, p) for p in Permission)
    assert may(Role.SUPPLY, Permission.SUPPLIERS_WRITE)
    assert not may(Role.SUPPLY, Permission.CLIENTS_WRITE)
    assert may(Role.FINANCE, Permission.CLIENTS_WRITE)
    assert not may(Role.FINANCE, Permission.CATALOG_WRITE)
    assert not any(may(Role.SUPPORT, p) for p in Permission if p.value.endswith(":write"))
