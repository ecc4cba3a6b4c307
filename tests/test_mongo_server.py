"""Against a MongoDB-compatible server (started by .ci/start-mongo.sh in CI):

- one DAG month writes its documents there, and they are the documents the embedded store
  holds for the same month;
- mongo-init/10-insiders.js runs through the real mongosh; then, with authentication on, the
  `insiders_app` user writes its collections (through the validators) and is refused
  collMod, dropping a collection and other databases (code 13), and the package says so.

Outside CI these skip with the reason when no server is configured; in CI they fail.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import quote_plus

import pymongo
import pytest
from insiders import monthly, stages, stores
from insiders.config import Settings
from insiders.context import Run
from insiders.errors import StoreError
from pymongo.errors import OperationFailure, WriteError
from test_documents import mongo_uri_or_skip

ROOT = Path(__file__).resolve().parents[1]
MONGO_INIT = ROOT / "mongo-init"
AS_OF = "2011-12-01"
RUN = "2011-11"
pytestmark = pytest.mark.mongo


@pytest.fixture
def server_db():
    """A fresh database name on the test server, dropped afterwards."""
    uri = mongo_uri_or_skip()
    name = f"insiders_test_{uuid.uuid4().hex[:8]}"
    yield uri, name
    with pymongo.MongoClient(uri) as client:
        client.drop_database(name)


def _canonical(docs: list[dict]) -> list[str]:
    return sorted(json.dumps(d, sort_keys=True, default=str) for d in docs)


def _run_doc(run: dict) -> dict:
    return {k: v for k, v in run.items() if k not in ("_id", "started_at", "completed_at")}


def test_a_dag_month_on_the_server_holds_the_same_documents_as_the_embedded_store(
        demo_file, tmp_path, server_db):
    uri, name = server_db
    embedded = Settings(home=tmp_path / "home", source=str(demo_file), stability_months=2,
                        bootstrap=200)
    server = embedded.with_(mongo_uri=uri, mongo_db=name)
    result = monthly.run_month(AS_OF, server)  # every task of the DAG, the store is the server
    assert result["write_documents"]["run_id"] == RUN
    stages.write_documents(Run.monthly(embedded, AS_OF))  # the same folder, embedded store

    with stores.store_from(server) as on_server, stores.store_from(embedded) as local:
        assert on_server.kind == "mongodb" and local.kind == "embedded"
        assert [r["run_id"] for r in on_server.complete_runs()] == [RUN]
        run_s, run_e = on_server.run(RUN), local.run(RUN)
        assert run_s["version"] == run_e["version"] == result["write_documents"]["version"]
        assert json.dumps(_run_doc(run_s), sort_keys=True, default=str) == \
            json.dumps(_run_doc(run_e), sort_keys=True, default=str)
        for collection in stores.COLLECTIONS:
            got_s = on_server.documents(collection, RUN)
            got_e = local.documents(collection, RUN)
            assert len(got_s) == run_s["counts"][collection] > 0 or collection == "stability"
            assert _canonical(got_s) == _canonical(got_e), collection
        assert on_server.previous_members("2011-12") == local.previous_members("2011-12")
        assert len(on_server.previous_members("2011-12")) == run_s["summary"]["insiders"]


# --------------------------------------------------------------------------- mongo-init, auth

def _with_credentials(uri: str, user: str, password: str, db: str) -> str:
    host = uri.split("@", 1)[-1].split("/", 1)[0].removeprefix("mongodb://")
    return f"mongodb://{quote_plus(user)}:{quote_plus(password)}@{host}/?authSource={db}"


def _mongosh(mongosh: str, uri: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([mongosh, "--quiet", uri, str(MONGO_INIT / "10-insiders.js")],
                          env={**os.environ, "INSIDERS_MONGO_INIT_DIR": str(MONGO_INIT), **env},
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def initialised():
    """mongo-init/10-insiders.js run by mongosh as the administrator, on a fresh database
    (once per module: mongosh takes seconds to start)."""
    admin_uri = mongo_uri_or_skip("INSIDERS_TEST_MONGO_AUTH_URI")
    mongosh = mongo_uri_or_skip("INSIDERS_TEST_MONGOSH")
    name = f"insiders_auth_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    env = {"INSIDERS_MONGO_DB": name, "INSIDERS_MONGO_PASSWORD": password}
    first = _mongosh(mongosh, admin_uri, env)
    admin = pymongo.MongoClient(admin_uri)
    try:
        yield {"admin": admin, "admin_uri": admin_uri, "mongosh": mongosh, "db": name,
               "env": env, "first": first,
               "app_uri": _with_credentials(admin_uri, "insiders_app", password, name)}
    finally:
        for command in ("dropAllUsersFromDatabase", "dropAllRolesFromDatabase"):
            try:
                admin[name].command(command)
            except OperationFailure:
                pass
        admin.drop_database(name)
        admin.drop_database(f"{name}_other")
        admin.close()


def test_mongo_init_creates_validated_collections_indexes_role_and_user(initialised):
    first = initialised["first"]
    assert first.returncode == 0, first.stderr[-2000:]
    assert initialised["env"]["INSIDERS_MONGO_PASSWORD"] not in first.stdout + first.stderr
    db = initialised["admin"][initialised["db"]]
    validators = json.loads((MONGO_INIT / "validators.json").read_text())
    listed = {c["name"]: c.get("options", {}) for c in db.list_collections()}
    assert set(validators) <= set(listed)
    for name, validator in validators.items():
        assert listed[name]["validator"] == validator, name
        assert listed[name].get("validationAction", "error") == "error"
    for name, specs in json.loads((MONGO_INIT / "indexes.json").read_text()).items():
        info = db[name].index_information()
        for spec in specs:
            assert info[spec["name"]]["key"] == list(spec["key"].items()), (name, spec)
            assert bool(info[spec["name"]].get("unique")) == bool(spec.get("unique"))
    users = db.command("usersInfo", "insiders_app")["users"]
    assert [u["user"] for u in users] == ["insiders_app"]
    assert users[0]["roles"] == [{"role": "insidersWriter", "db": initialised["db"]}]
    again = _mongosh(initialised["mongosh"], initialised["admin_uri"], initialised["env"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "updated validator" in again.stdout and "updated user insiders_app" in again.stdout


def test_the_app_user_writes_its_collections_and_nothing_else(initialised, month_runs):
    assert initialised["first"].returncode == 0, initialised["first"].stderr[-2000:]
    name, app_uri = initialised["db"], initialised["app_uri"]
    settings = Settings(home=Path("/nonexistent"), mongo_uri=app_uri, mongo_db=name)
    run, docs = copy.deepcopy(month_runs[RUN])
    with stores.store_from(settings) as store:
        store.write_run(run, docs)  # through the validators, as the least-privileged user
        assert store.run(RUN)["counts"] == {k: len(v) for k, v in docs.items()}
        assert store.count("customers", RUN) == len(docs["customers"])

    with pymongo.MongoClient(app_uri) as app:
        db = app[name]
        with pytest.raises(WriteError) as rejected:  # the validator holds for the app user
            db["customers"].insert_one({"run_id": RUN, "customer_id": 17850})
        assert rejected.value.code == 121
        refused = {
            "collMod": lambda: db.command("collMod", "customers", validator={}),
            "dropCollection": lambda: db.drop_collection("customers"),
            "dropDatabase": lambda: app.drop_database(name),
            "createUser": lambda: db.command("createUser", "intruder", pwd="x" * 16, roles=[]),
            "insert into another database": lambda: app[f"{name}_other"]["runs"].insert_one(
                {"_id": "x"}),
            "read another database": lambda: app[f"{name}_other"]["runs"].find_one(),
        }
        for what, action in refused.items():
            with pytest.raises(OperationFailure) as error:
                action()
            assert error.value.code == 13, (what, error.value)
        assert db["customers"].count_documents({"run_id": RUN}) == len(docs["customers"])

    other = settings.with_(mongo_db=f"{name}_other")
    with pytest.raises(StoreError) as error:  # the package names the privilege, not the network
        stores.open_store(other)
    message = str(error.value)
    assert message.startswith("user insiders_app is not allowed to ")
    assert "cannot reach" not in message and app_uri.split("@")[0] not in message


def test_a_wrong_password_is_reported_as_refused_credentials(initialised):
    assert initialised["first"].returncode == 0, initialised["first"].stderr[-2000:]
    wrong = _with_credentials(initialised["admin_uri"], "insiders_app", "not-the-password",
                              initialised["db"])
    with pytest.raises(StoreError, match="refused user insiders_app: authentication failed"):
        stores.open_store(Settings(home=Path("/nonexistent"), mongo_uri=wrong,
                                      mongo_db=initialised["db"]))


def test_mongo_init_refuses_to_run_without_the_app_password(initialised):
    result = _mongosh(initialised["mongosh"], initialised["admin_uri"],
                      {"INSIDERS_MONGO_DB": initialised["db"] + "_x",
                       "INSIDERS_MONGO_PASSWORD": ""})
    assert initialised["db"] + "_x" not in initialised["admin"].list_database_names()
    assert result.returncode != 0
    assert "INSIDERS_MONGO_PASSWORD is not set" in result.stdout + result.stderr
