"""The monthly DAG as Airflow really runs it: PostgreSQL metadata database, api-server,
scheduler and dag-processor with LocalExecutor, the real Online Retail file.

One sequence, shared by the tests below (module fixture `ran`):
1. the PLAIN `airflow backfill create` over three months (2011-08..2011-10): Airflow starts
   the three runs at once (a backfill's own max_active_runs is 10); the DAG must chain them;
2. unpausing also lets the bounded catchup create the schedule's last month (2011-11,
   INSIDERS_END_DATE); it waits for 2011-10 and is the fault drill: the SQL store is down at
   sync_sql's first try, comes back, and Airflow's retry (5 s delay here) completes the run;
   the catchup's one run past the schedule (2011-12) is skipped by `plan`;
3. a manual CLI run with --logical-date 2011-12-15 runs 2011-11 again (the last month
   complete on that date); --logical-date 2011-08-15 names 2011-07, before the schedule:
   the run fails at once; the CLI itself refuses 2011-06-15 (before the DAG's start_date).
Every process is stopped at the end, also when something fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from airflow_stack import AirflowStack, free_port, pg_bin
from insiders import stores
from insiders.config import Settings
from insiders.publish import sql_sync

pytestmark = [pytest.mark.scheduler, pytest.mark.airflow, pytest.mark.realdata]

DAG = "insiders_monthly"
BACKFILL = ["2011-08", "2011-09", "2011-10"]
DRILL = "2011-11"
TIMEOUT = 2400  # seconds for the whole sequence on a busy 2-core machine


def _runs(stack: AirflowStack) -> list[dict]:
    return stack.query("SELECT run_id, run_type, logical_date, state, start_date, end_date "
                       "FROM dag_run WHERE dag_id = :d ORDER BY logical_date", d=DAG)


def _tis(stack: AirflowStack, run_id: str) -> dict[str, dict]:
    rows = stack.query("SELECT task_id, state, try_number, start_date, end_date FROM "
                       "task_instance WHERE dag_id = :d AND run_id = :r", d=DAG, r=run_id)
    return {r["task_id"]: r for r in rows}


def _month(run: dict) -> str:
    return run["logical_date"].strftime("%Y-%m")


def _run_for(stack: AirflowStack, month: str, run_type: str) -> dict | None:
    return next((r for r in _runs(stack) if r["run_type"] == run_type and r["logical_date"]
                 and _month(r) == month), None)


def _finished(stack: AirflowStack, run_id: str) -> dict | None:
    stack.check_alive()
    run = next(r for r in _runs(stack) if r["run_id"] == run_id)
    return run if run["state"] in ("success", "failed") else None


def _trigger(stack: AirflowStack, logical_date: str) -> str:
    before = {r["run_id"] for r in _runs(stack)}
    stack.airflow("dags", "trigger", DAG, "--logical-date", logical_date)
    new = [r["run_id"] for r in _runs(stack)
           if r["run_id"] not in before and r["run_type"] == "manual"]
    assert len(new) == 1, new
    return new[0]


def _events(stack: AirflowStack, run_id: str, task_id: str, attempt: int) -> list[str]:
    """Each line of a task's log as text (the event and its fields: reason, error, ...)."""
    return [" ".join(str(v) for v in e.values())
            for e in stack.task_log(DAG, run_id, task_id, attempt)]


@pytest.fixture(scope="module")
def ran(real_file, request):
    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql; .ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="insiders-scheduler-"))
    pg_port = int(os.environ.get("INSIDERS_TEST_STACK_PG_PORT") or free_port())
    api_port = int(os.environ.get("INSIDERS_TEST_STACK_API_PORT") or free_port())
    home = root / "home"
    stack = AirflowStack(root, pg_port, api_port, {})
    stack.env.update({
        "INSIDERS_HOME": str(home),
        "INSIDERS_SOURCE": str(real_file),
        "INSIDERS_SQL_URL": stack.sql_store_url,
        "INSIDERS_START_DATE": "2011-08-01",
        "INSIDERS_END_DATE": "2011-11-01",
        "INSIDERS_RETRY_DELAY_SECONDS": "5",
        "INSIDERS_WAIT_POKE_SECONDS": "10",
        "INSIDERS_STABILITY_MONTHS": "2",
        "INSIDERS_BOOTSTRAP": "200",
    })
    started = time.monotonic()
    failed_before = request.session.testsfailed
    facts: dict = {"home": home, "stack": stack, "timings": {}}
    try:
        stack.start_postgres()
        stack.start_airflow()
        facts["timings"]["stack_up"] = round(time.monotonic() - started, 1)
        stack.wait_for(lambda: stack.query("SELECT dag_id FROM serialized_dag WHERE dag_id = :d",
                                           d=DAG), 180, "the dag-processor to parse the DAG")
        facts["import_errors"] = stack.query("SELECT filename, stacktrace FROM import_error")

        # 1. the plain backfill, then unpause (backfill runs start once the DAG is unpaused)
        stack.airflow("backfill", "create", "--dag-id", DAG, "--from-date", "2011-08-01",
                      "--to-date", "2011-10-01")
        stack.airflow("dags", "unpause", DAG)
        t0 = time.monotonic()

        # 2. the SQL store goes down once 2011-10 is synced, before the drill month syncs
        def october_synced():
            stack.check_alive()
            run = _run_for(stack, "2011-10", "backfill")
            return run and _tis(stack, run["run_id"]).get("sync_sql", {}).get("state") == \
                "success"

        stack.wait_for(october_synced, TIMEOUT, "2011-10 to be synced", every=0.5)
        stack.sql_store_down(True)
        facts["timings"]["backfill_3_months"] = round(time.monotonic() - t0, 1)

        def drill_retrying():
            stack.check_alive()
            run = _run_for(stack, DRILL, "scheduled")
            if run is None:
                return None
            ti = _tis(stack, run["run_id"]).get("sync_sql", {})
            if ti.get("state") in ("up_for_retry", "failed", "success"):
                return run["run_id"], ti["state"]
            return None

        drill_id, state = stack.wait_for(drill_retrying, TIMEOUT, "the drill's first try",
                                         every=0.5)
        stack.sql_store_down(False)
        facts["drill_first_try_state"] = state
        facts["drill_run_id"] = drill_id
        stack.wait_for(lambda: _finished(stack, drill_id), TIMEOUT, "the drill run to end")
        facts["timings"]["drill_month"] = round(time.monotonic() - t0
                                                - facts["timings"]["backfill_3_months"], 1)
        with stores.store_from(Settings(home=home)) as store:
            facts["version_before_manual"] = (store.run(DRILL) or {}).get("version")
        facts["sql_before_manual"] = sql_sync.table_counts(stack.sql_store_url)

        # 3. manual runs from the CLI, with a date
        t1 = time.monotonic()
        again = _trigger(stack, "2011-12-15T00:00:00+00:00")
        stack.wait_for(lambda: _finished(stack, again), TIMEOUT, "the manual 2011-11 run")
        facts["timings"]["manual_month"] = round(time.monotonic() - t1, 1)
        too_early = _trigger(stack, "2011-08-15T00:00:00+00:00")
        stack.wait_for(lambda: _finished(stack, too_early), 600, "the manual 2011-08-15 run")
        refused = stack.airflow("dags", "trigger", DAG, "--logical-date",
                                "2011-06-15T00:00:00+00:00", check=False)
        facts["manual"] = {"again": again, "too_early": too_early, "refused": refused}
        facts["runs"] = _runs(stack)
        facts["tis"] = {r["run_id"]: _tis(stack, r["run_id"]) for r in facts["runs"]}
        facts["timings"]["total"] = round(time.monotonic() - started, 1)
        yield facts
    finally:
        stack.stop()
        assert not any(p.poll() is None for p in stack.procs.values())
        if request.session.testsfailed == failed_before and not os.environ.get(
                "INSIDERS_TEST_STACK_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"scheduler test: logs and stores kept in {root}")


def _by_month(facts: dict, run_type: str) -> dict[str, dict]:
    return {_month(r): r for r in facts["runs"] if r["run_type"] == run_type}


def test_the_dag_parses_under_the_dag_processor(ran):
    assert ran["import_errors"] == []


def test_the_plain_backfill_and_the_bounded_catchup_make_exactly_the_schedules_months(ran):
    backfill, scheduled = _by_month(ran, "backfill"), _by_month(ran, "scheduled")
    assert sorted(backfill) == BACKFILL
    # unpausing caught up only to INSIDERS_END_DATE: the one month the backfill left, and
    # the month after it, which `plan` skips (nothing else ran)
    assert sorted(scheduled) == [DRILL, "2011-12"]
    past = ran["tis"][scheduled["2011-12"]["run_id"]]
    assert scheduled["2011-12"]["state"] == "success"
    assert {t["state"] for t in past.values()} == {"skipped"}
    assert any("past the schedule's last month 2011-11" in e for e in _events(
        ran["stack"], scheduled["2011-12"]["run_id"], "plan", 1))
    for run in [*backfill.values(), scheduled[DRILL]]:
        assert run["state"] == "success", (run, ran["tis"][run["run_id"]])
        assert all(t["state"] in ("success", "skipped") for t in ran["tis"][run["run_id"]]
                   .values())
    print("timings (s):", json.dumps(ran["timings"]))


def test_airflow_started_the_backfill_runs_together_and_the_dag_chained_them(ran):
    runs = [*_by_month(ran, "backfill").values(), _by_month(ran, "scheduled")[DRILL]]
    # the backfill set its three runs running at once (its max_active_runs is 10) ...
    backfill = runs[:3]
    assert max(r["start_date"] for r in backfill) < min(r["end_date"] for r in backfill)
    # ... and each month's work began only after the previous month's run had ended: its
    # extract started after the previous month's teardown had ended (not its `plan`, whose
    # last poke may start, by the clock Airflow records, a moment before the previous run's
    # teardown is recorded as ended: the poke reads the run states a second later)
    for prev, cur in zip(runs, runs[1:], strict=False):
        prev_end = ran["tis"][prev["run_id"]]["end"]["end_date"]
        cur_work = ran["tis"][cur["run_id"]]["extract"]["start_date"]
        assert cur_work >= prev_end, (_month(prev), prev_end, _month(cur), cur_work)


def test_each_task_started_after_what_its_stage_needs_and_stability_ran_beside(ran):
    """The DAG's edges are the stages' `needs`: under the real scheduler no task started
    before the tasks it reads had ended, and stability ran while the Insiders' tasks did."""
    from insiders import stages

    beside = 0
    for run in ran["runs"]:
        tis = ran["tis"][run["run_id"]]
        if any(tis.get(s.name, {}).get("state") != "success" for s in stages.ANALYSIS):
            continue
        for stage in stages.ANALYSIS:
            for need in stage.needs:
                assert tis[stage.name]["start_date"] >= tis[need]["end_date"], (
                    run["run_id"], stage.name, need)
        stability = tis["stability"]
        others = [tis[n] for n in ("insiders", "evaluate", "forecast")]
        beside += any(stability["start_date"] < t["end_date"] and t["start_date"]
                      < stability["end_date"] for t in others)
    assert beside >= 1


def test_the_membership_chain_is_the_sequential_one(ran):
    """Each month was selected against the previous month's Insiders, as a sequential run."""
    months = [*BACKFILL, DRILL]
    flows = {}
    with stores.store_from(Settings(home=ran["home"])) as store:
        assert [r["run_id"] for r in store.complete_runs()] == months
        members = {m: {d["customer_id"] for d in store.documents("customers", m)
                       if d["is_insider"]} for m in months}
        for i, month in enumerate(months):
            run = store.run(month)
            flows[month] = {k: run["membership"][k] for k in ("entered", "stayed", "left")}
            work = json.loads((ran["home"] / "runs" / month / "work" / "insiders.json")
                              .read_text())
            was = members[months[i - 1]] if i else set()
            now = members[month]
            assert set(work["previous_member_ids"]) == was, month
            assert flows[month] == {"entered": len(now - was), "stayed": len(now & was),
                                    "left": len(was - now)}, month
    assert all(flows[m]["stayed"] > 0 for m in months[1:])  # nobody "stayed" was the bug
    print("membership per month (entered / stayed / left):", json.dumps(flows))


def test_the_sql_store_holds_one_complete_run_per_month_and_nothing_twice(ran):
    url = ran["stack"].sql_store_url
    with stores.store_from(Settings(home=ran["home"])) as store:
        for month in [*BACKFILL, DRILL]:
            counts = sql_sync.table_counts(url, month)
            assert counts["runs"] == 1
            docs = store.run(month)["counts"]
            assert counts["customer_segments"] == docs["customers"]
            assert counts["segment_profiles"] == docs["segments"]
            assert counts["membership"] == docs["membership"]
            assert counts["forecasts"] == docs["forecasts"]
            assert counts["campaigns"] == docs["campaigns"] > 0
    assert sql_sync.table_counts(url)["runs"] == 4


def test_fault_drill_the_sql_store_down_at_the_first_try_and_the_retry_completes(ran):
    stack, run_id = ran["stack"], ran["drill_run_id"]
    assert ran["drill_first_try_state"] == "up_for_retry"
    tis = ran["tis"][run_id]
    assert tis["sync_sql"]["state"] == "success" and tis["sync_sql"]["try_number"] == 2
    # nothing else was tried twice (refresh_metabase is skipped: never tried)
    assert all(t["try_number"] <= 1 for name, t in tis.items() if name != "sync_sql")
    first, second = (_events(stack, run_id, "sync_sql", n) for n in (1, 2))
    failure = [e for e in first if "insiders_sql" in e or "connection" in e.lower()]
    assert failure, first[-10:]
    done = [e for e in second if "Done. Returned value" in e or "synced" in e]
    assert done, second[-10:]
    print("drill attempt 1:", failure[-1][:300])
    print("drill attempt 2:", done[-1][:300])


def test_a_manual_cli_run_with_a_date_runs_the_month_that_date_names(ran):
    again = next(r for r in ran["runs"] if r["run_id"] == ran["manual"]["again"])
    assert again["state"] == "success", ran["tis"][again["run_id"]]
    plan = _events(ran["stack"], again["run_id"], "plan", 1)
    assert any("plan: run 2011-11 (as-of 2011-12-01" in e for e in plan), plan[-10:]
    # the same month again: same content version, nothing added to either store
    with stores.store_from(Settings(home=ran["home"])) as store:
        assert store.run(DRILL)["version"] == ran["version_before_manual"]
    assert sql_sync.table_counts(ran["stack"].sql_store_url) == ran["sql_before_manual"]
    assert not list((ran["home"] / "leases").glob("*.json"))  # every month was given back


def test_a_month_before_the_schedule_fails_at_once_without_retries(ran):
    run_id = ran["manual"]["too_early"]
    run = next(r for r in ran["runs"] if r["run_id"] == run_id)
    assert run["state"] == "failed"
    plan = ran["tis"][run_id]["plan"]
    assert plan["state"] == "failed" and plan["try_number"] == 1
    events = _events(ran["stack"], run_id, "plan", 1)
    assert any("month 2011-07 is before the schedule's first month 2011-08" in e
               for e in events), events[-10:]
    assert dt.timedelta(0) <= plan["end_date"] - plan["start_date"] < dt.timedelta(minutes=2)
    assert not (ran["home"] / "runs" / "2011-07").exists()
    refused = ran["manual"]["refused"]
    assert refused.returncode != 0
    assert "should be >= start_date" in refused.stdout + refused.stderr
