"""Access rules: sides, roles and their permissions, key format, the supplier lifecycle."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from marketplane.kernel.errors import InvalidTransition


class Side(StrEnum):
    ADMIN = "admin"
    SUPPLY = "supply"
    STORE = "store"


class KeyKind(StrEnum):
    SECRET = "secret"  # noqa: S105 - a kind of key, not a password
    PUBLISHABLE = "publishable"  # store reads only; safe to ship in a browser


class Role(StrEnum):
    OWNER = "owner"
    SUPPLY = "supply"
    FINANCE = "finance"
    SUPPORT = "support"


class Permission(StrEnum):
    TEAM_READ = "team:read"
    TEAM_WRITE = "team:write"
    SUPPLIERS_READ = "suppliers:read"
    SUPPLIERS_WRITE = "suppliers:write"
    CLIENTS_READ = "clients:read"
    CLIENTS_WRITE = "clients:write"
    CATALOG_READ = "catalog:read"
    CATALOG_WRITE = "catalog:write"
    KEYS_WRITE = "keys:write"
    EVENTS_READ = "events:read"
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"  # refunds, decisions on a supplier's behalf
    MONEY_READ = "money:read"  # the ledger, terms
    MONEY_WRITE = "money:write"  # commercial terms


_READ = {
    Permission.TEAM_READ,
    Permission.SUPPLIERS_READ,
    Permission.CLIENTS_READ,
    Permission.CATALOG_READ,
    Permission.EVENTS_READ,
    Permission.ORDERS_READ,
    Permission.MONEY_READ,
}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.SUPPLY: frozenset(_READ | {Permission.SUPPLIERS_WRITE, Permission.CATALOG_WRITE}),
    Role.FINANCE: frozenset(
        _READ | {Permission.CLIENTS_WRITE, Permission.ORDERS_WRITE, Permission.MONEY_WRITE}
    ),
    Role.SUPPORT: frozenset(_READ),
}


def may(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


# Keys look like mk_live_<16-char lookup><32-char secret> (publishable: mk_pub_…).
KEY_PREFIX = {KeyKind.SECRET: "mk_live_", KeyKind.PUBLISHABLE: "mk_pub_"}
_LOOKUP_LEN = 16
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def mint_key(kind: KeyKind) -> tuple[str, str]:
    """A new key and its lookup id. The key itself is never stored."""
    lookup = _random(_LOOKUP_LEN)
    return f"{KEY_PREFIX[kind]}{lookup}{_random(32)}", lookup


def split_key(token: str) -> str | None:
    """The lookup id of a well-formed key, else None."""
    for prefix in KEY_PREFIX.values():
        if token.startswith(prefix):
            rest = token[len(prefix) :]
            if len(rest) == _LOOKUP_LEN + 32 and rest.isalnum():
                return rest[:_LOOKUP_LEN]
    return None


def hash_key(token: str) -> str:
    # Keys carry 280+ bits of randomness: a fast hash is enough (a slow one would tax every call).
    return hashlib.sha256(token.encode()).hexdigest()


def key_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(token), stored_hash)


class SupplierStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"


SUPPLIER_TRANSITIONS: dict[tuple[str, SupplierStatus], SupplierStatus] = {
    ("approve", SupplierStatus.PENDING): SupplierStatus.ACTIVE,
    ("approve", SupplierStatus.SUSPENDED): SupplierStatus.ACTIVE,
    ("suspend", SupplierStatus.PENDING): SupplierStatus.SUSPENDED,
    ("suspend", SupplierStatus.ACTIVE): SupplierStatus.SUSPENDED,
}


def next_supplier_status(current: SupplierStatus, action: str) -> SupplierStatus:
    target = SUPPLIER_TRANSITIONS.get((action, current))
    if target is None:
        raise InvalidTransition(
            f"cannot {action} a supplier that is {current}",
            extra={"current_status": str(current)},
        )
    return target


@dataclass(frozen=True, slots=True)
class ClientView:
    """What a client may see and how it prices: its configuration, not code."""

    client_id: str
    markup_bps: int
    allowed_suppliers: frozenset[str] | None
    allowed_categories: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved once per request from the bearer key."""

    key_id: str
    side: Side
    kind: KeyKind
    owner_id: str
    role: Role | None = None
    client: ClientView | None = None

    @property
    def scope(self) -> str:
        return self.key_id


@dataclass(frozen=True, slots=True)
class Supplier:
    id: str
    name: str
    email: str | None
    status: SupplierStatus
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    name: str
    markup_bps: int
    allowed_suppliers: list[str] | None
    allowed_categories: list[str] | None
    created_at: datetime
    updated_at: datetime
    order_hold_seconds: int | None = None  # how long its orders wait for payment (None: default)

    def view(self) -> ClientView:
        return ClientView(
            client_id=self.id,
            markup_bps=self.markup_bps,
            allowed_suppliers=None
            if self.allowed_suppliers is None
            else frozenset(self.allowed_suppliers),
            allowed_categories=None
            if self.allowed_categories is None
            else frozenset(self.allowed_categories),
        )


@dataclass(frozen=True, slots=True)
class Operator:
    id: str
    name: str
    email: str | None
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    side: Side
    kind: KeyKind
    owner_type: str
    owner_id: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    prefix: str


class Milestone(StrEnum):
    """A supplier's way from signed up to selling, as the integration checklist shows it."""

    KEY_CREATED = "key_created"
    MAPPING_SAVED = "mapping_saved"
    FIRST_FEED_VALIDATED = "first_feed_validated"
    FIRST_OFFER_LIVE = "first_offer_live"
    FIRST_ORDER_ACCEPTED = "first_order_accepted"


@dataclass(frozen=True, slots=True)
class Checklist:
    supplier_id: str
    created_at: datetime
    reached: dict[Milestone, datetime] = field(default_factory=dict)

    @property
    def integration_seconds(self) -> float | None:
        """Supplier created → first live offer: how long going live took."""
        live = self.reached.get(Milestone.FIRST_OFFER_LIVE)
        return None if live is None else (live - self.created_at).total_seconds()

    def steps(self) -> list[dict[str, object]]:
        return [
            {"name": str(m), "done": m in self.reached, "at": self.reached.get(m)}
            for m in Milestone
        ]
