"""The outbox: every state change's event, numbered in the order the changes became visible;
webhook endpoints, their deliveries and every attempt.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigPk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)
Id = sa.String(40)


def upgrade() -> None:
    op.create_table(
        "events",
        # AUTOINCREMENT on SQLite: a number is never reused, even after the newest row is gone.
        sa.Column("seq", BigPk, primary_key=True, autoincrement=True),
        sa.Column("id", Id, nullable=False, unique=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("store_type", sa.String(40), nullable=True),
        sa.Column("object_id", Id, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("supplier_id", Id, nullable=True),
        sa.Column("category_id", Id, nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("occurred_at", Ts, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_supplier_seq", "events", ["supplier_id", "seq"])
    op.create_index(
        "ix_events_store_seq",
        "events",
        ["seq"],
        postgresql_where=sa.text("store_type IS NOT NULL"),
        sqlite_where=sa.text("store_type IS NOT NULL"),
    )

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", Id, primary_key=True),
        sa.Column("owner_kind", sa.String(10), nullable=False),
        sa.Column("owner_id", Id, nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("types", Json, nullable=True),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("previous_secret", sa.String(100), nullable=True),
        sa.Column("previous_until", Ts, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.String(200), nullable=True),
        sa.Column("cursor", sa.BigInteger, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_webhook_endpoints_owner", "webhook_endpoints", ["owner_kind", "owner_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", Id, primary_key=True),
        sa.Column("endpoint_id", Id, sa.ForeignKey("webhook_endpoints.id"), nullable=False),
        sa.Column("event_seq", sa.BigInteger, nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Ts, nullable=True),
        sa.Column("lease_until", Ts, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("finished_at", Ts, nullable=True),
        sa.UniqueConstraint("endpoint_id", "event_seq", name="uq_webhook_deliveries_event"),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", Id, sa.ForeignKey("webhook_deliveries.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("at", Ts, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id", "number"])


def downgrade() -> None:
    for table in ("webhook_attempts", "webhook_deliveries", "webhook_endpoints", "events"):
        op.drop_table(table)
