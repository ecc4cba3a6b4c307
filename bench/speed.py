"""`insiders run` of this tree against an earlier commit, side by side, and whether the
answers changed.

The machine is shared (2 cores, other jobs): a single timing says little, so the runs
alternate (before, after, before, after, ...) and the script prints medians of wall and
CPU seconds (user + system, CmdStan's child processes included) and per-stage medians for
both, the ratio, the verdict against the issue's 3 s target, and `compare_runs` of the
last pair (the answers must be the same, or differ only where a change says so). With
`--seed-style SCRIPT` it also times a notebook-like pipeline (issue 14's yardstick) in the
same alternation.

The earlier commit runs from `git archive REV plugins` put first on PYTHONPATH, in the
same virtualenv: only the package's code differs.

    .venv/bin/python bench/speed.py --before d7036d0                  # real file, 5 pairs
    .venv/bin/python bench/speed.py --before d7036d0 --source olist \\
        --input ../shared/data/olist --runs 3
    .venv/bin/python bench/speed.py --before d7036d0 --seed-style bench/seed_style.py
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import benchlib as bl
from insiders import stages as stage_list

STAGES = tuple(stage.name for stage in stage_list.ANALYSIS)
TARGET_SECONDS = 3.0  # issue 14, the real file


def export(rev: str, work: Path) -> Path:
    """`plugins/` of commit `rev` under `work`; returns the folder to put on PYTHONPATH."""
    commit = subprocess.run(["git", "-C", str(bl.REPO), "rev-parse", "--short", rev],
                            capture_output=True, text=True, check=True).stdout.strip()
    tree = work / f"src-{commit}"
    if not (tree / "plugins" / "insiders").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(bl.REPO), "archive", commit, "plugins"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree / "plugins"


def one_run(label: str, out: Path, args: argparse.Namespace, pythonpath: Path | None) -> dict:
    env = bl.clean_env(INSIDERS_HOME=args.work / "home")
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    shutil.rmtree(out, ignore_errors=True)
    cmd = [bl.INSIDERS, "run", "--input", args.input, "--out", out, "--quiet"]
    if args.source:
        cmd += ["--source", args.source]
    before = bl.load()
    done = bl.measure(cmd, env)
    if not done.ok:
        raise SystemExit(f"{label}: insiders run failed (exit {done.returncode}):\n{done.tail()}")
    print(f"  {label}: {done.seconds:.1f} s wall, CPU {done.cpu_seconds:.1f} s, load {before}",
          file=sys.stderr, flush=True)
    return {"wall": done.seconds, "cpu": done.cpu_seconds, "peak_mb": done.peak_mb,
            "stages": bl.stage_seconds(out, STAGES), "load": before}


def seed_run(script: Path, input_path: Path) -> dict:
    done = bl.measure([bl.PYTHON, script, input_path], bl.clean_env())
    if not done.ok:
        raise SystemExit(f"seed-style script failed (exit {done.returncode}):\n{done.tail()}")
    print(f"  seed-style: {done.seconds:.1f} s wall, CPU {done.cpu_seconds:.1f} s",
          file=sys.stderr, flush=True)
    return {"wall": done.seconds, "cpu": done.cpu_seconds}


def summary(results: dict[str, list[dict]], compared: str, args: argparse.Namespace) -> str:
    before, after = results["before"], results["after"]
    rows = []
    for name in STAGES:
        b = [r["stages"][name] for r in before if name in r["stages"]]
        a = [r["stages"][name] for r in after if name in r["stages"]]
        mb, ma = bl.median(b), bl.median(a)
        rows.append([name, mb, ma, mb / ma if a and b else "n/a"])
    for key, label in (("wall", "whole command, wall s"), ("cpu", "whole command, CPU s")):
        b, a = [r[key] for r in before], [r[key] for r in after]
        rows.append([label, bl.median(b), bl.median(a), bl.median(b) / bl.median(a)])
    lines = [
        f"machine: {bl.machine()}",
        f"code: after = {bl.code_version()}, before = {args.before}",
        f"input: {args.input}" + (f" (--source {args.source})" if args.source else ""),
        f"{len(after)} alternating pair(s) of fresh `insiders run` processes; medians:",
        "",
        bl.table(["stage", "before", "after", "before / after"], rows),
        "",
        f"load average around the runs: {before[0]['load']} ... {after[-1]['load']}",
        f"peak RSS: before {max(r['peak_mb'] for r in before):,.0f} MB, after "
        f"{max(r['peak_mb'] for r in after):,.0f} MB",
    ]
    wall = bl.median([r["wall"] for r in after])
    if results.get("seed"):
        seed = bl.median([r["wall"] for r in results["seed"]])
        seed_cpu = bl.median([r["cpu"] for r in results["seed"]])
        lines.append(f"seed-style pipeline: median wall {seed:.1f} s (CPU {seed_cpu:.1f} s): "
                     f"after is {seed / wall:.1f}x faster (target >= 8x)")
    if Path(args.input).resolve() == bl.REAL_FILE.resolve() and not args.source:
        verdict = "PASS" if wall <= TARGET_SECONDS else "FAIL"
        lines.append(f"real file: median wall {wall:.1f} s -> {verdict} (target <= "
                     f"{TARGET_SECONDS:g} s)")
    diff = compared.splitlines()
    shown = diff if len(diff) <= 14 else [*diff[:12], f"  ... ({len(diff) - 13} more)", diff[-1]]
    lines += ["", "compare_runs (last pair; the whole list with bench/compare_runs.py):",
              *shown]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare with (git rev)")
    parser.add_argument("--input", type=Path, default=bl.REAL_FILE,
                        help="transactions (default: the real Online Retail file)")
    parser.add_argument("--source", help="passed to `insiders run --source` (e.g. olist)")
    parser.add_argument("--runs", type=int, default=5, help="alternating pairs (default 5)")
    parser.add_argument("--seed-style", type=Path,
                        help="a notebook-like pipeline script to time in the same alternation")
    parser.add_argument("--work", type=Path, default=bl.OUT / "speed",
                        help="scratch folder (default bench/out/speed)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    old = export(args.before, args.work)
    results: dict[str, list[dict]] = {"before": [], "after": [], "seed": []}
    for i in range(args.runs):
        results["before"].append(one_run(f"before {i + 1}", args.work / "before", args, old))
        results["after"].append(one_run(f"after {i + 1}", args.work / "after", args, None))
        if args.seed_style:
            results["seed"].append(seed_run(args.seed_style, args.input))
    compared = subprocess.run([bl.PYTHON, bl.REPO / "bench" / "compare_runs.py",
                               args.work / "before", args.work / "after"],
                              capture_output=True, text=True).stdout.strip()
    text = summary(results, compared, args)
    print(text)
    if args.json:
        bl.write_json(args.json, {"results": results, "compare_runs": compared})
    return 0


if __name__ == "__main__":
    sys.exit(main())
