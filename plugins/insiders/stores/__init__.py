"""Document stores: every result of a run as MongoDB documents, behind one small interface.

`INSIDERS_MONGO_URI=mongodb://...` uses a MongoDB server (or a MongoDB-compatible one);
unset, the embedded on-disk store of `stores.embedded` under `INSIDERS_HOME/documents`
(SQLite, persists across processes: every Airflow task is its own process).

Only a portable subset of pymongo is used: insert_one/insert_many, delete_many,
replace_one(upsert), find/find_one, count_documents and create_index. No aggregate, no
transactions, no bulk_write, so both backends behave the same.

Write protocol (idempotent, invisible until complete): take the month's lock, mark the run
`writing`, delete the month's documents, insert the new ones, then mark the run `complete`
with a content version. Readers only see complete runs; a retry after a failure simply
redoes all of it. A document's `_id` is its key in the run (`2011-11|17850`), so no store
can hold a customer twice in a month.

The lock is a lease: its holder renews it from a heartbeat thread while it writes, so a
holder that died on another host is taken over once its lease expires (`lock_lease_seconds`,
default 120 s); a holder that died on this host is taken over at once. A writer that finds
its lease taken over stops before marking the run complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pymongo
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from ..config import Settings
from ..errors import RunLockedError, StoreError

COLLECTIONS = ("customers", "segments", "membership", "forecasts", "stability", "campaigns")
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
    # one list per customer and month (models.campaigns), read list by list
    "campaigns": [
        {"key": {"run_id": 1, "customer_id": 1}, "name": "run_customer", "unique": True},
        {"key": {"run_id": 1, "list": 1, "value_rank": 1}, "name": "run_list_value_rank"},
    ],
}
# each document's _id is its key within the run: uniqueness every store enforces natively
KEY_FIELDS = {"customers": ("customer_id",), "membership": ("customer_id",),
              "segments": ("segment",), "forecasts": ("month", "kind"),
              "stability": ("months_since_fit",), "campaigns": ("customer_id",)}
BATCH = 5000
DEFAULT_LEASE = dt.timedelta(seconds=120)

# MongoDB error codes the messages name (src/mongo/base/error_codes.yml)
UNAUTHORIZED, AUTHENTICATION_FAILED, DOCUMENT_VALIDATION_FAILURE = 13, 18, 121
INDEX_CONFLICTS = {67, 68, 85, 86}  # CannotCreateIndex, IndexAlreadyExists, Options, KeySpecs


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _clock() -> dt.datetime:
    """Lease times: to the millisecond, as BSON dates keep them."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass
class Lease:
    """The month's lock while this writer holds it; `lost` is set if someone took it over."""

    run_id: str
    owner: str
    lost: threading.Event = field(default_factory=threading.Event)
    renewals: int = 0


@dataclass
class DocumentStore:
    """The collections of one database, whatever serves them."""

    db: object  # pymongo.database.Database or stores.embedded.EmbeddedDatabase
    kind: str  # "mongodb" or "embedded"
    client: object = None
    where: str = "embedded store"  # for messages: the redacted URI or the folder
    user: str | None = None  # the user of the URI, for privilege errors
    lease: dt.timedelta = DEFAULT_LEASE

    # ------------------------------------------------------------------ setup

    def ensure_indexes(self) -> None:
        """The indexes of mongo-init/indexes.json, unique ones included on every backend.
        A conflict with an index already there is reported by name, not as unreachable."""
        for name, specs in INDEXES.items():
            for spec in specs:
                try:
                    self.db[name].create_index(list(spec["key"].items()), name=spec["name"],
                                               unique=bool(spec.get("unique")))
                except PyMongoError as exc:
                    raise self.error(exc, f"create index {spec['name']} on "
                                          f"{self._ns(name)}", index=spec["name"]) from None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def _ns(self, collection: str) -> str:
        return f"{getattr(self.db, 'name', '?')}.{collection}"

    def error(self, exc: PyMongoError, doing: str, index: str | None = None) -> StoreError:
        """What really failed, in one line: unreachable, refused credentials, a privilege
        the user lacks, an index conflict, a validator, a duplicate, or else the raw error."""
        message = str(exc).split(", full error:")[0]
        if isinstance(exc, OperationFailure) and isinstance(exc.details, dict):
            message = exc.details.get("errmsg") or message
        detail = f"{type(exc).__name__}: {message.splitlines()[0][:300] if message else ''}"
        code = getattr(exc, "code", None)
        if isinstance(exc, BulkWriteError):
            first = (exc.details.get("writeErrors") or [{}])[0]
            code, detail = first.get("code", code), first.get("errmsg", detail)
        user = self.user or "(no user)"
        if isinstance(exc, ConnectionFailure):
            return StoreError(f"cannot reach the document store {self.where} to {doing}: "
                              f"{detail}")
        if code == AUTHENTICATION_FAILED:
            return StoreError(f"the document store {self.where} refused user {user}: "
                              f"authentication failed (check the user and password in "
                              f"INSIDERS_MONGO_URI): {detail}")
        if code == UNAUTHORIZED:
            return StoreError(f"user {user} is not allowed to {doing} on {self.where} "
                              f"(code 13, Unauthorized): its roles do not grant it on database "
                              f"{getattr(self.db, 'name', '?')} (mongo-init/10-insiders.js grants "
                              f"the application user its own database only): {detail}")
        if code in INDEX_CONFLICTS:
            return StoreError(f"index {index or '?'} conflicts with an existing index in "
                              f"{self.where} ({doing}): drop the old one or align "
                              f"mongo-init/indexes.json: {detail}")
        if code == DOCUMENT_VALIDATION_FAILURE:
            return StoreError(f"the validator of {self.where} rejected a document ({doing}): "
                              f"{detail}")
        if isinstance(exc, DuplicateKeyError) or code == 11000:
            return StoreError(f"duplicate key in {self.where} ({doing}): {detail}")
        return StoreError(f"document store {self.where} failed to {doing}: {detail}")

    # ------------------------------------------------------------------ writing

    @contextmanager
    def lock(self, run_id: str, owner: str | None = None) -> Iterator[Lease]:
        """Only one writer per month: a second one is told who holds the lock and since when.

        The lock is a lease the holder renews every lease/4 from a heartbeat thread. A lock
        left by a writer that died (killed task) is taken over: at once when the holder was
        a process on this host that no longer exists, else once its lease has expired.
        Expiry compares the writers' clocks: they must agree to well within the lease.
        """
        owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        locks = self.db["locks"]
        now = _clock()
        doc = {"_id": run_id, "owner": owner, "since": now, "renewed_at": now,
               "expires": now + self.lease}
        try:
            locks.insert_one(dict(doc))
        except DuplicateKeyError:
            held = locks.find_one({"_id": run_id}) or {}
            since = held.get("since")
            expires = held.get("expires") or (since + self.lease
                                              if isinstance(since, dt.datetime) else None)
            expired = isinstance(expires, dt.datetime) and _clock() > expires
            if not (expired or _holder_is_dead(str(held.get("owner", "")))):
                raise RunLockedError(
                    f"run {run_id} is being written by {held.get('owner', 'another run')} since "
                    f"{since} (lease until {expires}); wait for it to finish (the DAG runs one "
                    f"month at a time)") from None
            # take it over: only the contender whose delete matched the stale lease wins
            locks.delete_many({"_id": run_id, "owner": held.get("owner"),
                               "renewed_at": held.get("renewed_at")})
            try:
                locks.insert_one(dict(doc))
            except DuplicateKeyError:
                raise RunLockedError(f"run {run_id}: another writer took over the stale lock "
                                     f"at the same moment") from None
        lease = Lease(run_id, owner)
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(lease, doc, stop),
                                name=f"lease-{run_id}", daemon=True)
        beat.start()
        try:
            yield lease
        finally:
            stop.set()
            beat.join()
            locks.delete_many({"_id": run_id, "owner": owner})

    def _heartbeat(self, lease: Lease, doc: dict, stop: threading.Event) -> None:
        while not stop.wait(self.lease.total_seconds() / 4):
            self.renew(lease, doc)

    def renew(self, lease: Lease, doc: dict) -> bool:
        """Extend the lease; False (and `lease.lost`) when another writer holds it now."""
        now = _clock()
        try:
            result = self.db["locks"].replace_one(
                {"_id": lease.run_id, "owner": lease.owner},
                {**doc, "renewed_at": now, "expires": now + self.lease})
        except PyMongoError:
            return False  # the writer's own next operation reports the store's failure
        if result.matched_count == 0:
            lease.lost.set()
            return False
        lease.renewals += 1
        return True

    def write_run(self, run: dict, documents: dict[str, list[dict]]) -> dict:
        """Replace a month's documents; the run becomes visible only when all are written."""
        run_id = run["run_id"]
        for name in documents:
            if name not in COLLECTIONS:
                raise ValueError(f"unknown collection {name!r}")
        version = content_version(run, documents)
        counts = {name: len(docs) for name, docs in documents.items()}
        doing = f"take the lock of run {run_id}"
        try:
            with self.lock(run_id) as lease:
                doing = f"mark run {run_id} writing in {self._ns('runs')}"
                self.db["runs"].replace_one(
                    {"_id": run_id},
                    {**_mongo_safe(run), "_id": run_id, "status": "writing",
                     "version": version, "started_at": _now(), "completed_at": None},
                    upsert=True)
                for name in COLLECTIONS:
                    collection = self.db[name]
                    doing = f"delete run {run_id} from {self._ns(name)}"
                    collection.delete_many({"run_id": run_id})
                    docs = documents.get(name, [])
                    doing = f"insert run {run_id} into {self._ns(name)}"
                    for start in range(0, len(docs), BATCH):
                        collection.insert_many([_mongo_safe({**d, "run_id": run_id,
                                                             "_id": document_id(name, run_id, d)})
                                                for d in docs[start:start + BATCH]],
                                               ordered=True)
                        _check(lease)
                _check(lease)
                doing = f"mark run {run_id} complete in {self._ns('runs')}"
                final = {**_mongo_safe(run), "_id": run_id, "status": "complete",
                         "version": version, "counts": counts, "completed_at": _now()}
                self.db["runs"].replace_one({"_id": run_id}, final, upsert=True)
        except PyMongoError as exc:
            raise self.error(exc, doing) from None
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
        """Documents of a COMPLETE run (0 while it is being written or after a failed write,
        like `documents`); `count_written` counts whatever is there."""
        if self.run(run_id) is None:
            return 0
        return self.count_written(collection, run_id)

    def count_written(self, collection: str, run_id: str) -> int:
        """Documents stored for the run whatever its status (diagnostics of a failed write)."""
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


def _check(lease: Lease) -> None:
    if lease.lost.is_set():
        raise RunLockedError(f"run {lease.run_id}: this writer's lock expired and another "
                             f"writer took it over; stopped before marking the run complete")


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
    """Field names may not contain '.' or start with '$' everywhere: replace those characters.
    (Recurses only into containers: a month is ~10 fields x 100,000 documents.)"""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not (type(k) is str and "." not in k and not k.startswith("$")):
                k = str(k).replace(".", "_").lstrip("$")
            out[k] = _mongo_safe(v) if isinstance(v, (dict, list, tuple)) else v
        return out
    if isinstance(value, (list, tuple)):
        return [_mongo_safe(v) if isinstance(v, (dict, list, tuple)) else v for v in value]
    return value


def open_store(settings: Settings) -> DocumentStore:
    """A MongoDB (or compatible) server for mongodb:// URIs, else the embedded store."""
    uri = settings.mongo_uri
    lease = dt.timedelta(seconds=settings.lock_lease_seconds)
    if uri and uri.startswith(("mongodb://", "mongodb+srv://")):
        where = _redact(uri)
        user = None
        try:
            user = pymongo.uri_parser.parse_uri(uri).get("username")
        except (PyMongoError, ValueError):
            pass
        # 10 s to find the server, unless the URI says otherwise
        timeout = {} if "serverselectiontimeoutms" in uri.lower() else {
            "serverSelectionTimeoutMS": 10_000}
        client = pymongo.MongoClient(uri, tz_aware=False, **timeout)
        store = DocumentStore(client[settings.mongo_db], "mongodb", client, where, user, lease)
        try:
            client[settings.mongo_db].command("ping")  # any authenticated user may ping
        except PyMongoError as exc:
            client.close()
            raise store.error(exc, f"open database {settings.mongo_db}") from None
    else:
        from .embedded import EmbeddedClient

        path = Path(uri.removeprefix("embedded://")) if uri else settings.home / "documents"
        file = path / f"{settings.mongo_db}.sqlite"
        try:
            client = EmbeddedClient(path)
            db = client[settings.mongo_db]
        except (OSError, sqlite3.Error, PyMongoError) as exc:
            raise StoreError(f"cannot open the embedded store {file}: {type(exc).__name__}: "
                             f"{exc}") from None
        store = DocumentStore(db, "embedded", client, f"embedded store {file}", None, lease)
    try:
        store.ensure_indexes()
    except StoreError:
        store.close()
        raise
    return store


def _redact(uri: str) -> str:
    from ..extract import redact_url

    return redact_url(uri)


@contextmanager
def store_from(settings: Settings) -> Iterator[DocumentStore]:
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()
