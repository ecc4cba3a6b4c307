"""Time and peak memory of the pipeline and of a DAG run on 1x, 10x and 50x generated sets.

For each scale: generate the set if missing (bench/generate.py), then measure
(a) `insiders run` (wall time, peak RSS), and
(b) the DAG's monthly chain for the last month, in one process:
    `INSIDERS_SOURCE=<file> INSIDERS_HOME=<fresh> insiders backfill
    --first-month 2011-11 --last-month 2011-11` - the very functions the DAG's
    tasks run (insiders.stages.MONTHLY), without Airflow's per-task processes - with
    a timer around each step (write_documents and sync_sql included);
and on the smallest scale, unless --no-airflow, (c) one real
`airflow dags test insiders_monthly <date>` against a fresh SQLite metadata DB.
Prints a table and says whether memory grows no faster than the data.

    .venv/bin/python bench/scale.py                  # scales 1,10,50 (50x: many minutes)
    .venv/bin/python bench/scale.py --scales 1,10 --no-airflow
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

from benchlib import (
    AIRFLOW,
    INSIDERS,
    OUT,
    PYTHON,
    REPO,
    Measured,
    clean_env,
    code_version,
    load,
    machine,
    measure,
    stage_seconds,
    table,
    write_json,
)
from generate import meta_path
from insiders import stages as stage_list

STAGES = tuple(stage.name for stage in stage_list.ANALYSIS)
ALL_STAGES = tuple(stage.name for stage in stage_list.MONTHLY)
FIRST_MONTH = LAST_MONTH = "2011-11"  # the last complete month of the data: as-of 2011-12-01


def data_file(scale: float, data_dir: Path) -> Path:
    return data_dir / f"retail_x{scale:g}.csv.gz"


def ensure_data(scale: float, path: Path) -> dict:
    """Generate the set unless it (and its .meta.json) exists; returns the generator's figures."""
    meta = meta_path(path)
    if path.exists() and meta.exists():
        return json.loads(meta.read_text())
    print(f"generating {path} ...", file=sys.stderr, flush=True)
    done = measure([PYTHON, REPO / "bench" / "generate.py", "--scale", f"{scale:g}", "--out",
                    path])
    _check(done, "generate.py")
    return {**json.loads(meta.read_text()), "wall": done.seconds, "peak_mb": done.peak_mb}


def _check(done: Measured, what: str) -> None:
    if not done.ok:
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{done.tail(25)}")


def _figures(done: Measured, stages: dict[str, float]) -> dict:
    return {"wall": round(done.seconds, 2), "cpu": round(done.cpu_seconds, 2),
            "peak_mb": round(done.peak_mb), "stages": stages, "load_after": load()}


def pipeline_run(path: Path, work: Path) -> dict:
    """`insiders run` on the set, as a fresh process."""
    out = work / "run"
    shutil.rmtree(out, ignore_errors=True)
    env = clean_env(INSIDERS_HOME=work / "run-home")
    done = measure([INSIDERS, "run", "--input", path, "--out", out, "--quiet"], env)
    _check(done, "insiders run")
    rows = json.loads((out / "work" / "extract.json").read_text())["rows"]
    return {**_figures(done, stage_seconds(out, STAGES)), "rows": int(rows)}


def dag_chain(path: Path, work: Path) -> dict:
    """The monthly chain for the last month in one process (`insiders backfill`), per step."""
    home = work / "chain-home"
    shutil.rmtree(home, ignore_errors=True)
    env = clean_env(INSIDERS_SOURCE=path, INSIDERS_HOME=home)
    done = measure([PYTHON, "-m", "insiders", "backfill", "--first-month", FIRST_MONTH,
                    "--last-month", LAST_MONTH], env)
    _check(done, "insiders backfill")
    # every stage records its seconds in the run folder (work/<stage>.json)
    return _figures(done, stage_seconds(home / "runs" / LAST_MONTH, ALL_STAGES))


def airflow_dag_test(path: Path, work: Path, logical_date: str) -> dict:
    """`airflow db migrate` then `airflow dags test insiders_monthly <date>` on a fresh home."""
    home = work / "airflow"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = clean_env(
        AIRFLOW_HOME=home, AIRFLOW__CORE__DAGS_FOLDER=REPO / "dags",
        AIRFLOW__CORE__PLUGINS_FOLDER=REPO / "plugins", AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        INSIDERS_SOURCE=path, INSIDERS_HOME=home / "insiders-home",
    )
    migrate = measure([AIRFLOW, "db", "migrate"], env)
    _check(migrate, "airflow db migrate")
    done = measure([AIRFLOW, "dags", "test", "insiders_monthly", logical_date], env)
    runs = sorted((home / "insiders-home" / "runs").glob("*"))
    result = {"logical_date": logical_date, "migrate_wall": round(migrate.seconds, 2),
              "returncode": done.returncode, "run_ids": [r.name for r in runs]}
    if not done.ok:
        print(f"airflow dags test failed (exit {done.returncode}):\n{done.tail(25)}",
              file=sys.stderr)
        return {**result, **_figures(done, {})}
    stages = stage_seconds(runs[-1], STAGES) if runs else {}
    return {**result, **_figures(done, stages)}


def measure_scale(scale: float, data_dir: Path, airflow_date: str | None) -> dict:
    path = data_file(scale, data_dir)
    gen = ensure_data(scale, path)
    work = OUT / f"scale-x{scale:g}"
    print(f"x{scale:g}: insiders run on {path.name} (load {load()}) ...", file=sys.stderr,
          flush=True)
    run = pipeline_run(path, work)
    print(f"x{scale:g}:   {run['wall']:.1f} s, peak {run['peak_mb']:,} MB; DAG chain "
          f"(load {load()}) ...", file=sys.stderr, flush=True)
    chain = dag_chain(path, work)
    print(f"x{scale:g}:   {chain['wall']:.1f} s, peak {chain['peak_mb']:,} MB",
          file=sys.stderr, flush=True)
    result = {"scale": scale, "file": str(path), "size_mb": path.stat().st_size / 1024 / 1024,
              "rows": run["rows"], "generate": gen, "run": run, "chain": chain}
    if airflow_date:
        print(f"x{scale:g}: airflow dags test {airflow_date} ...", file=sys.stderr, flush=True)
        result["airflow"] = airflow_dag_test(path, work, airflow_date)
    return result


def report(results: list[dict]) -> str:
    """The scale table, the per-stage table and the memory verdict, as printed."""
    rows = []
    for r in results:
        mrows = r["rows"] / 1e6
        rows.append([f"x{r['scale']:g}", r["rows"], round(r["size_mb"], 1), r["run"]["wall"],
                     r["run"]["cpu"], r["run"]["peak_mb"], round(r["run"]["peak_mb"] / mrows),
                     r["chain"]["wall"], r["chain"]["cpu"], r["chain"]["peak_mb"],
                     round(r["chain"]["peak_mb"] / mrows)])
    lines = [table(["scale", "rows", "file MB", "run wall s", "run CPU s", "run peak MB",
                    "MB per M rows", "DAG-chain wall s", "chain CPU s", "DAG-chain peak MB",
                    "chain MB per M rows"], rows),
             "CPU s = user + system seconds of the process and its children; wall time also "
             "counts waiting for the CPU on this shared machine (load average in scale.json).",
             ""]

    stage_rows = []
    for name in ALL_STAGES:
        cells = []
        for r in results:
            for kind in ("run", "chain"):
                cells.append(r[kind]["stages"].get(name, ""))
        if any(c != "" for c in cells):
            stage_rows.append([name, *cells])
    outside = []
    for r in results:
        for kind in ("run", "chain"):
            outside.append(round(r[kind]["wall"] - sum(r[kind]["stages"].values()), 2))
    stage_rows.append(["(outside stages)", *outside])
    headers = ["stage seconds"] + [f"x{r['scale']:g} {kind}" for r in results
                                   for kind in ("run", "chain")]
    lines += [table(headers, stage_rows),
              "run: seconds from work/<stage>.json; '(outside stages)' = interpreter start, "
              "imports, the default as-of scan. chain: seconds of each insiders.monthly step "
              "(a step includes its store reads); '(outside stages)' = interpreter start, "
              "imports, the CLI.", ""]
    for r in results:
        for kind in ("run", "chain"):
            slow = sorted(r[kind]["stages"].items(), key=lambda kv: -kv[1])[:3]
            lines.append(f"x{r['scale']:g} slowest stages ({kind}): "
                         + ", ".join(f"{k} {v:.1f} s" for k, v in slow))
    lines.append("")
    lines += _memory_verdict(results)
    for r in results:
        if "airflow" in r:
            a = r["airflow"]
            state = "ok" if a["returncode"] == 0 else f"FAILED (exit {a['returncode']})"
            lines.append(
                f"airflow dags test insiders_monthly {a['logical_date']} on x{r['scale']:g}: "
                f"{a['wall']:.1f} s wall, {a.get('cpu', float('nan')):.1f} s CPU, peak "
                f"{a['peak_mb']:,} MB, {state}, run(s) "
                f"{', '.join(a['run_ids']) or 'none'} (after `airflow db migrate` "
                f"{a['migrate_wall']:.1f} s)")
    gen = [r for r in results if "wall" in r["generate"] or "seconds" in r["generate"]]
    for r in gen:
        g = r["generate"]
        lines.append(f"generate x{r['scale']:g}: {g['rows']:,} rows, {g['customers']:,} "
                     f"customers, {g['seconds']:.0f} s, peak {g['peak_mb']:,} MB")
    return "\n".join(lines)


def _memory_verdict(results: list[dict]) -> list[str]:
    """Peak MB per million rows must not increase with scale (for the run and the chain)."""
    ordered = sorted(results, key=lambda r: r["rows"])
    if len(ordered) < 2:
        return ["memory growth: needs two scales or more to judge"]
    lines = []
    for kind, label in (("run", "insiders run"), ("chain", "DAG chain")):
        per = [r[kind]["peak_mb"] / (r["rows"] / 1e6) for r in ordered]
        ok = all(b <= a for a, b in zip(per, per[1:], strict=False))
        first, last = ordered[0], ordered[-1]
        exponent = (math.log(last[kind]["peak_mb"] / first[kind]["peak_mb"])
                    / math.log(last["rows"] / first["rows"]))
        marginal = [(b[kind]["peak_mb"] - a[kind]["peak_mb"]) / ((b["rows"] - a["rows"]) / 1e6)
                    for a, b in zip(ordered, ordered[1:], strict=False)]
        lines.append(
            f"memory, {label}: peak MB per million rows "
            + " -> ".join(f"{p:,.0f}" for p in per)
            + f"; peak ~ rows^{exponent:.2f}; marginal "
            + ", ".join(f"{m:,.0f}" for m in marginal) + " MB per extra million rows: "
            + ("grows no faster than the data (PASS)" if ok else
               "grows FASTER than the data at some step (FAIL)"))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10,50", help="comma-separated (default 1,10,50)")
    parser.add_argument("--data-dir", type=Path, default=OUT,
                        help="where the retail_x<scale>.csv.gz sets live (default bench/out)")
    parser.add_argument("--no-airflow", action="store_true",
                        help="skip the real `airflow dags test` on the smallest scale")
    parser.add_argument("--airflow-date", default="2011-12-01",
                        help="logical date for `airflow dags test` (default 2011-12-01)")
    parser.add_argument("--json", type=Path, default=OUT / "scale.json")
    args = parser.parse_args(argv)
    scales = sorted(float(s) for s in args.scales.split(","))
    print(f"machine: {machine()}; load average now {load()}")
    print(f"code: {code_version()}")
    results = []
    for i, scale in enumerate(scales):
        airflow = None if args.no_airflow or i else args.airflow_date
        results.append(measure_scale(scale, args.data_dir, airflow))
        write_json(args.json, {"machine": machine(), "code": code_version(),
                               "results": results})
    print(report(results))
    print(f"load average at the end {load()}; figures in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
