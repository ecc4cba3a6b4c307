"""An embedded document store on SQLite that speaks the small pymongo subset the package uses.

Why our own: every Airflow task is its own process, so the default store must persist
across processes; an in-memory mock cannot serve. litemongo (mongomock's query engine over
SQLite files) does persist, but its cursor re-slices the whole result on every `next()` and
it checks a compound unique index by scanning the collection on every insert: a month of
70,000 customers took minutes (bench/document_stores.py). Making it serve meant patching
its internals process-wide. This store does only what the package needs, and does it in
linear time:

- one SQLite file per database (`<dir>/<db>.sqlite`, WAL journal, so readers never block the
  writer and a second process sees what the first committed);
- one table per collection: `_id` as primary key, `run_id` as an indexed column (every
  query the package makes is by run or by `_id`), the document itself as BSON, so datetimes,
  NaN and 64-bit integers come back as pymongo returns them;
- unique indexes as tables keyed by the indexed values, so a duplicate is refused by SQLite
  in O(log n) with pymongo's own `DuplicateKeyError` / `BulkWriteError`;
- filters: equality (dotted paths, array membership), `$eq $ne $in $nin $gt $gte $lt $lte
  $exists $and $or`; anything else is refused with `OperationFailure`, never ignored.

Collection API (pymongo names and result types): insert_one, insert_many(ordered),
delete_one, delete_many, replace_one(upsert), find, find_one (with an inclusion or
exclusion projection), count_documents, create_index(unique, name), index_information,
drop. Index conflicts raise `OperationFailure` with MongoDB's codes (85, 86).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import bson
from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure
from pymongo.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult

from .filelock import exclusive

_CODEC = bson.CodecOptions(document_class=dict, tz_aware=False)
_COMPARISONS = {"$gt", "$gte", "$lt", "$lte"}
_OPERATORS = {"$eq", "$ne", "$in", "$nin", "$exists"} | _COMPARISONS
_MISSING = object()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _key(value: Any) -> str | bytes:
    """The primary-key form of an `_id`: a string as itself, anything else as its BSON."""
    if isinstance(value, str):
        return value
    return bson.encode({"k": value})


def _index_key(doc: Mapping, fields: list[str]) -> bytes:
    return bson.encode({"k": [_get(doc, f, None) for f in fields]})


def _get(doc: Any, path: str, default: Any = _MISSING) -> Any:
    for part in path.split("."):
        if isinstance(doc, Mapping) and part in doc:
            doc = doc[part]
        else:
            return default
    return doc


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return True
    return type(a) is type(b)


def _equal(a: Any, b: Any) -> bool:
    """MongoDB equality: True is not 1, "1" is not 1, an array matches any of its items."""
    if isinstance(a, list) and not isinstance(b, list):
        return any(_equal(item, b) for item in a)
    return _comparable(a, b) and a == b


def _condition(value: Any, condition: Any) -> bool:
    if not (isinstance(condition, Mapping) and condition
            and all(str(k).startswith("$") for k in condition)):
        return _equal(None if value is _MISSING else value, condition)
    for op, arg in condition.items():
        if op not in _OPERATORS:
            raise OperationFailure(f"unknown operator: {op} (the embedded store supports "
                                   f"{', '.join(sorted(_OPERATORS))})", code=2)
        present = value is not _MISSING
        plain = None if value is _MISSING else value
        if op == "$exists":
            ok = present == bool(arg)
        elif op == "$eq":
            ok = _equal(plain, arg)
        elif op == "$ne":
            ok = not _equal(plain, arg)
        elif op in ("$in", "$nin"):
            if not isinstance(arg, (list, tuple)):
                raise OperationFailure(f"{op} needs an array", code=2)
            found = any(_equal(plain, a) for a in arg)
            ok = found if op == "$in" else not found
        else:
            items = plain if isinstance(plain, list) else [plain]
            ok = any(_comparable(v, arg) and v is not None and _compare(op, v, arg)
                     for v in items)
        if not ok:
            return False
    return True


def _compare(op: str, a: Any, b: Any) -> bool:
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def matches(doc: Mapping, query: Mapping | None) -> bool:
    """Whether `doc` satisfies a filter (the subset described in the module docstring)."""
    for field, condition in (query or {}).items():
        if field == "$and":
            if not all(matches(doc, q) for q in condition):
                return False
        elif field == "$or":
            if not any(matches(doc, q) for q in condition):
                return False
        elif field.startswith("$"):
            raise OperationFailure(f"unknown top level operator: {field}", code=2)
        elif not _condition(_get(doc, field), condition):
            return False
    return True


def _project(doc: dict, projection: Mapping | list | None) -> dict:
    if not projection:
        return doc
    if isinstance(projection, (list, tuple)):
        projection = dict.fromkeys(projection, 1)
    include = {k for k, v in projection.items() if v and k != "_id"}
    if any("." in k for k in projection):
        raise OperationFailure("the embedded store projects top-level fields only", code=2)
    keep_id = bool(projection.get("_id", 1))
    if include:
        if any(not v for k, v in projection.items() if k != "_id"):
            raise OperationFailure("cannot mix inclusion and exclusion in a projection", code=31254)
        out = {"_id": doc["_id"]} if keep_id and "_id" in doc else {}
        out.update({k: doc[k] for k in doc if k in include})
        return out
    drop = {k for k, v in projection.items() if not v}
    return {k: v for k, v in doc.items() if k not in drop}


def _sql_filter(query: Mapping | None) -> tuple[str, list, dict]:
    """Split a filter into what SQLite answers from its keys (`_id`, `run_id` equality or
    `_id` $in) and the rest, which is checked on the decoded documents."""
    where, params, rest = [], [], {}
    for field, condition in (query or {}).items():
        literal = not (isinstance(condition, Mapping) and any(str(k).startswith("$")
                                                                for k in condition))
        if field == "_id" and literal:
            where.append("id = ?")
            params.append(_key(condition))
        elif (field == "_id" and isinstance(condition, Mapping) and set(condition) == {"$in"}
              and isinstance(condition["$in"], (list, tuple))):
            where.append(f"id IN ({', '.join('?' * len(condition['$in']))})" if condition["$in"]
                         else "0")
            params += [_key(v) for v in condition["$in"]]
        elif field == "run_id" and literal and isinstance(condition, str):
            where.append("run_id = ?")
            params.append(condition)
        else:
            rest[field] = condition
    return (" AND ".join(where) or "1"), params, rest


class EmbeddedClient:
    """Databases under one folder, one SQLite file each (what `litemongo.connect` was)."""

    def __init__(self, path: str | Path, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._databases: dict[str, EmbeddedDatabase] = {}

    def __getitem__(self, name: str) -> EmbeddedDatabase:
        if name not in self._databases:
            self._databases[name] = EmbeddedDatabase(self, name)
        return self._databases[name]

    get_database = __getitem__

    def drop_database(self, name: str) -> None:
        db = self._databases.pop(name, None)
        if db is not None:
            db.close()
        for suffix in ("", "-wal", "-shm"):
            (self.path / f"{name}.sqlite{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        for db in self._databases.values():
            db.close()
        self._databases.clear()


class EmbeddedDatabase:
    """One SQLite file; a collection is a table, created on first use."""

    def __init__(self, client: EmbeddedClient, name: str) -> None:
        if not name or any(c in name for c in '/\\. "$\x00'):
            raise OperationFailure(f"invalid database name {name!r}", code=73)
        self.client = client
        self.name = name
        self.file = client.path / f"{name}.sqlite"
        self.mutex = threading.RLock()  # the lease heartbeat writes from its own thread
        self.conn = sqlite3.connect(self.file, timeout=client.timeout, isolation_level=None,
                                    check_same_thread=False)
        # Switching a fresh file to WAL takes an exclusive lock that SQLite's busy timeout
        # does not wait for: processes opening a new store at once (Airflow tasks, a
        # backfill) would get "database is locked". They take turns on a lock file instead.
        with exclusive(self.file.with_name(self.file.name + ".lock")):
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            with self.transaction():
                self.conn.execute("CREATE TABLE IF NOT EXISTS _indexes (collection TEXT NOT "
                                  "NULL, name TEXT NOT NULL, spec TEXT NOT NULL, "
                                  "PRIMARY KEY (collection, name))")
        self._collections: dict[str, EmbeddedCollection] = {}

    def __getitem__(self, name: str) -> EmbeddedCollection:
        if name not in self._collections:
            self._collections[name] = EmbeddedCollection(self, name)
        return self._collections[name]

    get_collection = __getitem__

    def transaction(self) -> _Transaction:
        return _Transaction(self)

    def list_collection_names(self) -> list[str]:
        with self.mutex:
            rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                     "AND name LIKE 'c:%' ORDER BY name").fetchall()
        return [r[0][2:] for r in rows]

    def command(self, name: str, *args: Any, **kwargs: Any) -> dict:
        if name == "ping":
            return {"ok": 1.0}
        raise OperationFailure(f"the embedded store does not run command {name!r}", code=59)

    def close(self) -> None:
        with self.mutex:
            self.conn.close()


def _translated(method):
    """SQLite's own failures (locked past the timeout, disk full, a damaged file) as pymongo's
    OperationFailure naming the file, so callers handle one family of errors."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.IntegrityError as exc:  # every expected one is turned into 11000 inside
            raise OperationFailure(f"embedded store {self.database.file}: {exc}",
                                   code=11000) from exc
        except sqlite3.Error as exc:
            raise OperationFailure(f"embedded store {self.database.file}: "
                                   f"{type(exc).__name__}: {exc}") from exc

    return call


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT under the database's mutex; ROLLBACK on any error."""

    def __init__(self, db: EmbeddedDatabase) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.mutex.acquire()
        try:
            self.db.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.db.mutex.release()
            raise
        return self.db.conn

    def __exit__(self, kind, value, traceback) -> None:
        try:
            self.db.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.db.mutex.release()


class EmbeddedCollection:
    """A collection as a table `c:<name>` plus one table `u:<name>:<index>` per unique index."""

    def __init__(self, db: EmbeddedDatabase, name: str) -> None:
        if not name or name.startswith(("system.", "$")) or "\x00" in name or ":" in name:
            raise OperationFailure(f"invalid collection name {name!r}", code=73)
        self.database = db
        self.name = name
        self.full_name = f"{db.name}.{name}"
        self.table = _quote(f"c:{name}")
        self._ready = False

    # ------------------------------------------------------------------ plumbing

    def _ensure(self) -> None:
        """Create the table in a transaction of its own: a later rollback cannot undo it."""
        if not self._ready:
            with self.database.transaction() as conn:
                conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id NOT NULL PRIMARY "
                             "KEY, run_id TEXT, doc BLOB NOT NULL)")
                conn.execute(f"CREATE INDEX IF NOT EXISTS {_quote(f'r:{self.name}')} "
                             f"ON {self.table} (run_id)")
            self._ready = True

    def _unique(self, conn: sqlite3.Connection) -> list[tuple[str, list[str]]]:
        """(table, fields) of this collection's unique indexes, as stored (other processes
        may have created some)."""
        out = []
        for name, spec in conn.execute("SELECT name, spec FROM _indexes WHERE collection = ?",
                                       (self.name,)):
            spec = json.loads(spec)
            if spec.get("unique"):
                out.append((_quote(f"u:{self.name}:{name}"), [k for k, _ in spec["key"]]))
        return out

    def _exists(self) -> bool:
        if self._ready:
            return True
        with self.database.mutex:
            row = self.database.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                             "AND name = ?", (f"c:{self.name}",)).fetchone()
        return row is not None

    def _rows(self, query: Mapping | None) -> list[tuple[Any, dict]]:
        """(primary key, document) of every matching document, in insertion order."""
        if not self._exists():
            return []
        where, params, rest = _sql_filter(query)
        with self.database.mutex:
            rows = self.database.conn.execute(
                f"SELECT id, doc FROM {self.table} WHERE {where} ORDER BY rowid",  # noqa: S608
                params).fetchall()
        out = []
        for key, raw in rows:
            doc = bson.decode(raw, _CODEC)
            if not rest or matches(doc, rest):
                out.append((key, doc))
        return out

    def _duplicate(self, conn: sqlite3.Connection, doc: Mapping) -> dict | None:
        """The error of the unique index `doc` would break (with no row of its own yet)."""
        if conn.execute(f"SELECT 1 FROM {self.table} WHERE id = ?",  # noqa: S608
                        (_key(doc["_id"]),)).fetchone():
            return self._dup_error("_id_", ["_id"], doc)
        for table, fields in self._unique(conn):
            if conn.execute(f"SELECT 1 FROM {table} WHERE k = ?",  # noqa: S608
                            (_index_key(doc, fields),)).fetchone():
                return self._dup_error(table[1:-1].split(":", 2)[2], fields, doc)
        return None

    def _dup_error(self, index: str, fields: list[str], doc: Mapping) -> dict:
        key = {f: _get(doc, f, None) for f in fields}
        return {"code": 11000, "errmsg": f"E11000 duplicate key error collection: "
                f"{self.full_name} index: {index} dup key: {key}",
                "keyPattern": dict.fromkeys(fields, 1), "keyValue": key}

    def _insert(self, conn: sqlite3.Connection, docs: list[dict]) -> None:
        rows = [(_key(d["_id"]), d.get("run_id") if isinstance(d.get("run_id"), str) else None,
                 bson.encode(d, codec_options=_CODEC)) for d in docs]
        conn.executemany(f"INSERT INTO {self.table} (id, run_id, doc) VALUES (?, ?, ?)", rows)  # noqa: S608
        for table, fields in self._unique(conn):
            conn.executemany(f"INSERT INTO {table} (k, id) VALUES (?, ?)",  # noqa: S608
                             [(_index_key(d, fields), row[0]) for d, row in zip(docs, rows,
                                                                                 strict=True)])

    def _delete_keys(self, conn: sqlite3.Connection, where: str, params: list) -> int:
        for table, _ in self._unique(conn):
            conn.execute(f"DELETE FROM {table} WHERE id IN "  # noqa: S608
                         f"(SELECT id FROM {self.table} WHERE {where})", params)
        return conn.execute(f"DELETE FROM {self.table} WHERE {where}", params).rowcount  # noqa: S608

    # ------------------------------------------------------------------ writing

    @_translated
    def insert_one(self, document: dict) -> InsertOneResult:
        if "_id" not in document:
            document["_id"] = ObjectId()
        self._ensure()
        with self.database.transaction() as conn:
            conn.execute("SAVEPOINT one")
            try:
                self._insert(conn, [document])
                conn.execute("RELEASE one")
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO one")
                conn.execute("RELEASE one")
                error = self._duplicate(conn, document) or self._dup_error("?", [], document)
                raise DuplicateKeyError(error["errmsg"], 11000, error) from None
        return InsertOneResult(document["_id"], True)

    @_translated
    def insert_many(self, documents: list[dict], ordered: bool = True) -> InsertManyResult:
        docs = list(documents)
        for d in docs:
            if "_id" not in d:
                d["_id"] = ObjectId()
        if not docs:
            raise TypeError("documents must be a non-empty list")
        self._ensure()
        with self.database.transaction() as conn:
            conn.execute("SAVEPOINT batch")
            try:
                self._insert(conn, docs)  # the fast path: the whole batch at once
                conn.execute("RELEASE batch")
                return InsertManyResult([d["_id"] for d in docs], True)
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO batch")
                conn.execute("RELEASE batch")
            # a duplicate in the batch: insert one by one to know which, as MongoDB does
            errors, inserted = [], 0
            for i, doc in enumerate(docs):
                error = self._duplicate(conn, doc)
                if error is None:
                    self._insert(conn, [doc])
                    inserted += 1
                    continue
                errors.append({"index": i, **error, "op": doc})
                if ordered:
                    break
        raise BulkWriteError({"writeErrors": errors, "writeConcernErrors": [],
                              "nInserted": inserted, "nUpserted": 0, "nMatched": 0,
                              "nModified": 0, "nRemoved": 0, "upserted": []})

    def delete_many(self, filter: Mapping) -> DeleteResult:  # noqa: A002 - pymongo's name
        return self._delete(filter, many=True)

    def delete_one(self, filter: Mapping) -> DeleteResult:  # noqa: A002
        return self._delete(filter, many=False)

    @_translated
    def _delete(self, query: Mapping, many: bool) -> DeleteResult:
        if not self._exists():
            return DeleteResult({"n": 0}, True)
        where, params, rest = _sql_filter(query)
        if not rest and many:
            with self.database.transaction() as conn:
                return DeleteResult({"n": self._delete_keys(conn, where, params)}, True)
        keys = [key for key, _ in self._rows(query)]
        keys = keys if many else keys[:1]
        removed = 0
        with self.database.transaction() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                removed += self._delete_keys(conn, f"id IN ({', '.join('?' * len(chunk))})",
                                             chunk)
        return DeleteResult({"n": removed}, True)

    @_translated
    def replace_one(self, filter: Mapping, replacement: dict,  # noqa: A002
                    upsert: bool = False) -> UpdateResult:
        if any(str(k).startswith("$") for k in replacement):
            raise ValueError("replacement can not include $ operators")
        self._ensure()
        with self.database.transaction() as conn:
            found = self._rows(filter)[:1]
            if found:
                key, old = found[0]
                if "_id" in replacement and not _equal(replacement["_id"], old["_id"]):
                    raise OperationFailure("the (immutable) field '_id' was found to have been "
                                           "altered", code=66)
                new = {"_id": old["_id"], **{k: v for k, v in replacement.items() if k != "_id"}}
                self._delete_keys(conn, "id = ?", [key])
                upserted = None
            elif upsert:
                new = dict(replacement)
                if "_id" not in new:
                    literal = filter.get("_id", _MISSING)
                    new["_id"] = (literal if literal is not _MISSING
                                  and not isinstance(literal, Mapping) else ObjectId())
                new = {"_id": new.pop("_id"), **new}
                upserted = new["_id"]
            else:
                return UpdateResult({"n": 0, "nModified": 0}, True)
            try:
                self._insert(conn, [new])
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK")  # the old document stays as it was
                conn.execute("BEGIN IMMEDIATE")
                error = self._duplicate(conn, new) or self._dup_error("?", [], new)
                raise DuplicateKeyError(error["errmsg"], 11000, error) from None
        raw = {"n": 1, "nModified": 0 if upserted is not None else 1}
        if upserted is not None:
            raw["upserted"] = upserted
        return UpdateResult(raw, True)

    @_translated
    def create_index(self, keys: str | list, name: str | None = None, unique: bool = False,
                     **options: Any) -> str:
        """Record the index; a unique one gets its own table, built from what is there.
        The same name with other keys or options is refused as MongoDB refuses it."""
        if options:
            raise OperationFailure(f"the embedded store does not support index options "
                                   f"{sorted(options)}", code=2)
        key = [[keys, 1]] if isinstance(keys, str) else [[str(f), int(d)] for f, d in keys]
        name = name or "_".join(f"{f}_{d}" for f, d in key)
        spec = {"key": key, "unique": bool(unique)}
        self._ensure()
        with self.database.transaction() as conn:
            existing = {n: json.loads(s) for n, s in conn.execute(
                "SELECT name, spec FROM _indexes WHERE collection = ?", (self.name,))}
            if name in existing:
                if existing[name] == spec:
                    return name
                code = 86 if existing[name]["key"] != key else 85
                raise OperationFailure(
                    f"An existing index has the same name as the requested index. When index "
                    f"names are not specified, they are auto generated and can cause conflicts. "
                    f"Requested index: {spec}, existing index: {existing[name]}", code=code)
            for other, other_spec in existing.items():
                if other_spec["key"] == key:
                    raise OperationFailure(f"Index already exists with a different name: "
                                           f"{other}", code=85)
            if unique:
                table = _quote(f"u:{self.name}:{name}")
                conn.execute(f"CREATE TABLE {table} (k BLOB NOT NULL PRIMARY KEY, "
                             "id NOT NULL)")
                conn.execute(f"CREATE INDEX {_quote(f'i:{self.name}:{name}')} ON {table} (id)")
                fields = [f for f, _ in key]
                seen: dict[bytes, Any] = {}
                for row_key, raw in conn.execute(f"SELECT id, doc FROM {self.table}"):  # noqa: S608
                    doc = bson.decode(raw, _CODEC)
                    index_key = _index_key(doc, fields)
                    if index_key in seen:
                        error = self._dup_error(name, fields, doc)
                        raise DuplicateKeyError(error["errmsg"], 11000, error)
                    seen[index_key] = row_key
                conn.executemany(f"INSERT INTO {table} (k, id) VALUES (?, ?)",  # noqa: S608
                                 list(seen.items()))
            conn.execute("INSERT INTO _indexes (collection, name, spec) VALUES (?, ?, ?)",
                         (self.name, name, json.dumps(spec)))
        return name

    @_translated
    def index_information(self) -> dict[str, dict]:
        info = {"_id_": {"key": [("_id", 1)]}}
        with self.database.mutex:
            rows = self.database.conn.execute(
                "SELECT name, spec FROM _indexes WHERE collection = ?", (self.name,)).fetchall()
        for name, spec in rows:
            spec = json.loads(spec)
            info[name] = {"key": [tuple(k) for k in spec["key"]],
                          **({"unique": True} if spec["unique"] else {})}
        return info

    @_translated
    def drop(self) -> None:
        with self.database.transaction() as conn:
            for table, _ in self._unique(conn):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"DROP TABLE IF EXISTS {self.table}")
            conn.execute("DELETE FROM _indexes WHERE collection = ?", (self.name,))
        self._ready = False

    # ------------------------------------------------------------------ reading

    @_translated
    def find(self, filter: Mapping | None = None,  # noqa: A002
             projection: Mapping | list | None = None) -> Iterator[dict]:
        return iter([_project(doc, projection) for _, doc in self._rows(filter)])

    @_translated
    def find_one(self, filter: Mapping | None = None,  # noqa: A002
                 projection: Mapping | list | None = None) -> dict | None:
        found = self._rows(filter)
        return _project(found[0][1], projection) if found else None

    @_translated
    def count_documents(self, filter: Mapping) -> int:  # noqa: A002
        if not self._exists():
            return 0
        where, params, rest = _sql_filter(filter)
        if rest:
            return len(self._rows(filter))
        with self.database.mutex:
            return self.database.conn.execute(
                f"SELECT COUNT(*) FROM {self.table} WHERE {where}", params).fetchone()[0]  # noqa: S608
