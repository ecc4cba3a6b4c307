"""The monthly service: what each task of the `insiders_monthly` DAG calls.

Each function takes plain inputs (the run's as-of date, the settings read from
the environment), works in the month's run folder under INSIDERS_HOME/runs and
returns a small dict of figures for the task log and XCom. Big data stays in
the run folder as Parquet. `run_month` chains the same calls in the same order
for engineers without Airflow (`insiders backfill`) and for tests.

A run covers the month that just ended: as-of 2011-12-01 (exclusive) is run
`2011-11`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from . import documents, pipeline, schedule, sql_sync, tasks
from .config import Settings
from .log import info


def as_of_date(value: object) -> pd.Timestamp:
    """The as-of date (midnight, naive UTC) from a date, a string or a data_interval_end."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def run_key(as_of: object) -> str:
    """The month a run covers: the month before its as-of date."""
    return (as_of_date(as_of) - pd.Timedelta(days=1)).strftime("%Y-%m")


def run_folder(settings: Settings, as_of: object) -> Path:
    path = settings.home / "runs" / run_key(as_of)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _settings(settings: Settings | None) -> Settings:
    return settings or Settings.from_env()


def _summary(result: dict, keys: tuple[str, ...]) -> dict:
    return {k: result[k] for k in keys if k in result}


def extract(as_of: object, settings: Settings | None = None) -> dict:
    s = _settings(settings)
    source = pipeline.resolve_source(s, None)
    result = tasks.extract_stage(run_folder(s, as_of), source, s.source_kind, s.source_query,
                                 s.chunk_rows)
    return {"run_id": run_key(as_of), **_summary(result, ("rows", "rejects", "source",
                                                          "seconds"))}


def quality(as_of: object, settings: Settings | None = None) -> dict:
    s = _settings(settings)
    folder = run_folder(s, as_of)
    result = tasks.quality_stage(folder, as_of_date(as_of))
    schedule.require_covered(tasks.default_as_of(folder), as_of_date(as_of), run_key(as_of))
    return _summary(result, ("rows_in", "rows_kept", "set_aside", "seconds"))


def features(as_of: object, settings: Settings | None = None) -> dict:
    s = _settings(settings)
    return tasks.features_stage(run_folder(s, as_of), as_of_date(as_of), s)


def segment(as_of: object, settings: Settings | None = None) -> dict:
    s = _settings(settings)
    result = tasks.segment_stage(run_folder(s, as_of), s)
    return {"chosen": result["chosen"], "personas": [p["persona"] for p in result["profiles"]],
            "seconds": result["seconds"]}


def insiders(as_of: object, settings: Settings | None = None) -> dict:
    """Select with hysteresis against the Insiders of the latest complete earlier run."""
    s = _settings(settings)
    with documents.store_from(s) as store:
        previous = schedule.previous_members(store, run_key(as_of))
    info("insiders: %d members in the previous complete run", len(previous))
    result = tasks.insiders_stage(run_folder(s, as_of), as_of_date(as_of), s, previous)
    return _summary(result, ("count", "active", "membership", "seconds"))


def evaluate(as_of: object, settings: Settings | None = None) -> dict:
    s = _settings(settings)
    result = tasks.evaluate_stage(run_folder(s, as_of), as_of_date(as_of), s)
    oot = result["out_of_time"]
    return {"out_of_time": oot.get("text"), "seconds": result["seconds"]}


def forecast(as_of: object, settings: Settings | None = None) -> dict:
    s = _settings(settings)
    result = tasks.forecast_stage(run_folder(s, as_of), as_of_date(as_of), s)
    return {"method": result["method"], "months": result["months"],
            "seconds": result["seconds"]}


def stability(as_of: object, settings: Settings | None = None) -> dict:
    s = _settings(settings)
    result = tasks.stability_stage(run_folder(s, as_of), as_of_date(as_of), s)
    return _summary(result, ("recommended_refresh_months", "min_ari", "text", "seconds"))


def report(as_of: object, settings: Settings | None = None) -> dict:
    """answers.json, insiders.csv and report.html, with membership flows across months."""
    s = _settings(settings)
    folder = run_folder(s, as_of)
    key = run_key(as_of)
    with documents.store_from(s) as store:
        history = store.membership_history()
    history = history[history["run_id"] < key]
    ins = tasks.read_json(folder, "work/insiders.json")
    now = {"run_id": key, **ins["membership"], "members": ins["count"]}
    history = pd.concat([history, pd.DataFrame([now])], ignore_index=True)
    return tasks.report_stage(folder, as_of_date(as_of), s, membership_history=history)


def write_documents(as_of: object, settings: Settings | None = None,
                    fail_after: str | None = None) -> dict:
    """Replace the month's documents; the run is visible to readers only once complete."""
    s = _settings(settings)
    started = time.perf_counter()
    key = run_key(as_of)
    run, docs = documents.build(run_folder(s, as_of), key)
    with documents.store_from(s) as store:
        result = store.write_run(run, docs, fail_after=fail_after)
    info("write_documents: run %s complete in the %s store: %s", key, store.kind,
         ", ".join(f"{k} {v:,}" for k, v in result["counts"].items()))
    return {**result, "seconds": round(time.perf_counter() - started, 3)}


def sync_sql(as_of: object | None = None, settings: Settings | None = None,
             fail_after: str | None = None) -> dict:
    """Copy complete runs that are new or changed to the SQL store (one transaction each)."""
    s = _settings(settings)
    started = time.perf_counter()
    with documents.store_from(s) as store:
        result = sql_sync.sync(store, s.sql_url_or_default, fail_after=fail_after)
    if as_of is not None and s.source_kind == "olist":
        from . import olist

        result["experience"] = olist.sync_experience(run_folder(s, as_of), s.sql_url_or_default)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def metabase_configured(settings: Settings | None = None) -> bool:
    s = _settings(settings)
    return bool(s.metabase_url and s.metabase_user and s.metabase_password)


def refresh_metabase(settings: Settings | None = None) -> dict:
    """Make Metabase match the dashboard definitions (idempotent: usually changes nothing).

    An Olist source also gets the customer-experience dashboard (metabase/experience).
    """
    from . import metabase

    s = _settings(settings)
    out = {"insiders": str(metabase.provision_from_env(s.metabase_url))}
    if s.source_kind == "olist":
        out["experience"] = str(metabase.provision_from_env(
            s.metabase_url, metabase.default_definition_dir() / "experience"))
    return out


STEPS = ("extract", "quality", "features", "segment", "insiders", "evaluate", "forecast",
         "stability", "report", "write_documents", "sync_sql")


def run_month(as_of: object, settings: Settings | None = None) -> dict:
    """Every task of the DAG for one month, in order, in this process."""
    s = _settings(settings)
    out = {}
    with schedule.month_lease(s.home, run_key(as_of)):  # nobody else writes the month meanwhile
        for step in STEPS:
            func = globals()[step]
            out[step] = func(as_of, s)
    return out


def months(start: object, end: object) -> list[pd.Timestamp]:
    """As-of dates of the monthly runs from `start` to `end` (first days of months)."""
    return list(pd.date_range(as_of_date(start), as_of_date(end), freq="MS"))
