"""Attribute entries clustered by their key on SQLite (WITHOUT ROWID).

A rowid table kept each entry in three B-trees (the rows, the primary key, the value index);
clustered on the primary key it is two, and a probe by (offer, name, value) reads the entry
itself. Measured on a feed import of a million books (four entries each): the attribute index was
the largest share of the write work. PostgreSQL keeps its heap and indexes as they are.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _rebuild(*, clustered: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    suffix = " WITHOUT ROWID" if clustered else ""
    op.execute(
        f"""CREATE TABLE offer_attrs_next (
            offer_pk INTEGER NOT NULL REFERENCES offers (pk) ON DELETE CASCADE,
            name VARCHAR(100) NOT NULL,
            str_value VARCHAR(200) NOT NULL,
            num_value FLOAT,
            PRIMARY KEY (offer_pk, name, str_value)){suffix}"""
    )
    op.execute(
        "INSERT INTO offer_attrs_next (offer_pk, name, str_value, num_value) "
        "SELECT offer_pk, name, str_value, num_value FROM offer_attrs"
    )
    op.execute("DROP TABLE offer_attrs")
    op.execute("ALTER TABLE offer_attrs_next RENAME TO offer_attrs")
    op.execute("CREATE INDEX ix_offer_attrs_str ON offer_attrs (name, str_value, offer_pk)")


def upgrade() -> None:
    _rebuild(clustered=True)


def downgrade() -> None:
    _rebuild(clustered=False)
