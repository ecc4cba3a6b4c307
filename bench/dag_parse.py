"""How long parsing the DAG file takes, and what it imports (`python -X importtime`).

Workers parse the DAG file before every task, and the dag-processor every refresh, so the
file must not import the data and model libraries. Prints, for the DAG file as it is and as
it was before insiders.schedule (it imported insiders.monthly at the top, git 8ec4fd1): the
median wall time of a parse in a fresh process (Airflow's own imports included), the
cumulative import time of the biggest top-level packages, and whether pandas, pyarrow,
scikit-learn, SciPy or Prophet were loaded.

    .venv/bin/python bench/dag_parse.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAG = ROOT / "dags" / "insiders_monthly.py"
HEAVY = ("pandas", "pyarrow", "sklearn", "scipy", "prophet", "pymongo", "sqlalchemy",
         "insiders.monthly")
CODE = (
    "import runpy, sys, time\n"
    "t = time.perf_counter()\n"
    "runpy.run_path(sys.argv[1])\n"
    "print('SECONDS', time.perf_counter() - t)\n"
    f"print('HEAVY', ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
)


def parse_once(path: Path, env: dict) -> tuple[float, list[str], dict[str, float]]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", CODE, str(path)],
                          capture_output=True, text=True, env=env, check=True, timeout=300)
    seconds = float(re.search(r"SECONDS (\S+)", done.stdout).group(1))
    heavy = [m for m in re.search(r"HEAVY (.*)", done.stdout).group(1).split(",") if m]
    top: dict[str, float] = {}
    for line in done.stderr.splitlines():  # import time: self [us] | cumulative | name
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(2)) == 1:  # top-level imports only
            name = match.group(3).split(".")[0]
            top[name] = top.get(name, 0.0) + int(match.group(1)) / 1e6
    return seconds, heavy, top


def report(label: str, path: Path, env: dict, runs: int) -> None:
    results = [parse_once(path, env) for _ in range(runs)]
    seconds = statistics.median(r[0] for r in results)
    heavy = results[-1][1]
    top = sorted(results[-1][2].items(), key=lambda kv: -kv[1])[:6]
    print(f"{label}: parse median {seconds:.2f} s over {runs} runs; heavy modules loaded: "
          f"{', '.join(heavy) or 'none'}")
    print("    biggest imports (cumulative s): "
          + ", ".join(f"{name} {sec:.2f}" for name, sec in top))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="dag-parse-")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("INSIDERS_")},
           "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
           "PYTHONPATH": str(ROOT / "plugins")}
    report("now", DAG, env, args.runs)
    old = subprocess.run(["git", "-C", str(ROOT), "show", "8ec4fd1:dags/insiders_monthly.py"],
                         capture_output=True, text=True)
    if old.returncode == 0:
        before = Path(home) / "insiders_monthly_before.py"
        before.write_text(old.stdout)
        report("before (imported insiders.monthly)", before, env, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
