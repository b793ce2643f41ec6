"""Payouts and billing: when a supplier order was fulfilled and its money released; payout
settings and payouts; subscription plans and subscriptions; sponsored-placement bids and the
clicks on them.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)
Id = sa.String(40)


def upgrade() -> None:
    with op.batch_alter_table("supplier_orders") as batch:
        batch.add_column(sa.Column("fulfilled_at", Ts, nullable=True))
        batch.add_column(sa.Column("released_at", Ts, nullable=True))
    # Sales accepted before: their acceptance credited the payable directly (there was no
    # pending balance), so their money counts as released already.
    op.execute(
        "UPDATE supplier_orders SET released_at = updated_at, fulfilled_at = CASE WHEN status "
        "IN ('fulfilled', 'completed') THEN updated_at END "
        "WHERE status IN ('accepted', 'fulfilled', 'completed')"
    )
    op.create_index(
        "ix_supplier_orders_unreleased",
        "supplier_orders",
        ["fulfilled_at"],
        postgresql_where=sa.text("released_at IS NULL AND fulfilled_at IS NOT NULL"),
        sqlite_where=sa.text("released_at IS NULL AND fulfilled_at IS NOT NULL"),
    )
    op.create_table(
        "payout_settings",
        sa.Column("supplier_id", Id, primary_key=True),
        sa.Column("destination", sa.String(200), nullable=False),
        sa.Column("schedule", sa.String(10), nullable=False),
        sa.Column("minimum", sa.BigInteger, nullable=False),
        sa.Column("next_run_at", Ts, nullable=True),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_payout_settings_next_run", "payout_settings", ["next_run_at"])
    op.create_table(
        "payouts",
        sa.Column("id", Id, primary_key=True),
        sa.Column("supplier_id", Id, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("netted", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("destination", sa.String(200), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("failure_code", sa.String(60), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_payouts_supplier", "payouts", ["supplier_id", "id"])
    op.create_index("ix_payouts_status", "payouts", ["status", "created_at"])
    op.create_table(
        "payout_callbacks",
        sa.Column("provider", sa.String(40), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("received_at", Ts, nullable=False),
    )
    op.create_table(
        "plans",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("supplier_id", Id, nullable=False),
        sa.Column("plan_id", Id, sa.ForeignKey("plans.id"), nullable=False),
        sa.Column("started_at", Ts, nullable=False),
        sa.Column("ended_at", Ts, nullable=True),
        sa.Column("billed_until", Ts, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index("ix_subscriptions_supplier", "subscriptions", ["supplier_id", "id"])
    op.create_index(  # one open subscription a supplier, whatever two requests do at once
        "uq_subscriptions_open",
        "subscriptions",
        ["supplier_id"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
        sqlite_where=sa.text("ended_at IS NULL"),
    )
    op.create_index("ix_subscriptions_billed_until", "subscriptions", ["billed_until"])
    op.create_table(
        "ad_bids",
        sa.Column("id", Id, primary_key=True),
        sa.Column("supplier_id", Id, nullable=False),
        sa.Column("category_id", Id, nullable=False),
        sa.Column("basis", sa.String(10), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("effective_from", Ts, nullable=False),
        sa.Column("effective_to", Ts, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index("ix_ad_bids_category", "ad_bids", ["category_id", "effective_from"])
    op.create_index("ix_ad_bids_supplier", "ad_bids", ["supplier_id", "id"])
    op.create_table(
        "ad_clicks",
        sa.Column("id", Id, primary_key=True),
        sa.Column("client_id", Id, nullable=False),
        sa.Column("offer_id", Id, nullable=False),
        sa.Column("supplier_id", Id, nullable=False),
        sa.Column("category_id", Id, nullable=False),
        sa.Column("placement", sa.String(20), nullable=False),
        sa.Column("bid_id", Id, nullable=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("at", Ts, nullable=False),
    )
    op.create_index("ix_ad_clicks_offer", "ad_clicks", ["client_id", "offer_id", "at"])
    op.create_index("ix_ad_clicks_supplier", "ad_clicks", ["supplier_id", "id"])


def downgrade() -> None:
    for table in (
        "ad_clicks",
        "ad_bids",
        "subscriptions",
        "plans",
        "payout_callbacks",
        "payouts",
        "payout_settings",
    ):
        op.drop_table(table)
    op.drop_index("ix_supplier_orders_unreleased", "supplier_orders")
    with op.batch_alter_table("supplier_orders") as batch:
        batch.drop_column("released_at")
        batch.drop_column("fulfilled_at")
