"""The document store's contract: the same tests on the embedded store and on a MongoDB server.

INSIDERS_TEST_MONGO_URI=mongodb://user:pass@host:27017/?authSource=admin runs them against a
server too (a fresh database per test is created and dropped); .ci/test.sh starts a
MongoDB-compatible server and sets it. In CI (CI=true) a missing server fails the tests
instead of skipping them.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from doubles import failing
from insiders import stores
from insiders.config import Settings
from insiders.errors import RunLockedError, StoreError
from pymongo.errors import DuplicateKeyError

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["embedded", pytest.param("mongodb", marks=pytest.mark.mongo)]


@pytest.fixture(params=BACKENDS)
def settings(request, tmp_path: Path) -> Settings:
    if request.param == "embedded":
        yield Settings(home=tmp_path / "home")
        return
    uri = mongo_uri_or_skip()
    name = f"insiders_test_{uuid.uuid4().hex[:8]}"
    yield Settings(home=tmp_path / "home", mongo_uri=uri, mongo_db=name)
    import pymongo

    pymongo.MongoClient(uri).drop_database(name)


def mongo_uri_or_skip(name: str = "INSIDERS_TEST_MONGO_URI") -> str:
    """The test server's URI; outside CI a missing one skips with the reason, in CI it fails."""
    uri = os.environ.get(name)
    if uri:
        return uri
    reason = (f"{name} is not set: no MongoDB-compatible server to test against "
              f"(.ci/test.sh starts one with .ci/start-mongo.sh)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def _write(store, month_runs, run_id):
    run, docs = copy.deepcopy(month_runs[run_id])
    return store.write_run(run, docs)


def test_a_written_run_is_complete_and_holds_exactly_its_documents(settings, month_runs):
    run, docs = month_runs["2011-10"]
    with stores.store_from(settings) as store:
        result = _write(store, month_runs, "2011-10")
        runs = store.complete_runs()
        assert [r["run_id"] for r in runs] == ["2011-10"]
        assert runs[0]["status"] == "complete"
        assert runs[0]["counts"] == {name: len(d) for name, d in docs.items()}
        for name, expected in docs.items():
            got = store.documents(name, "2011-10")
            assert len(got) == len(expected) == store.count(name, "2011-10")
        customers = {d["customer_id"]: d for d in store.documents("customers", "2011-10")}
        first = docs["customers"][0]
        assert customers[first["customer_id"]]["features"] == pytest.approx(first["features"],
                                                                           nan_ok=True)
        assert result["version"] == runs[0]["version"]


def test_rewriting_a_month_replaces_it_and_never_duplicates(settings, month_runs):
    with stores.store_from(settings) as store:
        first = _write(store, month_runs, "2011-10")
        second = _write(store, month_runs, "2011-10")
        assert first["version"] == second["version"]  # same content, same version
        assert len(store.complete_runs()) == 1
        for name, docs in month_runs["2011-10"][1].items():
            assert store.count(name, "2011-10") == len(docs)


def test_changed_content_gets_a_new_version(settings, month_runs):
    with stores.store_from(settings) as store:
        before = _write(store, month_runs, "2011-10")
        run, docs = copy.deepcopy(month_runs["2011-10"])
        docs["customers"][0]["expected_value"] += 1.0
        after = store.write_run(run, docs)
        assert after["version"] != before["version"]
        assert store.run("2011-10")["version"] == after["version"]


def test_an_interrupted_write_stays_invisible_and_a_retry_completes_it(settings, month_runs):
    docs = month_runs["2011-10"][1]
    with stores.store_from(settings) as store:
        flaky = failing(store, "membership", "delete_many")  # after customers and segments
        with pytest.raises(StoreError, match=r"cannot reach the document store .* to delete run "
                                             r"2011-10 from insiders\w*\.membership.*injected"):
            _write(flaky, month_runs, "2011-10")
        assert store.count_written("segments", "2011-10") == len(docs["segments"])
        assert store.complete_runs() == []
        assert store.run("2011-10") is None
        assert store.documents("customers", "2011-10") == []  # readers see nothing
        assert store.count("customers", "2011-10") == 0  # and count nothing
        assert store.count_written("customers", "2011-10") == len(docs["customers"])
        assert store.db["runs"].find_one({"_id": "2011-10"})["status"] == "writing"
        _write(store, month_runs, "2011-10")
        assert [r["run_id"] for r in store.complete_runs()] == ["2011-10"]
        assert store.count("membership", "2011-10") == len(month_runs["2011-10"][1]["membership"])


def test_a_second_writer_for_the_same_month_is_refused_and_told_why(settings, month_runs):
    with stores.store_from(settings) as store:
        with store.lock("2011-10", owner="worker-a:1"):
            with pytest.raises(RunLockedError, match="run 2011-10 is being written by worker-a"):
                _write(store, month_runs, "2011-10")
            _write(store, month_runs, "2011-11")  # another month is not blocked
        _write(store, month_runs, "2011-10")  # released: now it works
        assert [r["run_id"] for r in store.complete_runs()] == ["2011-10", "2011-11"]


def test_a_lock_left_by_a_killed_writer_on_this_host_is_taken_over(settings, month_runs):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with stores.store_from(settings) as store:
        store.db["locks"].insert_one({"_id": "2011-10", "owner": f"{socket.gethostname()}:{dead}",
                                      "since": stores._now()})
        _write(store, month_runs, "2011-10")
        assert store.run("2011-10") is not None
        assert store.db["locks"].count_documents({}) == 0


def test_a_month_cannot_hold_a_customer_twice(settings, month_runs):
    with stores.store_from(settings) as store:
        _write(store, month_runs, "2011-10")
        doc = dict(store.db["customers"].find_one({"run_id": "2011-10"}))
        assert doc["_id"] == f"2011-10|{doc['customer_id']}"
        with pytest.raises(DuplicateKeyError):
            store.db["customers"].insert_one(doc)
        for name in stores.KEY_FIELDS:  # every collection keys its documents by run
            ids = [d["_id"] for d in store.db[name].find({"run_id": "2011-10"}, {"_id": 1})]
            assert len(ids) == len(set(ids)) == store.count(name, "2011-10")


def test_the_campaign_lists_are_the_runs_csv_and_a_rerun_replaces_them(settings, month_runs):
    """The month's campaigns collection holds campaigns.csv row for row (one list per
    customer); writing the month again with other lists leaves only those, and the store
    refuses a second document for the same customer and month."""
    from insiders.models.campaigns import LISTS

    with stores.store_from(settings) as store:
        for run_id in month_runs:
            _write(store, month_runs, run_id)
        for run_id, (_, docs) in month_runs.items():
            stored = sorted((d["customer_id"], d["list"], d["reason"])
                            for d in store.documents("campaigns", run_id))
            assert stored == sorted((d["customer_id"], d["list"], d["reason"])
                                    for d in docs["campaigns"])
            assert stored and {d[1] for d in stored} <= set(LISTS)
        run, docs = copy.deepcopy(month_runs["2011-11"])
        docs["campaigns"] = docs["campaigns"][:3]
        store.write_run(run, docs)
        assert sorted(d["customer_id"] for d in store.documents("campaigns", "2011-11")) == \
            sorted(d["customer_id"] for d in docs["campaigns"])
        assert store.count("campaigns", "2011-10") == len(month_runs["2011-10"][1]["campaigns"])
        twice = dict(store.db["campaigns"].find_one({"run_id": "2011-11"}, {"_id": 0}))
        with pytest.raises(DuplicateKeyError):  # the unique index, not only the _id
            store.db["campaigns"].insert_one({**twice, "list": "at_risk"})


def test_previous_members_come_from_the_latest_complete_earlier_run(settings, month_runs):
    with stores.store_from(settings) as store:
        _write(store, month_runs, "2011-10")
        expected = sorted(d["customer_id"] for d in month_runs["2011-10"][1]["customers"]
                          if d["is_insider"])
        assert store.previous_members("2011-11") == expected
        assert store.previous_members("2011-10") == []
        with pytest.raises(StoreError):  # incomplete: ignored
            _write(failing(store, "segments", "insert_many"), month_runs, "2011-11")
        assert store.count_written("customers", "2011-11") > 0
        assert store.previous_members("2011-12") == expected


def test_membership_flows_add_up_across_months(month_runs):
    """members(M) = entered + stayed; stayed + left = members(M-1)."""
    oct_run, oct_docs = month_runs["2011-10"]
    nov_run, nov_docs = month_runs["2011-11"]
    flows = nov_run["membership"]
    members_oct = sum(d["is_insider"] for d in oct_docs["customers"])
    members_nov = sum(d["is_insider"] for d in nov_docs["customers"])
    assert flows["members"] == members_nov == flows["entered"] + flows["stayed"]
    assert flows["stayed"] + flows["left"] == members_oct
    statuses = {d["customer_id"]: d["status"] for d in nov_docs["membership"]}
    was = {d["customer_id"] for d in oct_docs["customers"] if d["is_insider"]}
    now = {d["customer_id"] for d in nov_docs["customers"] if d["is_insider"]}
    assert {c for c, s in statuses.items() if s == "stayed"} == was & now
    assert {c for c, s in statuses.items() if s == "entered"} == now - was
    assert {c for c, s in statuses.items() if s == "left"} == was - now


def test_the_embedded_store_persists_across_processes(tmp_path, month_runs):
    """Every Airflow task is its own process: what one writes, the next one reads."""
    home = tmp_path / "home"
    run, docs = month_runs["2011-10"]
    payload = tmp_path / "run.json"
    payload.write_text(json.dumps({"run": run, "docs": docs}, default=str))
    code = (
        "import json, sys; from insiders import stores; from insiders.config import Settings\n"
        f"data = json.load(open({str(payload)!r}))\n"
        f"with stores.store_from(Settings(home={str(home)!r})) as s:\n"
        "    s.write_run(data['run'], data['docs'])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    with stores.store_from(Settings(home=home)) as store:
        assert [r["run_id"] for r in store.complete_runs()] == ["2011-10"]
        assert store.count("customers", "2011-10") == len(docs["customers"])


def test_processes_opening_a_fresh_embedded_store_at_once_all_succeed(tmp_path):
    """A task creating the store while the dashboard or a second task opens it: each
    collection file is initialised once, and nobody fails."""
    home = tmp_path / "home"
    code = ("from insiders import stores; from insiders.config import Settings\n"
            f"with stores.store_from(Settings(home={str(home)!r})) as s:\n"
            "    print(s.db['runs'].count_documents({}))\n")
    for _ in range(3):  # the race hits a fresh store only: a new one each round
        shutil.rmtree(home, ignore_errors=True)
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        assert [(rc, out.strip()) for rc, out, _ in results] == [(0, "0")] * 6, \
            [err[-300:] for _, _, err in results if err]


def test_the_package_creates_the_same_indexes_as_mongo_init():
    spec = json.loads((ROOT / "mongo-init" / "indexes.json").read_text())
    assert spec == stores.INDEXES


def test_documents_pass_the_mongodb_validators(month_runs):
    """What the DAG writes is what mongo-init's $jsonSchema validators accept."""
    from test_mongo_validators import load_validators, validate_document

    validators = load_validators()
    for run_id, (run, docs) in month_runs.items():
        full = {**run, "_id": run_id, "status": "complete", "version": "v",
                "started_at": stores._now(), "completed_at": stores._now()}
        assert validate_document(_schema(validators["runs"]), full) == []
        for name, items in docs.items():
            schema = _schema(validators[name])
            for doc in items:
                problems = validate_document(schema, {**doc, "run_id": run_id})
                assert problems == [], (name, doc, problems)


def _schema(validator: dict) -> dict:
    return validator.get("$jsonSchema", validator)


def test_a_damaged_embedded_store_is_a_clear_error(tmp_path):
    folder = tmp_path / "home" / "documents"
    folder.mkdir(parents=True)
    (folder / "insiders.sqlite").write_bytes(b"not a database, " * 512)
    with pytest.raises(StoreError, match=r"cannot open the embedded store .*insiders\.sqlite: "
                                         r"DatabaseError: file is not a database"):
        stores.open_store(Settings(home=tmp_path / "home"))


def test_an_unreachable_mongodb_is_a_clear_error(tmp_path):
    settings = Settings(home=tmp_path,
                        mongo_uri="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300")
    with pytest.raises(StoreError, match="cannot reach the document store mongodb://127.0.0.1:9"):
        stores.open_store(settings)


# --------------------------------------------------------------------------- the lock's lease

def test_a_lock_from_another_host_is_taken_over_once_its_lease_expired(settings, month_runs):
    """A holder on another host cannot be checked for life: its lease decides."""
    with stores.store_from(settings.with_(lock_lease_seconds=60)) as store:
        now = stores._now()
        store.db["locks"].insert_one({"_id": "2011-10", "owner": "elsewhere:4242",
                                      "since": now, "renewed_at": now,
                                      "expires": now + dt.timedelta(seconds=60)})
        with pytest.raises(RunLockedError, match=r"being written by elsewhere:4242 since .* "
                                                  r"\(lease until "):
            _write(store, month_runs, "2011-10")
        store.db["locks"].replace_one({"_id": "2011-10"}, {
            "owner": "elsewhere:4242", "since": now - dt.timedelta(minutes=5),
            "renewed_at": now - dt.timedelta(minutes=3), "expires": now - dt.timedelta(seconds=1)})
        _write(store, month_runs, "2011-10")  # expired: taken over
        assert store.run("2011-10") is not None
        assert store.db["locks"].count_documents({}) == 0


def test_the_holder_renews_its_lease_while_it_writes(settings):
    """A lease of 1 s held for 2.5 s is renewed every 0.25 s: nobody may take it over."""
    with stores.store_from(settings.with_(lock_lease_seconds=1)) as store:
        with store.lock("2011-10", owner="elsewhere:1") as lease:
            first = store.db["locks"].find_one({"_id": "2011-10"})
            time.sleep(2.5)
            held = store.db["locks"].find_one({"_id": "2011-10"})
            assert lease.renewals >= 4
            assert held["expires"] > first["expires"] and held["since"] == first["since"]
            with pytest.raises(RunLockedError, match="being written by elsewhere:1"):
                with store.lock("2011-10", owner="elsewhere:2"):
                    pass
        assert store.db["locks"].count_documents({}) == 0


def test_a_writer_whose_lease_was_taken_over_does_not_mark_the_run_complete(settings,
                                                                              month_runs):
    """The writer stalled past its lease and another took the month over: the stalled one
    must not then mark the month complete over the new writer's work."""
    with stores.store_from(settings.with_(lock_lease_seconds=1)) as store:
        def take_over():
            store.db["locks"].replace_one({"_id": "2011-10"}, {
                "owner": "elsewhere:9", "since": stores._now(),
                "renewed_at": stores._now(),
                "expires": stores._now() + dt.timedelta(minutes=5)})
            time.sleep(0.6)  # the heartbeat (every 0.25 s) notices

        stalled = failing(store, "segments", "delete_many", before_failing=take_over,
                          stall_only=True)
        with pytest.raises(RunLockedError, match="lock expired and another writer took it over"):
            _write(stalled, month_runs, "2011-10")
        assert store.run("2011-10") is None
        assert store.db["locks"].find_one({"_id": "2011-10"})["owner"] == "elsewhere:9"


# --------------------------------------------------------------------------- what failed

def test_an_index_conflict_is_named_not_reported_as_unreachable(settings):
    with stores.store_from(settings) as store:
        store.db["customers"].drop()
        store.db["customers"].create_index([("customer_id", 1)], name="run_customer")
    with pytest.raises(StoreError) as error:
        stores.open_store(settings)
    message = str(error.value)
    assert "index run_customer conflicts with an existing index" in message
    assert "cannot reach" not in message
