"""Executemany without SQLAlchemy's per-row parameter building.

`conn.execute(stmt, rows)` builds each row's parameters through the compiler (measured on a feed
import: 35 µs a row, a third of the Python time of a batch). Here a statement is compiled once
per dialect and column set, each row becomes a tuple through the columns' own bind processors
(the same conversions SQLAlchemy applies), and the driver's executemany gets them directly.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

Statement = sa.Insert | sa.Update | sa.Delete
_Compiled = tuple[str, list[str], list[Any]]  # SQL, parameter order, bind processors
_compiled: dict[tuple[str, int, tuple[str, ...]], _Compiled] = {}


def _compile(conn: AsyncConnection, statement: Statement, columns: Sequence[str]) -> _Compiled:
    dialect = conn.dialect
    key = (dialect.name, id(statement), tuple(columns))
    found = _compiled.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect)
        order = list(compiled.positiontup or [])
        processors = [compiled.binds[name].type.bind_processor(dialect) for name in order]
        found = _compiled[key] = (compiled.string, order, processors)
    return found


def _tuples(rows: Sequence[dict[str, Any]], compiled: _Compiled) -> list[tuple[Any, ...]]:
    _, order, processors = compiled
    if len(order) == 1:
        values = [(row[order[0]],) for row in rows]
    else:
        get = operator.itemgetter(*order)
        values = [get(row) for row in rows]
    converted = [(i, process) for i, process in enumerate(processors) if process is not None]
    if not converted:
        return values
    out = []
    for value in values:
        row = list(value)
        for i, process in converted:
            row[i] = process(row[i])
        out.append(tuple(row))
    return out


_inserts: dict[tuple[str, tuple[str, ...]], sa.Insert] = {}


COPY_FROM = 50  # rows: below this, COPY's setup costs more than it saves


async def insert_many(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT every row (all rows have the same keys). On PostgreSQL, many rows go by COPY
    (binary), in the same transaction: measured on a feed import, the inserts of a batch of
    offers and their attribute entries took 0.7 ms a row by executemany."""
    if not rows:
        return
    columns = tuple(rows[0])
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_FROM:
        await _copy(conn, table, columns, rows)
        return
    statement = _inserts.get((table.name, columns))
    if statement is None:
        statement = table.insert().values(
            {c: sa.bindparam(c, type_=table.c[c].type) for c in columns}
        )
        _inserts[(table.name, columns)] = statement
    compiled = _compile(conn, statement, columns)
    await conn.exec_driver_sql(compiled[0], _tuples(rows, compiled))


async def execute_many(
    conn: AsyncConnection, statement: Statement, rows: Sequence[dict[str, Any]]
) -> None:
    """Any statement with named bind parameters (typed), once per row."""
    if not rows:
        return
    compiled = _compile(conn, statement, tuple(rows[0]))
    await conn.exec_driver_sql(compiled[0], _tuples(rows, compiled))


async def _copy(
    conn: AsyncConnection, table: sa.Table, columns: tuple[str, ...], rows: Sequence[dict[str, Any]]
) -> None:
    as_json = {c for c in columns if isinstance(table.c[c].type, sa.JSON)}
    records = [
        tuple(orjson.dumps(row[c]).decode() if c in as_json else row[c] for c in columns)
        for row in rows
    ]
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.copy_records_to_table(table.name, records=records, columns=list(columns))
