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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import data_end, quality
from ..extract import RAW_COLUMNS, map_columns
from . import lines as ln
from .aggregates import Lines
from .backends import POSITION, Engine

if TYPE_CHECKING:
    from ..catalog import RunFolder
    from ..config import Settings


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

    out = ln.typed(engine, ln.kept_lines(classified, dups), dictionaries, RAW_COLUMNS)
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
              non_products: quality.NonProductTally | None = None,
              stray_from: pd.Timestamp | None = None) -> Summary:
    """Accounting and the typed lines of a SQL table, computed by its database, with the
    rules of the quality stage (stray dates after `today`, the non-product list and its
    guard, which raises InputError before anything else is computed)."""
    raw = raw_view(engine, table_name)
    tally = non_products or quality.NonProductTally()
    judged = ln.judge(engine, raw, pd.Timestamp(as_of), today, stray_from, tally, table_name)
    dictionaries, classified, dups, outcome = (judged.dictionaries, judged.classified,
                                               judged.dups, judged.outcome)
    typed = engine.materialize(typed_lines(engine, classified, dups, dictionaries))
    set_aside = {r: outcome.counts[r] for r in quality.REASONS if outcome.counts.get(r)}
    kept = outcome.rows_in - sum(set_aside.values())
    order = {c: list(dictionaries[c].categories) for c in ("country", "invoice")}
    return Summary(outcome.rows_in, kept, set_aside,
                   Lines(engine, typed, order["country"], [table_name], order["invoice"]))


# --------------------------------------------------------------------------- in a run


def wanted(settings: Settings, location: str) -> bool:
    """Push down: asked for (INSIDERS_PUSHDOWN, --pushdown), a database URL and a table
    (a `--query` SELECT is read line by line as before)."""
    from ..extract import is_select, is_sql_url

    return settings.pushdown and is_sql_url(location) and not is_select(settings.source_query)


def _engine_of(folder: RunFolder, url: str) -> Engine:
    """One connection per run folder and process: its temporary tables (the dictionaries,
    the typed lines) live as long as the connection."""
    return folder.cached("engine:pushdown", lambda: connect_url(url), per_process=True)


def extract_in_database(location: str, folder: RunFolder, settings: Settings) -> dict:
    """The extract stage of a pushed-down SQL table: the lines stay in the database; only
    its lines per distinct date text come out (the default as-of is chosen from them)."""
    from ..errors import InputError
    from ..extract import column_notes, redact_url
    from ..log import info

    name = settings.source_query or "transactions"
    where = f"{redact_url(location)} ({name})"
    try:
        engine = _engine_of(folder, location)
        table = engine.con.table(name)
        mapping = map_columns(table.columns, where)
        text = table[mapping["invoice_date"]].cast("string").name("invoice_date")
        counts = engine.to_pandas(table.group_by(text).aggregate(n=table.count()))
    except InputError:
        raise
    except Exception as exc:  # no such table, no connection, missing driver
        raise InputError(f"{where}: cannot aggregate this table in its database "
                         f"({str(exc).splitlines()[0][:200]})") from None
    rows = int(counts["n"].sum())
    if rows == 0:
        raise InputError(f"{where}: the table has no transaction rows")
    values = pd.Series(counts["n"].to_numpy(),
                       index=counts["invoice_date"].fillna("").astype("str"))
    days = data_end.days_of_values(values.groupby(level=0).sum())
    folder.write("raw_days", pd.DataFrame({"day": days.index, "lines": days.to_numpy()}))
    notes = [*column_notes(table.columns, mapping, where),
             f"{where}: aggregated in its database (push-down): its {rows:,} lines stay "
             "there; only counts, one row per customer or day and the evaluation's five "
             "columns of the kept lines are read"]
    info("extract: %s rows in %s, left in the database (push-down)", f"{rows:,}", where)
    return {"rows": rows, "rows_parsed": rows, "rejects": 0, "files": {where: rows},
            "notes": notes, "source": redact_url(str(location)),
            "pushdown": {"table": name}}


def pushed_down(folder: RunFolder) -> bool:
    """The run's extract left the lines in the database (later stages read them there)."""
    return folder.has_stage("extract") and bool(folder.stage("extract").get("pushdown"))


def summary_of(run, non_products: quality.NonProductTally | None = None) -> Summary:
    """The run's `Summary`, computed once per process (the stages of `insiders run` share
    it; an Airflow task in a process of its own computes it again, from the same table)."""
    extracted = run.folder.stage("extract")
    stray = extracted.get("stray_from")

    def load() -> Summary:
        tally = non_products or quality.NonProductTally(
            quality.NonProductCodes.parse(run.settings.non_product_codes))
        return summarise(_engine_of(run.folder, run.location), extracted["pushdown"]["table"],
                         run.day, pd.Timestamp.now(), tally,
                         pd.Timestamp(stray) if stray else None)

    # per process: the summary's tables are read through the process's own connection
    return run.folder.cached("pushdown:summary", load, per_process=True)


def quality_in_database(run, non_products: quality.NonProductTally) -> quality.QualityReport:
    """The quality stage of a pushed-down table: the database counts per reason; the
    set-aside lines stay there (no quarantine rows) and so do the kept ones: every later
    stage (features, value inputs, evaluation, forecast, stability) reads `Lines` in the
    database (`steps.lines_of`), so no line is copied out."""
    from ..log import info
    from ..quarantine import QuarantineWriter

    summary = summary_of(run, non_products)
    report = quality.QualityReport()
    report.rows_in = summary.rows_in
    for reason in quality.REASONS:
        if summary.set_aside.get(reason):
            report.add(reason, summary.set_aside[reason])
    report.rows_kept = summary.rows_kept
    aside = report.rows_in - report.rows_kept
    report.notes.append(
        f"the {aside:,} set-aside lines stay in the database (push-down): the counts per "
        "reason are the database's, the quarantine file lists none of them; the check of "
        "customers under several countries is not made")
    with QuarantineWriter(run.folder.path_of("quarantine")):
        pass  # the file exists (the report links it); its rows stay in the database
    info("quality: push-down: %s lines kept in the database; no line copied out",
         f"{report.rows_kept:,}")
    return report
