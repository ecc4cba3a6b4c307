"""Engines side by side: `insiders run` per engine against the seed-style pipeline and at scale.

1. The real file, side by side in one run (alternating, N times each): `insiders run` on the
   default engine (`auto`: pandas on the real file) against `bench/seed_style.py` (a
   notebook-like pandas script of the same analysis): median wall seconds and the ratio.
2. The real file once per engine (pandas, duckdb, spark): wall, peak RSS of the largest
   process and of all of them at once (summed PSS: stages side by side run in forked
   copies, `--workers`), per-stage seconds, and whether the run folder is identical to the
   pandas one (compare_runs).
3. The generated sets (bench/generate.py; `--data-dir` holds retail_x10.csv.gz, ...): time
   and peak memory per engine (Spark only on `--spark-scales`: its local mode is slow).

    .venv/bin/python bench/engines.py --runs 3 --scales 10,50 --data-dir bench/out
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
    REPO,
    clean_env,
    code_version,
    load,
    machine,
    measure,
    median,
    stage_seconds,
    table,
    write_json,
)
from compare_runs import compare

STAGES = ("extract", "quality", "features", "segment", "value", "insiders", "evaluate", "forecast",
          "stability", "report")
SPARK_CONF = "spark.driver.port=56343,spark.driver.blockManager.port=56344,spark.driver.memory=4g"


WORKERS = {"value": 2}  # INSIDERS_WORKERS of the measured runs (--workers)


def run(path: Path, out: Path, engine: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = clean_env(INSIDERS_HOME=out.parent / f"{out.name}-home", INSIDERS_ENGINE=engine,
                    INSIDERS_SPARK_CONF=SPARK_CONF, INSIDERS_WORKERS=WORKERS["value"])
    done = measure([INSIDERS, "run", "--input", path, "--out", out, "--quiet"], env)
    if not done.ok:
        raise SystemExit(f"insiders run --engine {engine} on {path} failed:\n{done.tail()}")
    tree = done.tree_peak_mb
    return {"engine": engine, "seconds": round(done.seconds, 2), "peak_mb": round(done.peak_mb),
            "tree_peak_mb": None if tree != tree else round(tree),  # NaN: not sampled
            "workers": WORKERS["value"], "stages": stage_seconds(out, STAGES)}


def seed_style(path: Path) -> dict:
    done = measure([PYTHON, REPO / "bench" / "seed_style.py", path], clean_env())
    if not done.ok:
        raise SystemExit(f"seed_style.py failed:\n{done.tail()}")
    return {"seconds": round(done.seconds, 2), "peak_mb": round(done.peak_mb),
            "line": done.stdout.strip().splitlines()[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3,
                        help="side-by-side runs on the real file (0: none)")
    parser.add_argument("--scales", default="10,50", help="generated sets to run ('' = none)")
    parser.add_argument("--spark-scales", default="1,10", help="sets Spark runs on (its local "
                        "mode is slow on one machine)")
    parser.add_argument("--engines", default="pandas,duckdb,spark",
                        help="pandas first: the others are compared with its run folder")
    parser.add_argument("--data-dir", type=Path, default=OUT)
    parser.add_argument("--work", type=Path, default=OUT / "engines")
    parser.add_argument("--workers", type=int, default=2,
                        help="INSIDERS_WORKERS: stages side by side (1 = one at a time)")
    args = parser.parse_args(argv)
    WORKERS["value"] = args.workers
    engines = [e for e in args.engines.split(",") if e]
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    print(f"{machine()}; load {load()}; code {code_version()}; workers {args.workers}",
          flush=True)

    side: dict[str, list[float]] = {"insiders": [], "seed": []}
    for i in range(args.runs):
        side["insiders"].append(run(REAL_FILE, work / "side", "auto")["seconds"])
        side["seed"].append(seed_style(REAL_FILE)["seconds"])
        print(f"  side by side {i + 1}: insiders run {side['insiders'][-1]} s, seed-style "
              f"{side['seed'][-1]} s", flush=True)
    ratio = None
    if args.runs:  # --runs 0: only the scale table
        a, b = median(side["insiders"]), median(side["seed"])
        ratio = round(b / a, 2)
        print(f"real file, median of {args.runs}: insiders run (auto) {a:.2f} s, seed-style "
              f"{b:.2f} s: insiders run is {ratio}x the seed-style speed", flush=True)

    rows, results = [], {"side_by_side": side, "scales": []}
    for scale in ["1", *[s for s in args.scales.split(",") if s]]:
        path = REAL_FILE if scale == "1" else args.data_dir / f"retail_x{scale}.csv.gz"
        if not path.exists():
            print(f"  x{scale}: {path} is missing (bench/generate.py --scale {scale})")
            continue
        for engine in engines:
            if engine == "spark" and scale not in args.spark_scales.split(","):
                continue
            out = work / f"x{scale}-{engine}"
            figures = run(path, out, engine)
            if engine != "pandas" and (work / f"x{scale}-pandas").exists():
                diffs = compare(work / f"x{scale}-pandas", out)
                figures["vs_pandas"] = "identical" if not diffs else "; ".join(diffs)[:200]
            results["scales"].append({"scale": scale, **figures})
            st = figures["stages"]
            rows.append([f"x{scale}", engine, figures["seconds"], figures["peak_mb"],
                         figures["tree_peak_mb"], st.get("extract"), st.get("quality"),
                         st.get("features"), st.get("insiders"), st.get("stability"),
                         figures.get("vs_pandas", "")])
            print(f"  x{scale} {engine}: {figures['seconds']} s, {figures['peak_mb']} MB "
                  f"(all processes {figures['tree_peak_mb']} MB) "
                  f"{figures.get('vs_pandas', '')}", flush=True)
        if scale != "1":  # the large sets' run folders are GBs
            for engine in engines:
                shutil.rmtree(work / f"x{scale}-{engine}", ignore_errors=True)
    print(table(["set", "engine", "wall s", "peak MB", "all MB", "extract", "quality", "features",
                 "insiders", "stability", "vs pandas"], rows))
    write_json(work / "engines.json", results)
    print(json.dumps({"side_by_side_ratio": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
