"""Metabase's role can read the SQL store and cannot write it; the pipeline's role can.

Applies docker/postgres/sql/insiders_privileges.sql, the file the postgres container runs on
its first start, to a fresh database of the CI PostgreSQL (INSIDERS_TEST_PG_URL, a superuser),
with the roles insiders_app and insiders_reader created for the test and dropped after it.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")
from psycopg import errors, sql  # noqa: E402

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]
PRIVILEGES_SQL = ROOT / "docker" / "postgres" / "sql" / "insiders_privileges.sql"
INIT_SCRIPT = ROOT / "docker" / "postgres" / "10-create-databases.sh"
APP, READER = "insiders_app", "insiders_reader"
FIXTURE_COMMENT = "insiders test fixture (tests/test_postgres_roles.py)"


def _conninfo(url: str, **overrides: str) -> str:
    """libpq connection string from a SQLAlchemy URL, with user/dbname/password overridden."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    params = {
        "host": u.host or "127.0.0.1",
        "port": str(u.port or 5432),
        "user": u.username or "postgres",
        "dbname": u.database or "postgres",
    }
    if u.password:
        params["password"] = u.password
    params.update(overrides)
    return psycopg.conninfo.make_conninfo(**params)


@pytest.fixture(scope="module")
def pg_url() -> str:
    url = os.environ.get("INSIDERS_TEST_PG_URL")
    if not url:
        pytest.skip("INSIDERS_TEST_PG_URL is not set: start one with `bash .ci/start-postgres.sh`")
    return url


@pytest.fixture(scope="module")
def store(pg_url: str) -> Iterator[dict[str, str]]:
    """A database owned by insiders_app with the privileges file applied; dropped after."""
    dbname = f"insiders_roles_{secrets.token_hex(4)}"
    passwords = {APP: secrets.token_hex(16), READER: secrets.token_hex(16)}
    admin = psycopg.connect(_conninfo(pg_url), autocommit=True)
    try:
        _drop_leftovers(admin)
    except BaseException:
        admin.close()
        raise
    try:
        for role, password in passwords.items():
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
            admin.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(
                sql.Identifier(role), sql.Literal(FIXTURE_COMMENT)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(dbname), sql.Identifier(APP)))

        urls = {
            role: _conninfo(pg_url, user=role, dbname=dbname, password=password)
            for role, password in passwords.items()
        }
        urls["super"] = _conninfo(pg_url, dbname=dbname)
        # A table that exists before the grants (GRANT ... ON ALL TABLES must cover it).
        with psycopg.connect(urls[APP], autocommit=True) as app:
            app.execute("CREATE TABLE before_grants (run_id varchar(7) PRIMARY KEY, n integer)")
            app.execute("INSERT INTO before_grants VALUES ('2011-10', 1)")
        with psycopg.connect(urls["super"], autocommit=True) as su:
            su.execute(PRIVILEGES_SQL.read_text(encoding="utf-8"))
            su.execute(PRIVILEGES_SQL.read_text(encoding="utf-8"))  # re-runnable
        # A table created after the grants (default privileges must cover it).
        with psycopg.connect(urls[APP], autocommit=True) as app:
            app.execute("CREATE TABLE runs (run_id varchar(7) PRIMARY KEY, customers integer)")
            app.execute("INSERT INTO runs VALUES ('2011-11', 4338)")
        yield urls
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(dbname)))
        for role in passwords:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.close()


def _drop_leftovers(admin: psycopg.Connection) -> None:
    """Remove what a crashed earlier run left; refuse to touch roles this test did not make."""
    for (dbname,) in admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE 'insiders\\_roles\\_%'"
    ).fetchall():
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
    for role in (APP, READER):
        row = admin.execute(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
            (role,),
        ).fetchone()
        if row is None:
            continue
        if row[0] != FIXTURE_COMMENT:
            pytest.skip(f"role {role} already exists in this server and is not a test fixture")
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _as(conninfo: str, statement: str, *, read_only_off: bool = False) -> list[tuple]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if read_only_off:
            conn.execute("SET default_transaction_read_only = off")
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def test_reader_selects_tables_made_before_and_after_the_grants(store: dict[str, str]) -> None:
    assert _as(store[READER], "SELECT customers FROM runs") == [(4338,)]
    assert _as(store[READER], "SELECT n FROM before_grants") == [(1,)]


WRITES = [
    "INSERT INTO runs VALUES ('2011-12', 1)",
    "UPDATE runs SET customers = 0",
    "DELETE FROM runs",
    "TRUNCATE runs",
    "CREATE TABLE sneaky (x integer)",
    "DROP TABLE runs",
    "ALTER TABLE runs ADD COLUMN x integer",
    "CREATE TEMP TABLE sneaky (x integer)",
    "CREATE SCHEMA sneaky",
]


@pytest.mark.parametrize("statement", WRITES)
def test_reader_cannot_write(store: dict[str, str], statement: str) -> None:
    # Twice: as Metabase connects (sessions start read-only), and with that switched off,
    # so the grants alone are shown to be enough.
    for read_only_off in (False, True):
        with pytest.raises((errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction)):
            _as(store[READER], statement, read_only_off=read_only_off)
    assert _as(store["super"], "SELECT count(*) FROM runs") == [(1,)]


def test_reader_sessions_start_read_only(store: dict[str, str]) -> None:
    assert _as(store[READER], "SHOW default_transaction_read_only") == [("on",)]


def test_app_can_write(store: dict[str, str]) -> None:
    app = store[APP]
    _as(app, "INSERT INTO runs VALUES ('2011-12', 4400)")
    _as(app, "UPDATE runs SET customers = 4401 WHERE run_id = '2011-12'")
    assert _as(app, "SELECT customers FROM runs WHERE run_id = '2011-12'") == [(4401,)]
    _as(app, "DELETE FROM runs WHERE run_id = '2011-12'")
    _as(app, "CREATE TABLE scratch (x integer)")
    _as(app, "DROP TABLE scratch")
    # and what it creates from now on is readable by the reader
    _as(app, "CREATE TABLE later (x integer)")
    _as(app, "INSERT INTO later VALUES (7)")
    assert _as(store[READER], "SELECT x FROM later") == [(7,)]
    _as(app, "DROP TABLE later")


def test_public_cannot_connect(store: dict[str, str], pg_url: str) -> None:
    stranger = f"insiders_stranger_{secrets.token_hex(3)}"
    admin = psycopg.connect(_conninfo(pg_url), autocommit=True)
    try:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(stranger)))
        dbname = psycopg.conninfo.conninfo_to_dict(store[READER])["dbname"]
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(_conninfo(pg_url, user=stranger, dbname=str(dbname))).close()
    finally:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(stranger)))
        admin.close()


def test_the_container_init_script_applies_the_same_file() -> None:
    script = INIT_SCRIPT.read_text(encoding="utf-8")
    assert "sql/insiders_privileges.sql" in script
    # Passwords reach psql through \getenv, never on a command line where `ps` shows them.
    for variable in ("AIRFLOW_DB_PASSWORD", "INSIDERS_DB_PASSWORD", "INSIDERS_READER_PASSWORD",
                     "METABASE_DB_PASSWORD"):
        assert re.search(rf"^\\getenv \w+ {variable}$", script, re.MULTILINE), variable
    assert not re.search(r"PASSWORD '", script)
