"""Document store: every result of a run as MongoDB documents, behind one small interface.

`INSIDERS_MONGO_URI=mongodb://...` uses a real server; unset, an embedded
on-disk store under `INSIDERS_HOME/documents` (litemongo: mongomock's query
engine over SQLite files). Every Airflow task is its own process, so the
embedded store must persist across processes; an in-memory mock cannot serve.
litemongo was chosen over montydb because it keeps what the store relies on:
unique indexes, pymongo's own DuplicateKeyError, insert_many at ~5,000
documents/s and count_documents (see README, "Document store").

Only a portable subset of pymongo is used: insert_one/insert_many,
delete_many, replace_one(upsert), find/find_one, count_documents and
create_index. No aggregate, no transactions, no bulk_write.

Write protocol (idempotent, invisible until complete): take the month's lock,
mark the run `writing`, delete the month's documents, insert the new ones,
then mark the run `complete` with a content version. Readers only see
complete runs; a retry after a failure simply redoes all of it. A document's
`_id` is its key in the run (`2011-11|17850`), so no store can hold a
customer twice in a month.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pymongo
from pymongo.errors import DuplicateKeyError, PyMongoError

from .catalog import RunFolder
from .config import Settings
from .errors import RunLockedError, StoreError

COLLECTIONS = ("customers", "segments", "membership", "forecasts", "stability")
# the same indexes as mongo-init/indexes.json (a test keeps them equal)
INDEXES: dict[str, list[dict]] = {
    "runs": [{"key": {"status": 1, "run_id": -1}, "name": "status_run_id"}],
    "customers": [
        {"key": {"run_id": 1, "customer_id": 1}, "name": "run_customer", "unique": True},
        {"key": {"run_id": 1, "value_rank": 1}, "name": "run_value_rank"},
    ],
    "segments": [{"key": {"run_id": 1, "segment": 1}, "name": "run_segment", "unique": True}],
    "membership": [
        {"key": {"run_id": 1, "customer_id": 1}, "name": "run_customer", "unique": True},
        {"key": {"customer_id": 1, "run_id": 1}, "name": "customer_history"},
    ],
    "forecasts": [
        {"key": {"run_id": 1, "month": 1, "kind": 1}, "name": "run_month_kind", "unique": True},
    ],
    "stability": [
        {"key": {"run_id": 1, "months_since_fit": 1}, "name": "run_months_since_fit",
         "unique": True},
    ],
}
# each document's _id is its key within the run: uniqueness every store enforces natively
KEY_FIELDS = {"customers": ("customer_id",), "membership": ("customer_id",),
              "segments": ("segment",), "forecasts": ("month", "kind"),
              "stability": ("months_since_fit",)}
BATCH = 5000
LOCK_STALE_AFTER = dt.timedelta(hours=6)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


@dataclass
class DocumentStore:
    """The collections of one database, whatever serves them."""

    db: object  # pymongo.database.Database or litemongo's equivalent
    kind: str  # "mongodb" or "embedded"
    client: object = None

    # ------------------------------------------------------------------ setup

    def ensure_indexes(self) -> None:
        """The indexes of mongo-init/indexes.json. On the embedded store the compound unique
        ones are plain indexes: every document's `_id` already is its (run, key), and
        mongomock checks a compound unique index by scanning the whole month on each insert
        (70,000 customers: 259 s instead of 15 s)."""
        for name, specs in INDEXES.items():
            for spec in specs:
                unique = bool(spec.get("unique")) and not (self.kind == "embedded"
                                                           and name in KEY_FIELDS)
                self.db[name].create_index(list(spec["key"].items()), name=spec["name"],
                                           unique=unique)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    # ------------------------------------------------------------------ writing

    @contextmanager
    def lock(self, run_id: str, owner: str | None = None) -> Iterator[None]:
        """Only one writer per month: a second one is told who holds the lock and since when.

        A lock left by a writer that died (killed task) is taken over: at once when
        the holder was a process on this host that no longer exists, else after
        LOCK_STALE_AFTER.
        """
        owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        locks = self.db["locks"]
        doc = {"_id": run_id, "owner": owner, "since": _now()}
        try:
            locks.insert_one(doc)
        except DuplicateKeyError:
            held = locks.find_one({"_id": run_id}) or {}
            since = held.get("since")
            stale = isinstance(since, dt.datetime) and _now() - since > LOCK_STALE_AFTER
            if stale or _holder_is_dead(str(held.get("owner", ""))):
                locks.delete_many({"_id": run_id, "owner": held.get("owner")})
                locks.insert_one(doc)
            else:
                raise RunLockedError(
                    f"run {run_id} is being written by {held.get('owner', 'another run')} since "
                    f"{since}; wait for it to finish (the DAG runs one month at a time)"
                ) from None
        try:
            yield
        finally:
            locks.delete_many({"_id": run_id, "owner": owner})

    def write_run(self, run: dict, documents: dict[str, list[dict]],
                  fail_after: str | None = None) -> dict:
        """Replace a month's documents; the run becomes visible only when all are written.

        `fail_after` names a collection after which to stop (fault-injection tests).
        """
        run_id = run["run_id"]
        for name in documents:
            if name not in COLLECTIONS:
                raise ValueError(f"unknown collection {name!r}")
        version = content_version(run, documents)
        counts = {name: len(docs) for name, docs in documents.items()}
        try:
            with self.lock(run_id):
                self.db["runs"].replace_one(
                    {"_id": run_id},
                    {**_mongo_safe(run), "_id": run_id, "status": "writing",
                     "version": version, "started_at": _now(), "completed_at": None},
                    upsert=True)
                for name in COLLECTIONS:
                    collection = self.db[name]
                    collection.delete_many({"run_id": run_id})
                    docs = documents.get(name, [])
                    for start in range(0, len(docs), BATCH):
                        collection.insert_many([_mongo_safe({**d, "run_id": run_id,
                                                             "_id": document_id(name, run_id, d)})
                                                for d in docs[start:start + BATCH]],
                                               ordered=True)
                    if fail_after == name:
                        raise StoreError(f"injected failure after writing {name}")
                final = {**_mongo_safe(run), "_id": run_id, "status": "complete",
                         "version": version, "counts": counts, "completed_at": _now()}
                self.db["runs"].replace_one({"_id": run_id}, final, upsert=True)
        except PyMongoError as exc:
            raise StoreError(f"document store failed while writing run {run_id}: "
                             f"{type(exc).__name__}: {exc}") from None
        return {"run_id": run_id, "version": version, "counts": counts}

    # ------------------------------------------------------------------ reading

    def complete_runs(self) -> list[dict]:
        """Runs readers may use, oldest first (incomplete runs are invisible)."""
        runs = list(self.db["runs"].find({"status": "complete"}))
        return sorted(runs, key=lambda r: r["run_id"])

    def run(self, run_id: str) -> dict | None:
        return self.db["runs"].find_one({"_id": run_id, "status": "complete"})

    def documents(self, collection: str, run_id: str) -> list[dict]:
        if self.run(run_id) is None:
            return []
        return list(self.db[collection].find({"run_id": run_id}, {"_id": 0}))

    def count(self, collection: str, run_id: str) -> int:
        return self.db[collection].count_documents({"run_id": run_id})

    def previous_members(self, run_id: str) -> list[str]:
        """The Insiders of the latest complete run before `run_id` (for hysteresis)."""
        earlier = [r for r in self.complete_runs() if r["run_id"] < run_id]
        if not earlier:
            return []
        last = earlier[-1]["run_id"]
        docs = self.db["customers"].find({"run_id": last, "is_insider": True},
                                         {"customer_id": 1, "_id": 0})
        return sorted(d["customer_id"] for d in docs)

    def membership_history(self, until: str | None = None) -> pd.DataFrame:
        """Entered / stayed / left and members per complete run, from the runs' counts."""
        rows = []
        for r in self.complete_runs():
            if until and r["run_id"] > until:
                continue
            flows = (r.get("membership") or {})
            rows.append({"run_id": r["run_id"], "entered": flows.get("entered", 0),
                         "stayed": flows.get("stayed", 0), "left": flows.get("left", 0),
                         "members": flows.get("members", 0)})
        return pd.DataFrame(rows, columns=["run_id", "entered", "stayed", "left", "members"])


def document_id(collection: str, run_id: str, doc: dict) -> str:
    """`2011-11|17850` for a customer of run 2011-11: a month can hold each key only once."""
    return "|".join([run_id, *(str(doc[field]) for field in KEY_FIELDS[collection])])


def _holder_is_dead(owner: str) -> bool:
    """True when the lock's owner was a process on this host that is gone."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def content_version(run: dict, documents: dict[str, list[dict]]) -> str:
    """Same content, same version: re-running a month unchanged syncs nothing."""
    digest = hashlib.sha256()
    stable = {k: v for k, v in run.items() if k not in ("timings", "started_at", "completed_at")}
    digest.update(json.dumps(stable, sort_keys=True, default=str).encode())
    for name in sorted(documents):
        digest.update(name.encode())
        for doc in documents[name]:
            digest.update(json.dumps(doc, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def _mongo_safe(value: object) -> object:
    """Field names may not contain '.' or start with '$' everywhere: replace those characters."""
    if isinstance(value, dict):
        return {str(k).replace(".", "_").lstrip("$"): _mongo_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mongo_safe(v) for v in value]
    return value


def _linear_litemongo_cursor() -> None:
    """litemongo 0.2's (mongomock's) cursor re-slices its whole result list on every next():
    reading or deleting a 70,000-customer month took 94-99 s instead of ~5 s. Same
    semantics (skip, limit), indexed instead of sliced."""
    from litemongo._vendor.mongomock.collection import Cursor

    if getattr(Cursor, "_insiders_linear", False):
        return

    def __next__(self):  # noqa: N807 - replaces the method of the same name
        results = self._compute_results(with_limit_and_skip=False)
        if self._limit and self._emitted >= abs(self._limit):
            raise StopIteration
        position = (self._skip or 0) + self._emitted
        if position >= len(results):
            raise StopIteration
        self._emitted += 1
        return results[position]

    Cursor.__next__ = __next__
    Cursor.next = __next__
    Cursor._insiders_linear = True


@contextmanager
def _opening(path: Path) -> Iterator[None]:
    """One process at a time creates the embedded store's collection files: litemongo
    initialises a new file with a check-then-insert, so two processes opening a fresh store
    at once (a task writing while the dashboard reads) could fail with IntegrityError."""
    import fcntl

    with open(path / ".open.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_store(settings: Settings) -> DocumentStore:
    """A real MongoDB for mongodb:// URIs, else the embedded on-disk store under home."""
    uri = settings.mongo_uri
    try:
        if uri and uri.startswith(("mongodb://", "mongodb+srv://")):
            client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000, tz_aware=False)
            client[settings.mongo_db].command("ping")  # any authenticated user may ping
            store = DocumentStore(client[settings.mongo_db], "mongodb", client)
        else:
            import litemongo

            _linear_litemongo_cursor()
            path = Path(uri.removeprefix("embedded://")) if uri else settings.home / "documents"
            path.mkdir(parents=True, exist_ok=True)
            with _opening(path):
                client = litemongo.connect(str(path))
                store = DocumentStore(client[settings.mongo_db], "embedded", client)
                store.ensure_indexes()
                store.db["locks"].find_one({"_id": ""})  # creates its file, under the lock
            return store
        store.ensure_indexes()
    except PyMongoError as exc:
        where = _redact(uri) if uri else "embedded store"
        raise StoreError(f"cannot reach the document store {where}: {type(exc).__name__}: "
                         f"{exc}") from None
    return store


def _redact(uri: str) -> str:
    from .extract import redact_url

    return redact_url(uri)


@contextmanager
def store_from(settings: Settings) -> Iterator[DocumentStore]:
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


# --------------------------------------------------------------------------- building documents

FEATURE_KEYS = ("recency_days", "frequency", "monetary", "avg_ticket", "basket_size",
                "basket_variety", "avg_days_between", "purchases_per_month", "tenure_days",
                "return_rate", "revenue_90d")


def _num(value: object) -> float | int | None:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, (bool,)):
        return value
    if hasattr(value, "item"):
        value = value.item()
    return value


def build(folder: RunFolder, run_id: str, source: str | None = None) -> tuple[dict, dict]:
    """The run document and the per-collection documents, from a finished run folder."""
    from .stages import REPORTED

    answers = folder.read_json("answers")
    stages = folder.stages(REPORTED)
    customers = folder.read("customers")
    ins = stages["insiders"]
    seg = stages["segment"]
    fc = stages["forecast"]
    stab = folder.stage("stability") if folder.has_stage("stability") else {}

    extra_features = [c for c in seg.get("model_features", []) if c not in FEATURE_KEYS
                      and c in customers]
    customer_docs = []
    for row in customers.to_dict(orient="records"):
        features = {k: _num(row.get(k)) for k in (*FEATURE_KEYS, *extra_features)}
        customer_docs.append({
            "customer_id": str(row["customer_id"]),
            "country": None if row.get("country") is None else str(row["country"]),
            "segment": int(row["segment"]),
            "persona": str(row["persona"]),
            "is_insider": bool(row["is_insider"]),
            "expected_value": float(_num(row["expected_value"]) or 0.0),
            "value_rank": int(row["value_rank"]),
            "membership": str(row["membership"]),
            "features": features,
        })

    members_by_segment = customers[customers["is_insider"]].groupby("segment").size()
    value_by_segment = customers.groupby("segment")["expected_value"].mean()
    segment_docs = []
    for p in seg["profiles"]:
        segment_docs.append({
            "segment": int(p["segment"]), "persona": p["persona"],
            "description": p.get("description"), "action": p.get("action"),
            "customers": int(p["customers"]), "share": float(p["share"]),
            "insiders": int(members_by_segment.get(int(p["segment"]), 0)),
            "revenue": float(p["revenue"]), "revenue_share": _num(p.get("revenue_share")),
            "profile": {**{k: _num(v) for k, v in p.items()
                           if k not in ("segment", "persona", "persona_base", "description",
                                        "action", "customers", "share", "revenue",
                                        "revenue_share")},
                        "mean_expected_value": _num(value_by_segment.get(int(p["segment"])))},
        })

    membership_docs = [
        {"customer_id": str(r["customer_id"]), "status": str(r["membership"]),
         "reason": str(r["membership_reason"]) or None,
         "expected_value": _num(r["expected_value"])}
        for r in customers[["customer_id", "membership", "membership_reason",
                            "expected_value"]].to_dict(orient="records")
    ]
    known = set(customers["customer_id"].astype("str"))
    for gone in sorted(set(ins.get("previous_member_ids", [])) - known):
        membership_docs.append({"customer_id": gone, "status": "left",
                                "reason": "no purchase in the analysed period",
                                "expected_value": 0.0})

    forecast_docs = [{"month": h["month"], "kind": "actual", "revenue": h["revenue"],
                      "lower": None, "upper": None} for h in fc.get("history", [])]
    forecast_docs += [{"month": m["month"], "kind": "forecast", "revenue": m["revenue"],
                       "lower": m.get("lower"), "upper": m.get("upper")} for m in fc["months"]]
    back = fc.get("backtest") or {}
    for m in back.get("months", []) if back.get("available") else []:
        forecast_docs += [
            {"month": m["month"], "kind": "backtest_actual", "revenue": m["actual"],
             "lower": None, "upper": None},
            {"month": m["month"], "kind": "backtest_prophet", "revenue": m["prophet"],
             "lower": m["lower"], "upper": m["upper"]},
            {"month": m["month"], "kind": "backtest_naive", "revenue": m["naive"],
             "lower": None, "upper": None},
        ]
    stability_docs = [{"months_since_fit": int(p["months_since_fit"]), "ari": _num(p["ari"]),
                       "threshold": float(stab["threshold"])}
                      for p in stab.get("ari_by_month", [])]

    flows = dict(ins["membership"])
    flows["left"] = sum(1 for d in membership_docs if d["status"] == "left")
    flows["members"] = int(customers["is_insider"].sum())
    quality = stages["quality"]
    run = {
        "run_id": run_id,
        "as_of": answers["as_of"],
        "period_start": answers["period"]["start"],
        "source": source or stages["extract"].get("source"),
        "kind": stages["extract"]["kind"],
        "timings": {name: stages[name].get("seconds") for name in stages},
        "data_quality": {"rows_in": quality["rows_in"], "rows_kept": quality["rows_kept"],
                         "set_aside": quality["set_aside"], "notes": quality.get("notes", [])},
        "model": {"chosen": "{algorithm} k={k}".format(**seg["chosen"]),
                  "algorithm": seg["chosen"]["algorithm"], "k": seg["chosen"]["k"],
                  "why": seg["why"], "candidates": seg["candidates"],
                  "value_model": ins["value_model"], "value_contest": ins["value_contest"]},
        "membership": flows,
        "summary": {
            "customers": answers["how_many"]["active_customers"],
            "insiders": answers["how_many"]["count"],
            "insiders_share": answers["how_many"]["share_of_customers"],
            "revenue": answers["revenue_share"]["total_revenue"],
            "insiders_revenue": answers["revenue_share"]["insiders_revenue"],
            "insiders_revenue_share": answers["revenue_share"]["value"],
            "forecast_next": answers["expected_revenue"]["total"],
            "n_segments": len(seg["profiles"]),
            "recommended_refresh_months": stab.get("recommended_refresh_months"),
        },
        "answers": answers,
    }
    documents = {"customers": customer_docs, "segments": segment_docs,
                 "membership": membership_docs, "forecasts": forecast_docs,
                 "stability": stability_docs}
    return run, documents
