"""Test doubles that inject faults from outside production code.

Production signatures carry no test hooks: a test wraps what the code talks to (a document
database, a SQL engine) so that one call fails the way a real outage fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import sqlalchemy as sa
from pymongo.errors import AutoReconnect


class FailingDatabase:
    """A document database whose `collection.method` raises on its `nth` call (1-based);
    everything else goes to the real database. `before_failing` runs just before the
    failure (e.g. another writer taking the lock over); with `stall_only` the call then
    goes ahead instead of failing (a writer that stalled)."""

    def __init__(self, db, collection: str, method: str, nth: int = 1,
                 error: Exception | None = None, before_failing=None,
                 stall_only: bool = False) -> None:
        self._db, self._collection, self._method, self._nth = db, collection, method, nth
        self._error = error or AutoReconnect(f"injected: connection lost during "
                                             f"{collection}.{method}")
        self._before = before_failing
        self._stall_only = stall_only
        self.calls = 0
        self.name = db.name

    def __getitem__(self, name: str):
        real = self._db[name]
        return _FailingCollection(real, self) if name == self._collection else real

    def __getattr__(self, name: str):
        return getattr(self._db, name)


class _FailingCollection:
    def __init__(self, real, owner: FailingDatabase) -> None:
        self._real, self._owner = real, owner

    def __getattr__(self, name: str):
        attr = getattr(self._real, name)
        if name != self._owner._method:
            return attr

        def call(*args, **kwargs):
            self._owner.calls += 1
            if self._owner.calls == self._owner._nth:
                if self._owner._before:
                    self._owner._before()
                if not self._owner._stall_only:
                    raise self._owner._error
            return attr(*args, **kwargs)

        return call


def failing(store, collection: str, method: str, nth: int = 1, **kwargs):
    """The same store, talking to a FailingDatabase."""
    return replace(store, db=FailingDatabase(store.db, collection, method, nth, **kwargs),
                   client=None)


@contextmanager
def sql_fails_on_insert(table: str, database: str | None = None) -> Iterator[dict]:
    """Every engine's first INSERT INTO `table` (of `database`, when given) raises the
    OperationalError a dropped connection raises; yields what it saw."""
    seen = {"inserts": 0, "failed": 0}
    pattern = re.compile(rf"^\s*INSERT INTO {re.escape(table)}\b", re.IGNORECASE)

    def fail(conn, cursor, statement, parameters, context, executemany):
        if database and database not in str(conn.engine.url):
            return
        if statement.lstrip().upper().startswith("INSERT"):
            seen["inserts"] += 1
        if pattern.match(statement):
            seen["failed"] += 1
            raise sa.exc.OperationalError(statement, None,
                                          ConnectionError(f"injected: connection lost while "
                                                          f"inserting into {table}"))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", fail)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", fail)
