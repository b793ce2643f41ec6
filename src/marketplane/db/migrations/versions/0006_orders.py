"""Orders: customer orders split per supplier, their lines and history, payments, refunds,
provider callbacks; stock reserved and sold per offer; events addressed to one client; a
client's own payment hold.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigPk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)
Id = sa.String(40)


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (SQLite ≥ 3.35 drops columns too): rebuilding offers
    # would cost a copy of the whole catalog.
    op.add_column("offers", sa.Column("reserved", sa.Integer, nullable=False, server_default="0"))
    op.add_column("offers", sa.Column("sold", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("events", sa.Column("client_id", Id, nullable=True))
    op.add_column("clients", sa.Column("order_hold_seconds", sa.Integer, nullable=True))

    op.create_table(
        "orders",
        sa.Column("id", Id, primary_key=True),
        sa.Column("client_id", Id, nullable=False),
        sa.Column("customer_ref", sa.String(200), nullable=False),
        sa.Column("shipping", Json, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("refunded_amount", sa.BigInteger, nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_orders_client", "orders", ["client_id", "id"])
    op.create_index(
        "ix_orders_placed_expiry",
        "orders",
        ["expires_at"],
        postgresql_where=sa.text("status = 'placed'"),
        sqlite_where=sa.text("status = 'placed'"),
    )
    op.create_table(
        "supplier_orders",
        sa.Column("id", Id, primary_key=True),
        sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("supplier_id", Id, nullable=False),
        sa.Column("client_id", Id, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("accepted_amount", sa.BigInteger, nullable=False),
        sa.Column("refunded_amount", sa.BigInteger, nullable=False),
        sa.Column("accept_by", Ts, nullable=True),
        sa.Column("tracking", Json, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_supplier_orders_order", "supplier_orders", ["order_id"])
    op.create_index("ix_supplier_orders_supplier", "supplier_orders", ["supplier_id", "id"])
    op.create_index(
        "ix_supplier_orders_deadline",
        "supplier_orders",
        ["accept_by"],
        postgresql_where=sa.text("status = 'awaiting_acceptance'"),
        sqlite_where=sa.text("status = 'awaiting_acceptance'"),
    )
    op.create_table(
        "order_lines",
        sa.Column("id", Id, primary_key=True),
        sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("supplier_order_id", Id, sa.ForeignKey("supplier_orders.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("offer_id", Id, nullable=False),
        sa.Column("category_id", Id, nullable=False),
        sa.Column("sku", sa.String(200), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.BigInteger, nullable=False),
        sa.Column("supplier_unit_price", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
    )
    op.create_index("ix_order_lines_order", "order_lines", ["order_id", "position"])
    op.create_index("ix_order_lines_supplier_order", "order_lines", ["supplier_order_id"])
    op.create_table(
        "order_history",
        sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("object_id", Id, nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(60), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("at", Ts, nullable=False),
    )
    op.create_index("ix_order_history_object", "order_history", ["object_id", "pk"])
    op.create_table(
        "payments",
        sa.Column("id", Id, primary_key=True),
        sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("failure_code", sa.String(60), nullable=True),
        sa.Column("fee", sa.BigInteger, nullable=True),  # what the provider kept of it
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_payments_order", "payments", ["order_id"])
    op.create_table(
        "refunds",
        sa.Column("id", Id, primary_key=True),
        sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
        # None: a whole payment returned (taken twice), not any supplier order's money
        sa.Column("supplier_order_id", Id, sa.ForeignKey("supplier_orders.id"), nullable=True),
        sa.Column("payment_id", Id, sa.ForeignKey("payments.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        # of money the supplier had earned (after acceptance), not money still held for it
        sa.Column("earned", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("failure_code", sa.String(60), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_refunds_order", "refunds", ["order_id"])
    op.create_index(
        "ix_refunds_pending",
        "refunds",
        ["created_at"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "payment_callbacks",
        sa.Column("provider", sa.String(40), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("received_at", Ts, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "payment_callbacks",
        "refunds",
        "payments",
        "order_history",
        "order_lines",
        "supplier_orders",
        "orders",
    ):
        op.drop_table(table)
    op.drop_column("clients", "order_hold_seconds")
    op.drop_column("events", "client_id")
    op.drop_column("offers", "sold")
    op.drop_column("offers", "reserved")
