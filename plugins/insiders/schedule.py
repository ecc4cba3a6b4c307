"""How the monthly service runs under Airflow's real scheduler: which month a run covers, one
run of a month at a time, and how far back a fresh deployment catches up.

Why a module of its own: under the scheduler a run's dates come from different places
depending on how the run was made. A scheduled or backfill run has a one-month data interval
(2011-05-01 -> 2011-06-01 is month 2011-05, as-of 2011-06-01). A manual run has a logical
date (CLI, REST and UI), or none at all (`airflow dags trigger` without a date), and the CLI
fills its data interval from the trigger time rather than from the date. So the month is
decided here, once, from the run's own facts, and the rest of the run only uses that month:

- scheduled / backfill: the data interval, which must be exactly one calendar month;
- manual with a date: the last month complete on that date (2011-06-15 and 2011-06-01 both
  mean 2011-05, as-of 2011-06-01; 2011-12-01 means 2011-11) - what Airflow's REST API and UI
  derive for this timetable, and what `airflow dags test insiders_monthly 2011-12-01` runs;
- manual without a date: the last month complete when it was triggered, but never past the
  schedule's last month (INSIDERS_END_DATE, or the demo data's last complete month).

A month that is not over, or not a month, is an input error: the task fails at once.

The whole-run lease: a month is one folder (runs/<YYYY-MM>) and one set of documents and SQL
rows, written by a dozen task processes. The first task takes the month's lease in
INSIDERS_HOME/leases/<YYYY-MM>.json for its run (owner: dag id and run id), every task
checks and renews it, and the last one (a teardown, which runs even when the run fails)
releases it. Anyone else (another DAG run, `insiders backfill`) is refused with who holds the
month and since when. A lease nobody renewed for LEASE_STALE_AFTER is taken over; one held by
a process (the CLI) that is gone on this host is taken over at once.

This module imports nothing heavy: the DAG file uses it at parse time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError, InsidersError, RunLockedError

if TYPE_CHECKING:
    from .config import Settings
    from .stages import Stage

# the demo data set (insiders.demo) ends on 2011-12-09: its last complete month is 2011-11
DEMO_LAST_MONTH = "2011-11-01"
LEASE_STALE_AFTER = dt.timedelta(hours=6)
INTERVAL_RUN_TYPES = ("scheduled", "backfill")


class ScheduleError(InputError):
    """A run asks for a month that cannot be run (not over yet, not one month, out of range)."""


class ScheduleEndedError(InsidersError):
    """A scheduled run past the schedule's last month: nothing to do (the run is skipped)."""


class ChainError(InputError):
    """A month's membership needs the previous month's run, and that run is not complete."""


class MonthBusyError(RunLockedError):
    """Another run holds the month."""


# --------------------------------------------------------------------------- dates


def _utc(value: object, what: str) -> dt.datetime | None:
    """A datetime in UTC (naive values are UTC), None for missing values (None, NaT, '')."""
    if value is None or value == "" or value != value:  # NaT != NaT
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ScheduleError(f"{what} {value!r} is not a date (use YYYY-MM-DD)") from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        to_py = getattr(value, "to_pydatetime", None)  # a pandas Timestamp, without pandas
        if to_py is None:
            raise ScheduleError(f"{what} {value!r} is not a date")
        value = to_py()
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def month_start(value: dt.datetime) -> dt.datetime:
    """Midnight UTC of the first day of the month holding `value`."""
    return dt.datetime(value.year, value.month, 1, tzinfo=dt.UTC)


def add_months(day: dt.datetime, months: int) -> dt.datetime:
    """The first day of the month `months` away from `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)


def month_key(as_of: dt.datetime) -> str:
    """The month a run covers: the one before its as-of (as-of 2011-12-01 is 2011-11)."""
    return add_months(as_of, -1).strftime("%Y-%m")


def months_between(first: dt.datetime, last: dt.datetime) -> int:
    """How many months from `first`'s month to `last`'s, both included."""
    return (last.year - first.year) * 12 + last.month - first.month + 1


# --------------------------------------------------------------------------- the run's month


@dataclass(frozen=True)
class RunMonth:
    """The month a run covers, its as-of (exclusive end of the data) and how it was decided."""

    month: str  # "2011-05"
    as_of: str  # "2011-06-01"
    how: str  # one line for the task log

    def as_dict(self) -> dict:
        return asdict(self)


def decide_month(run_type: str, logical_date: object = None, interval_start: object = None,
                 interval_end: object = None, run_after: object = None,
                 last_month: object = None, first_month: object = None) -> RunMonth:
    """The month a DAG run covers, from the run's own facts (see the module docstring).

    `last_month` / `first_month` are the schedule's bounds (first days of months): a manual
    run without a date never goes past the last one, and no run goes before the first one.
    """
    run_type = str(getattr(run_type, "value", run_type))
    logical = _utc(logical_date, "logical date")
    start, end = _utc(interval_start, "data interval start"), _utc(interval_end,
                                                                      "data interval end")
    after = _utc(run_after, "run after") or dt.datetime.now(dt.UTC)
    last = _utc(last_month, "last month")
    first = _utc(first_month, "first month")
    if run_type in INTERVAL_RUN_TYPES:
        if start is None or end is None:
            raise ScheduleError(f"this {run_type} run has no data interval; it cannot say which "
                                "month it covers")
        if start != month_start(start) or end != add_months(start, 1):
            raise ScheduleError(f"this {run_type} run's data interval {start:%Y-%m-%d %H:%M} -> "
                                f"{end:%Y-%m-%d %H:%M} UTC is not one calendar month")
        as_of, how = end, (f"{run_type} run: data interval {start:%Y-%m-%d} -> {end:%Y-%m-%d}")
        if run_type == "scheduled" and last is not None and start > last:
            raise ScheduleEndedError(f"month {start:%Y-%m} is past the schedule's last month "
                                f"{last:%Y-%m} (INSIDERS_END_DATE): nothing to run")
    elif logical is not None:
        as_of = month_start(logical)
        how = (f"{run_type} run for logical date {logical:%Y-%m-%d %H:%M} UTC: the last month "
               "complete on that date")
        if as_of > month_start(after):
            raise ScheduleError(f"logical date {logical:%Y-%m-%d} asks for month "
                                f"{month_key(as_of)}, which is not over yet (triggered "
                                f"{after:%Y-%m-%d}); give a date in a later month")
    else:
        as_of = month_start(after)
        how = f"{run_type} run without a date, triggered {after:%Y-%m-%d}: the last complete month"
        if last is not None and as_of > add_months(last, 1):
            as_of = add_months(last, 1)
            how += f" of the schedule (it ends with {last:%Y-%m})"
    if first is not None and as_of <= month_start(first):
        raise ScheduleError(f"month {month_key(as_of)} is before the schedule's first month "
                            f"{first:%Y-%m} (INSIDERS_START_DATE / INSIDERS_CATCHUP_MONTHS); "
                            "lower those to run earlier months")
    return RunMonth(month_key(as_of), f"{as_of:%Y-%m-%d}", how)


def month_from_context(context: Mapping, last_month: object = None,
                       first_month: object = None) -> RunMonth:
    """`decide_month` from an Airflow task context (Task SDK: context['dag_run'])."""
    run = context.get("dag_run")
    if run is None:
        raise ScheduleError("no DAG run in this task's context")
    return decide_month(
        getattr(run, "run_type", "manual"), getattr(run, "logical_date", None),
        getattr(run, "data_interval_start", None), getattr(run, "data_interval_end", None),
        getattr(run, "run_after", None), last_month, first_month)


def run_owner(context: Mapping) -> str:
    """Who holds a month for an Airflow run: `insiders_monthly/backfill__2011-05-01T...`."""
    run = context["dag_run"]
    return f"{run.dag_id}/{run.run_id}"


# --------------------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class Window:
    """The months the DAG schedules (first days of months, UTC) and why."""

    start: dt.datetime
    end: dt.datetime | None
    note: str
    catchup: bool = True

    @property
    def airflow_end(self) -> dt.datetime | None:
        """The DAG's end_date. Airflow creates no task for a run whose logical date is past
        it, and a manual run names its month by a date in the month after (2011-12-15 is
        2011-11): the end reaches to the end of that month. The one scheduled run that this
        lets through (the month after the last) is skipped by `plan` (ScheduleEndedError)."""
        if self.end is None:
            return None
        return add_months(self.end, 2) - dt.timedelta(microseconds=1)


def schedule_window(start_date: str | None, end_date: str | None, catchup_months: int,
                    today: object = None, demo_source: bool = False) -> Window:
    """The DAG's start, end and catchup: what a fresh deployment runs when it is unpaused.

    The last month is INSIDERS_END_DATE (first day of the last month to run), the demo data's
    last complete month when the source is the demo, else the month before today (live
    data). The first is INSIDERS_START_DATE. When that spans more than `catchup_months`,
    catchup is off: unpausing runs only the latest month, not every month since 2011; the
    earlier ones are a deliberate `airflow backfill create`. The start itself does not move:
    Airflow gives no task to a run dated before the DAG's start, so a moving start would make
    `airflow dags test` or a REST run for an earlier month an empty "success".
    """
    if catchup_months < 1:
        raise ScheduleError(f"INSIDERS_CATCHUP_MONTHS must be at least 1, not {catchup_months}")
    now = _utc(today, "today") or dt.datetime.now(dt.UTC)
    end_value = end_date or (DEMO_LAST_MONTH if demo_source else None)
    end = month_start(_utc(end_value, "INSIDERS_END_DATE")) if end_value else None
    last = end or add_months(month_start(now), -1)
    start = month_start(_utc(start_date, "INSIDERS_START_DATE") or last)
    if end is not None and start > end:
        raise ScheduleError(f"INSIDERS_START_DATE {start:%Y-%m} is after INSIDERS_END_DATE "
                            f"{end:%Y-%m}")
    months = months_between(start, last)
    catchup = months <= catchup_months
    note = f"months {start:%Y-%m}..{last:%Y-%m}" + ("" if end else " and on")
    if not catchup:
        note += (f": {months} months exceed INSIDERS_CATCHUP_MONTHS={catchup_months}, so "
                 f"catchup is off (unpausing runs the latest month only; backfill the rest)")
    return Window(start, end, note, catchup)


# --------------------------------------------------------------------------- the month chain


def previous_members(store: object, month: str) -> list[str]:
    """The Insiders of the month before `month`, for the hysteresis; a gap is an error.

    With no complete run before `month` the chain starts here (nobody to keep). With an
    earlier complete run but not the month just before, membership would silently restart
    (every member "entered"), so the run fails naming the missing month.
    """
    complete = [r["run_id"] for r in store.complete_runs()]
    wait_reason(month, None, 0, 0, complete)  # raises on a gap
    return store.previous_members(month)


def require_covered(data_as_of: object, as_of: object, month: str) -> None:
    """Refuse a month the data does not reach to its end (a month past the data's last line)."""
    data_end, wanted = _utc(data_as_of, "data as-of"), _utc(as_of, "as-of")
    if data_end is None or wanted is None or wanted <= data_end:
        return
    last = month_key(month_start(data_end))
    raise ScheduleError(
        f"month {month} is past the data: its last line is on "
        f"{data_end - dt.timedelta(days=1):%Y-%m-%d}, so the last month it covers is {last}; "
        f"run that one (--logical-date {month_start(data_end):%Y-%m-%d}) or set "
        f"INSIDERS_END_DATE={last}-01 for a data set that does not grow")


# --------------------------------------------------------------------------- the lease


def _lease_path(home: Path, month: str) -> Path:
    return Path(home) / "leases" / f"{month}.json"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:  # a half-written lease: its writer died in the middle
        return {"owner": "unknown", "since": None, "renewed": None}


def _write_new(path: Path, doc: dict) -> bool:
    """Create the lease file only if there is none (atomic on local and NFS v3+ file systems)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(doc, handle)
    return True


def _replace(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def _process_gone(doc: dict) -> bool:
    """The holder was a plain process (the CLI) on this host and it no longer exists."""
    if doc.get("kind") != "process" or doc.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(doc.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def _stale(doc: dict, now: dt.datetime, stale_after: dt.timedelta) -> bool:
    renewed = doc.get("renewed") or doc.get("since")
    if not renewed:
        return True
    return now - dt.datetime.fromisoformat(renewed) > stale_after


def acquire(home: Path, month: str, owner: str, kind: str = "airflow-run",
            stale_after: dt.timedelta = LEASE_STALE_AFTER) -> dict:
    """Take or renew the month's lease for `owner`; refuse if someone else holds it.

    Idempotent for the holder (every task of a run calls it: a retry, a cleared task).
    """
    path = _lease_path(home, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = _now()
    mine = {"month": month, "owner": owner, "kind": kind, "host": socket.gethostname(),
            "pid": os.getpid(), "since": now.isoformat(), "renewed": now.isoformat()}
    for _ in range(3):
        if _write_new(path, mine):
            return mine
        held = _read(path)
        if held is None:
            continue  # released in between: try again
        if held.get("owner") == owner:
            renewed = {**held, "renewed": now.isoformat(), "pid": os.getpid(),
                       "host": socket.gethostname()}
            _replace(path, renewed)
            return renewed
        if _stale(held, now, stale_after) or _process_gone(held):
            # move it aside atomically: of two takers only one rename succeeds
            try:
                path.rename(path.with_name(f".{path.name}.taken-{os.getpid()}"))
            except FileNotFoundError:
                continue
            continue
        raise MonthBusyError(
            f"month {month} is held by {held.get('owner')} (on {held.get('host')}) since "
            f"{held.get('since')}, last active {held.get('renewed')}; this run does not touch "
            f"it: wait for that run to end, then run the month again")
    raise MonthBusyError(f"month {month}: could not take its lease ({path}); try again")


def release(home: Path, month: str, owner: str) -> bool:
    """Give the month back, only if `owner` holds it (a refused run must not free it)."""
    path = _lease_path(home, month)
    held = _read(path)
    if not held or held.get("owner") != owner:
        return False
    path.unlink(missing_ok=True)
    return True


def holder(home: Path, month: str) -> dict | None:
    """The month's current lease, if any."""
    return _read(_lease_path(home, month))


@contextmanager
def month_lease(home: Path, month: str, owner: str | None = None) -> Iterator[dict]:
    """Hold the month for the length of a block (the CLI's whole run)."""
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    lease = acquire(home, month, owner, kind="process")
    try:
        yield lease
    finally:
        release(home, month, owner)


# --------------------------------------------------------------------------- what the DAG calls


def window_of(settings: object) -> Window:
    """The schedule window for these settings (the DAG's start_date and end_date)."""
    return schedule_window(settings.start_date, settings.end_date, settings.catchup_months,
                           demo_source=settings.source is None)


def dag_bounds(dag: object, settings: object) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The first and last month of the DAG the run belongs to (as it was parsed), else of
    these settings: a run keeps the bounds of its own DAG."""
    if dag is None or getattr(dag, "start_date", None) is None:
        window = window_of(settings)
        return window.start, window.end
    end = getattr(dag, "end_date", None)
    last = add_months(month_start(_utc(end, "end date")), -1) if end else None
    return month_start(_utc(dag.start_date, "start date")), last


def previous_month(month: str) -> str:
    """'2011-05' -> '2011-04'."""
    year, mon = (int(p) for p in month.split("-"))
    return add_months(dt.datetime(year, mon, 1, tzinfo=dt.UTC), -1).strftime("%Y-%m")


def wait_reason(month: str, previous_lease: Mapping | None, previous_active_runs: int,
                previous_failed_runs: int, complete_runs: list[str]) -> str | None:
    """Why month `month` must wait for its previous month, or None when it may start.

    Raises ChainError when waiting cannot help: the previous month's run failed, or the
    previous month is missing while an earlier one is complete (membership would restart).
    """
    prev = previous_month(month)
    if previous_lease:
        return (f"month {prev} is being run by {previous_lease.get('owner')} (since "
                f"{previous_lease.get('since')}); {month} starts when it ends")
    if previous_active_runs:
        return f"a run of month {prev} is queued or running; {month} starts when it ends"
    if prev in complete_runs:
        return None
    if previous_failed_runs:
        raise ChainError(f"run {month} needs run {prev}, and its last run failed; clear and "
                         f"re-run {prev} first, then this month")
    earlier = [r for r in complete_runs if r < month]
    if earlier:
        raise ChainError(
            f"run {month} needs run {prev} complete first (its members decide who stays), but "
            f"the latest complete earlier run is {earlier[-1]}; run {prev} first (airflow "
            f"backfill create --dag-id insiders_monthly --from-date {prev}-01 --to-date "
            f"{month}-01)")
    return None  # nothing before: the chain starts with this month


def plan_run(context: Mapping, settings: object) -> tuple[bool, dict | str]:
    """The first task of a run (a sensor): decide the month once, wait for the previous
    month's run to end, then take the month for this run.

    Returns (True, {month, as_of, how, owner}) - small: it travels by XCom to every task,
    which then works on that month only - or (False, why it waits).
    """
    from . import stores
    from .log import info

    first, last = dag_bounds(context.get("dag"), settings)
    month = month_from_context(context, last_month=last, first_month=first)
    run = context["dag_run"]
    prev = previous_month(month.month)
    year, mon = (int(p) for p in prev.split("-"))
    prev_start = dt.datetime(year, mon, 1, tzinfo=dt.UTC)
    ti = context["ti"]
    active = ti.get_dr_count(dag_id=run.dag_id, logical_dates=[prev_start],
                             states=["queued", "running"])
    failed = ti.get_dr_count(dag_id=run.dag_id, logical_dates=[prev_start], states=["failed"])
    lease = holder(settings.home, prev)
    if lease and (_stale(lease, _now(), LEASE_STALE_AFTER) or _process_gone(lease)):
        lease = None
    with stores.store_from(settings) as store:
        complete = [r["run_id"] for r in store.complete_runs()]
    why = wait_reason(month.month, lease, active, failed, complete)
    if why:
        info("plan: run %s waits: %s", month.month, why)
        return False, why
    owner = run_owner(context)
    acquire(settings.home, month.month, owner)
    info("plan: run %s (as-of %s, data before it): %s; month held by %s", month.month,
         month.as_of, month.how, owner)
    return True, {**month.as_dict(), "owner": owner}


def run_step(stage: Stage, planned: Mapping, settings: Settings) -> dict:
    """One stage of the month `planned` names, after checking this run still holds it."""
    from .context import Run

    acquire(settings.home, planned["month"], planned["owner"])
    return stage(Run.monthly(settings, planned["as_of"]))


def end_run(planned: Mapping, settings: object) -> dict:
    """The teardown: give the month back (runs when the run succeeded or failed)."""
    from .log import info

    released = release(settings.home, planned["month"], planned["owner"])
    info("end: month %s %s", planned["month"],
         "released" if released else "was not held by this run any more")
    return {"month": planned["month"], "released": released}
