"""
### Insiders, every month

Picks the best customers for the loyalty program, explains why, forecasts what
they will spend, and publishes it all: MongoDB documents, synced to the SQL
store that the Metabase dashboard reads.

Each run covers **the month that just ended**: the run for the data interval
2011-11-01 -> 2011-12-01 uses every transaction dated before 2011-12-01 (its
as-of date) and is stored as run `2011-11`. The first task, `plan`, decides the
month once (`insiders.schedule`) and every other task works on that month:

- scheduled and backfill runs: their data interval (one calendar month);
- a manual run with a logical date (CLI `--logical-date`, REST, UI): the last
  month complete on that date: 2011-12-01 and 2011-12-15 both run 2011-11;
- a manual run without a date: the last complete month, never past the
  schedule's last month (`INSIDERS_END_DATE`; the demo data: 2011-11).

A month starts only once the previous month's run has ended: `plan` is a
sensor (reschedule mode: it holds no worker slot while it waits) that looks at
the previous month's Airflow runs and lease, so a backfill, which starts up to
ten runs at once, ends exactly as a sequential one. A month whose previous
month failed or is missing fails at once naming it. `plan` takes the month for
its run and the `end`
teardown gives it back, so no other run or CLI writes the month's folder or
stores meanwhile. Unpaused, the DAG catches up from `INSIDERS_START_DATE` when
that is at most `INSIDERS_CATCHUP_MONTHS` (12) months; a longer span turns
catchup off (the latest month only) and earlier months are an explicit
`airflow backfill create`.

Configuration comes from the environment (`INSIDERS_*`, see the README):
the source (`INSIDERS_SOURCE`: a file, a glob or a SQLAlchemy URL with
`INSIDERS_SOURCE_QUERY`; unset = the demo data set), the stores
(`INSIDERS_MONGO_URI`, `INSIDERS_SQL_URL`; unset = embedded stores under
`INSIDERS_HOME`) and Metabase (`INSIDERS_METABASE_URL`; unset = the refresh is
skipped). Bad input, a month that is not over or past the data, and a month
held by another run fail a task at once; anything else is retried. Task logs
show rows in and out, counts per reason, the chosen model and timings. Each
stage task runs one stage of `insiders.stages.MONTHLY`, the same list `insiders run`
and `insiders backfill` run.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import (
    CronDataIntervalTimetable,
    PokeReturnValue,
    chain,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from insiders import schedule, stages
from insiders.config import Settings
from insiders.errors import InputError, RunLockedError

# parse time stays light: the settings, the schedule and the stage list import no data or
# model library (each stage imports what it needs when it runs)
SETTINGS = Settings.from_env()
WINDOW = schedule.window_of(SETTINGS)


def fail_fast(call, *args):
    """Bad input, an impossible month or a month held by another run: fail now, a retry
    cannot help; a month past the schedule's end is skipped."""
    try:
        return call(*args)
    except (InputError, RunLockedError) as exc:
        raise AirflowFailException(str(exc)) from exc
    except schedule.ScheduleEndedError as exc:
        raise AirflowSkipException(str(exc)) from exc


def run_stage(stage: stages.Stage, planned: dict) -> dict:
    """One stage for the month `plan` decided, while this run still holds the month."""
    return fail_fast(schedule.run_step, stage, planned, Settings.from_env())


@dag(
    dag_id="insiders_monthly",
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=WINDOW.start,
    end_date=WINDOW.airflow_end,
    catchup=WINDOW.catchup,  # off when the schedule spans more than INSIDERS_CATCHUP_MONTHS
    max_active_runs=1,
    # start_date here too: `airflow dags trigger` then refuses a logical date before it
    default_args={"retries": 2, "owner": "insiders", "start_date": WINDOW.start,
                  "retry_delay": dt.timedelta(seconds=SETTINGS.retry_delay_seconds)},
    tags=["insiders", "loyalty", "monthly"],
    doc_md=__doc__,
)
def insiders_monthly():
    # A month starts only once the previous month's run has ended, however the runs were
    # created (a backfill starts up to 10 at once): `plan` waits for it without holding a
    # worker slot, and fails at once when it never will (a failed or missing month).
    @task.sensor(mode="reschedule", poke_interval=SETTINGS.wait_poke_seconds,
                 timeout=dt.timedelta(hours=12).total_seconds(), retries=0)
    def plan() -> PokeReturnValue:
        done, value = fail_fast(schedule.plan_run, get_current_context(), Settings.from_env())
        return PokeReturnValue(is_done=done, xcom_value=value if done else None)

    @task
    def extract(planned: dict) -> dict:
        return run_stage(stages.extract, planned)

    @task
    def quality(planned: dict) -> dict:
        return run_stage(stages.quality, planned)

    @task
    def features(planned: dict) -> dict:
        return run_stage(stages.features, planned)

    @task
    def value(planned: dict) -> dict:
        return run_stage(stages.value, planned)

    @task
    def segment(planned: dict) -> dict:
        return run_stage(stages.segment, planned)

    @task
    def insiders(planned: dict) -> dict:
        return run_stage(stages.insiders, planned)

    @task
    def evaluate(planned: dict) -> dict:
        return run_stage(stages.evaluate, planned)

    @task
    def forecast(planned: dict) -> dict:
        return run_stage(stages.forecast, planned)

    @task
    def stability(planned: dict) -> dict:
        return run_stage(stages.stability, planned)

    @task
    def report(planned: dict) -> dict:
        return run_stage(stages.report, planned)

    @task
    def write_documents(planned: dict) -> dict:
        return run_stage(stages.write_documents, planned)

    @task
    def sync_sql(planned: dict) -> dict:
        return run_stage(stages.sync_sql, planned)

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def metabase_configured() -> bool:
        from insiders import monthly

        return monthly.metabase_configured(Settings.from_env())

    @task
    def refresh_metabase() -> dict:
        from insiders import monthly

        return monthly.refresh_metabase(Settings.from_env())

    @task
    def end(planned: dict) -> dict:
        """The teardown: give the month back, whether the run succeeded or failed."""
        return schedule.end_run(planned, Settings.from_env())

    planned = plan()
    featured = features(planned)
    chain(planned, extract(planned), quality(planned), featured)
    # what each stage reads (`Stage.needs`): the values, then the Insiders (who read no
    # segment), their evaluation and forecast, beside the segments and their stability;
    # the report joins them
    valued, segmented = value(planned), segment(planned)
    chosen, stable = insiders(planned), stability(planned)
    evaluated, forecasted = evaluate(planned), forecast(planned)
    reported = report(planned)
    chain(featured, [valued, segmented])
    chain(valued, chosen)
    chain(segmented, stable)
    chain(chosen, [evaluated, forecasted])
    chain([evaluated, forecasted, stable], reported)
    chain(
        reported,
        write_documents(planned),
        sync_sql(planned),
        metabase_configured(),
        refresh_metabase(),
        end(planned).as_teardown(setups=planned),
    )

insiders_monthly()
