"""The embedded store's pymongo subset behaves as a MongoDB server does.

Each test runs on the embedded store and, when one is configured (CI), on a MongoDB-compatible
server: the same calls must give the same answers, errors included.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid

import pymongo
import pytest
from insiders.stores.embedded import EmbeddedClient
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure
from test_documents import mongo_uri_or_skip


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.mongo)])
def db(request, tmp_path):
    if request.param == "embedded":
        client = EmbeddedClient(tmp_path / "documents")
        yield client["insiders"]
        client.close()
        return
    uri = mongo_uri_or_skip()
    name = f"insiders_embedded_{uuid.uuid4().hex[:8]}"
    client = pymongo.MongoClient(uri, tz_aware=False)
    yield client[name]
    client.drop_database(name)
    client.close()


def _fill(col) -> None:
    col.insert_many([
        {"_id": "a", "run_id": "2011-10", "n": 1, "flag": True, "tags": ["x", "y"],
         "f": {"g": 5}, "when": dt.datetime(2011, 10, 1, 12, 30, 15, 123000)},
        {"_id": "b", "run_id": "2011-10", "n": 2, "flag": False, "tags": ["y"], "f": {"g": 7}},
        {"_id": "c", "run_id": "2011-11", "n": 3.5, "flag": True, "f": {"g": None},
         "nan": math.nan, "big": 2**40},
        {"_id": "d", "run_id": "2011-11", "n": "3", "flag": 1},
    ])


def _ids(cursor) -> list[str]:
    return sorted(d["_id"] for d in cursor)


@pytest.mark.parametrize(("query", "expected"), [
    ({}, ["a", "b", "c", "d"]),
    ({"run_id": "2011-10"}, ["a", "b"]),
    ({"_id": "c"}, ["c"]),
    ({"_id": {"$in": ["a", "d", "zz"]}}, ["a", "d"]),
    ({"run_id": "2011-11", "flag": True}, ["c"]),  # True is not 1
    ({"flag": 1}, ["d"]),
    ({"n": 3}, []),  # "3" is not 3
    ({"n": {"$gt": 1}}, ["b", "c"]),  # numbers only, int and float together
    ({"n": {"$gte": 1, "$lt": 3}}, ["a", "b"]),
    ({"n": {"$ne": 2}}, ["a", "c", "d"]),
    ({"n": {"$in": [1, "3"]}}, ["a", "d"]),
    ({"n": {"$nin": [1, "3"]}}, ["b", "c"]),
    ({"tags": "y"}, ["a", "b"]),  # an array matches any of its items
    ({"f.g": 7}, ["b"]),
    ({"f.g": None}, ["c", "d"]),  # null matches a null and a missing field
    ({"nan": {"$exists": True}}, ["c"]),
    ({"tags": {"$exists": False}}, ["c", "d"]),
    ({"$or": [{"n": 1}, {"run_id": "2011-11", "flag": 1}]}, ["a", "d"]),
    ({"$and": [{"run_id": "2011-10"}, {"n": {"$lte": 1}}]}, ["a"]),
])
def test_filters_select_what_a_server_selects(db, query, expected):
    col = db["things"]
    _fill(col)
    assert _ids(col.find(query)) == expected
    assert col.count_documents(query) == len(expected)


def test_values_come_back_as_stored(db):
    col = db["things"]
    _fill(col)
    a = col.find_one({"_id": "a"})
    assert a["when"] == dt.datetime(2011, 10, 1, 12, 30, 15, 123000) and a["when"].tzinfo is None
    c = col.find_one({"_id": "c"})
    assert math.isnan(c["nan"]) and c["big"] == 2**40 and c["n"] == 3.5
    assert list(a) == ["_id", "run_id", "n", "flag", "tags", "f", "when"]  # field order kept
    assert col.find_one({"_id": "a"}, {"_id": 0, "n": 1}) == {"n": 1}
    assert col.find_one({"_id": "b"}, {"f": 0, "tags": 0, "_id": 0}) == {
        "run_id": "2011-10", "n": 2, "flag": False}
    assert col.find_one({"_id": "nope"}) is None
    assert list(db["never_written"].find({})) == []
    assert db["never_written"].count_documents({}) == 0


def test_unique_indexes_refuse_duplicates_like_a_server(db):
    col = db["customers"]
    col.create_index([("run_id", 1), ("customer_id", 1)], name="run_customer", unique=True)
    col.insert_one({"_id": "1", "run_id": "r", "customer_id": "17850"})
    with pytest.raises(DuplicateKeyError):
        col.insert_one({"_id": "2", "run_id": "r", "customer_id": "17850"})
    with pytest.raises(DuplicateKeyError):
        col.insert_one({"_id": "1", "run_id": "other", "customer_id": "x"})
    col.insert_one({"_id": "3", "run_id": "s", "customer_id": "17850"})  # another run: fine
    with pytest.raises(BulkWriteError) as bulk:  # ordered: stops at the duplicate
        col.insert_many([{"_id": "4", "run_id": "t", "customer_id": "1"},
                         {"_id": "5", "run_id": "r", "customer_id": "17850"},
                         {"_id": "6", "run_id": "t", "customer_id": "2"}])
    assert bulk.value.details["nInserted"] == 1
    assert [e["code"] for e in bulk.value.details["writeErrors"]] == [11000]
    assert _ids(col.find({})) == ["1", "3", "4"]
    with pytest.raises(DuplicateKeyError):  # a replace may not break it either
        col.replace_one({"_id": "3"}, {"run_id": "r", "customer_id": "17850"})
    assert col.find_one({"_id": "3"})["run_id"] == "s"  # and the old document stays whole
    col.delete_many({"run_id": "r"})
    col.insert_one({"_id": "7", "run_id": "r", "customer_id": "17850"})  # freed by the delete


def test_an_index_of_the_same_name_with_other_keys_is_refused(db):
    col = db["customers"]
    assert col.create_index([("run_id", 1), ("customer_id", 1)], name="run_customer",
                            unique=True) == "run_customer"
    assert col.create_index([("run_id", 1), ("customer_id", 1)], name="run_customer",
                            unique=True) == "run_customer"  # the same again: a no-op
    with pytest.raises(OperationFailure) as error:
        col.create_index([("customer_id", 1)], name="run_customer")
    assert error.value.code in (85, 86)
    with pytest.raises(BulkWriteError):  # missing fields index as null: one such document
        col.insert_many([{"_id": 1, "k": "x"}, {"_id": 2, "k": "x"}])
    other = db["other"]
    other.insert_many([{"_id": 1, "k": "x"}, {"_id": 2, "k": "x"}])
    with pytest.raises(DuplicateKeyError):  # a unique index over duplicates cannot be built
        other.create_index([("k", 1)], name="k_unique", unique=True)
    other.insert_one({"_id": 3, "k": "x"})  # and is not left half-built


def test_replace_and_upsert(db):
    col = db["runs"]
    result = col.replace_one({"_id": "2011-11"}, {"status": "writing"}, upsert=True)
    assert result.upserted_id == "2011-11" and result.matched_count == 0
    result = col.replace_one({"_id": "2011-11", "status": "writing"},
                             {"_id": "2011-11", "status": "complete"})
    assert result.matched_count == 1 and result.upserted_id is None
    assert col.find_one({"_id": "2011-11"}) == {"_id": "2011-11", "status": "complete"}
    assert col.replace_one({"_id": "2011-11", "status": "writing"}, {"x": 1}).matched_count == 0
    with pytest.raises(OperationFailure):  # _id is immutable
        col.replace_one({"_id": "2011-11"}, {"_id": "2011-12", "status": "x"})
    assert col.delete_many({"_id": "2011-11"}).deleted_count == 1
    assert col.count_documents({}) == 0


def test_an_operator_it_does_not_know_is_refused_not_ignored(tmp_path):
    client = EmbeddedClient(tmp_path)
    col = client["insiders"]["things"]
    _fill(col)
    with pytest.raises(OperationFailure, match=r"unknown operator: \$regex"):
        list(col.find({"run_id": {"$regex": "^2011"}}))
    with pytest.raises(OperationFailure, match=r"\$where"):
        col.count_documents({"$where": "true"})
    client.close()
