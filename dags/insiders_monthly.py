"""
### Insiders, every month

Picks the best customers for the loyalty program, explains why, forecasts what
they will spend, and publishes it all: MongoDB documents, synced to the SQL
store that the Metabase dashboard reads.

Each run covers **the month that just ended**: the run for the data interval
2011-11-01 -> 2011-12-01 uses every transaction dated before 2011-12-01 (its
as-of date) and is stored as run `2011-11`. Re-running a month replaces its
results. `max_active_runs=1`: the membership of a month depends on the
previous month's Insiders.

Configuration comes from the environment (`INSIDERS_*`, see the README):
the source (`INSIDERS_SOURCE`: a file, a glob or a SQLAlchemy URL with
`INSIDERS_SOURCE_QUERY`; unset = the demo data set), the stores
(`INSIDERS_MONGO_URI`, `INSIDERS_SQL_URL`; unset = embedded stores under
`INSIDERS_HOME`), the schedule's first month (`INSIDERS_START_DATE`) and
Metabase (`INSIDERS_METABASE_URL`; unset = the refresh is skipped).
Bad input fails a task at once (retrying cannot fix it); anything else is
retried. Task logs show rows in and out, counts per reason, the chosen model
and timings. Each task runs one stage of `insiders.stages` (the same list
`insiders run` and `insiders backfill` run).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, chain, dag, task
from airflow.sdk.exceptions import AirflowFailException
from insiders import monthly, stages
from insiders.config import Settings
from insiders.context import Run
from insiders.errors import InputError, RunLockedError

SETTINGS = Settings.from_env()


def _utc(day: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) if day else None


def run_stage(stage: stages.Stage, as_of: str) -> dict:
    """One stage for the month before `as_of`. Bad input, or a month already being
    written by another run, fails the task at once: a retry cannot help."""
    try:
        return stage(Run.monthly(Settings.from_env(), as_of))
    except (InputError, RunLockedError) as exc:
        raise AirflowFailException(str(exc)) from exc


@dag(
    dag_id="insiders_monthly",
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=_utc(SETTINGS.start_date),
    end_date=_utc(SETTINGS.end_date),
    catchup=True,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2), "owner": "insiders"},
    tags=["insiders", "loyalty", "monthly"],
    doc_md=__doc__,
)
def insiders_monthly():
    @task
    def month(data_interval_end=None) -> str:
        """The as-of date of this run: the end of its data interval."""
        return data_interval_end.date().isoformat()

    @task
    def extract(as_of: str) -> dict:
        return run_stage(stages.extract, as_of)

    @task
    def quality(as_of: str) -> dict:
        return run_stage(stages.quality, as_of)

    @task
    def features(as_of: str) -> dict:
        return run_stage(stages.features, as_of)

    @task
    def segment(as_of: str) -> dict:
        return run_stage(stages.segment, as_of)

    @task
    def insiders(as_of: str) -> dict:
        return run_stage(stages.insiders, as_of)

    @task
    def evaluate(as_of: str) -> dict:
        return run_stage(stages.evaluate, as_of)

    @task
    def forecast(as_of: str) -> dict:
        return run_stage(stages.forecast, as_of)

    @task
    def stability(as_of: str) -> dict:
        return run_stage(stages.stability, as_of)

    @task
    def report(as_of: str) -> dict:
        return run_stage(stages.report, as_of)

    @task
    def write_documents(as_of: str) -> dict:
        return run_stage(stages.write_documents, as_of)

    @task
    def sync_sql(as_of: str) -> dict:
        return run_stage(stages.sync_sql, as_of)

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def metabase_configured() -> bool:
        return monthly.metabase_configured(Settings.from_env())

    @task
    def refresh_metabase() -> dict:
        return monthly.refresh_metabase(Settings.from_env())

    as_of = month()
    chain(
        as_of,
        extract(as_of),
        quality(as_of),
        features(as_of),
        segment(as_of),
        insiders(as_of),
        evaluate(as_of),
        forecast(as_of),
        stability(as_of),
        report(as_of),
        write_documents(as_of),
        sync_sql(as_of),
        metabase_configured(),
        refresh_metabase(),
    )


insiders_monthly()
