"""Write a transaction set N times the size of the real Online Retail file, with the same shape.

Uses the package's deterministic demo generator (`insiders.demo.generate`:
Online Retail layout, chunked, ~200 lines per customer, 2009-12..2011-12-09).
The number of customers is calibrated so the row count is about N x 541,909:
rows per customer are measured on a small set, then scaled. The CSV is the
same text `insiders.demo.write` produces; only the gzip level is a parameter.

    .venv/bin/python bench/generate.py --scale 10 --out bench/out/retail_x10.csv.gz
"""

from __future__ import annotations

import argparse
import gzip
import resource
import sys
import time
from pathlib import Path

from benchlib import OUT, REAL_ROWS, write_json
from insiders import demo


def rows_per_customer(customers: int = 5000, seed: int = 7) -> float:
    """Lines per customer (guest lines included) on a small set from the same generator."""
    rows = sum(len(frame) for frame in demo.generate(customers=customers, seed=seed))
    return rows / customers


def customers_for(scale: float, per_customer: float) -> int:
    """Customers needed for about `scale` x the real file's rows."""
    return max(1, round(scale * REAL_ROWS / per_customer))


def write(path: Path, customers: int, seed: int = 7, compresslevel: int = 6,
          chunk_customers: int = 20_000) -> int:
    """Write the set (gzip when the name ends in .gz) atomically; returns the rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    if path.suffix == ".gz":
        sink = gzip.open(tmp, "wt", encoding="utf-8", newline="", compresslevel=compresslevel)
    else:
        sink = open(tmp, "w", encoding="utf-8", newline="")
    rows = 0
    with sink as fh:
        for i, frame in enumerate(demo.generate(customers=customers, seed=seed,
                                                chunk_customers=chunk_customers)):
            frame.to_csv(fh, index=False, header=i == 0)
            rows += len(frame)
            print(f"  {rows:,} rows written", file=sys.stderr, flush=True)
    tmp.replace(path)
    return rows


def meta_path(path: Path) -> Path:
    """The JSON written next to a generated set (customers, rows, seconds)."""
    return path.with_name(path.name + ".meta.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, required=True,
                        help="size as a multiple of the real file's 541,909 rows")
    parser.add_argument("--out", type=Path, help="file to write (default: "
                                                 "bench/out/retail_x<scale>.csv.gz)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--calibration-customers", type=int, default=5000,
                        help="customers in the set that measures rows per customer")
    parser.add_argument("--rows-per-customer", type=float,
                        help="skip the calibration and use this figure")
    parser.add_argument("--compresslevel", type=int, default=6,
                        help="gzip level (demo.write uses 9: same bytes once unzipped, slower)")
    parser.add_argument("--chunk-customers", type=int, default=20_000,
                        help="customers per generated chunk (bounds the generator's memory)")
    args = parser.parse_args(argv)
    out = args.out or OUT / f"retail_x{args.scale:g}.csv.gz"

    started = time.perf_counter()
    per_customer = args.rows_per_customer or rows_per_customer(args.calibration_customers,
                                                               args.seed)
    calibrated = time.perf_counter() - started
    customers = customers_for(args.scale, per_customer)
    target = round(args.scale * REAL_ROWS)
    print(f"{per_customer:.2f} rows per customer (calibrated in {calibrated:.1f} s): "
          f"{customers:,} customers for ~{target:,} rows")
    rows = write(out, customers, args.seed, args.compresslevel, args.chunk_customers)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = out.stat().st_size / 1024 / 1024
    print(f"wrote {out}: {rows:,} rows ({rows / REAL_ROWS:.2f} x {REAL_ROWS:,}), "
          f"{customers:,} customers, {size_mb:,.1f} MB, in {seconds:.1f} s "
          f"(calibration {calibrated:.1f} s), peak RSS {peak_mb:,.0f} MB")
    write_json(meta_path(out), {
        "path": str(out.resolve()), "scale": args.scale, "seed": args.seed, "customers": customers,
        "rows_per_customer": per_customer, "rows": rows, "target_rows": target,
        "size_mb": round(size_mb, 1), "seconds": round(seconds, 1),
        "calibration_seconds": round(calibrated, 1), "peak_mb": round(peak_mb),
        "compresslevel": args.compresslevel, "chunk_customers": args.chunk_customers,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
