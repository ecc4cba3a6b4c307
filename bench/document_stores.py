"""Embedded document stores compared on what the Insiders store does (README, "Document store").

For each candidate: replace one month (delete_many + insert_many of N customer documents),
read it back by run_id, count, upsert the run document, and check what the store relies on:
a unique index that refuses duplicates with pymongo's DuplicateKeyError, persistence across
processes, aggregate. Prints a table; medians of --repeat runs.

    .venv/bin/python bench/document_stores.py --docs 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def customer_doc(i: int) -> dict:
    return {"run_id": "2011-11", "customer_id": str(12346 + i), "country": "United Kingdom",
            "segment": i % 5, "persona": "Champions", "is_insider": i % 14 == 0,
            "expected_value": 1234.5 + i, "value_rank": i + 1, "membership": "outside",
            "features": {"recency_days": 12.5, "frequency": 4, "monetary": 2100.0,
                         "avg_ticket": 420.0, "basket_size": 180.0, "basket_variety": 21.0,
                         "avg_days_between": 40.0, "purchases_per_month": 0.5,
                         "tenure_days": 300.0, "return_rate": 0.01, "revenue_90d": 600.0}}


def open_db(kind: str, path: Path):
    if kind == "litemongo":
        import litemongo

        return litemongo.connect(str(path))["insiders"]
    import montydb

    return montydb.MontyClient(str(path))["insiders"]


def measure(kind: str, n: int, repeat: int) -> dict:
    times: dict[str, list[float]] = {"replace month": [], "read month": [], "count": [],
                                     "upsert run doc": []}
    path = Path(tempfile.mkdtemp(prefix=f"{kind}-"))
    db = open_db(kind, path)
    col = db["customers"]
    col.create_index([("run_id", 1), ("customer_id", 1)], unique=True)
    docs = [customer_doc(i) for i in range(n)]
    for _ in range(repeat):
        t = time.perf_counter()
        col.delete_many({"run_id": "2011-11"})
        col.insert_many([dict(d) for d in docs])
        times["replace month"].append(time.perf_counter() - t)
        t = time.perf_counter()
        got = list(col.find({"run_id": "2011-11"}))
        times["read month"].append(time.perf_counter() - t)
        assert len(got) == n
        t = time.perf_counter()
        col.count_documents({"run_id": "2011-11"})
        times["count"].append(time.perf_counter() - t)
        t = time.perf_counter()
        db["runs"].replace_one({"_id": "2011-11"}, {"_id": "2011-11", "status": "complete"},
                               upsert=True)
        times["upsert run doc"].append(time.perf_counter() - t)
    result = {k: statistics.median(v) for k, v in times.items()}
    try:
        col.insert_one(dict(docs[0]))
        result["unique index"] = "NOT enforced"
    except Exception as exc:  # noqa: BLE001 - which exception type is the finding
        from pymongo.errors import DuplicateKeyError

        result["unique index"] = ("pymongo DuplicateKeyError" if isinstance(exc, DuplicateKeyError)
                                  else f"{type(exc).__module__}.{type(exc).__name__}")
    try:
        list(col.aggregate([{"$group": {"_id": "$run_id", "n": {"$sum": 1}}}]))
        result["aggregate"] = "yes"
    except Exception as exc:  # noqa: BLE001
        result["aggregate"] = f"no ({type(exc).__name__})"
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from document_stores import open_db; from pathlib import Path; "
            f"print(open_db({kind!r}, Path({str(path)!r}))['customers'].count_documents({{}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    result["other process sees"] = out.stdout.strip() or out.stderr.strip()[-80:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = {kind: measure(kind, args.docs, args.repeat) for kind in ("litemongo", "montydb")}
    keys = list(next(iter(rows.values())))
    print(f"{args.docs:,} customer documents, median of {args.repeat}")
    print(f"{'':22}" + "".join(f"{k:>28}" for k in rows))
    for key in keys:
        cells = []
        for kind in rows:
            value = rows[kind][key]
            cells.append(f"{value:>26.3f} s" if isinstance(value, float) else f"{value:>28}")
        print(f"{key:22}" + "".join(cells))


if __name__ == "__main__":
    main()
