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
             "membership": "membership", "forecasts": "forecasts", "stability": "stability",
             "campaigns": "campaigns"}


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


def test_the_campaign_lists_reach_the_sql_store_and_a_rerun_replaces_them(store, sql_url,
                                                                         month_runs):
    """campaigns.csv -> documents -> table `campaigns`, row for row; re-running a month with
    other lists leaves exactly the new ones (keyed by run month and customer)."""
    sql_sync.sync(store, sql_url)
    engine = sa.create_engine(sql_url)
    query = sa.text('SELECT customer_id, "list", reason, expected_value, churn_risk, '
                    'value_rank FROM campaigns WHERE run_id = :r')
    try:
        for run_id, (_, docs) in month_runs.items():
            assert docs["campaigns"], f"run {run_id} has no campaign list"
            with engine.connect() as conn:
                got = {r.customer_id: r for r in conn.execute(query, {"r": run_id})}
            assert len(got) == len(docs["campaigns"])
            for d in docs["campaigns"]:
                row = got[d["customer_id"]]
                assert (row.list, row.reason, row.value_rank) == (d["list"], d["reason"],
                                                                  d["value_rank"])
                assert row.expected_value == pytest.approx(d["expected_value"])
                if d["churn_risk"] is None:
                    assert row.churn_risk is None
                else:
                    assert row.churn_risk == pytest.approx(d["churn_risk"])
        run, docs = copy.deepcopy(month_runs["2011-11"])
        kept = docs["campaigns"][:2]
        kept[0] = {**kept[0], "list": "win_back", "reason": "left the Insiders this month: test"}
        docs["campaigns"] = kept
        store.write_run(run, docs)
        assert sql_sync.sync(store, sql_url)["synced"] == ["2011-11"]
        with engine.connect() as conn:
            rows = conn.execute(query, {"r": "2011-11"}).all()
            other = conn.execute(sa.text("SELECT COUNT(*) FROM campaigns WHERE run_id = :r"),
                                 {"r": "2011-10"}).scalar_one()
        assert sorted((r.customer_id, r.list) for r in rows) == sorted(
            (d["customer_id"], d["list"]) for d in kept)
        assert other == len(month_runs["2011-10"][1]["campaigns"])
    finally:
        engine.dispose()


def test_the_runs_currency_is_stored_and_an_older_store_gains_the_column(store, sql_url,
                                                                         month_runs):
    """answers.json `currency` lands in runs.currency; a store created before the column
    existed gets it by ALTER TABLE (nullable), its rows kept, and the next sync fills it."""
    engine = sa.create_engine(sql_url)
    old = sa.MetaData()
    sa.Table("runs", old, *[sa.Column(c.name, c.type, primary_key=c.primary_key)
                            for c in sql_sync.RUNS.columns if c.name != "currency"])
    try:
        old.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO runs (run_id, as_of, period_start, version) "
                                 "VALUES ('2011-01', '2011-02-01', '2010-02-01', 'old')"))
        run, docs = copy.deepcopy(month_runs["2011-11"])
        run["answers"] = {**run["answers"], "currency": "GBP"}
        store.write_run(run, docs)
        sql_sync.sync(store, sql_url)
        with engine.connect() as conn:
            assert "currency" in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
            rows = dict(conn.execute(sa.text("SELECT run_id, currency FROM runs")).all())
        assert rows["2011-11"] == "GBP"
        assert rows["2011-01"] is None  # the older row is kept, with no currency
        assert rows["2011-10"] == month_runs["2011-10"][0]["answers"].get("currency")
    finally:
        engine.dispose()


def test_the_quality_card_names_reasons_as_the_report_does(store, sql_url, month_runs):
    """The dashboard's set-aside chart read 'missing customer id' beside the report's 'no
    customer id': data_quality.label carries the report's words; a row an older version
    synced (no label) falls back to the code."""
    from insiders import wording
    from insiders.dashboards.page import run_card_sql
    from insiders.dashboards.spec import load_definition

    card = next(c for c in load_definition().cards if c.file == "cards/11_data_quality.sql")
    engine = sa.create_engine(sql_url)
    try:
        for run, docs in month_runs.values():
            store.write_run(run, docs)
        sql_sync.sync(store, sql_url)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO data_quality (run_id, reason, \"rows\") "
                                 "VALUES ('2011-01', 'missing_customer_id', 3)"))
            frame = run_card_sql(conn, card.sql)
    finally:
        engine.dispose()
    latest = frame[frame["Run"] == "2011-11"]
    set_aside = month_runs["2011-11"][0]["data_quality"]["set_aside"]
    assert dict(zip(latest["Reason"], latest["Rows set aside"], strict=True)) == {
        wording.reason(code): n for code, n in set_aside.items()}
    assert "no customer id" in set(latest["Reason"])
    assert frame[frame["Run"] == "2011-01"]["Reason"].tolist() == ["missing customer id"]
