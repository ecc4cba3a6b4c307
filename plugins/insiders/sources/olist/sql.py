"""Olist's customer-experience tables in the SQL store (the experience dashboard reads them).

Day columns (`*_day`) are whole days since 1970-01-01, so the cards do date
arithmetic with plain integers, identically on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...log import info

if TYPE_CHECKING:
    from ...catalog import RunFolder

DAY = np.timedelta64(1, "D")

def experience_schema():
    """The experience tables in the SQL store (portable SQLite/PostgreSQL types).

    Day columns (`*_day`) are whole days since 1970-01-01, so the cards do date
    arithmetic with plain integers, identically on both engines.
    """
    import sqlalchemy as sa

    md = sa.MetaData()
    text, day = sa.String, sa.Integer
    orders = sa.Table(
        "olist_orders", md,
        sa.Column("order_id", text(64), primary_key=True),
        sa.Column("customer_id", text(64)),
        sa.Column("customer_unique_id", text(64), index=True),
        sa.Column("status", text(20), nullable=False),
        sa.Column("is_purchase", sa.Boolean, nullable=False),
        sa.Column("purchase_at", sa.DateTime), sa.Column("purchase_date", sa.Date),
        sa.Column("purchase_day", day),
        sa.Column("delivered_at", sa.DateTime), sa.Column("delivered_date", sa.Date),
        sa.Column("delivered_day", day),
        sa.Column("estimated_date", sa.Date), sa.Column("estimated_day", day),
        sa.Column("delivered_late", sa.Boolean), sa.Column("days_late", sa.Integer),
        sa.Column("review_score", sa.Float), sa.Column("review_count", sa.Integer),
        sa.Column("customer_zip_prefix", text(10)), sa.Column("customer_city", text(64)),
        sa.Column("customer_state", text(4)),
        sa.Column("items", sa.Integer), sa.Column("items_value", sa.Float),
        sa.Column("freight_value", sa.Float), sa.Column("payment_value", sa.Float),
    )
    items = sa.Table(
        "olist_order_items", md,
        sa.Column("order_id", text(64), primary_key=True),
        sa.Column("order_item_id", sa.Integer, primary_key=True),
        sa.Column("product_id", text(64)),
        sa.Column("seller_id", text(64), index=True),
        sa.Column("category", text(80)),
        sa.Column("price", sa.Float), sa.Column("freight_value", sa.Float),
    )
    sellers = sa.Table(
        "olist_sellers", md,
        sa.Column("seller_id", text(64), primary_key=True),
        sa.Column("zip_prefix", text(10)), sa.Column("city", text(64)),
        sa.Column("state", text(4)),
    )
    reviews = sa.Table(
        "olist_reviews", md,
        sa.Column("review_id", text(64), primary_key=True),
        sa.Column("order_id", text(64), primary_key=True),
        sa.Column("review_score", sa.Integer),
        sa.Column("created_date", sa.Date), sa.Column("created_day", day),
        sa.Column("answered_at", sa.DateTime),
        sa.Column("customer_unique_id", text(64)),
        sa.Column("customer_zip_prefix", text(10), index=True),
        sa.Column("customer_state", text(4)),
        sa.Column("order_status", text(20)),
    )
    return md, {"olist_orders": orders, "olist_order_items": items, "olist_sellers": sellers,
                "olist_reviews": reviews}


def create_experience_tables(sql_url: str) -> list[str]:
    """Create the empty `olist_*` tables (if missing), e.g. before Metabase provisioning.

    Provisioning runs every card's SQL first, so the experience cards need the tables to
    exist even before the first Olist run has been synced.
    """
    import sqlalchemy as sa

    md, tables = experience_schema()
    engine = sa.create_engine(sql_url)
    try:
        md.create_all(engine, checkfirst=True)
    finally:
        engine.dispose()
    return list(tables)


def _days(values: pd.Series) -> pd.Series:
    """Whole days since 1970-01-01 (NaT -> missing)."""
    day = values.dt.floor("D")
    return ((day - pd.Timestamp("1970-01-01")) / DAY).astype("Int64")


def experience_rows(folder: RunFolder) -> dict[str, pd.DataFrame]:
    """The experience tables as the SQL store holds them (dates, day numbers)."""
    o = folder.read_source_table("orders")
    orders = pd.DataFrame({
        "order_id": o["order_id"], "customer_id": o["customer_id"],
        "customer_unique_id": o["customer_unique_id"], "status": o["status"],
        "is_purchase": o["is_purchase"],
        "purchase_at": o["purchase_at"], "purchase_date": o["purchase_at"].dt.date,
        "purchase_day": _days(o["purchase_at"]),
        "delivered_at": o["delivered_at"], "delivered_date": o["delivered_at"].dt.date,
        "delivered_day": _days(o["delivered_at"]),
        "estimated_date": o["estimated_at"].dt.date, "estimated_day": _days(o["estimated_at"]),
        "delivered_late": o["delivered_late"], "days_late": o["days_late"],
        "review_score": o["review_score"], "review_count": o["review_count"],
        "customer_zip_prefix": o["customer_zip_prefix"], "customer_city": o["customer_city"],
        "customer_state": o["customer_state"], "items": o["items"],
        "items_value": o["items_value"], "freight_value": o["freight_value"],
        "payment_value": o["payment_value"],
    })
    r = folder.read_source_table("reviews")
    reviews = pd.DataFrame({
        "review_id": r["review_id"], "order_id": r["order_id"],
        "review_score": r["review_score"], "created_date": r["created_at"].dt.date,
        "created_day": _days(r["created_at"]), "answered_at": r["answered_at"],
        "customer_unique_id": r["customer_unique_id"],
        "customer_zip_prefix": r["customer_zip_prefix"],
        "customer_state": r["customer_state"], "order_status": r["order_status"],
    })
    items = folder.read_source_table("items").dropna(subset=["order_item_id"])
    items = items.drop_duplicates(["order_id", "order_item_id"])
    return {"olist_orders": orders, "olist_order_items": items,
            "olist_sellers": folder.read_source_table("sellers"),
            "olist_reviews": reviews}


def _values(series: pd.Series, column, dialect: str) -> list:
    """One column as the driver wants it: plain Python values, missing as None.

    SQLite gets dates as ISO text and booleans as 0/1 (how SQLAlchemy stores them there),
    PostgreSQL gets date, datetime and bool objects.
    """
    import sqlalchemy as sa

    missing = series.isna().to_numpy()
    kind = column.type
    if isinstance(kind, sa.DateTime):
        stamps = pd.to_datetime(series)
        values = (stamps.dt.strftime("%Y-%m-%d %H:%M:%S.%f").to_numpy(dtype=object)
                  if dialect == "sqlite" else stamps.dt.to_pydatetime())
    elif isinstance(kind, sa.Date):
        values = series.astype("str").to_numpy(dtype=object) if dialect == "sqlite" else \
            series.to_numpy(dtype=object)
    elif isinstance(kind, sa.Boolean):
        flags = series.fillna(False).astype(bool).to_numpy()
        values = flags.astype(int).astype(object) if dialect == "sqlite" else \
            flags.astype(object)
    elif isinstance(kind, sa.Integer):
        values = series.fillna(0).astype("int64").to_numpy().astype(object)
    elif isinstance(kind, sa.Float):
        values = series.astype(float).to_numpy().astype(object)
    else:
        values = series.astype(object).to_numpy()
    values = np.array(values, dtype=object)
    values[missing] = None
    return values.tolist()


def _insert(conn, table, frame: pd.DataFrame, chunk_rows: int) -> None:
    """Bulk insert: COPY on PostgreSQL (psycopg 3), executemany elsewhere.

    SQLAlchemy's row-by-row parameter processing costs more than the database itself for
    a few hundred thousand rows, so the rows go to the driver already converted.
    """
    dialect = conn.dialect.name
    names = [c.name for c in table.columns]
    columns = [_values(frame[c.name], c, dialect) for c in table.columns]
    rows = list(zip(*columns, strict=True))
    raw = conn.connection.driver_connection
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(n) for n in names)
    if dialect == "postgresql" and conn.dialect.driver == "psycopg":
        cursor = raw.cursor()
        try:
            with cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
    elif dialect == "sqlite":
        statement = str(table.insert().compile(dialect=conn.dialect))  # qmark placeholders
        cursor = raw.cursor()
        try:
            cursor.executemany(statement, rows)
        finally:
            cursor.close()
    else:
        for begin in range(0, len(rows), chunk_rows):
            conn.execute(table.insert(), [dict(zip(names, r, strict=True))
                                          for r in rows[begin:begin + chunk_rows]])


def sync_experience(folder: RunFolder, sql_url: str, chunk_rows: int = 20_000
                    ) -> dict[str, int]:
    """Replace the `olist_*` tables of the SQL store with this run's experience tables.

    The cards of `metabase/experience/` read them. Tables are created when missing and
    their content replaced in one transaction (readers see the old rows or the new ones,
    never a mix; grants on existing tables are kept). Returns the rows written per table.
    """
    import sqlalchemy as sa

    started = time.perf_counter()
    md, tables = experience_schema()
    frames = experience_rows(folder)
    engine = sa.create_engine(sql_url)
    try:
        md.create_all(engine, checkfirst=True)
        with engine.begin() as conn:
            for name, table in tables.items():
                conn.execute(table.delete())
                _insert(conn, table, frames[name], chunk_rows)
    finally:
        engine.dispose()
    counts = {name: int(len(frame)) for name, frame in frames.items()}
    info("sync (olist experience): %s in %.1f s",
         ", ".join(f"{k} {v:,}" for k, v in counts.items()), time.perf_counter() - started)
    return counts
