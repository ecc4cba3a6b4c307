"""Embedded document stores compared on what the Insiders store does (README, "Document store").

For each store and size: write a month the way `DocumentStore.write_run` does (a compound
unique index on (run_id, customer_id), documents keyed `run|customer`, delete_many of the
month then insert_many in batches of 5,000), write it again (the replace of a re-run), read
it back by run_id, count it, and check what the store relies on: a duplicate refused with
pymongo's DuplicateKeyError, and another process seeing the data.

Stores: `embedded` (insiders.stores.embedded, the default) and `litemongo` 0.2.0 exactly as
it is installed (no patches; `pip install litemongo==0.2.0` to compare, it is not a
dependency any more). `--server URI` adds a MongoDB-compatible server.

    .venv/bin/python bench/document_stores.py --docs 5000,70000 --repeat 1
    .venv/bin/python bench/document_stores.py --whole-month --docs 70000,134869
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
RUN = "2011-11"


def customer_doc(i: int) -> dict:
    return {"_id": f"{RUN}|{12346 + i}", "run_id": RUN, "customer_id": str(12346 + i),
            "country": "United Kingdom", "segment": i % 5, "persona": "Champions",
            "is_insider": i % 14 == 0, "expected_value": 1234.5 + i, "value_rank": i + 1,
            "membership": "outside",
            "features": {"recency_days": 12.5, "frequency": 4, "monetary": 2100.0,
                         "avg_ticket": 420.0, "basket_size": 180.0, "basket_variety": 21.0,
                         "avg_days_between": 40.0, "purchases_per_month": 0.5,
                         "tenure_days": 300.0, "return_rate": 0.01, "revenue_90d": 600.0}}


def open_db(kind: str, where: str):
    """(client, database) of a store: a folder for the embedded ones, a URI for a server."""
    if kind == "litemongo":
        import litemongo

        client = litemongo.connect(where)
    elif kind == "embedded":
        from insiders.stores.embedded import EmbeddedClient

        client = EmbeddedClient(where)
    else:
        import pymongo

        client = pymongo.MongoClient(where)
    return client, client["insiders_bench"]


def write_month(col, docs: list[dict]) -> None:
    col.delete_many({"run_id": RUN})
    for start in range(0, len(docs), 5000):
        col.insert_many([dict(d) for d in docs[start:start + 5000]], ordered=True)


def measure(kind: str, n: int, repeat: int, server: str | None) -> dict:
    times: dict[str, list[float]] = {"write month": [], "rewrite month": [], "read month": [],
                                     "count": []}
    where = server if kind == "server" else tempfile.mkdtemp(prefix=f"bench-{kind}-")
    client, db = open_db(kind, where)
    if kind == "server":
        db["customers"].drop()
    col = db["customers"]
    col.create_index([("run_id", 1), ("customer_id", 1)], name="run_customer", unique=True)
    docs = [customer_doc(i) for i in range(n)]
    for _ in range(repeat):
        col.delete_many({})
        t = time.perf_counter()
        write_month(col, docs)
        times["write month"].append(time.perf_counter() - t)
        t = time.perf_counter()
        write_month(col, docs)
        times["rewrite month"].append(time.perf_counter() - t)
        t = time.perf_counter()
        got = list(col.find({"run_id": RUN}, {"_id": 0}))
        times["read month"].append(time.perf_counter() - t)
        assert len(got) == n, (kind, len(got))
        t = time.perf_counter()
        assert col.count_documents({"run_id": RUN}) == n
        times["count"].append(time.perf_counter() - t)
    result: dict = {k: statistics.median(v) for k, v in times.items()}
    from pymongo.errors import DuplicateKeyError

    try:
        col.insert_one({**docs[0], "_id": "another id, same run and customer"})
        result["duplicate refused"] = "NO"
    except DuplicateKeyError:
        result["duplicate refused"] = "DuplicateKeyError"
    except Exception as exc:  # noqa: BLE001 - which exception type is the finding
        result["duplicate refused"] = f"{type(exc).__module__}.{type(exc).__name__}"
    if kind != "server":
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"from document_stores import open_db; "
                f"print(open_db({kind!r}, {where!r})[1]['customers'].count_documents({{}}))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        result["other process sees"] = out.stdout.strip() or out.stderr.strip()[-80:]
        client.close()
    else:
        db["customers"].drop()
        client.close()
    return result


def whole_month(n: int, uri: str | None) -> dict:
    """`DocumentStore.write_run` of a month with n customers and n membership documents (the
    package's write: lock with its lease, runs document, delete + insert, complete), then
    the readers' calls."""
    import copy

    from insiders import stores
    from insiders.config import Settings

    run = {"run_id": RUN, "as_of": "2011-12-01", "membership": {"entered": 1, "stayed": 0,
                                                                  "left": 0, "members": 1}}
    docs = {"customers": [{k: v for k, v in customer_doc(i).items() if k not in ("_id", "run_id")}
                          for i in range(n)],
            "membership": [{"customer_id": str(12346 + i), "status": "outside", "reason": None,
                            "expected_value": 1.0 + i} for i in range(n)]}
    name = f"insiders_bench_{n}"
    settings = Settings(home=tempfile.mkdtemp(prefix="bench-month-"), mongo_uri=uri,
                        mongo_db=name)
    out = {}
    with stores.store_from(settings) as store:
        for label in ("write run", "rewrite run"):
            this_run, these = copy.deepcopy(run), copy.deepcopy(docs)
            t = time.perf_counter()
            store.write_run(this_run, these)
            out[label] = time.perf_counter() - t
        t = time.perf_counter()
        assert len(store.documents("customers", RUN)) == n
        out["read customers"] = time.perf_counter() - t
        t = time.perf_counter()
        assert store.count("membership", RUN) == n
        out["count"] = time.perf_counter() - t
        if uri:
            store.client.drop_database(name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default="5000,70000", help="comma-separated sizes")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--stores", default="embedded,litemongo")
    parser.add_argument("--server", help="mongodb:// URI of a server to compare too")
    parser.add_argument("--whole-month", action="store_true",
                        help="time DocumentStore.write_run instead (embedded, and --server)")
    args = parser.parse_args()
    if args.whole_month:
        for n in (int(x) for x in args.docs.split(",")):
            for label, uri in (("embedded", None), ("server", args.server)):
                if label == "server" and not uri:
                    continue
                figures = whole_month(n, uri)
                print(f"{n:,} customers + {n:,} membership, {label}: " + ", ".join(
                    f"{k} {v:.2f} s" for k, v in figures.items()), flush=True)
        return
    kinds = args.stores.split(",") + (["server"] if args.server else [])
    for n in (int(x) for x in args.docs.split(",")):
        rows = {}
        for kind in kinds:
            try:
                rows[kind] = measure(kind, n, args.repeat, args.server)
            except ImportError as exc:
                print(f"{kind}: not installed ({exc})")
        if not rows:
            continue
        keys = list(next(iter(rows.values())))
        print(f"\n{n:,} customer documents, median of {args.repeat}")
        print(f"{'':22}" + "".join(f"{k:>24}" for k in rows))
        for key in keys:
            cells = []
            for kind in rows:
                value = rows[kind].get(key, "")
                cells.append(f"{value:>22.2f} s" if isinstance(value, float) else f"{value:>24}")
            print(f"{key:22}" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()
