"""Transaction-level work on a dataframe engine (Ibis): DuckDB, Spark or the retailer's SQL.

The per-line work (typing and setting lines aside, duplicates, the per-reason
accounting, per-customer features as of a date, revenue per customer and
period, daily group revenue, cohorts) is written once as Ibis expressions
(`lines.py`, `aggregates.py`) and runs wherever Ibis has a backend:

- `duckdb` (the default): embedded, streams Parquet and spills to disk, so
  a file larger than memory still runs on one machine;
- `spark`: Apache Spark (`pip install .[spark]`), local mode or a cluster
  (`INSIDERS_SPARK_MASTER`);
- `pandas`: the in-process pandas code of `quality.py` / `models/features.py`,
  kept as the reference the engines are tested against.

The rules themselves stay in `quality.py`: the engine evaluates them once per
distinct raw value (dates, ids, numbers, codes repeat a lot), ships those small
dictionaries to the engine and joins them to the lines there.
"""

from __future__ import annotations

from .backends import ENGINES, Engine, connect

__all__ = ["ENGINES", "Engine", "connect"]
