"""Supply feeds: mappings, runs with their row errors, registered sources, onboarding milestones.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigPk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)
Id = sa.String(40)


def upgrade() -> None:
    op.create_table(
        "feed_mappings",
        sa.Column("supplier_id", Id, sa.ForeignKey("suppliers.id"), primary_key=True),
        sa.Column("mapping", Json, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_table(
        "feed_sources",
        sa.Column("id", Id, primary_key=True),
        sa.Column("supplier_id", Id, sa.ForeignKey("suppliers.id"), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("format", sa.String(10), nullable=True),
        sa.Column("interval_seconds", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_run_at", Ts, nullable=False),
        sa.Column("last_run_id", Id, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_feed_sources_supplier", "feed_sources", ["supplier_id"])
    op.create_index("ix_feed_sources_due", "feed_sources", ["enabled", "next_run_at"])
    op.create_table(
        "feed_runs",
        sa.Column("id", Id, primary_key=True),
        sa.Column("supplier_id", Id, sa.ForeignKey("suppliers.id"), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("origin", sa.String(10), nullable=False),
        sa.Column("source_id", Id, sa.ForeignKey("feed_sources.id"), nullable=True),
        sa.Column("filename", sa.String(500), nullable=True),
        sa.Column("format", sa.String(10), nullable=True),
        sa.Column("compressed", sa.Boolean, nullable=True),
        sa.Column("file_path", sa.String(2000), nullable=True),
        sa.Column("file_bytes", sa.BigInteger, nullable=True),
        sa.Column("file_sha256", sa.String(64), nullable=True),
        sa.Column("mapping_version", sa.Integer, nullable=True),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("inserted", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("deactivated", sa.Integer, nullable=False),
        sa.Column("to_deactivate", sa.Integer, nullable=True),
        sa.Column("live_before", sa.Integer, nullable=True),
        sa.Column("line_reached", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String(60), nullable=True),
        sa.Column("error_detail", sa.Text, nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("started_at", Ts, nullable=True),
        sa.Column("heartbeat_at", Ts, nullable=True),
        sa.Column("finished_at", Ts, nullable=True),
    )
    op.create_index("ix_feed_runs_supplier_created", "feed_runs", ["supplier_id", "created_at"])
    op.create_index("ix_feed_runs_status", "feed_runs", ["status", "created_at"])
    op.create_table(
        "feed_run_errors",
        sa.Column(
            "run_id", Id, sa.ForeignKey("feed_runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("sku", sa.String(200), nullable=True),
        sa.Column("field", sa.String(200), nullable=False),
        sa.Column("code", sa.String(60), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=True),
    )
    # The SKUs a full replacement named (a full feed, batch by batch, in each batch's
    # transaction), kept until it has decided what to deactivate.
    op.create_table(
        "offers_seen",
        sa.Column("token", Id, primary_key=True),
        sa.Column("sku", sa.String(200), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "supplier_milestones",
        sa.Column("supplier_id", Id, sa.ForeignKey("suppliers.id"), primary_key=True),
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("at", Ts, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "supplier_milestones",
        "offers_seen",
        "feed_run_errors",
        "feed_runs",
        "feed_sources",
        "feed_mappings",
    ):
        op.drop_table(table)
