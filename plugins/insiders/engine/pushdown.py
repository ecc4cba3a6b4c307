"""A SQL source aggregated where it lives: the retailer's database does the line-level work.

`summarise(url, table, as_of)` connects Ibis to the database (PostgreSQL tested), reads
each column's distinct values (small), judges them with `quality.py`, uploads those
dictionaries as temporary tables and then lets the database type every line, count the
set-aside lines per reason, find the copies and compute the per-customer features: only
the dictionaries, the counts and one row per customer cross the network, never the lines.

The database has no file order: the copy of a duplicated line that is kept is an arbitrary
one. Counts, kept values and features do not depend on which (copies are equal in every
column), only the quarantine's row numbers would, and the push-down writes no quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import quality
from ..extract import RAW_COLUMNS, map_columns
from . import lines as ln
from .aggregates import Lines
from .backends import POSITION, Engine


@dataclass
class Summary:
    rows_in: int
    rows_kept: int
    set_aside: dict[str, int]
    lines: Lines  # the typed kept lines, still in the database


def connect_url(url: str) -> Engine:
    """An Ibis connection from a SQLAlchemy URL (`postgresql+psycopg://...`)."""
    import ibis

    scheme, _, rest = url.partition("://")
    backend = scheme.split("+")[0]
    backend = {"postgresql": "postgres"}.get(backend, backend)
    return Engine(backend, ibis.connect(f"{backend}://{rest}"))


def raw_view(engine: Engine, table_name: str):
    """The table's invoice-line columns as text, under the canonical names, numbered."""
    import ibis

    table = engine.con.table(table_name)
    mapping = map_columns(table.columns, table_name)
    columns = {c: table[mapping[c]].cast("string") if c in mapping
               else ibis.literal(quality_default(c)) for c in RAW_COLUMNS}
    view = table.select(**columns, source_file=ibis.literal(table_name),
                        source_row=ibis.row_number() + 1)
    return view.mutate(**{POSITION: view.source_row})


def quality_default(column: str) -> str:
    from ..extract import OPTIONAL_DEFAULTS

    return OPTIONAL_DEFAULTS[column]


def typed_lines(engine: Engine, classified, dups, dictionaries: dict[str, ln.Dictionary]):
    """Kept lines with the cleaned text and typed values the models use (in the database)."""
    import ibis

    kept = ln.kept_lines(classified, dups)
    out = kept
    for column in ln.TEXT_COLUMNS:
        cats = dictionaries[column].categories
        names = engine.table(pd.DataFrame({f"{column}_code": np.arange(len(cats),
                                                                       dtype=np.int64),
                                           column: pd.Series(cats, dtype="str")}))
        out = out.left_join(names, f"{column}_code").select(out, names[column])
    qty = out.quantity_value.cast("int64")
    revenue = (qty.cast("float64") * out.unit_price_value).round(4)
    return out.select(
        "invoice", "stock_code", "description", quantity=qty,
        invoice_date=out.invoice_date_value, unit_price=out.unit_price_value,
        customer_id="customer_id", country="country", revenue=revenue,
        is_return=qty < 0, is_cancellation=out.invoice_cancel.fill_null(False),
        source_file="source_file", source_row="source_row",
    ).mutate(source_row=ibis._.source_row.cast("int64"))


def summarise(engine: Engine, table_name: str, as_of: pd.Timestamp,
              today: pd.Timestamp | None = None,
              non_products: quality.NonProductTally | None = None) -> Summary:
    """Accounting and the typed lines of a SQL table, computed by its database, with the
    rules of the quality stage (stray dates after `today`, the non-product list and its
    guard, which raises InputError before anything else is computed)."""
    raw = raw_view(engine, table_name)
    tally = non_products or quality.NonProductTally()
    dictionaries = ln.build_dictionaries(engine, raw, pd.Timestamp(as_of), today=today,
                                         rule=tally.rule)
    classified = engine.materialize(ln.classify(engine, raw, dictionaries))
    ln.tally_non_products(engine, classified, dictionaries, tally)
    tally.check(table_name)
    dups = engine.materialize(ln.duplicates(classified))
    outcome = ln.account(engine, classified, dups)
    typed = engine.materialize(typed_lines(engine, classified, dups, dictionaries))
    set_aside = {r: outcome.counts[r] for r in quality.REASONS if outcome.counts.get(r)}
    kept = outcome.rows_in - sum(set_aside.values())
    order = {c: list(dictionaries[c].categories) for c in ("country", "invoice")}
    return Summary(outcome.rows_in, kept, set_aside,
                   Lines(engine, typed, order["country"], [table_name], order["invoice"]))
