"""Provisioning the dashboard through Metabase's REST API, against a strict fake Metabase.

The fake (`fake_metabase.FakeMetabase`) checks each request's method, path and body
shape as Metabase v0.64 does (`fake_metabase.MIRRORS`) and records what changed, so these
tests pin down both "the requests are right" and "a second run changes nothing". The
later tests are the ways a real first deployment broke while an older, more lenient fake
passed: a password Metabase refuses, a failing query answered with HTTP 500, tabs lost
on a layout change, a rotated reader password that never reached Metabase, and usage
tracking left on.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import requests
from fake_metabase import MIRRORS, FakeMetabase
from insiders.config import MetabaseSettings
from insiders.dashboards.metabase import METABASE_VERSION, MetabaseError
from insiders.dashboards.provision import (
    FINGERPRINT_KEY,
    database_from_settings,
    fingerprint_matches,
    provision,
    provision_from_env,
)
from insiders.dashboards.spec import (
    CURRENCY_SQL,
    DefinitionError,
    column_key,
    currency_settings,
    default_definition_dir,
    load_definition,
)
from sqlstore_fixture import build_synthetic_store

EMAIL = "admin@insiders.example"
PASSWORD = "fake-Insiders-2011-admin"  # a test account on the fake server
SPEC = load_definition()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "insiders.sqlite"
    build_synthetic_store(f"sqlite:///{path}")
    return path


@pytest.fixture
def fake():
    with FakeMetabase() as server:
        yield server


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    """A private copy of metabase/, for tests that edit the definition."""
    target = tmp_path / "metabase"
    shutil.copytree(default_definition_dir(), target)
    return target


def run(fake: FakeMetabase, store: Path, **kw):
    kw.setdefault("email", EMAIL)
    kw.setdefault("password", PASSWORD)
    kw.setdefault("database", {"engine": "sqlite", "path": str(store)})
    kw.setdefault("poll_interval", 0.01)
    return provision(fake.url, **kw)



def _grow_last_card(definitions: Path) -> dict:
    """Edit the dashboard as code: the last card two rows taller (a layout-only change);
    returns the edited definition."""
    path = definitions / "dashboard.json"
    raw = json.loads(path.read_text())
    raw["cards"][-1]["position"]["size_y"] += 2
    path.write_text(json.dumps(raw))
    return raw

def test_first_provision_creates_everything(fake: FakeMetabase, store_path: Path) -> None:
    report = run(fake, store_path)

    assert fake.violations == []
    assert [(i.kind, i.action) for i in report.items] == (
        [("setup", "created"), ("setting", "updated"), ("database", "created"),
         ("collection", "created")]
        + [("card", "created")] * len(SPEC.cards)
        + [("dashboard", "created")]
    )
    # first-run setup made the admin, then the store was registered as Metabase sees it
    assert EMAIL in fake.users
    # setup turns usage tracking on whatever it is sent; provisioning turns it off again
    (setup,) = [r for r in fake.requests if r.path == "/api/setup"]
    assert "allow_tracking" not in setup.body["prefs"]
    assert fake.settings["anon-tracking-enabled"] is False
    (db,) = fake.databases.values()
    assert (db["name"], db["engine"], db["details"]) == (
        "Insiders SQL store", "sqlite", {"db": str(store_path)})
    (collection,) = fake.collections.values()
    assert collection["name"] == SPEC.collection
    # each card's SQL was tried through Metabase before anything was written
    queries = [r for r in fake.requests if r.path == "/api/dataset"]
    # ... then the store's currency (runs.currency), for the money columns
    assert [q.body["native"]["query"] for q in queries] == [c.sql for c in SPEC.cards] + [
        CURRENCY_SQL]
    assert all(q.status == 202 for q in queries)
    # dashboard cards went onto a dashboard without tabs, and no tabs were made up
    (put,) = [r for r in fake.mutations if r.method == "PUT" and "/api/dashboard/" in r.path]
    assert put.body["tabs"] == [] and fake.dashboard_by_name(SPEC.name)["tabs"] == []

    for card in SPEC.cards:
        stored = fake.card_by_name(card.name)
        assert stored["dataset_query"]["stages"][0]["native"] == card.sql
        assert stored["dataset_query"]["database"] == db["id"]
        assert stored["display"] == card.display
        assert stored["visualization_settings"] == currency_settings(card, "GBP")
        assert stored["description"] == card.description
        assert stored["collection_id"] == collection["id"]

    dashboard = fake.dashboard_by_name(SPEC.name)
    assert dashboard["collection_id"] == collection["id"]
    assert report.dashboard_id == dashboard["id"]
    assert report.dashboard_url == f"{fake.url}/dashboard/{dashboard['id']}"
    placed = {dc["card_id"]: (dc["row"], dc["col"], dc["size_x"], dc["size_y"])
              for dc in dashboard["dashcards"]}
    assert placed == {
        fake.card_by_name(c.name)["id"]: (c.position.row, c.position.col,
                                          c.position.size_x, c.position.size_y)
        for c in SPEC.cards
    }
    # new dashcards were sent with negative ids, as Metabase expects
    (put,) = [r for r in fake.mutations if r.method == "PUT" and "/api/dashboard/" in r.path]
    assert all(d["id"] < 0 for d in put.body["dashcards"])


def test_second_run_changes_nothing(fake: FakeMetabase, store_path: Path) -> None:
    run(fake, store_path)
    fake.clear_log()

    report = run(fake, store_path)

    assert fake.violations == []
    assert fake.mutations == []
    assert not report.changed
    assert len(report.unchanged) == len(SPEC.cards) + 3  # database, collection, dashboard
    assert not any(r.path == "/api/setup" for r in fake.requests)
    assert "0 created, 0 updated" in report.summary()


def test_changed_card_sql_gives_exactly_one_update(fake: FakeMetabase, store_path: Path,
                                                   definitions: Path) -> None:
    run(fake, store_path, definition_dir=definitions)
    card = SPEC.cards[7]
    sql_file = definitions / card.file
    sql_file.write_text(sql_file.read_text().replace("ORDER BY run_id", "ORDER BY run_id DESC"))
    fake.clear_log()

    report = run(fake, store_path, definition_dir=definitions)

    card_id = fake.card_by_name(card.name)["id"]
    assert [(m.method, m.path) for m in fake.mutations] == [("PUT", f"/api/card/{card_id}")]
    assert set(fake.mutations[0].body) == {"dataset_query"}
    assert [(i.kind, i.name) for i in report.updated] == [("card", card.name)]
    assert "DESC" in fake.card_by_name(card.name)["dataset_query"]["stages"][0]["native"]
    assert fake.violations == []

    fake.clear_log()
    run(fake, store_path, definition_dir=definitions)
    assert fake.mutations == []


def test_moved_card_updates_the_dashboard_in_place(fake: FakeMetabase, store_path: Path,
                                                   definitions: Path) -> None:
    run(fake, store_path, definition_dir=definitions)
    before = {dc["card_id"]: dc["id"] for dc in fake.dashboard_by_name(SPEC.name)["dashcards"]}
    raw = _grow_last_card(definitions)
    fake.clear_log()

    report = run(fake, store_path, definition_dir=definitions)

    dashboard = fake.dashboard_by_name(SPEC.name)
    assert [(m.method, m.path) for m in fake.mutations] == [
        ("PUT", f"/api/dashboard/{dashboard['id']}")]
    assert [i.kind for i in report.updated] == ["dashboard"]
    # existing dashcards keep their ids: they are moved, not deleted and re-added
    assert {dc["card_id"]: dc["id"] for dc in dashboard["dashcards"]} == before
    last = fake.card_by_name(raw["cards"][-1]["name"])["id"]
    assert next(dc for dc in dashboard["dashcards"] if dc["card_id"] == last)["size_y"] == (
        raw["cards"][-1]["position"]["size_y"])


def test_existing_admin_skips_setup(store_path: Path) -> None:
    with FakeMetabase(admin_email=EMAIL, admin_password=PASSWORD) as fake:
        report = run(fake, store_path)
        assert not any(r.path == "/api/setup" for r in fake.requests)
        assert "setup" not in [i.kind for i in report.items]
        assert fake.violations == []


def test_wrong_password_is_a_clear_error(store_path: Path) -> None:
    with FakeMetabase(admin_email=EMAIL, admin_password=PASSWORD) as fake:
        with pytest.raises(MetabaseError) as caught:
            run(fake, store_path, password="not-the-password")
        message = str(caught.value)
        assert "rejected the login" in message and EMAIL in message
        assert "INSIDERS_METABASE_PASSWORD" in message
        assert "\n" not in message
        assert fake.mutations == []


def test_unreachable_metabase_is_a_clear_error(store_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(MetabaseError) as caught:
        provision(url, email=EMAIL, password=PASSWORD,
                  database={"engine": "sqlite", "path": str(store_path)})
    message = str(caught.value)
    assert message.startswith(f"Cannot reach Metabase at {url}")
    assert "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("status", [500, 202])  # Metabase since late 2025, and before
def test_failing_card_sql_names_the_card(store_path: Path, definitions: Path,
                                         status: int) -> None:
    card = SPEC.cards[6]
    (definitions / card.file).write_text("SELECT persona FROM no_such_table")

    with FakeMetabase(query_error_status=status) as fake, \
            pytest.raises(MetabaseError) as caught:
        run(fake, store_path, definition_dir=definitions)

    message = str(caught.value)
    assert card.file in message and card.name in message
    assert "no such table: no_such_table" in message
    assert [r.status for r in fake.requests if r.path == "/api/dataset"][-1] == status
    assert fake.cards == {} and fake.dashboards == {}  # nothing half-provisioned
    assert fake.violations == []


@pytest.mark.parametrize("password", ["passwd", "correct-horse-battery", "abc12",
                                      "Password1", "123456789"])
def test_admin_password_metabase_refuses_fails_setup_clearly(fake: FakeMetabase,
                                                             store_path: Path,
                                                             password: str) -> None:
    """Metabase's default rule: 6+ characters with a digit, not a common password."""
    with pytest.raises(MetabaseError) as caught:
        run(fake, store_path, password=password)
    message = str(caught.value)
    assert message.startswith(f"First-run setup of Metabase at {fake.url} failed: password")
    assert "INSIDERS_METABASE_PASSWORD" in message and "digit" in message
    assert password not in message
    assert fake.users == {} and fake.databases == {}  # nothing was provisioned


def test_admin_password_with_a_digit_passes_setup(fake: FakeMetabase, store_path: Path) -> None:
    report = run(fake, store_path, password="fake-horse-battery-9")
    assert report.items[0].kind == "setup" and fake.violations == []


def test_store_metabase_cannot_open_is_a_clear_error(fake: FakeMetabase, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.sqlite"
    with pytest.raises(MetabaseError, match="could not connect to the SQL store"):
        run(fake, missing, database={"engine": "sqlite", "path": str(missing)})


def test_changed_store_location_updates_the_database(fake: FakeMetabase, store_path: Path,
                                                     tmp_path: Path) -> None:
    run(fake, store_path)
    moved = tmp_path / "moved.sqlite"
    shutil.copy(store_path, moved)
    fake.clear_log()

    report = run(fake, moved)

    (db,) = fake.databases.values()
    assert [(m.method, m.path) for m in fake.mutations] == [("PUT", f"/api/database/{db['id']}")]
    assert db["details"]["db"] == str(moved)
    assert [i.kind for i in report.updated] == ["database"]


def test_provision_from_env(fake: FakeMetabase, store_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDERS_METABASE_URL", fake.url)
    monkeypatch.setenv("INSIDERS_METABASE_USER", EMAIL)
    monkeypatch.setenv("INSIDERS_METABASE_PASSWORD", PASSWORD)
    monkeypatch.setenv("INSIDERS_METABASE_DB_ENGINE", "sqlite")
    monkeypatch.setenv("INSIDERS_METABASE_DB_PATH", str(store_path))

    report = provision_from_env(None)

    assert report.changed and fake.violations == []
    assert next(iter(fake.databases.values()))["details"] == {"db": str(store_path)}
    monkeypatch.delenv("INSIDERS_METABASE_PASSWORD")
    with pytest.raises(MetabaseError, match="INSIDERS_METABASE_PASSWORD"):
        provision_from_env(fake.url)


def test_database_from_settings_reads_the_store_url_and_overrides() -> None:
    url = "postgresql+psycopg://insiders:s3cret@localhost:5433/insiders"
    assert database_from_settings(url, MetabaseSettings()) == {
        "engine": "postgres", "name": "Insiders SQL store", "host": "localhost", "port": 5433,
        "dbname": "insiders", "user": "insiders", "password": "s3cret",
    }
    inside_docker = database_from_settings(url, MetabaseSettings(db_host="postgres",
                                                                 db_port=5432))
    assert (inside_docker["host"], inside_docker["port"]) == ("postgres", 5432)
    assert database_from_settings("sqlite:////data/insiders.sqlite", MetabaseSettings()) == {
        "engine": "sqlite", "name": "Insiders SQL store", "path": "/data/insiders.sqlite"}


def test_metabase_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from insiders.config import Settings

    monkeypatch.setenv("INSIDERS_METABASE_WAIT", "90")
    monkeypatch.setenv("INSIDERS_METABASE_DB_PORT", "6543")
    monkeypatch.setenv("INSIDERS_METABASE_DEFINITIONS", "/srv/metabase")
    group = Settings.from_env().metabase
    assert (group.wait, group.db_port, group.definitions) == (90.0, 6543, Path("/srv/metabase"))
    monkeypatch.setenv("INSIDERS_METABASE_WAIT", "soon")
    with pytest.raises(MetabaseError, match="INSIDERS_METABASE_WAIT must be a number"):
        provision_from_env("http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda raw: raw["cards"][1]["position"].update(col=3), "overlap"),
        (lambda raw: raw["cards"][0].update(display="sparkles"), "unknown display"),
        (lambda raw: raw["cards"][0].update(file="cards/missing.sql"), "not found"),
        (lambda raw: raw["cards"][0]["position"].update(col=20), "wider than"),
        (lambda raw: raw["cards"][1].update(name=raw["cards"][0]["name"]), "unique"),
    ],
)
def test_definition_errors_are_caught_before_any_request(definitions: Path, edit,
                                                         expected: str) -> None:
    path = definitions / "dashboard.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(DefinitionError, match=expected):
        load_definition(definitions)
    with pytest.raises(MetabaseError, match=expected):  # provision fails before calling out
        provision("http://127.0.0.1:9", email=EMAIL, password=PASSWORD,
                  database={"engine": "sqlite", "path": "x"}, definition_dir=definitions)


def test_fake_metabase_is_strict(fake: FakeMetabase) -> None:
    """The fake answers like Metabase to wrong requests, so a passing test means something."""
    assert requests.get(f"{fake.url}/api/card/1", timeout=5).status_code == 401
    session = requests.post(f"{fake.url}/api/setup", timeout=5, json={
        "token": fake.setup_token,
        "user": {"email": EMAIL, "password": PASSWORD},
        "prefs": {"site_name": "Insiders"},
    }).json()["id"]
    headers = {"X-Metabase-Session": session}
    assert requests.get(f"{fake.url}/api/nope", headers=headers, timeout=5).status_code == 404
    bad_card = {"name": "x", "display": "table", "visualization_settings": {},
                "dataset_query": {"database": 1, "type": "native", "native": {"query": "x"}},
                "colour": "red"}
    resp = requests.post(f"{fake.url}/api/card", json=bad_card, headers=headers, timeout=5)
    assert resp.status_code == 400 and "colour" in resp.json()["errors"]
    for extra in ({"ssl": True}, {"description": "x"}):  # closed schemas, as in Metabase
        bad_db = {"name": "x", "engine": "sqlite", "details": {"db": "x"}, **extra}
        resp = requests.post(f"{fake.url}/api/database", json=bad_db, headers=headers,
                             timeout=5)
        assert resp.status_code == 400 and set(extra) <= set(resp.json()["errors"])
    assert len(fake.violations) == 5
    assert [m.path for m in fake.mutations] == ["/api/setup"]
    assert fake.settings["anon-tracking-enabled"] is True  # what setup leaves behind
    assert MIRRORS == METABASE_VERSION  # the fake follows the Metabase the client pins


PG = {"engine": "postgres", "host": "postgres", "port": 5432, "dbname": "insiders",
      "user": "insiders_reader"}


def test_rotated_reader_password_reaches_metabase() -> None:
    """GET /api/database masks the password, so only its fingerprint can show a rotation."""
    users = {"insiders_reader": "fake-reader-2011-a"}
    with FakeMetabase(postgres_users=users) as fake:
        run(fake, Path("unused"), database={**PG, "password": "fake-reader-2011-a"})
        (db,) = fake.databases.values()
        listed = requests.get(f"{fake.url}/api/database/{db['id']}", timeout=5, headers={
            "X-Metabase-Session": next(iter(fake.sessions))}).json()
        assert listed["details"]["password"] == "**MetabasePass**"
        assert "fake-reader-2011-a" not in json.dumps(listed)
        assert fingerprint_matches(listed["details"][FINGERPRINT_KEY], "fake-reader-2011-a")

        fake.clear_log()  # a second run with the same password changes nothing
        assert not run(fake, Path("unused"), database={**PG, "password": "fake-reader-2011-a"}
                       ).changed
        assert fake.mutations == []

        users["insiders_reader"] = "fake-reader-2011-b"  # the DBA rotates the password
        report = run(fake, Path("unused"), database={**PG, "password": "fake-reader-2011-b"})

        assert db["details"]["password"] == "fake-reader-2011-b"
        assert [(i.kind, i.detail) for i in report.updated] == [
            ("database", "postgres: password")]
        assert [(m.method, m.path) for m in fake.mutations] == [
            ("PUT", f"/api/database/{db['id']}")]
        assert fake.violations == []


def test_hand_added_tabs_survive_a_layout_change(fake: FakeMetabase, store_path: Path,
                                                 definitions: Path) -> None:
    """Without `tabs`, PUT /api/dashboard/:id deletes every tab and the cards on them."""
    run(fake, store_path, definition_dir=definitions)
    dashboard = fake.dashboard_by_name(SPEC.name)
    overview, notes = fake.add_tabs(dashboard["id"], ["Overview", "Notes"])
    note_card = fake.card_by_name(SPEC.cards[0].name)["id"]
    by_hand = fake.add_dashcard(dashboard["id"], note_card, notes, row=0, col=0)
    raw = _grow_last_card(definitions)
    fake.clear_log()

    report = run(fake, store_path, definition_dir=definitions)

    assert fake.violations == []
    assert [i.kind for i in report.updated] == ["dashboard"]
    assert [(t["id"], t["name"]) for t in dashboard["tabs"]] == [
        (overview, "Overview"), (notes, "Notes")]
    on_notes = [d for d in dashboard["dashcards"] if d["dashboard_tab_id"] == notes]
    assert [(d["id"], d["visualization_settings"]) for d in on_notes] == [
        (by_hand, {"card.title": "Added by hand"})]
    ours = [d for d in dashboard["dashcards"] if d["dashboard_tab_id"] == overview]
    assert len(ours) == len(SPEC.cards)
    last = fake.card_by_name(raw["cards"][-1]["name"])["id"]
    assert next(d for d in ours if d["card_id"] == last)["size_y"] == (
        raw["cards"][-1]["position"]["size_y"])

    fake.clear_log()
    assert not run(fake, store_path, definition_dir=definitions).changed
    assert fake.mutations == []


def test_the_dag_task_provisions_with_the_settings_it_is_given(store_path: Path,
                                                               tmp_path: Path) -> None:
    """monthly.refresh_metabase takes its Settings (no environment): URL, admin, store."""
    from insiders import monthly
    from insiders.config import Settings

    with FakeMetabase() as fake:
        settings = Settings(home=tmp_path, sql_url=f"sqlite:///{store_path}",
                            metabase_url=fake.url, metabase_user=EMAIL,
                            metabase_password=PASSWORD)
        out = monthly.refresh_metabase(settings)
        assert "created" in out["insiders"] and fake.violations == []
        (db,) = fake.databases.values()
        assert db["details"] == {"db": str(store_path)}
        assert not provision(fake.url, email=EMAIL, password=PASSWORD,
                             database={"engine": "sqlite", "path": str(store_path)},
                             poll_interval=0.01).changed


def test_money_columns_are_shown_in_the_stores_currency(fake: FakeMetabase, store_path: Path,
                                                        tmp_path: Path) -> None:
    """Metabase's own column settings (number_style currency, currency, code style) for
    every money column, in the currency the latest run recorded; a store whose currency
    changes (another source) updates exactly the money cards; a store without one leaves
    the files' settings as they are."""
    run(fake, store_path)
    forecast = fake.card_by_name("Revenue forecast, next period")["visualization_settings"]
    assert forecast["column_settings"] == {column_key("Forecast revenue"): {
        "number_style": "currency", "currency": "GBP", "currency_style": "code"}}
    assert column_key("Forecast revenue") == '["name","Forecast revenue"]'  # JSON.stringify
    assert "column_settings" not in fake.card_by_name("Insiders in the latest run")[
        "visualization_settings"]

    brl = tmp_path / "brl.sqlite"
    shutil.copy(store_path, brl)
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{brl}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE runs SET currency = 'BRL'"))
    engine.dispose()
    fake.clear_log()
    report = run(fake, brl)
    updated = sorted(i.name for i in report.updated if i.kind == "card")
    assert updated == sorted(c.name for c in SPEC.cards if c.money)
    stored = fake.card_by_name("Campaign lists this month")["visualization_settings"]
    assert stored["column_settings"][column_key("Expected value")]["currency"] == "BRL"

    engine = sa.create_engine(f"sqlite:///{brl}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE runs SET currency = NULL"))
    engine.dispose()
    with FakeMetabase() as fresh:
        run(fresh, brl)
        for card in SPEC.cards:
            assert fresh.card_by_name(card.name)["visualization_settings"] == (
                card.visualization_settings)
