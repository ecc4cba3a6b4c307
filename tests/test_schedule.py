"""insiders.schedule: which month a run covers, the catchup bound, the month chain and the
whole-run lease (pure functions and files; the real scheduler is in test_scheduler.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from insiders import schedule
from insiders.errors import InputError, RunLockedError

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 1, 8, 30, tzinfo=UTC)


def d(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# --------------------------------------------------------------------------- the run's month


def test_scheduled_and_backfill_runs_cover_their_data_interval():
    for kind in ("scheduled", "backfill"):
        got = schedule.decide_month(kind, d("2011-05-01"), d("2011-05-01"), d("2011-06-01"),
                                    NOW)
        assert (got.month, got.as_of) == ("2011-05", "2011-06-01")
    # a timezone-aware interval in another zone is the same instant
    paris = dt.timezone(dt.timedelta(hours=1))
    got = schedule.decide_month("scheduled", None, dt.datetime(2011, 5, 1, 1, tzinfo=paris),
                                dt.datetime(2011, 6, 1, 1, tzinfo=paris), NOW)
    assert got.month == "2011-05"


def test_an_interval_that_is_not_one_month_or_missing_is_refused():
    with pytest.raises(schedule.ScheduleError, match="not one calendar month"):
        schedule.decide_month("scheduled", None, d("2011-05-01"), d("2011-05-02"), NOW)
    with pytest.raises(schedule.ScheduleError, match="not one calendar month"):
        schedule.decide_month("backfill", None, d("2011-05-15"), d("2011-06-15"), NOW)
    with pytest.raises(schedule.ScheduleError, match="no data interval"):
        schedule.decide_month("scheduled", None, None, None, NOW)
    assert issubclass(schedule.ScheduleError, InputError)  # the DAG fails such a run at once


@pytest.mark.parametrize(("logical", "month", "as_of"), [
    ("2011-12-01", "2011-11", "2011-12-01"),   # docs/deploy.md's example
    ("2011-06-15", "2011-05", "2011-06-01"),   # the CLI example
    ("2011-06-01", "2011-05", "2011-06-01"),
    ("2011-06-30T23:59:00", "2011-05", "2011-06-01"),
    ("2012-01-01", "2011-12", "2012-01-01"),   # across a year
])
def test_a_manual_date_names_the_last_month_complete_on_that_date(logical, month, as_of):
    # the CLI fills the interval from the trigger time: it must not matter
    cli = schedule.decide_month("manual", logical, d("2026-10-01"), d("2026-11-01"), NOW)
    rest = schedule.decide_month("manual", logical, None, None, NOW)
    assert (cli.month, cli.as_of) == (rest.month, rest.as_of) == (month, as_of)


def test_a_manual_date_whose_month_is_not_over_is_refused():
    with pytest.raises(schedule.ScheduleError, match="2027-02, which is not over yet"):
        schedule.decide_month("manual", "2027-03-10", None, None, NOW)
    ok = schedule.decide_month("manual", "2026-12-01T09:00", None, None, NOW)
    assert ok.month == "2026-11"  # the month that ended at midnight


def test_a_manual_run_without_a_date_runs_the_last_complete_month_within_the_schedule():
    # NaT is what the CLI's empty interval looked like once it went through pandas
    nat = float("nan")
    live = schedule.decide_month("manual", None, nat, None, NOW)
    assert (live.month, live.as_of) == ("2026-11", "2026-12-01")
    bounded = schedule.decide_month("manual", None, None, None, NOW, last_month="2011-11-01")
    assert (bounded.month, bounded.as_of) == ("2011-11", "2011-12-01")
    assert "ends with 2011-11" in bounded.how


def test_the_scheduled_run_past_the_schedules_end_is_skipped_not_failed():
    with pytest.raises(schedule.ScheduleEndedError, match="2011-12 is past the schedule's last "
                                                          "month 2011-11"):
        schedule.decide_month("scheduled", None, d("2011-12-01"), d("2012-01-01"), NOW,
                              last_month="2011-11-01")
    assert not issubclass(schedule.ScheduleEndedError, InputError)
    # a deliberate backfill or a manual date still runs (the data check decides)
    assert schedule.decide_month("backfill", None, d("2011-12-01"), d("2012-01-01"), NOW,
                                 last_month="2011-11-01").month == "2011-12"
    window = schedule.schedule_window("2011-08-01", "2011-11-01", 12, NOW)
    # Airflow makes no task for a logical date past end_date: a manual 2011-12-31 (= 2011-11)
    # must still be inside
    assert window.airflow_end == dt.datetime(2011, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def test_no_run_goes_before_the_schedules_first_month():
    with pytest.raises(schedule.ScheduleError, match="2011-05 is before the schedule's first "
                                                     "month 2011-08"):
        schedule.decide_month("manual", "2011-06-15", None, None, NOW, first_month="2011-08-01")
    with pytest.raises(schedule.ScheduleError, match="2011-07 is before"):
        schedule.decide_month("backfill", None, d("2011-07-01"), d("2011-08-01"), NOW,
                              first_month="2011-08-01")
    assert schedule.decide_month("backfill", None, d("2011-08-01"), d("2011-09-01"), NOW,
                                 first_month="2011-08-01").month == "2011-08"


def test_garbage_dates_are_a_clear_error():
    with pytest.raises(schedule.ScheduleError, match="'2011-13-45' is not a date"):
        schedule.decide_month("manual", "2011-13-45", None, None, NOW)


def test_the_month_from_an_airflow_context():
    run = SimpleNamespace(run_type=SimpleNamespace(value="manual"), logical_date=None,
                          data_interval_start=None, data_interval_end=None, run_after=NOW,
                          dag_id="insiders_monthly", run_id="manual__2026-12-01")
    got = schedule.month_from_context({"dag_run": run}, last_month="2011-11-01")
    assert got.month == "2011-11"
    assert schedule.run_owner({"dag_run": run}) == "insiders_monthly/manual__2026-12-01"


# --------------------------------------------------------------------------- the catchup bound


def test_a_fresh_deployment_with_the_defaults_catches_up_the_demo_datas_months():
    # the defaults: start 2011-01-01, no end, the demo data (ends 2011-12-09)
    window = schedule.schedule_window("2011-01-01", None, 12, NOW, demo_source=True)
    assert (window.start, window.end, window.catchup) == (d("2011-01-01"), d("2011-11-01"),
                                                          True)
    assert schedule.months_between(window.start, window.end) == 11  # not ~190


def test_live_data_from_long_ago_does_not_catch_up_every_month_since():
    window = schedule.schedule_window("2011-01-01", None, 12, NOW)
    assert window.end is None and window.catchup is False  # latest month only; backfill more
    assert window.start == d("2011-01-01")  # unmoved: earlier manual dates still get tasks
    assert "191 months exceed INSIDERS_CATCHUP_MONTHS=12" in window.note
    recent = schedule.schedule_window("2026-01-01", None, 12, NOW)
    assert recent.catchup is True  # 2026-01..2026-11: 11 months


def test_a_historical_file_runs_its_months():
    window = schedule.schedule_window("2011-08-01", "2011-11-01", 12, NOW)
    assert (window.start, window.end, window.catchup) == (d("2011-08-01"), d("2011-11-01"),
                                                          True)
    assert schedule.schedule_window("2011-01-01", "2011-11-01", 3, NOW).catchup is False
    with pytest.raises(schedule.ScheduleError, match="after INSIDERS_END_DATE"):
        schedule.schedule_window("2011-12-01", "2011-11-01", 12, NOW)
    with pytest.raises(schedule.ScheduleError, match="at least 1"):
        schedule.schedule_window("2011-01-01", None, 0, NOW)


# --------------------------------------------------------------------------- the month chain


def test_a_month_waits_while_its_previous_month_runs():
    lease = {"owner": "insiders_monthly/backfill__2011-04-01", "since": "2011..."}
    assert "2011-04 is being run by insiders_monthly/backfill__2011-04-01" in \
        schedule.wait_reason("2011-05", lease, 0, 0, ["2011-03"])
    assert "a run of month 2011-04 is queued or running" in schedule.wait_reason(
        "2011-05", None, 1, 0, ["2011-03"])
    assert schedule.wait_reason("2011-05", None, 0, 0, ["2011-03", "2011-04"]) is None
    assert schedule.wait_reason("2011-05", None, 0, 0, []) is None  # the chain starts here
    assert schedule.wait_reason("2011-05", None, 0, 0, ["2011-09"]) is None  # a later month
    assert schedule.wait_reason("2011-01", None, 0, 0, ["2010-12"]) is None  # across a year


def test_a_failed_or_missing_previous_month_fails_naming_it():
    with pytest.raises(schedule.ChainError, match="needs run 2011-04, and its last run failed"):
        schedule.wait_reason("2011-05", None, 0, 1, ["2011-03"])
    with pytest.raises(schedule.ChainError, match="needs run 2011-04 complete first.*latest "
                                                  "complete earlier run is 2011-02"):
        schedule.wait_reason("2011-05", None, 0, 0, ["2011-02"])


class FakeStore:
    def __init__(self, runs: dict[str, list[str]]):
        self.runs = runs

    def complete_runs(self):
        return [{"run_id": r} for r in sorted(self.runs)]

    def previous_members(self, month):
        earlier = [r for r in sorted(self.runs) if r < month]
        return self.runs[earlier[-1]] if earlier else []


def test_previous_members_come_from_the_month_just_before_or_nowhere():
    store = FakeStore({"2011-03": ["a"], "2011-04": ["a", "b"]})
    assert schedule.previous_members(store, "2011-05") == ["a", "b"]
    assert schedule.previous_members(store, "2011-03") == []
    with pytest.raises(schedule.ChainError, match="2011-05"):
        schedule.previous_members(store, "2011-06")


def test_a_month_past_the_data_is_refused_with_what_to_run_instead():
    schedule.require_covered("2011-12-10", "2011-12-01", "2011-11")  # covered
    with pytest.raises(schedule.ScheduleError, match="month 2011-12 is past the data: its last "
                                                     "line is on 2011-12-09.*2011-11"):
        schedule.require_covered("2011-12-10", "2012-01-01", "2011-12")


# --------------------------------------------------------------------------- the lease


def test_one_run_holds_a_month_and_a_second_is_told_who(tmp_path):
    first = schedule.acquire(tmp_path, "2011-05", "insiders_monthly/backfill__2011-05-01")
    again = schedule.acquire(tmp_path, "2011-05", "insiders_monthly/backfill__2011-05-01")
    assert again["since"] == first["since"]  # a task of the same run renews it
    with pytest.raises(schedule.MonthBusyError, match="month 2011-05 is held by "
                                                      "insiders_monthly/backfill__2011-05-01"):
        schedule.acquire(tmp_path, "2011-05", "insiders_monthly/manual__x")
    assert issubclass(schedule.MonthBusyError, RunLockedError)
    schedule.acquire(tmp_path, "2011-06", "insiders_monthly/manual__x")  # other months are free
    # the refused run must not release it; the holder does
    assert not schedule.release(tmp_path, "2011-05", "insiders_monthly/manual__x")
    assert schedule.release(tmp_path, "2011-05", "insiders_monthly/backfill__2011-05-01")
    schedule.acquire(tmp_path, "2011-05", "insiders_monthly/manual__x")


def test_a_lease_nobody_renewed_is_taken_over(tmp_path):
    old = schedule.acquire(tmp_path, "2011-05", "insiders_monthly/dead-run")
    path = tmp_path / "leases" / "2011-05.json"
    past = (dt.datetime.fromisoformat(old["renewed"]) - dt.timedelta(hours=7)).isoformat()
    path.write_text(json.dumps({**old, "since": past, "renewed": past}))
    taken = schedule.acquire(tmp_path, "2011-05", "insiders_monthly/new-run")
    assert taken["owner"] == "insiders_monthly/new-run"


def test_a_cli_run_holds_the_month_across_processes_and_a_dead_one_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time\nfrom pathlib import Path\nfrom insiders import schedule\n"
         f"with schedule.month_lease(Path({str(tmp_path)!r}), '2011-05'):\n"
         "    print('held', flush=True)\n    time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(schedule.MonthBusyError, match=f":{holder.pid}"):
            schedule.acquire(tmp_path, "2011-05", "insiders_monthly/scheduled__x")
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert schedule.acquire(tmp_path, "2011-05", "insiders_monthly/scheduled__x")["owner"] == \
        "insiders_monthly/scheduled__x"


def test_the_cli_backfill_is_refused_while_an_airflow_run_holds_the_month(tmp_path):
    from insiders import monthly
    from insiders.config import Settings

    settings = Settings(home=tmp_path)
    schedule.acquire(tmp_path, "2011-11", "insiders_monthly/scheduled__2011-11-01")
    with pytest.raises(schedule.MonthBusyError, match="scheduled__2011-11-01"):
        monthly.run_month("2011-12-01", settings)
    assert not (tmp_path / "runs" / "2011-11" / "work").exists()  # nothing was written


def test_the_schedule_module_imports_nothing_heavy():
    code = ("import sys; import insiders.schedule, insiders.config; "
            "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow', 'sklearn', 'pymongo', "
            "'sqlalchemy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_quality_task_refuses_a_month_the_data_does_not_reach(demo_file, tmp_path):
    """The demo ends on 2011-12-09: 2011-11 runs, 2011-12 (as-of 2012-01-01) is refused at
    once with the month to run instead, not computed on nine days of data."""
    from insiders import stages
    from insiders.config import Settings
    from insiders.context import Run

    settings = Settings(home=tmp_path, source=str(demo_file))
    december = Run.monthly(settings, "2012-01-01")
    stages.extract(december)
    with pytest.raises(schedule.ScheduleError, match="month 2011-12 is past the data: its last "
                                                     "line is on 2011-12-09.*2011-11"):
        stages.quality(december)
    november = Run.monthly(settings, "2011-12-01")
    stages.extract(november)
    assert stages.quality(november)["rows_kept"] > 0
