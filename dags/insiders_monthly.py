"""
### Insiders, every month

Picks the best customers for the loyalty program, explains why, forecasts what
they will spend, and publishes it all: MongoDB documents, synced to the SQL
store that the Metabase dashboard reads.

Each run covers **the month that just ended**: the run for the data interval
2011-11-01 -> 2011-12-01 uses every transaction dated before 2011-12-01 (its
as-of date) and is stored as run `2011-11`. Re-running a month replaces its
results. Catchup is on, so a backfill over 2011-03..2011-12 produces ten runs,
one at a time (`max_active_runs=1`: the membership of a month depends on the
previous month's Insiders).

Configuration comes from the environment (`INSIDERS_*`, see the README):
the source (`INSIDERS_SOURCE`: a file, a glob or a SQLAlchemy URL with
`INSIDERS_SOURCE_QUERY`; unset = the demo data set), the stores
(`INSIDERS_MONGO_URI`, `INSIDERS_SQL_URL`; unset = embedded stores under
`INSIDERS_HOME`), the schedule's first month (`INSIDERS_START_DATE`) and
Metabase (`INSIDERS_METABASE_URL`; unset = the refresh is skipped).
Bad input fails a task at once (retrying cannot fix it); anything else is
retried. Task logs show rows in and out, counts per reason, the chosen model
and timings. Every task calls one function of `insiders.monthly`.
"""

from __future__ import annotations

import datetime as dt
import functools

from airflow.sdk import CronDataIntervalTimetable, chain, dag, task
from airflow.sdk.exceptions import AirflowFailException
from insiders import monthly
from insiders.config import Settings
from insiders.errors import InputError, RunLockedError

SETTINGS = Settings.from_env()


def _utc(day: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) if day else None


def no_retry_on_bad_input(func):
    """Bad input or a month already being written: fail now, a retry cannot help."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (InputError, RunLockedError) as exc:
            raise AirflowFailException(str(exc)) from exc

    return wrapper


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
    def step(name: str):
        call = no_retry_on_bad_input(getattr(monthly, name))

        @task(task_id=name)
        def run(data_interval_end=None):
            return call(data_interval_end)

        return run()

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def metabase_configured():
        return monthly.metabase_configured()

    @task
    def refresh_metabase():
        return monthly.refresh_metabase()

    chain(*[step(name) for name in monthly.STEPS], metabase_configured(), refresh_metabase())


insiders_monthly()
