"""SQL store: flat tables for the dashboard, synced from the document store.

The tables are portable (SQLite and PostgreSQL). See docs/contracts.md.
"""

from __future__ import annotations

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
)

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
