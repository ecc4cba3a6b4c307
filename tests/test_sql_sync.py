"""SQL sync: complete runs only, one transaction per run, idempotent, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy

import pytest
import sqlalchemy as sa
from doubles import failing, sql_fails_on_insert
from insiders import stores
from insiders.config import Settings
from insiders.errors import StoreError
from insiders.publish import sql_sync

TABLE_FOR = {"customers": "customer_segments", "segments": "segment_profiles",
             "membership": "membership", "forecasts": "forecasts", "stability": "stability"}


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("fresh_pg")


@pytest.fixture
def store(tmp_path, month_runs):
    with stores.store_from(Settings(home=tmp_path / "home")) as s:
        for run_id in month_runs:
            run, docs = copy.deepcopy(month_runs[run_id])
            s.write_run(run, docs)
        yield s


def _expected_counts(run: dict, docs: dict) -> dict[str, int]:
    counts = {TABLE_FOR[name]: len(items) for name, items in docs.items()}
    counts["runs"] = 1
    counts["data_quality"] = len(run["data_quality"]["set_aside"])
    counts["model_candidates"] = len(run["model"]["candidates"])
    return counts


def test_sync_copies_every_complete_run_with_matching_row_counts(store, sql_url, month_runs):
    result = sql_sync.sync(store, sql_url)
    assert result["synced"] == sorted(month_runs)
    for run_id, (run, docs) in month_runs.items():
        assert sql_sync.table_counts(sql_url, run_id) == _expected_counts(run, docs)
    engine = sa.create_engine(sql_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT run_id, insiders, rows_in, rows_kept, rows_set_aside "
                                    "FROM runs ORDER BY run_id")).all()
        insiders = conn.execute(sa.text(
            "SELECT COUNT(*) FROM customer_segments WHERE run_id = :r AND is_insider"),
            {"r": rows[-1].run_id}).scalar_one()
    engine.dispose()
    assert [r.run_id for r in rows] == sorted(month_runs)
    last = rows[-1]
    assert insiders == last.insiders
    assert last.rows_in == last.rows_kept + last.rows_set_aside


def test_resync_changes_nothing(store, sql_url):
    sql_sync.sync(store, sql_url)
    before = sql_sync.table_counts(sql_url)
    again = sql_sync.sync(store, sql_url)
    assert again["synced"] == [] and len(again["unchanged"]) == 2
    assert sql_sync.table_counts(sql_url) == before


def test_only_new_or_changed_runs_are_synced(store, sql_url, month_runs):
    sql_sync.sync(store, sql_url)
    run, docs = copy.deepcopy(month_runs["2011-11"])
    docs["customers"] = docs["customers"][:-1]  # one customer fewer this time
    store.write_run(run, docs)
    result = sql_sync.sync(store, sql_url)
    assert result["synced"] == ["2011-11"] and result["unchanged"] == ["2011-10"]
    assert sql_sync.table_counts(sql_url, "2011-11")["customer_segments"] == len(docs["customers"])


def test_incomplete_runs_are_not_synced(tmp_path, sql_url, month_runs):
    with stores.store_from(Settings(home=tmp_path / "h")) as s:
        run, docs = copy.deepcopy(month_runs["2011-10"])
        s.write_run(run, docs)
        run, docs = copy.deepcopy(month_runs["2011-11"])
        with pytest.raises(StoreError):  # the connection drops while writing membership
            failing(s, "membership", "insert_many").write_run(run, docs)
        assert sql_sync.sync(s, sql_url)["synced"] == ["2011-10"]
    assert sql_sync.table_counts(sql_url, "2011-11") == dict.fromkeys(
        sql_sync.table_counts(sql_url, "2011-11"), 0)


def test_a_failure_inside_a_run_leaves_no_half_run_and_a_retry_completes(store, sql_url,
                                                                           month_runs):
    with sql_fails_on_insert("forecasts") as seen:  # after runs .. membership were written
        with pytest.raises(StoreError, match="injected: connection lost while inserting into "
                                             "forecasts"):
            sql_sync.sync(store, sql_url)
    assert seen["failed"] == 1 and seen["inserts"] >= 4
    counts = sql_sync.table_counts(sql_url)
    assert counts == dict.fromkeys(counts, 0)  # the first run rolled back entirely
    sql_sync.sync(store, sql_url)
    for run_id, (run, docs) in month_runs.items():
        assert sql_sync.table_counts(sql_url, run_id) == _expected_counts(run, docs)


def test_the_sql_store_going_away_mid_sync_leaves_the_previous_state(store, fresh_pg, pg_url,
                                                                      month_runs):
    """PostgreSQL drops the sync's connection half-way: the task fails, nothing is half-written,
    and the retry completes."""
    sql_sync.sync(store, fresh_pg)
    before = {run_id: sql_sync.table_counts(fresh_pg, run_id) for run_id in month_runs}
    run, docs = copy.deepcopy(month_runs["2011-11"])
    docs["membership"] = docs["membership"][:-3]
    store.write_run(run, docs)  # a changed run to sync

    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    seen = {"inserts": 0}
    database = fresh_pg.rsplit("/", 1)[1]

    def kill_on_third_insert(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT") and database in str(conn.engine.url):
            seen["inserts"] += 1
            if seen["inserts"] == 3:
                pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                with admin.connect() as a:
                    a.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", kill_on_third_insert)
    try:
        with pytest.raises(StoreError, match="failed"):
            sql_sync.sync(store, fresh_pg)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", kill_on_third_insert)
        admin.dispose()
    assert seen["inserts"] >= 3
    after = {run_id: sql_sync.table_counts(fresh_pg, run_id) for run_id in month_runs}
    assert after == before  # the old version of 2011-11 is still whole
    result = sql_sync.sync(store, fresh_pg)
    assert result["synced"] == ["2011-11"]
    assert sql_sync.table_counts(fresh_pg, "2011-11")["membership"] == len(docs["membership"])


def test_an_unreachable_sql_store_is_a_clear_error(store):
    with pytest.raises(StoreError, match=r"SQL store postgresql\+psycopg://u:\*\*\*@127.0.0.1:9/x"):
        sql_sync.sync(store, "postgresql+psycopg://u:secret@127.0.0.1:9/x?connect_timeout=2")
