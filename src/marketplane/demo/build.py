"""Builds the demo marketplace through the same services the API uses."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, TaskID

from marketplane.access import service as access
from marketplane.access.model import KeyKind
from marketplane.bootstrap import Platform, migrated
from marketplane.catalog import service as catalog
from marketplane.catalog.model import OfferDraft
from marketplane.db.uow import UnitOfWork
from marketplane.demo import data
from marketplane.money import billing, payouts
from marketplane.money import service as money
from marketplane.money.model import BidBasis, PayoutTrigger, Schedule
from marketplane.orders import decisions, jobs
from marketplane.orders import service as orders
from marketplane.orders.model import LineRequest
from marketplane.orders.payments import TestProvider
from marketplane.orders.transitions import Actor
from marketplane.settings import Settings

BATCH = 1000


@dataclass
class DemoSummary:
    operator_key: str
    supplier_ids: dict[str, str] = field(default_factory=dict)
    supplier_keys: dict[str, str] = field(default_factory=dict)
    client_keys: dict[str, str] = field(default_factory=dict)
    client_ids: dict[str, str] = field(default_factory=dict)
    offers: int = 0
    orders: int = 0
    payouts: int = 0

    def walkthrough(self, base: str) -> str:
        web = self.client_keys["web shop (secret)"]
        pub = self.client_keys["web shop (publishable)"]
        travel = self.client_keys["travel affiliate (secret)"]
        supplier = self.supplier_keys["Paper Lane Books"]
        lines = [
            f"marketplane demo: {self.offers:,} offers. Try:",
            "",
            "# full-text search, newest first, with facets (web shop client)",
            f'curl -s "{base}/store/v1/offers?q=river&facets=category,attr.author" '
            f'-H "Authorization: Bearer {web}"',
            "# attribute filters and price sort (publishable key: read-only, browser-safe)",
            f'curl -s "{base}/store/v1/offers?category=stays&attr.city=Lisbon&attr.nights_min=3'
            f'&sort=price&limit=5" -H "Authorization: Bearer {pub}"',
            "# the travel affiliate sees only stays, with its 5% markup",
            f'curl -s "{base}/store/v1/offers?limit=3&fields=title,price" '
            f'-H "Authorization: Bearer {travel}"',
            "# follow the web shop's changes live (in another terminal), then update an offer",
            f'curl -N "{base}/store/v1/stream?category=books&key={pub}"',
            "# a supplier updates one of its offers",
            f"curl -s -X PUT {base}/supply/v1/offers/PLB-0000001 "
            f'-H "Authorization: Bearer {supplier}" -H "Content-Type: application/json" '
            """-d '{"category":"books","title":"The Golden River","price":{"decimal":"9.99","""
            """"currency":"EUR"},"quantity":3,"attributes":{"isbn":"9780306406157","""
            """"author":"Ada Hartmann","year":2001}}'""",
            "# the operator's view",
            f'curl -s "{base}/admin/v1/suppliers" -H "Authorization: Bearer {self.operator_key}"',
            f"# {self.orders} orders in every state: the web shop's, and a supplier's parts",
            f'curl -s "{base}/store/v1/orders?limit=3" -H "Authorization: Bearer {web}"',
            f'curl -s "{base}/supply/v1/orders?status=awaiting_acceptance" '
            f'-H "Authorization: Bearer {supplier}"',
            f"# the money: {self.payouts} payout made, the supplier's statement, the ledger",
            f'curl -s "{base}/supply/v1/payouts" -H "Authorization: Bearer {supplier}"',
            f'curl -s "{base}/supply/v1/statements?currency=EUR&format=csv" '
            f'-H "Authorization: Bearer {supplier}"',
            f'curl -s "{base}/admin/v1/ledger/accounts" '
            f'-H "Authorization: Bearer {self.operator_key}"',
            "# Chapter House bids for sponsored placement on books: its offers come first",
            f'curl -s "{base}/store/v1/offers?category=books&limit=4&fields=title,supplier" '
            f'-H "Authorization: Bearer {web}"',
            "",
            f"API docs: {base}/docs",
        ]
        return "\n".join(lines)


SUPPLIERS = (
    ("Paper Lane Books", True),
    ("Chapter House", True),
    ("Harbor Stays", True),
    ("Nomad Rooms", False),  # pending: its offers are a sandbox, invisible to clients
)


def chunks(drafts: Iterable[OfferDraft], size: int) -> Iterator[list[OfferDraft]]:
    iterator = iter(drafts)
    while chunk := list(islice(iterator, size)):
        yield chunk


def offer_plan(offers: int) -> list[tuple[str, Iterator[OfferDraft]]]:
    """Which supplier sells which generated offers: books from two suppliers sharing a pool of
    titles (so products have buy boxes), stays from a third, the rest from the pending one."""
    pool = data.book_pool(7, max(1000, offers // 20))
    share = offers // 4
    return [
        ("Paper Lane Books", data.books(1, share, pool=pool, prefix="PLB")),
        ("Chapter House", data.books(2, share, pool=pool, prefix="CH")),
        ("Harbor Stays", data.stays(3, share, prefix="HS")),
        ("Nomad Rooms", data.stays(4, offers - 3 * share, prefix="NR")),
    ]


async def create_marketplace(uow: UnitOfWork) -> DemoSummary:
    """Everything but the offers: the owner, categories, suppliers, clients and their keys."""
    owner = await access.bootstrap_owner(uow)
    if owner is None:
        raise RuntimeError("the database already has a team; build the demo on an empty one")
    summary = DemoSummary(operator_key=owner[1])
    await catalog.create_category(
        uow, slug="books", name="Books", attribute_schema=data.BOOKS_SCHEMA
    )
    stays = await catalog.create_category(
        uow, slug="stays", name="Stays", attribute_schema=data.STAYS_SCHEMA
    )
    for name, approve in SUPPLIERS:
        supplier = await access.create_supplier(uow, name=name, email=None)
        if approve:
            supplier = await access.transition_supplier(
                uow, supplier_id=supplier.id, action="approve", actor=owner[0].id
            )
        await catalog.apply_supplier_status(uow, supplier_id=supplier.id, status=supplier.status)
        summary.supplier_ids[name] = supplier.id
        _, token = await access.issue_key(uow, owner_type="supplier", owner_id=supplier.id)
        summary.supplier_keys[name] = token
    web = await access.create_client(
        uow, name="Web shop", markup_bps=0, allowed_suppliers=None, allowed_categories=None
    )
    summary.client_ids["web shop"] = web.id
    travel = await access.create_client(
        uow,
        name="Travel affiliate",
        markup_bps=500,
        allowed_suppliers=None,
        allowed_categories=[stays.id],
    )
    for label, client_id, kind in (
        ("web shop (secret)", web.id, KeyKind.SECRET),
        ("web shop (publishable)", web.id, KeyKind.PUBLISHABLE),
        ("travel affiliate (secret)", travel.id, KeyKind.SECRET),
    ):
        _, token = await access.issue_key(uow, owner_type="client", owner_id=client_id, kind=kind)
        summary.client_keys[label] = token
    return summary


async def _load(
    platform: Platform,
    supplier_id: str,
    drafts: Iterable[OfferDraft],
    progress: Progress,
    task: TaskID,
) -> int:
    loaded = 0
    for chunk in chunks(drafts, BATCH):
        async with platform.uow() as uow:
            results = await catalog.upsert_offers(
                uow, supplier_id=supplier_id, drafts=chunk, source="demo"
            )
            await uow.commit()
        failed = [r for r in results if r.outcome == "failed"]
        if failed:
            raise RuntimeError(f"demo data failed validation: {failed[0].errors}")
        loaded += len(chunk)
        progress.advance(task, len(chunk))
    return loaded


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def build_demo(
    settings: Settings, *, path: Path, offers: int, console: Console
) -> DemoSummary:
    _remove_database(path)
    platform = await migrated(settings)
    try:
        async with platform.uow() as uow:
            summary = await create_marketplace(uow)
            await uow.commit()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("generating offers", total=offers)
            for name, drafts in offer_plan(offers):
                summary.offers += await _load(
                    platform, summary.supplier_ids[name], drafts, progress, task
                )
        await _demo_terms(platform, summary)
        summary.orders = await _demo_orders(platform, summary)
        summary.payouts = await _demo_payouts(platform, summary)
    finally:
        await platform.close()
    return summary


async def _demo_terms(platform: Platform, summary: DemoSummary) -> None:
    """12% commission, a subscription plan for Chapter House, and its bid for placement."""
    chapter = summary.supplier_ids["Chapter House"]
    async with platform.uow() as uow:
        await money.add_commission_rule(
            uow, supplier_id=None, category_id=None, rate_bps=1200, fixed=0, currency=None,
            effective_from=None, effective_to=None,
        )  # fmt: skip
        plan = await billing.create_plan(uow, name="Pro", amount=2900, currency="EUR")
        await billing.subscribe(uow, supplier_id=chapter, plan_id=plan.id, start=None)
        books = await catalog.get_category(uow, ref="books")
        await billing.place_bid(
            uow, supplier_id=chapter, category_id=books.id, basis=BidBasis.CLICK, amount=25,
            currency="EUR",
        )  # fmt: skip
        await uow.commit()


async def _demo_payouts(platform: Platform, summary: DemoSummary) -> int:
    """The fulfilled orders' money released (the demo does not wait for the hold), and Paper
    Lane Books paid what it is owed."""
    await jobs.release_funds(platform.uow, hold_seconds=0)
    supplier = summary.supplier_ids["Paper Lane Books"]
    async with platform.uow() as uow:
        await payouts.configure(
            uow, platform.payouts, supplier_id=supplier, destination="acct_test_ok",
            schedule=Schedule.WEEKLY, minimum=100,
        )  # fmt: skip
        payout = await payouts.open_payout(
            uow, supplier_id=supplier, currency="EUR", trigger=PayoutTrigger.SUPPLIER
        )
        await uow.commit()
    await payouts.send(platform.uow, platform.payouts, payout)
    return 1


async def _demo_orders(platform: Platform, summary: DemoSummary) -> int:
    """A few web shop orders, left in each state a supplier order can be in."""
    async with platform.uow() as uow:
        web = await access.get_client(uow, client_id=summary.client_ids["web shop"])
        books = {}
        for name in ("Paper Lane Books", "Chapter House"):
            found, _ = await catalog.list_offers(
                uow, supplier_id=summary.supplier_ids[name], limit=6, cursor=None
            )
            books[name] = [o for o in found if o.quantity >= 2]
    plan = ["placed", "paid", "accepted", "fulfilled", "completed", "rejected"]
    accept_seconds = platform.settings.order_accept_hours * 3600
    for index, state in enumerate(plan):
        picked = [books["Paper Lane Books"][index], books["Chapter House"][index]]
        lines = [LineRequest(o.id, 1, o.price_amount, o.currency) for o in picked]
        async with platform.uow() as uow:
            placed = await orders.place_order(
                uow, view=web.view(), customer_ref=f"demo-customer-{index + 1}", shipping=None,
                lines=lines, default_hold_seconds=platform.settings.order_hold_seconds,
            )  # fmt: skip
            await uow.commit()
        if state == "placed":
            continue
        await orders.pay_order(
            platform.uow, platform.payments, client_id=web.id, order_id=placed.order.id,
            token=TestProvider.TOKENS[0], accept_seconds=accept_seconds,
        )  # fmt: skip
        for part in placed.parts:
            await _decide(platform, part.supplier_id, part.id, state)
    await jobs.send_refunds(platform.uow, platform.payments)
    return len(plan)


async def _decide(platform: Platform, supplier_id: str, part_id: str, state: str) -> None:
    actor = Actor("supplier", supplier_id)
    steps = {
        "paid": [],
        "accepted": ["accept"],
        "fulfilled": ["accept", "fulfil"],
        "completed": ["accept", "fulfil", "complete"],
        "rejected": ["reject"],
    }[state]
    for step in steps:
        async with platform.uow() as uow:
            if step == "accept":
                await decisions.accept(
                    uow, supplier_id=supplier_id, supplier_order_id=part_id, decisions=None,
                    actor=actor,
                )  # fmt: skip
            elif step == "fulfil":
                await decisions.fulfil(
                    uow, supplier_id=supplier_id, supplier_order_id=part_id,
                    tracking={"carrier": "DHL", "number": "0034"}, actor=actor,
                )  # fmt: skip
            elif step == "complete":
                await decisions.complete(
                    uow, supplier_id=supplier_id, supplier_order_id=part_id, actor=actor
                )
            else:
                await decisions.reject(
                    uow, supplier_id=supplier_id, supplier_order_id=part_id,
                    reason="out of stock at the warehouse", actor=actor,
                )  # fmt: skip
            await uow.commit()
