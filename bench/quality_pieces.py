"""Where the DuckDB quality stage spends its time: each step of `engine/lines.py` alone.

Runs the steps of `engine.steps.quality_on` one after the other on a raw extract (a run
folder's `work/raw.parquet`, from `insiders run`), timing each: the distinct values of the
eight columns, classifying every line, the non-product tally, the copies, the counts per
reason, the quarantine's rows and the kept rows (both as Arrow, not written). Writing the
quarantine and the transactions file is what the stage adds to these.

    .venv/bin/python bench/quality_pieces.py insiders-out/work/raw.parquet --as-of 2011-12-10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from insiders import quality
from insiders.engine import lines
from insiders.engine.backends import connect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path, help="a run folder's work/raw.parquet")
    parser.add_argument("--as-of", default="2011-12-10", help="the run's as-of date")
    parser.add_argument("--memory", default="2GB", help="DuckDB's memory_limit (the default's)")
    args = parser.parse_args(argv)
    as_of = pd.Timestamp(args.as_of)
    clock = time.perf_counter
    seconds: dict[str, float] = {}

    def timed(name: str, step):
        started = clock()
        value = step()
        seconds[name] = clock() - started
        print(f"  {name:<22} {seconds[name]:6.2f} s", flush=True)
        return value

    def rows(batches) -> int:
        return sum(b.num_rows for b in batches)

    with tempfile.TemporaryDirectory() as spill:
        engine = connect("duckdb", temp_dir=spill, memory_limit=args.memory)
        raw = engine.raw_lines(args.raw)
        d = timed("distinct values", lambda: lines.build_dictionaries(engine, raw, as_of))
        c = timed("classify", lambda: engine.materialize(
            lines.classify(engine, raw, d, sources=False)))
        timed("non-product tally", lambda: lines.tally_non_products(
            engine, c, d, quality.NonProductTally()))
        dups = timed("copies", lambda: engine.materialize(lines.duplicates(c)))
        outcome = timed("counts per reason", lambda: lines.account(engine, c, dups, d))
        aside = timed("quarantine rows", lambda: rows(
            lines.quarantine_batches(engine, c, dups, d, args.raw)))
        files = lines.source_files(engine, raw)
        kept = timed("kept rows", lambda: rows(
            lines.kept_batches(engine, c, dups, d, files, args.raw)[1]))
        engine.close()
    print(f"{outcome.rows_in:,} lines: {kept:,} kept, {aside:,} set aside; "
          f"steps {sum(seconds.values()):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
