"""The ledger: accounts (with a running balance where a floor is kept), transactions by
business key, postings that can only be inserted; commercial terms (commission rules, client
revenue shares), effective-dated.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigPk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)
Id = sa.String(40)

_PG_GUARD = [  # one statement each: asyncpg prepares what it is sent
    """CREATE FUNCTION ledger_postings_are_final() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'ledger postings are never changed or removed: post a reversal';
    END;
    $$ LANGUAGE plpgsql""",
    *(
        f"""CREATE TRIGGER {table}_final BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION ledger_postings_are_final()"""
        for table in ("ledger_postings", "ledger_transactions")
    ),
]
_SQLITE_GUARD = [
    f"""CREATE TRIGGER {table}_final_{verb.lower()} BEFORE {verb} ON {table}
    BEGIN SELECT RAISE(ABORT, 'ledger postings are never changed or removed: post a reversal');
    END"""
    for table in ("ledger_postings", "ledger_transactions")
    for verb in ("UPDATE", "DELETE")
]


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
        sa.Column("purpose", sa.String(30), nullable=False),
        sa.Column("owner", Id, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.UniqueConstraint("purpose", "owner", "currency", name="uq_ledger_accounts_key"),
    )
    op.create_table(
        "ledger_transactions",
        sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
        sa.Column("id", Id, nullable=False, unique=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("memo", Json, nullable=False),
        sa.Column("posted_at", Ts, nullable=False),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
        sa.Column("transaction_pk", sa.BigInteger, nullable=False),
        sa.Column("account_pk", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("posted_at", Ts, nullable=False),
    )
    op.create_index("ix_ledger_postings_account", "ledger_postings", ["account_pk", "pk"])
    op.create_table(
        "commission_rules",
        sa.Column("id", Id, primary_key=True),
        sa.Column("supplier_id", Id, nullable=True),
        sa.Column("category_id", Id, nullable=True),
        sa.Column("rate_bps", sa.Integer, nullable=False),
        sa.Column("fixed", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("effective_from", Ts, nullable=False),
        sa.Column("effective_to", Ts, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_table(
        "revenue_shares",
        sa.Column("id", Id, primary_key=True),
        sa.Column("client_id", Id, nullable=False),
        sa.Column("share_bps", sa.Integer, nullable=False),
        sa.Column("effective_from", Ts, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index("ix_revenue_shares_client", "revenue_shares", ["client_id", "effective_from"])
    op.create_index("ix_ledger_postings_transaction", "ledger_postings", ["transaction_pk"])
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_GUARD if postgres else _SQLITE_GUARD:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ledger_postings_final ON ledger_postings")
        op.execute("DROP TRIGGER ledger_transactions_final ON ledger_transactions")
        op.execute("DROP FUNCTION ledger_postings_are_final()")
    for table in (
        "revenue_shares",
        "commission_rules",
        "ledger_postings",
        "ledger_transactions",
        "ledger_accounts",
    ):
        op.drop_table(table)
