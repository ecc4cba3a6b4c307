"""Backfill the real DAG month by month and check the stores agree (the DAG issue's "done when").

Runs `airflow dags test insiders_monthly <date>` for every month from --start to --end (real
DAG runs, one after the other, as a backfill with max_active_runs=1 would), then prints per
run: documents per collection, rows per SQL table, whether they match, and the task time.
Finally runs one month again and checks that no count changed and nothing was re-synced.

    .venv/bin/python bench/backfill_dag.py --input ../shared/data/online_retail.csv.gz \
        --start 2011-03-01 --end 2011-12-01
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(ROOT.parent / "shared" / "data" /
                                               "online_retail.csv.gz"))
    parser.add_argument("--start", default="2011-03-01")
    parser.add_argument("--end", default="2011-12-01")
    parser.add_argument("--again", default="2011-08-01", help="month to run a second time")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    import pandas as pd
    from insiders import stores
    from insiders.config import Settings
    from insiders.publish import sql_sync

    work = Path(args.workdir or tempfile.mkdtemp(prefix="insiders-backfill-"))
    env = {**os.environ,
           "AIRFLOW_HOME": str(work / "airflow"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow' / 'airflow.db'}",
           "INSIDERS_HOME": str(work / "home"),
           "INSIDERS_SOURCE": args.input}
    (work / "airflow").mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True,
                   capture_output=True)
    seconds = {}
    days = pd.date_range(args.start, args.end, freq="MS")
    for day in days:
        started = time.perf_counter()
        done = subprocess.run([str(BIN / "airflow"), "dags", "test", "insiders_monthly",
                               str(day.date())], env=env, capture_output=True, text=True)
        seconds[str(day.date())] = time.perf_counter() - started
        status = "ok" if done.returncode == 0 else f"FAILED (rc {done.returncode})"
        print(f"dags test {day.date()}: {status} in {seconds[str(day.date())]:.0f} s",
              flush=True)
        if done.returncode:
            print(done.stdout[-3000:])
            return 1

    settings = Settings(home=work / "home")
    table_of = {"customers": "customer_segments", "segments": "segment_profiles",
                "membership": "membership", "forecasts": "forecasts", "stability": "stability"}

    def snapshot() -> dict:
        out = {}
        with stores.store_from(settings) as store:
            for run in store.complete_runs():
                docs = {name: store.count(name, run["run_id"]) for name in table_of}
                sql = sql_sync.table_counts(settings.sql_url_or_default, run["run_id"])
                out[run["run_id"]] = (docs, {name: sql[t] for name, t in table_of.items()},
                                      run["version"], run["summary"], run["membership"])
        return out

    before = snapshot()
    print(f"\n{len(before)} complete runs in the document store; SQL store: "
          f"{settings.sql_url_or_default}")
    header = (f"{'run':8} {'customers':>9} {'insiders':>8} {'share':>6} {'entered':>7} "
              f"{'stayed':>6} {'left':>5} {'docs=sql':>8} {'segments':>8} {'forecasts':>9}")
    print(header)
    for run_id, (docs, sql, _, summary, flows) in before.items():
        print(f"{run_id:8} {docs['customers']:>9,} {summary['insiders']:>8,} "
              f"{summary['insiders_share']:>6.1%} {flows.get('entered', 0):>7} "
              f"{flows.get('stayed', 0):>6} {flows.get('left', 0):>5} "
              f"{'yes' if docs == sql else 'NO':>8} {docs['segments']:>8} "
              f"{docs['forecasts']:>9}")
    again = subprocess.run([str(BIN / "airflow"), "dags", "test", "insiders_monthly",
                            args.again], env=env, capture_output=True, text=True)
    after = snapshot()
    same = {k: v[:3] for k, v in after.items()} == {k: v[:3] for k, v in before.items()}
    print(f"\nran {args.again} again (rc {again.returncode}): counts and versions "
          f"{'unchanged' if same else 'CHANGED'}")
    print(f"median dags test time: {sorted(seconds.values())[len(seconds) // 2]:.0f} s")
    return 0 if same and all(v[0] == v[1] for v in after.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
