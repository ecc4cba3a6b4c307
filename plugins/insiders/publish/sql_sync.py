"""SQL store: flat tables for the dashboard, synced from the document store.

The tables are portable (SQLite and PostgreSQL; see docs/contracts.md). A run
is copied only when it is complete in the document store and new or changed
(its content version differs), and always in one transaction, so a dashboard
reader sees either the previous state of a month or the new one, never half.
All statements are SQLAlchemy Core with bound parameters.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .. import wording
from ..errors import StoreError
from ..extract import redact_url

log = logging.getLogger("insiders")

METADATA = MetaData()

RUNS = Table(
    "runs",
    METADATA,
    Column("run_id", String(7), primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("period_start", Date, nullable=False),
    Column("source", Text),
    Column("version", String(64), nullable=False),
    Column("completed_at", DateTime),
    Column("synced_at", DateTime),
    Column("rows_in", Integer),
    Column("rows_kept", Integer),
    Column("rows_set_aside", Integer),
    Column("customers", Integer),
    Column("insiders", Integer),
    Column("insiders_share", Float),
    Column("revenue", Float),
    Column("insiders_revenue", Float),
    Column("insiders_revenue_share", Float),
    Column("chosen_model", Text),
    Column("n_segments", Integer),
    Column("entered_count", Integer),
    Column("stayed_count", Integer),
    Column("left_count", Integer),
    Column("forecast_next", Float),
    Column("recommended_refresh_months", Integer),
    # ISO 4217 code of every money figure of the run (answers.json `currency`, from the source)
    Column("currency", String(3)),
)

CUSTOMER_SEGMENTS = Table(
    "customer_segments",
    METADATA,
    Column("run_id", String(7), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
    Column("country", Text),
    Column("segment", Integer),
    Column("persona", Text),
    Column("is_insider", Boolean),
    Column("recency_days", Float),
    Column("frequency", Integer),
    Column("monetary", Float),
    Column("avg_ticket", Float),
    Column("basket_size", Float),
    Column("return_rate", Float),
    Column("tenure_days", Float),
    Column("expected_value", Float),
    Column("value_rank", Integer),
    # the customer's predicted value (models.clv, calibrated by the forecast stage)
    Column("predicted_clv_12m", Float),
    Column("churn_risk", Float),
    Column("churn_band", String(8)),
    Column("p_alive", Float),
    Column("expected_next_order", String(10)),
)

SEGMENT_PROFILES = Table(
    "segment_profiles",
    METADATA,
    Column("run_id", String(7), primary_key=True),
    Column("segment", Integer, primary_key=True),
    Column("persona", Text),
    Column("description", Text),
    Column("action", Text),
    Column("customers", Integer),
    Column("share", Float),
    Column("insiders", Integer),
    Column("revenue", Float),
    Column("revenue_share", Float),
    Column("avg_recency_days", Float),
    Column("avg_frequency", Float),
    Column("avg_monetary", Float),
    Column("avg_ticket", Float),
    Column("avg_return_rate", Float),
    Column("avg_expected_value", Float),
)

MEMBERSHIP = Table(
    "membership",
    METADATA,
    Column("run_id", String(7), primary_key=True),
    Column("customer_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("expected_value", Float),
)

FORECASTS = Table(
    "forecasts",
    METADATA,
    Column("run_id", String(7), primary_key=True),
    Column("month", Date, primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("revenue", Float),
    Column("lower", Float),
    Column("upper", Float),
)

DATA_QUALITY = Table(
    "data_quality",
    METADATA,
    Column("run_id", String(7), primary_key=True),
    Column("reason", String(64), primary_key=True),
    Column("rows", Integer, nullable=False),
    Column("label", String(128)),  # the reason in the report's words (wording.reason)
)

MODEL_CANDIDATES = Table(
    "model_candidates",
    METADATA,
    Column("run_id", String(7), primary_key=True),
    Column("algorithm", String(32), primary_key=True),
    Column("k", Integer, primary_key=True),
    Column("silhouette", Float),
    Column("davies_bouldin", Float),
    Column("calinski_harabasz", Float),
    Column("min_segment_share", Float),
    Column("useful", Boolean),
    Column("chosen", Boolean),
    Column("note", Text),
)

STABILITY = Table(
    "stability",
    METADATA,
    Column("run_id", String(7), primary_key=True),
    Column("months_since_fit", Integer, primary_key=True),
    Column("ari", Float),
    Column("threshold", Float),
)


CAMPAIGNS = Table(
    "campaigns",
    METADATA,
    Column("run_id", String(7), primary_key=True),
    Column("customer_id", String(64), primary_key=True),  # one list per customer and month
    Column("list", String(16), nullable=False),
    Column("reason", Text),
    Column("expected_value", Float),
    Column("churn_risk", Float),
    Column("churn_band", String(8)),
    Column("value_rank", Integer),
)


# --------------------------------------------------------------------------- sync

TABLES = (RUNS, CUSTOMER_SEGMENTS, SEGMENT_PROFILES, MEMBERSHIP, FORECASTS, DATA_QUALITY,
          MODEL_CANDIDATES, STABILITY, CAMPAIGNS)


def _date(text: str | None) -> dt.date | None:
    return None if not text else dt.date.fromisoformat(str(text)[:10])


def _dt(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def flatten(run: dict, documents: dict[str, list[dict]]) -> dict[Table, list[dict]]:
    """Flat rows per table for one run (pure: documents in, rows out)."""
    run_id = run["run_id"]
    summary = run.get("summary", {})
    quality = run.get("data_quality", {})
    flows = run.get("membership", {})
    rows: dict[Table, list[dict]] = {t: [] for t in TABLES}
    rows[RUNS].append({
        "run_id": run_id, "as_of": _date(run["as_of"]),
        "period_start": _date(run.get("period_start")), "source": run.get("source"),
        "version": run["version"], "completed_at": _dt(run.get("completed_at")),
        "synced_at": dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
        "rows_in": quality.get("rows_in"), "rows_kept": quality.get("rows_kept"),
        "rows_set_aside": sum((quality.get("set_aside") or {}).values()),
        "customers": summary.get("customers"), "insiders": summary.get("insiders"),
        "insiders_share": summary.get("insiders_share"), "revenue": summary.get("revenue"),
        "insiders_revenue": summary.get("insiders_revenue"),
        "insiders_revenue_share": summary.get("insiders_revenue_share"),
        "chosen_model": run["model"]["chosen"],
        "n_segments": summary.get("n_segments"), "entered_count": flows.get("entered"),
        "stayed_count": flows.get("stayed"), "left_count": flows.get("left"),
        "forecast_next": summary.get("forecast_next"),
        "recommended_refresh_months": summary.get("recommended_refresh_months"),
        "currency": (run.get("answers") or {}).get("currency"),
    })
    for d in documents.get("customers", []):
        f = d.get("features", {})
        rows[CUSTOMER_SEGMENTS].append({
            "run_id": run_id, "customer_id": d["customer_id"], "country": d.get("country"),
            "segment": d["segment"], "persona": d["persona"], "is_insider": d["is_insider"],
            "recency_days": f.get("recency_days"), "frequency": f.get("frequency"),
            "monetary": f.get("monetary"), "avg_ticket": f.get("avg_ticket"),
            "basket_size": f.get("basket_size"), "return_rate": f.get("return_rate"),
            "tenure_days": f.get("tenure_days"), "expected_value": d.get("expected_value"),
            "value_rank": d.get("value_rank"),
            **{k: d.get("predictions", {}).get(k) for k in ("predicted_clv_12m", "churn_risk",
                                                            "churn_band", "p_alive",
                                                            "expected_next_order")},
        })
    for d in documents.get("segments", []):
        p = d.get("profile", {})
        rows[SEGMENT_PROFILES].append({
            "run_id": run_id, "segment": d["segment"], "persona": d["persona"],
            "description": d.get("description"), "action": d.get("action"),
            "customers": d["customers"], "share": d["share"], "insiders": d["insiders"],
            "revenue": d["revenue"], "revenue_share": d.get("revenue_share"),
            "avg_recency_days": p.get("mean_recency_days", p.get("recency_days")),
            "avg_frequency": p.get("mean_frequency", p.get("frequency")),
            "avg_monetary": p.get("mean_monetary", p.get("monetary")),
            "avg_ticket": p.get("mean_avg_ticket", p.get("avg_ticket")),
            "avg_return_rate": p.get("return_rate"),
            "avg_expected_value": p.get("mean_expected_value"),
        })
    for d in documents.get("membership", []):
        rows[MEMBERSHIP].append({"run_id": run_id, "customer_id": d["customer_id"],
                                 "status": d["status"], "reason": d.get("reason"),
                                 "expected_value": d.get("expected_value")})
    for d in documents.get("forecasts", []):
        rows[FORECASTS].append({"run_id": run_id, "month": _date(d["month"]), "kind": d["kind"],
                                "revenue": d.get("revenue"), "lower": d.get("lower"),
                                "upper": d.get("upper")})
    for reason, count in (quality.get("set_aside") or {}).items():
        rows[DATA_QUALITY].append({"run_id": run_id, "reason": reason, "rows": int(count),
                                   "label": wording.reason(reason)})
    for c in run["model"].get("candidates", []):
        rows[MODEL_CANDIDATES].append({
            "run_id": run_id, "algorithm": c["algorithm"], "k": c["k"],
            "silhouette": c.get("silhouette"), "davies_bouldin": c.get("davies_bouldin"),
            "calinski_harabasz": c.get("calinski_harabasz"),
            "min_segment_share": c.get("min_segment_share"), "useful": c.get("useful"),
            "chosen": c.get("chosen"), "note": c.get("note")})
    for d in documents.get("stability", []):
        rows[STABILITY].append({"run_id": run_id, "months_since_fit": d["months_since_fit"],
                                "ari": d.get("ari"), "threshold": d.get("threshold")})
    for d in documents.get("campaigns", []):
        rows[CAMPAIGNS].append({"run_id": run_id, "customer_id": d["customer_id"],
                                "list": d["list"], "reason": d.get("reason"),
                                "expected_value": d.get("expected_value"),
                                "churn_risk": d.get("churn_risk"),
                                "churn_band": d.get("churn_band"),
                                "value_rank": d.get("value_rank")})
    return rows


def create_tables(engine: Engine) -> None:
    """Create the tables, and add the columns a newer version brought to tables an older one
    created (nullable, so the rows already there stay valid); nothing is ever dropped."""
    from sqlalchemy import inspect

    METADATA.create_all(engine)
    present = inspect(engine)
    with engine.begin() as conn:
        for table in TABLES:
            have = {c["name"] for c in present.get_columns(table.name)}
            for column in table.columns:
                if column.name not in have:
                    kind = column.type.compile(dialect=engine.dialect)
                    name = engine.dialect.identifier_preparer.quote(column.name)
                    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}")


def synced_versions(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(RUNS.c.run_id, RUNS.c.version)).all())


def write_run(engine: Engine, rows: dict[Table, list[dict]]) -> dict[str, int]:
    """Replace one run's rows in ONE transaction: readers see the old run or the new one."""
    run_id = rows[RUNS][0]["run_id"]
    counts = {}
    with engine.begin() as conn:
        for table in reversed(TABLES):
            conn.execute(delete(table).where(table.c.run_id == run_id))
        for table in TABLES:
            data = rows.get(table, [])
            if data:
                for start in range(0, len(data), 5000):
                    conn.execute(insert(table), data[start:start + 5000])
            counts[table.name] = len(data)
    return counts


def sync(store, sql_url: str) -> dict:
    """Copy every complete run that is new or changed; unchanged runs are left alone."""
    from ..stores import COLLECTIONS

    engine = create_engine(sql_url)
    try:
        create_tables(engine)
        have = synced_versions(engine)
        synced, unchanged, rows = [], [], {}
        for run in store.complete_runs():
            run_id = run["run_id"]
            if have.get(run_id) == run["version"]:
                unchanged.append(run_id)
                continue
            documents = {name: store.documents(name, run_id) for name in COLLECTIONS}
            counts = write_run(engine, flatten(run, documents))
            synced.append(run_id)
            for name, n in counts.items():
                rows[name] = rows.get(name, 0) + n
            log.info("sync_sql: run %s synced (%s)", run_id,
                     ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    except SQLAlchemyError as exc:
        raise StoreError(f"SQL store {redact_url(sql_url)} failed: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:300]}") from None
    finally:
        engine.dispose()
    log.info("sync_sql: %s synced, %d unchanged", wording.counted(len(synced), "run"),
             len(unchanged))
    return {"synced": synced, "unchanged": unchanged, "rows": rows}


def table_counts(sql_url: str, run_id: str | None = None) -> dict[str, int]:
    """Rows per table (for one run), to check the store against the documents."""
    engine = create_engine(sql_url)
    try:
        with engine.connect() as conn:
            out = {}
            existing = set(inspect(conn).get_table_names())
            for table in TABLES:
                if table.name not in existing:  # nothing synced yet
                    out[table.name] = 0
                    continue
                query = select(func.count()).select_from(table)
                if run_id is not None:
                    query = query.where(table.c.run_id == run_id)
                out[table.name] = int(conn.execute(query).scalar_one())
            return out
    finally:
        engine.dispose()
