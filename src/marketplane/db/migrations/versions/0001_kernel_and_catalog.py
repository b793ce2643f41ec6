"""Kernel and catalog: access, idempotency, categories, products, offers, full-text search.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigPk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)
Id = sa.String(40)

# The full-text index holds live offers only (an active offer of a listed supplier), so a search
# walks matches in rowid order without stepping over sandboxed or suspended stock.
SQLITE_FTS = [
    """CREATE VIRTUAL TABLE offers_fts USING fts5(
        search_title, search_body, content='offers', content_rowid='pk',
        tokenize='unicode61 remove_diacritics 0', detail=column)""",
    """CREATE TRIGGER offers_fts_insert AFTER INSERT ON offers WHEN new.live = 1 BEGIN
        INSERT INTO offers_fts(rowid, search_title, search_body)
        VALUES (new.pk, new.search_title, new.search_body);
    END""",
    """CREATE TRIGGER offers_fts_delete AFTER DELETE ON offers WHEN old.live = 1 BEGIN
        INSERT INTO offers_fts(offers_fts, rowid, search_title, search_body)
        VALUES ('delete', old.pk, old.search_title, old.search_body);
    END""",
    """CREATE TRIGGER offers_fts_update AFTER UPDATE OF live, search_title, search_body ON offers
    WHEN old.live IS NOT new.live OR old.search_title IS NOT new.search_title
        OR old.search_body IS NOT new.search_body BEGIN
        INSERT INTO offers_fts(offers_fts, rowid, search_title, search_body)
        SELECT 'delete', old.pk, old.search_title, old.search_body WHERE old.live = 1;
        INSERT INTO offers_fts(rowid, search_title, search_body)
        SELECT new.pk, new.search_title, new.search_body WHERE new.live = 1;
    END""",
]

POSTGRES_FTS = [
    """ALTER TABLE offers ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', search_title), 'A') ||
        setweight(to_tsvector('simple', search_body), 'B')) STORED""",
    "CREATE INDEX ix_offers_search_tsv ON offers USING gin (search_tsv) WHERE live = 1",
]

# The store's sort orders, over live offers only: an index walk in order, never a sort.
LIVE_INDEXES = {
    "ix_offers_live_pk": ["pk"],
    "ix_offers_live_category_pk": ["category_id", "pk"],
    "ix_offers_live_price_pk": ["price_amount", "pk"],
    "ix_offers_live_category_price_pk": ["category_id", "price_amount", "pk"],
}


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_table(
        "suppliers",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_index("ix_suppliers_status", "suppliers", ["status"])
    op.create_table(
        "supplier_status_history",
        sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
        sa.Column("supplier_id", Id, sa.ForeignKey("suppliers.id"), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(60), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("at", Ts, nullable=False),
    )
    op.create_index(
        "ix_supplier_status_history_supplier", "supplier_status_history", ["supplier_id"]
    )
    op.create_table(
        "clients",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("markup_bps", sa.Integer, nullable=False),
        sa.Column("allowed_suppliers", Json, nullable=True),
        sa.Column("allowed_categories", Json, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", Id, primary_key=True),
        sa.Column("lookup", sa.String(40), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("side", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("owner_type", sa.String(10), nullable=False),
        sa.Column("owner_id", Id, nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("revoked_at", Ts, nullable=True),
    )
    op.create_index("ix_api_keys_owner", "api_keys", ["owner_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("body", sa.LargeBinary, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_table(
        "categories",
        sa.Column("id", Id, primary_key=True),
        sa.Column("slug", sa.String(80), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("attribute_schema", Json, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_table(
        "supplier_listing",
        sa.Column("supplier_id", Id, sa.ForeignKey("suppliers.id"), primary_key=True),
        sa.Column("listed", sa.Boolean, nullable=False),
    )
    op.create_table(
        "products",
        sa.Column("id", Id, primary_key=True),
        sa.Column("gtin", sa.String(14), nullable=False, unique=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("category_id", Id, sa.ForeignKey("categories.id"), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_table(
        "offers",
        sa.Column("pk", BigPk, primary_key=True, autoincrement=True),
        sa.Column("id", Id, nullable=False, unique=True),
        sa.Column("supplier_id", Id, sa.ForeignKey("suppliers.id"), nullable=False),
        sa.Column("sku", sa.String(200), nullable=False),
        sa.Column("category_id", Id, sa.ForeignKey("categories.id"), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("price_amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("live", sa.SmallInteger, nullable=False),
        sa.Column("gtin", sa.String(14), nullable=True),
        sa.Column("product_id", Id, sa.ForeignKey("products.id"), nullable=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("search_title", sa.Text, nullable=False),
        sa.Column("search_body", sa.Text, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.UniqueConstraint("supplier_id", "sku", name="uq_offers_supplier_sku"),
        sa.CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        sa.CheckConstraint("price_amount >= 0", name="price_not_negative"),
    )
    for name, columns in LIVE_INDEXES.items():
        op.create_index(
            name,
            "offers",
            columns,
            postgresql_where=sa.text("live = 1"),
            sqlite_where=sa.text("live = 1"),
        )
    op.create_index("ix_offers_supplier_pk", "offers", ["supplier_id", "pk"])
    op.create_index("ix_offers_product_price", "offers", ["product_id", "price_amount"])
    op.create_table(
        "offer_attrs",
        sa.Column(
            "offer_pk",
            BigPk,
            sa.ForeignKey("offers.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("str_value", sa.String(200), primary_key=True),
        sa.Column("num_value", sa.Float, nullable=True),
    )
    op.create_index("ix_offer_attrs_str", "offer_attrs", ["name", "str_value", "offer_pk"])

    statements = SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else POSTGRES_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("offers_fts_insert", "offers_fts_delete", "offers_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS offers_fts")
    for table in (
        "offer_attrs",
        "offers",
        "products",
        "categories",
        "supplier_listing",
        "idempotency_keys",
        "api_keys",
        "clients",
        "supplier_status_history",
        "suppliers",
        "operators",
    ):
        op.drop_table(table)
