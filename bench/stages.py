"""Time each stage of `insiders run` on the real file (or --input), and the import overhead.

Every run is a fresh subprocess (`insiders run --input ... --out ... --quiet`),
so the wall time includes interpreter start and imports, as a user sees it.
Stage seconds come from the run folder's work/<stage>.json files; peak memory
is the max RSS of the process (and of the children it waited for). Prints
median and min per stage, the median wall time, the peak RSS, and PASS/FAIL
against the targets: 10 s and 2 GB on the real file, 60 s on a 10x set.

    .venv/bin/python bench/stages.py                      # real file, 5 runs
    .venv/bin/python bench/stages.py --input bench/out/retail_x10.csv.gz --runs 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from benchlib import (
    INSIDERS,
    OUT,
    PYTHON,
    REAL_FILE,
    REAL_ROWS,
    clean_env,
    code_version,
    load,
    machine,
    measure,
    median,
    stage_seconds,
    table,
    thread_env,
    write_json,
)
from insiders import stages as stage_list

STAGES = tuple(stage.name for stage in stage_list.ANALYSIS)
IMPORTS = "import insiders.pipeline, insiders.stages"


def targets(rows: int) -> tuple[float | None, float | None]:
    """(seconds, MB) the issue sets for a set of this size; None where it sets none."""
    if rows <= 1.5 * REAL_ROWS:
        return 10.0, 2048.0
    if rows <= 15 * REAL_ROWS:
        return 60.0, None
    return None, None


def verdict(value: float, limit: float | None, unit: str) -> str:
    """PASS/FAIL against `limit` (None: the issue sets no target here)."""
    if limit is None:
        return "no target"
    return f"{'PASS' if value <= limit else 'FAIL'} (target <= {limit:g} {unit})"


def run_stages(source: Path, runs: int, work: Path, as_of: str | None = None,
               threads: int | None = None) -> dict:
    """`runs` fresh `insiders run` processes on `source`; per-run wall, peak and stage seconds."""
    env = clean_env(INSIDERS_HOME=work / "home", **thread_env(threads))
    results = []
    for i in range(runs):
        out = work / f"run{i + 1}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [INSIDERS, "run", "--input", source, "--out", out, "--quiet"]
        if as_of:
            cmd += ["--as-of", as_of]
        before = load()
        done = measure(cmd, env)
        if not done.ok:
            raise SystemExit(f"insiders run failed (exit {done.returncode}):\n{done.tail()}")
        stages = stage_seconds(out, STAGES)
        rows = _rows(out)
        results.append({"wall": done.seconds, "cpu": done.cpu_seconds, "peak_mb": done.peak_mb,
                        "stages": stages,
                        "rows": rows, "load_before": before, "load_after": load()})
        print(f"  run {i + 1}/{runs}: {done.seconds:.1f} s (CPU {done.cpu_seconds:.1f} s), peak "
              f"{done.peak_mb:,.0f} MB, "
              f"load {before} -> {load()}", file=sys.stderr, flush=True)
    return {"source": str(source), "runs": results}


def _rows(run_dir: Path) -> int:
    return int(json.loads((run_dir / "work" / "extract.json").read_text())["rows"])


def import_overhead(runs: int, threads: int | None = None) -> list[float]:
    """Seconds of `python -c "import insiders.pipeline, insiders.stages"`, one process each."""
    env = clean_env(**thread_env(threads))
    return [measure([PYTHON, "-c", IMPORTS], env).seconds for _ in range(runs)]


def report(result: dict, imports: list[float]) -> str:
    """The stage table and the verdicts, as printed."""
    runs = result["runs"]
    n = len(runs)
    rows = []
    names = [s for s in STAGES if any(s in r["stages"] for r in runs)]
    for name in names:
        values = [r["stages"][name] for r in runs if name in r["stages"]]
        rows.append([name, median(values), min(values)])
    stage_sum = [sum(r["stages"].values()) for r in runs]
    walls = [r["wall"] for r in runs]
    other = [w - s for w, s in zip(walls, stage_sum, strict=True)]
    rows.append(["(sum of stages)", median(stage_sum), min(stage_sum)])
    rows.append(["(outside stages)", median(other), min(other)])
    rows.append(["whole command", median(walls), min(walls)])
    cpus = [r["cpu"] for r in runs]
    rows.append(["whole command, CPU s", median(cpus), min(cpus)])
    peak = max(r["peak_mb"] for r in runs)
    data_rows = runs[0]["rows"]
    limit_s, limit_mb = targets(data_rows)
    lines = [
        f"input: {result['source']} ({data_rows:,} rows, {data_rows / REAL_ROWS:.2f} x the real "
        f"file)",
        f"{n} run(s), each a fresh `insiders run` process; seconds:",
        "",
        table(["stage", f"median of {n}", "min"], rows),
        "",
        "'(outside stages)' = interpreter start, imports, the default as-of scan and the CLI: "
        "wall minus the stages' own seconds.",
        f"import overhead alone (`python -c \"{IMPORTS}\"`): median {median(imports):.2f} s, "
        f"min {min(imports):.2f} s over {len(imports)} runs",
        f"peak RSS (max over runs): {peak:,.0f} MB",
        f"load average around the runs: {runs[0]['load_before']} ... {runs[-1]['load_after']}",
        "",
        f"time:   median wall {median(walls):.1f} s -> {verdict(median(walls), limit_s, 's')}",
        f"memory: peak {peak:,.0f} MB -> {verdict(peak, limit_mb, 'MB')}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=REAL_FILE,
                        help="transactions file (default: the real Online Retail file)")
    parser.add_argument("--runs", type=int, default=5, help="fresh runs to time (default 5)")
    parser.add_argument("--as-of", help="passed to `insiders run --as-of`")
    parser.add_argument("--threads", type=int,
                        help="cap OpenMP/BLAS threads in the runs (OMP_NUM_THREADS etc.); "
                             "default: the libraries' own choice, as users run it")
    parser.add_argument("--work", type=Path, help="scratch folder (default: bench/out/stages-"
                                                  "<input name>)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not args.input.exists():
        raise SystemExit(f"{args.input}: no such file")
    label = args.input.name.split(".")[0] + (f"-t{args.threads}" if args.threads else "")
    work = args.work or OUT / f"stages-{label}"
    print(f"machine: {machine()}")
    print(f"code: {code_version()}")
    print(f"threads: {args.threads or 'library default'}; load average now {load()}")
    imports = import_overhead(args.runs, args.threads)
    result = run_stages(args.input, args.runs, work, args.as_of, args.threads)
    print(report(result, imports))
    write_json(args.json or OUT / f"stages-{label}.json",
               {**result, "imports": imports, "threads": args.threads, "machine": machine(),
                "code": code_version()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
