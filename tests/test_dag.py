"""The monthly DAG: it imports cleanly, is wired as the issue asks, and runs end to end.

A failed task does not make dag.test() raise: the tests assert the run's state.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from insiders import stages, stores
from insiders.config import Settings
from insiders.publish import sql_sync

ROOT = Path(__file__).resolve().parents[1]
# the DAG is the stage registry's monthly list, framed by the month's plan, the Metabase
# refresh and the teardown that gives the month back
STAGES = ["plan", *(stage.name for stage in stages.MONTHLY), "metabase_configured",
          "refresh_metabase", "end"]

pytestmark = pytest.mark.airflow


def stage_closure() -> dict[str, set[str]]:
    """Every stage a stage waits for, directly or through another (from `Stage.needs`)."""
    needs = {stage.name: set(stage.needs) for stage in stages.MONTHLY}
    closure: dict[str, set[str]] = {}
    for stage in stages.MONTHLY:  # listed after what they need
        closure[stage.name] = set().union(*({n, *closure[n]} for n in needs[stage.name])) \
            if needs[stage.name] else set()
    return closure


def test_stages_that_read_nothing_of_each_other_wait_for_none_of_each_other():
    closure = stage_closure()
    for a, b in [("evaluate", "forecast"), ("evaluate", "stability"), ("forecast", "stability"),
                 ("insiders", "stability"), ("value", "segment"), ("value", "stability"),
                 ("insiders", "segment"), ("forecast", "segment"), ("evaluate", "segment")]:
        assert a not in closure[b] and b not in closure[a]
    # selecting reads no segment: the Insiders and their forecast run beside the segmentation,
    # and the report joins the segments in (customers.parquet)
    assert closure["insiders"] >= {"value", "features"}
    assert closure["report"] >= {"segment"}
    assert closure["report"] >= {"evaluate", "forecast", "stability", "insiders", "value"}


@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils import db

    db.initdb()


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.models.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag("insiders_monthly")


def test_the_dag_imports_without_errors_and_is_wired_in_order(dag):
    from airflow.sdk import CronDataIntervalTimetable

    assert isinstance(dag.timetable, CronDataIntervalTimetable)  # a real data interval
    assert dag.catchup is True
    assert dag.max_active_runs == 1
    assert dag.doc_md and "month that just ended" in dag.doc_md
    assert set(dag.tags) >= {"insiders", "monthly"}
    order = [dag.get_task(t) for t in STAGES]
    # the stages as their `needs` say: each after what it reads, side by side otherwise
    closure = stage_closure()
    for stage in stages.MONTHLY:
        before = dag.get_task(stage.name).get_flat_relative_ids(upstream=True)
        assert before - {"plan"} == closure[stage.name], stage.name
    after_stages = ["metabase_configured", "refresh_metabase", "end"]
    for upstream, downstream in zip(after_stages, after_stages[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert "metabase_configured" in dag.get_task("sync_sql").downstream_task_ids
    for task in order[1:-1]:
        assert task.retries == 2 and task.retry_delay == dt.timedelta(minutes=2)
    plan, end = dag.get_task("plan"), dag.get_task("end")
    # the month is decided once and waited for without holding a worker slot
    assert plan.mode == "reschedule" and plan.retries == 0
    assert all(plan.task_id in dag.get_task(t).upstream_task_ids for t in STAGES[1:12])
    # the month is given back whatever happened to the run
    assert end.is_teardown and plan.task_id in end.upstream_task_ids


def test_the_dag_file_only_wires(dag):
    """Each stage task runs one stage of the registry, named explicitly: no logic, no lookup
    of a step by name, and the same list as `insiders run` and `insiders backfill`."""
    source = (ROOT / "dags" / "insiders_monthly.py").read_text()
    assert sorted(t.task_id for t in dag.topological_sort()) == sorted(STAGES)
    for stage in stages.MONTHLY:
        assert f"run_stage(stages.{stage.name}, planned)" in source
    for word in ("pandas", "sklearn", "read_parquet", "getattr", "globals()"):
        assert word not in source, word


def test_parsing_the_dag_file_imports_nothing_heavy(tmp_path):
    """Workers parse the DAG file before every task: only Airflow, the settings and the
    schedule are imported then, never pandas, pyarrow, scikit-learn or the stages."""
    code = (
        "import runpy, sys, time\n"
        "t = time.perf_counter()\n"
        f"runpy.run_path({str(ROOT / 'dags' / 'insiders_monthly.py')!r})\n"
        "print(round(time.perf_counter() - t, 3))\n"
        "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow', 'sklearn', 'scipy', 'prophet', "
        "'pymongo', 'insiders.monthly', 'insiders.tasks') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")})
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, heavy = done.stdout.strip().splitlines()[-2:]
    assert heavy == "[]"
    print(f"DAG file parsed in {seconds} s (with Airflow's own imports)")


def test_a_dag_run_succeeds_end_to_end_and_publishes_the_month(dag, demo_file, tmp_path,
                                                               monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("INSIDERS_HOME", str(home))
    monkeypatch.setenv("INSIDERS_SOURCE", str(demo_file))
    monkeypatch.setenv("INSIDERS_STABILITY_MONTHS", "2")
    run = dag.test(logical_date=dt.datetime(2011, 12, 1, tzinfo=dt.UTC))
    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states.get("refresh_metabase") == "skipped", states  # Metabase is not configured
    settings = Settings(home=home)
    with stores.store_from(settings) as store:
        runs = store.complete_runs()
        assert [r["run_id"] for r in runs] == ["2011-11"]  # the month that just ended
        counts = runs[0]["counts"]
    synced = sql_sync.table_counts(settings.sql_url_or_default, "2011-11")
    assert synced["customer_segments"] == counts["customers"]
    assert synced["membership"] == counts["membership"]
    assert (home / "runs" / "2011-11" / "report.html").exists()

    # `insiders run` for the same month, with no previous run: the same Insiders and the same
    # row accounting as the DAG (both run the one stage list)
    from insiders import pipeline

    cli = pipeline.run(Settings(home=tmp_path / "cli-home", stability_months=2), demo_file,
                       "2011-12-01", tmp_path / "cli")
    by_dag = json.loads((home / "runs" / "2011-11" / "answers.json").read_text())
    by_cli = json.loads(Path(cli["answers"]).read_text())
    assert by_cli["who"]["customer_ids"] == by_dag["who"]["customer_ids"]
    assert by_cli["data_quality"]["rows_in"] == by_dag["data_quality"]["rows_in"]
    assert by_cli["data_quality"]["set_aside"] == by_dag["data_quality"]["set_aside"]
    assert by_cli["data_quality"]["rows_kept"] == by_dag["data_quality"]["rows_kept"]


def test_bad_input_fails_the_run_at_once_without_retries(dag, tmp_path, monkeypatch):
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,transactions,file\n1,2,3,4\n")
    monkeypatch.setenv("INSIDERS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INSIDERS_SOURCE", str(bad))
    run = dag.test(logical_date=dt.datetime(2011, 12, 1, tzinfo=dt.UTC))
    assert run.state == "failed"
    extract = next(ti for ti in run.get_task_instances() if ti.task_id == "extract")
    assert extract.state == "failed" and extract.try_number == 1


def test_a_manual_run_without_a_date_runs_the_last_complete_month(dag, demo_file, tmp_path,
                                                                  monkeypatch):
    """`airflow dags trigger insiders_monthly` (no date): the demo's last complete month."""
    home = tmp_path / "home"
    monkeypatch.setenv("INSIDERS_HOME", str(home))
    monkeypatch.setenv("INSIDERS_SOURCE", str(demo_file))
    monkeypatch.setenv("INSIDERS_END_DATE", "2011-11-01")
    monkeypatch.setenv("INSIDERS_STABILITY_MONTHS", "2")
    run = dag.test(logical_date=None)
    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    with stores.store_from(Settings(home=home)) as store:
        assert [r["run_id"] for r in store.complete_runs()] == ["2011-11"]
    assert not list((home / "leases").glob("*.json"))


def test_a_month_before_the_schedule_fails_at_once_without_retries(dag, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("INSIDERS_HOME", str(tmp_path / "home"))
    run = dag.test(logical_date=dt.datetime(2011, 1, 15, tzinfo=dt.UTC))  # names 2010-12
    assert run.state == "failed"
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == "plan")
    assert plan.state == "failed" and plan.try_number == 1
    assert not (tmp_path / "home" / "runs").exists()  # nothing was touched


@pytest.mark.realdata
def test_airflow_dags_test_on_the_real_data(real_file, tmp_path):
    """`airflow dags test insiders_monthly 2011-12-01` with the embedded defaults."""
    airflow_home = tmp_path / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "INSIDERS_HOME": str(tmp_path / "home"),
        "INSIDERS_SOURCE": str(real_file),
        "INSIDERS_END_DATE": "2011-11-01",  # a file that does not grow (docs/deploy.md)
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=300)
    done = subprocess.run([airflow, "dags", "test", "insiders_monthly", "2011-12-01"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with stores.store_from(Settings(home=tmp_path / "home")) as store:
        run = store.run("2011-11")
    assert run is not None and run["data_quality"]["rows_in"] == 541_909
    assert 0.05 <= run["answers"]["how_many"]["share_of_customers"] <= 0.20
