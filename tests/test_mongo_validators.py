"""The MongoDB validators accept the documents the DAG writes and reject the ones it must not.

mongo-init/validators.json holds one `$jsonSchema` per collection; mongo-init/10-insiders.js
installs them (and mongo-init/indexes.json) when the mongo container first starts. Most
tests here need no server: `validate_document` re-implements the part of `$jsonSchema` the
validators use, and refuses any keyword it does not implement: a validator can never rely on
something this checker silently skips. The init script also runs under Node with a stand-in
for mongosh's `db`, to prove it creates exactly what the JSON files describe. With a
MongoDB-compatible server (CI), the last test checks that the server agrees with the checker,
and tests/test_mongo_server.py runs the init script through the real mongosh.

`validate_document` is importable: tests of the pipeline check the real documents with it.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
MONGO_INIT = ROOT / "mongo-init"
COLLECTIONS = ("runs", "customers", "segments", "membership", "forecasts", "stability",
               "campaigns")

# Keywords MongoDB's $jsonSchema supports that this checker implements; anything else in a
# validator fails the tests until the checker learns it.
_ANNOTATIONS = {"description", "title"}
_KEYWORDS = _ANNOTATIONS | {
    "bsonType", "required", "properties", "additionalProperties", "enum", "items",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "minLength",
    "maxLength", "minItems", "maxItems", "anyOf", "allOf", "oneOf", "not",
}
BSON_TYPES = {
    "double", "string", "object", "array", "binData", "objectId", "bool", "date", "null",
    "regex", "int", "timestamp", "long", "decimal", "minKey", "maxKey", "number",
}
_NUMBER = {"int", "long", "double", "decimal"}


def load_validators() -> dict[str, dict]:
    """Collection name -> its `$jsonSchema`, as mongo-init/10-insiders.js installs it."""
    raw = json.loads((MONGO_INIT / "validators.json").read_text(encoding="utf-8"))
    return {name: validator["$jsonSchema"] for name, validator in raw.items()}


def load_indexes() -> dict[str, list[dict]]:
    return json.loads((MONGO_INIT / "indexes.json").read_text(encoding="utf-8"))


def bson_type(value: Any) -> str:
    """The BSON type name pymongo gives `value` once stored (and read back)."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "bool"
    try:  # pymongo is a dependency of the package, but keep the checker usable without it
        from bson import Decimal128, Int64, ObjectId
    except ImportError:  # pragma: no cover
        Decimal128 = Int64 = ObjectId = ()  # noqa: N806
    if Int64 and isinstance(value, Int64):
        return "long"
    if isinstance(value, int):
        return "int" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Decimal) or (Decimal128 and isinstance(value, Decimal128)):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dt.datetime):
        return "date"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if ObjectId and isinstance(value, ObjectId):
        return "objectId"
    if isinstance(value, bytes):
        return "binData"
    return type(value).__name__


def _number(value: Any) -> float | None:
    kind = bson_type(value)
    if kind not in _NUMBER:
        return None
    return float(value.to_decimal() if hasattr(value, "to_decimal") else value)


def _same(a: Any, b: Any) -> bool:
    # enum compares by value and type: True must not match 1, nor "1" match 1.
    return a == b and (bson_type(a) in _NUMBER) == (bson_type(b) in _NUMBER) and \
        isinstance(a, bool) == isinstance(b, bool)


def validate_document(schema: dict, doc: Any, path: str = "$") -> list[str]:
    """Problems of `doc` against a MongoDB `$jsonSchema` (empty list = MongoDB accepts it)."""
    problems: list[str] = []
    unknown = set(schema) - _KEYWORDS
    if unknown:
        return [f"{path}: validator uses keywords this checker does not know: {sorted(unknown)}"]

    if "bsonType" in schema:
        wanted = schema["bsonType"]
        wanted = {wanted} if isinstance(wanted, str) else set(wanted)
        if "number" in wanted:
            wanted |= _NUMBER
        actual = bson_type(doc)
        if actual not in wanted:
            problems.append(f"{path}: is {actual}, expected {sorted(wanted)}")
            return problems

    if "enum" in schema and not any(_same(doc, choice) for choice in schema["enum"]):
        problems.append(f"{path}: {doc!r} is not one of {schema['enum']}")

    if isinstance(doc, str):
        if "pattern" in schema and not re.search(schema["pattern"], doc):
            problems.append(f"{path}: {doc!r} does not match {schema['pattern']}")
        if "minLength" in schema and len(doc) < schema["minLength"]:
            problems.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(doc) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']}")

    number = _number(doc)
    if number is not None:
        if "minimum" in schema:
            low = schema["minimum"]
            if number < low or (schema.get("exclusiveMinimum") and number == low):
                problems.append(f"{path}: {doc!r} is below the minimum {low}")
        if "maximum" in schema:
            high = schema["maximum"]
            if number > high or (schema.get("exclusiveMaximum") and number == high):
                problems.append(f"{path}: {doc!r} is above the maximum {high}")

    if isinstance(doc, dict):
        for key in schema.get("required", []):
            if key not in doc:
                problems.append(f"{path}: missing required field {key!r}")
        properties = schema.get("properties", {})
        for key, value in doc.items():
            if key in properties:
                problems += validate_document(properties[key], value, f"{path}.{key}")
            else:
                extra = schema.get("additionalProperties", True)
                if extra is False:
                    problems.append(f"{path}: unexpected field {key!r}")
                elif isinstance(extra, dict):
                    problems += validate_document(extra, value, f"{path}.{key}")

    if isinstance(doc, list | tuple):
        if "minItems" in schema and len(doc) < schema["minItems"]:
            problems.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(doc) > schema["maxItems"]:
            problems.append(f"{path}: more than {schema['maxItems']} items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(doc):
                problems += validate_document(schema["items"], item, f"{path}[{i}]")
        elif "items" in schema:
            problems.append(f"{path}: tuple-style `items` is not supported by this checker")

    for sub in schema.get("allOf", []):
        problems += validate_document(sub, doc, path)
    if "anyOf" in schema and all(validate_document(s, doc, path) for s in schema["anyOf"]):
        problems.append(f"{path}: matches none of anyOf")
    if "oneOf" in schema:
        matches = sum(not validate_document(s, doc, path) for s in schema["oneOf"])
        if matches != 1:
            problems.append(f"{path}: matches {matches} of oneOf, expected exactly 1")
    if "not" in schema and not validate_document(schema["not"], doc, path):
        problems.append(f"{path}: matches the `not` schema")
    return problems


# --- realistic documents, following docs/contracts.md ------------------------------------

FEATURES = {
    "recency_days": 12.0, "frequency": 9, "monetary": 4210.55, "avg_ticket": 467.84,
    "basket_size": 183.2, "basket_variety": 24.5, "avg_days_between": 31.4,
    "purchases_per_month": 0.75, "tenure_days": 351.0, "return_rate": 0.02,
    "revenue_90d": 1320.4,
}


def example_documents() -> dict[str, list[dict]]:
    """Several realistic documents per collection, as the DAG writes them."""
    started = dt.datetime(2011, 12, 2, 3, 0, 5)
    writing = {
        "_id": "2011-11", "run_id": "2011-11", "as_of": dt.datetime(2011, 12, 1),
        "period_start": dt.datetime(2010, 12, 1), "source": "/opt/airflow/data/online_retail.xlsx",
        "status": "writing", "version": "0.1.0+abc1234", "started_at": started,
    }
    complete = {
        **writing, "status": "complete", "completed_at": started + dt.timedelta(minutes=4),
        "timings": {"extract": 12.5, "quality": 3.1, "features": 4.0, "segment": 61.2},
        "data_quality": {"rows_in": 541909, "rows_kept": 397884,
                         "set_aside": {"missing_customer": 135080, "bad_price": 2517}},
        "model": {"chosen": "kmeans k=5", "why": "best silhouette among useful candidates",
                  "candidates": [{"algorithm": "kmeans", "k": 5, "silhouette": 0.41,
                                  "useful": True, "chosen": True}]},
        "answers": {"who": "the 12% of customers expected to bring half of next revenue",
                    "how_many": 521},
        "counts": {"customers": 4338, "segments": 5, "membership": 4402, "forecasts": 30},
    }
    as_strings = {**complete, "_id": "2012-01", "run_id": "2012-01", "as_of": "2012-02-01",
                  "period_start": "2011-02-01", "source": None}
    customer = {
        "run_id": "2011-11", "customer_id": "12347", "country": "Iceland", "segment": 2,
        "persona": "Loyal big spenders", "is_insider": True, "expected_value": 1730.25,
        "value_rank": 14, "features": dict(FEATURES),
    }
    newcomer = {
        **customer, "customer_id": "18287", "country": None, "segment": 0,
        "persona": "Newcomers", "is_insider": False, "expected_value": 0.0, "value_rank": 4338,
        "features": {**FEATURES, "frequency": 1, "avg_days_between": None,
                     "monetary": 2**40 / 1e6, "tenure_days": 3},
        "extra_field_added_later": {"anything": 1},
    }
    segment = {
        "run_id": "2011-11", "segment": 2, "persona": "Loyal big spenders",
        "description": "Buy often, spend a lot, rarely return anything.",
        "action": "Invite to the Insiders program first.", "customers": 612, "share": 0.141,
        "insiders": 433, "revenue": 3_512_904.2, "revenue_share": 0.42,
        "profile": {"recency_days": 21.5, "frequency": 11.2, "monetary": 5740.1},
    }
    membership = [
        {"run_id": "2011-11", "customer_id": "12347", "status": status,
         "reason": reason, "expected_value": value}
        for status, reason, value in [
            ("entered", "expected value in the top group", 1730.25),
            ("stayed", "still within 1.5x the entry size", 990.0),
            ("left", "fell below the exit line", 12),
            ("outside", "not in the top group", None),
        ]
    ]
    forecasts = [
        {"run_id": "2011-11", "month": "2011-10-01", "kind": "actual", "revenue": 1_039_318.8,
         "lower": None, "upper": None},
        {"run_id": "2011-11", "month": "2011-12-01", "kind": "forecast", "revenue": 1.1e6,
         "lower": 9.5e5, "upper": 1.25e6},
        {"run_id": "2011-11", "month": "2011-06-01", "kind": "backtest_forecast",
         "revenue": 710_000, "lower": 650_000.0, "upper": 770_000.0},
        {"run_id": "2011-11", "month": "2011-06-01", "kind": "backtest_naive",
         "revenue": 690_500.5},
    ]
    stability = [
        {"run_id": "2011-11", "months_since_fit": 0, "ari": 1.0, "threshold": 0.8},
        {"run_id": "2011-11", "months_since_fit": 3, "ari": 0.74, "threshold": 0.8},
        {"run_id": "2011-11", "months_since_fit": 6, "ari": None, "threshold": 0.8},
    ]
    campaigns = [
        {"run_id": "2011-11", "customer_id": "12347", "list": "welcome",
         "reason": "entered the Insiders this month", "expected_value": 1730.25,
         "churn_risk": 0.12, "churn_band": "Low", "value_rank": 14},
        {"run_id": "2011-11", "customer_id": "14911", "list": "at_risk",
         "reason": "high churn risk: no purchase expected in the next 90 days",
         "expected_value": 880.0, "churn_risk": 0.71, "churn_band": "High", "value_rank": 190},
        {"run_id": "2011-11", "customer_id": "15311", "list": "next_in_line",
         "reason": "just below the entry line: 1,203 GBP short of it", "expected_value": 402,
         "churn_risk": 0.3, "churn_band": "Low", "value_rank": 260},
        # a member with no line at all in the period: no rank, no prediction
        {"run_id": "2011-11", "customer_id": "17850", "list": "win_back",
         "reason": "left the Insiders this month: no purchase in the analysed period",
         "expected_value": 0.0, "churn_risk": None, "churn_band": None, "value_rank": 0},
    ]
    return {
        "runs": [writing, complete, as_strings],
        "customers": [customer, newcomer],
        "segments": [segment, {**segment, "segment": 0, "revenue_share": None}],
        "membership": membership,
        "forecasts": forecasts,
        "stability": stability,
        "campaigns": campaigns,
    }


def _wrong_value(schema: dict) -> Any:
    """A value of a BSON type (or enum member) that `schema` does not allow."""
    if "enum" in schema:
        return "not-a-listed-value"
    allowed = schema.get("bsonType", [])
    allowed = {allowed} if isinstance(allowed, str) else set(allowed)
    for candidate in ("text", 7, 2.5, True, {"a": 1}, [1], None, dt.datetime(2011, 1, 1)):
        if bson_type(candidate) not in allowed and not (allowed & _NUMBER and
                                                        bson_type(candidate) in _NUMBER):
            return candidate
    raise AssertionError(f"no wrong value for {schema}")


def _roundtrip(doc: dict) -> dict:
    """What MongoDB stores and hands back, types included (int64 -> Int64, ...)."""
    bson = pytest.importorskip("bson")
    return bson.decode(bson.encode(doc))


# --- the validators -----------------------------------------------------------------------


def test_every_collection_has_a_validator_and_indexes() -> None:
    assert set(load_validators()) == set(COLLECTIONS)
    assert set(load_indexes()) == set(COLLECTIONS)


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_validators_only_use_keywords_mongodb_supports(collection: str) -> None:
    def walk(schema: Any, where: str) -> None:
        assert isinstance(schema, dict), where
        assert set(schema) <= _KEYWORDS, f"{where}: {set(schema) - _KEYWORDS}"
        kinds = schema.get("bsonType", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        assert set(kinds) <= BSON_TYPES, f"{where}: unknown bsonType {kinds}"
        assert "type" not in schema, f"{where}: use bsonType, not JSON Schema's type"
        for key, sub in schema.get("properties", {}).items():
            walk(sub, f"{where}.{key}")
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], f"{where}[]")

    schema = load_validators()[collection]
    walk(schema, collection)
    assert schema["bsonType"] == "object"
    assert "run_id" in schema["required"], "every document carries run_id (docs/contracts.md)"
    # Documents may grow: new fields must not be rejected.
    assert schema.get("additionalProperties", True) is not False


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_examples_pass(collection: str) -> None:
    schema = load_validators()[collection]
    for doc in example_documents()[collection]:
        assert validate_document(schema, doc) == [], doc
        assert validate_document(schema, _roundtrip(doc)) == [], doc


def _required_paths(schema: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key in schema.get("required", []):
        paths.append((*prefix, key))
        sub = schema.get("properties", {}).get(key, {})
        if sub.get("bsonType") == "object":
            paths += _required_paths(sub, (*prefix, key))
    return paths


def _edit(doc: dict, path: tuple[str, ...], change: Callable[[dict, str], None]) -> dict:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    change(target, path[-1])
    return doc


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_a_missing_key_field_is_rejected(collection: str) -> None:
    schema = load_validators()[collection]
    doc = example_documents()[collection][0]
    paths = _required_paths(schema)
    assert paths
    for path in paths:
        broken = _edit(doc, path, lambda d, k: d.pop(k))
        problems = validate_document(schema, broken)
        assert any(repr(path[-1]) in p for p in problems), (path, problems)


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_a_key_field_of_the_wrong_type_is_rejected(collection: str) -> None:
    schema = load_validators()[collection]
    doc = example_documents()[collection][0]
    for path in _required_paths(schema):
        sub = schema
        for key in path:
            sub = sub["properties"][key]
        wrong = _wrong_value(sub)
        broken = _edit(doc, path, lambda d, k, wrong=wrong: d.__setitem__(k, wrong))
        assert validate_document(schema, broken), (path, wrong)


BREAKING = [
        ("runs", {"status": "done"}),
        ("runs", {"run_id": "2011-13"}),
        ("runs", {"_id": "2011-11-01"}),
        ("runs", {"as_of": 20111201}),
        ("runs", {"counts": {"customers": -1}}),
        ("customers", {"customer_id": 12347}),
        ("customers", {"customer_id": ""}),
        ("customers", {"is_insider": "yes"}),
        ("customers", {"is_insider": 1}),
        ("customers", {"segment": 2.0}),
        ("customers", {"value_rank": 0}),
        ("customers", {"expected_value": "1730.25"}),
        ("segments", {"share": -0.1}),
        ("segments", {"customers": "612"}),
        ("membership", {"status": "joined"}),
        ("membership", {"expected_value": "high"}),
        ("forecasts", {"kind": "prediction"}),
        ("forecasts", {"month": "2011-12"}),
        ("forecasts", {"month": dt.datetime(2011, 12, 1)}),
        ("forecasts", {"revenue": "1e6"}),
        ("stability", {"months_since_fit": -1}),
        ("stability", {"months_since_fit": 1.5}),
        ("stability", {"threshold": None}),
        ("campaigns", {"list": "vip"}),
        ("campaigns", {"customer_id": 12347}),
        ("campaigns", {"reason": ""}),
        ("campaigns", {"churn_risk": 1.5}),
        ("campaigns", {"churn_band": "high"}),
        ("campaigns", {"value_rank": -1}),
        ("campaigns", {"expected_value": "1730.25"}),
]


@pytest.mark.parametrize(("collection", "changes"), BREAKING)
def test_contract_breaking_values_are_rejected(collection: str, changes: dict) -> None:
    doc = {**example_documents()[collection][0], **changes}
    assert validate_document(load_validators()[collection], doc), changes


def test_a_customer_without_features_is_rejected() -> None:
    schema = load_validators()["customers"]
    doc = copy.deepcopy(example_documents()["customers"][0])
    del doc["features"]["monetary"]
    assert any("monetary" in p for p in validate_document(schema, doc))
    doc["features"] = "rfm"
    assert validate_document(schema, doc)


def test_the_checker_refuses_keywords_it_does_not_implement() -> None:
    assert validate_document({"bsonType": "object", "dependencies": {}}, {})
    assert validate_document({"bsonType": "string", "format": "email"}, "a@b.c")


def test_checker_knows_bson_number_types() -> None:
    bson = pytest.importorskip("bson")
    schema = {"bsonType": ["int", "long", "double", "decimal"]}
    for value in (1, 2**40, bson.Int64(3), 1.5, Decimal("1.5"), bson.Decimal128("2.5")):
        assert validate_document(schema, value) == [], value
    for value in (True, "1", None):
        assert validate_document(schema, value), value


# --- the indexes --------------------------------------------------------------------------

UNIQUE_KEYS = {
    "customers": ["run_id", "customer_id"],
    "membership": ["run_id", "customer_id"],
    "segments": ["run_id", "segment"],
    "forecasts": ["run_id", "month", "kind"],
    "stability": ["run_id", "months_since_fit"],
    "campaigns": ["run_id", "customer_id"],
}


@pytest.mark.parametrize(("collection", "fields"), sorted(UNIQUE_KEYS.items()))
def test_the_store_relies_on_these_unique_indexes(collection: str, fields: list[str]) -> None:
    specs = load_indexes()[collection]
    assert any(
        spec.get("unique") and list(spec["key"]) == fields and set(spec["key"].values()) == {1}
        for spec in specs
    ), specs


def test_runs_are_indexed_by_status() -> None:
    assert any(next(iter(spec["key"])) == "status" for spec in load_indexes()["runs"])


def test_index_specs_are_well_formed() -> None:
    for collection, specs in load_indexes().items():
        names = [spec["name"] for spec in specs]
        assert len(names) == len(set(names)), collection
        for spec in specs:
            assert set(spec) <= {"key", "name", "unique"}, spec
            assert spec["key"] and all(v in (1, -1) for v in spec["key"].values()), spec
            properties = load_validators()[collection]["properties"]
            assert set(spec["key"]) <= set(properties), (collection, spec)


# --- the init script, under Node with a stand-in for mongosh ------------------------------

_HARNESS = r"""
const vm = require('vm');
const fs = require('fs');
const [script, existing] = process.argv.slice(2);
const calls = {db: null, created: {}, collMod: [], indexes: [], roles: [], users: [], prints: []};
const has = existing === 'existing';
const names = has ? JSON.parse(fs.readFileSync(process.env.INSIDERS_MONGO_INIT_DIR +
  '/validators.json', 'utf8')) : {};
const db = {
  getSiblingDB(name) { calls.db = name; return db; },
  getCollectionNames() { return Object.keys(names); },
  createCollection(name, options) { calls.created[name] = options; return {ok: 1}; },
  runCommand(command) { calls.collMod.push(command); return {ok: 1}; },
  getCollection(name) {
    return {createIndex(key, options) {
      calls.indexes.push({collection: name, key: Object.entries(key), options});
      return options.name;
    }};
  },
  getRole(name) { return has ? {role: name} : null; },
  createRole(role) { calls.roles.push({op: 'create', ...role}); },
  updateRole(name, update) { calls.roles.push({op: 'update', role: name, ...update}); },
  getUser(name) { return has ? {user: name} : null; },
  createUser(user) { calls.users.push({op: 'create', ...user}); },
  updateUser(name, update) { calls.users.push({op: 'update', user: name, ...update}); },
};
const context = {db, require, process, print: (...a) => calls.prints.push(a.join(' '))};
vm.runInNewContext(fs.readFileSync(script, 'utf8'), context, {filename: script});
process.stdout.write(JSON.stringify(calls));
"""

ALLOWED_ACTIONS = {
    "find", "insert", "update", "remove", "createCollection", "createIndex",
    "listCollections", "listIndexes",
}


def _run_init(tmp_path: Path, env: dict[str, str], existing: bool = False):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot run mongo-init/10-insiders.js here")
    harness = tmp_path / "harness.js"
    harness.write_text(_HARNESS, encoding="utf-8")
    return subprocess.run(
        [node, str(harness), str(MONGO_INIT / "10-insiders.js"),
         "existing" if existing else "fresh"],
        env={"PATH": os.environ.get("PATH", ""), "INSIDERS_MONGO_INIT_DIR": str(MONGO_INIT),
             **env},
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_init_script_creates_what_the_json_files_describe(tmp_path: Path) -> None:
    password = os.urandom(12).hex()
    result = _run_init(tmp_path, {"INSIDERS_MONGO_PASSWORD": password})
    assert result.returncode == 0, result.stderr
    calls = json.loads(result.stdout)
    assert calls["db"] == "insiders"

    raw_validators = json.loads((MONGO_INIT / "validators.json").read_text(encoding="utf-8"))
    assert set(calls["created"]) == set(raw_validators)
    for name, options in calls["created"].items():
        assert options["validator"] == raw_validators[name]
        assert options["validationAction"] == "error"
        assert options["validationLevel"] == "strict"

    wanted = [
        (collection, list(map(list, spec["key"].items())), spec["name"], bool(spec.get("unique")))
        for collection, specs in load_indexes().items() for spec in specs
    ]
    made = [
        (i["collection"], i["key"], i["options"]["name"], i["options"]["unique"])
        for i in calls["indexes"]
    ]
    assert made == wanted

    [role] = calls["roles"]
    assert role["op"] == "create" and role["roles"] == []
    actions = {a for p in role["privileges"] for a in p["actions"]}
    assert {"find", "insert", "update", "remove"} <= actions <= ALLOWED_ACTIONS
    assert all(p["resource"] == {"db": "insiders", "collection": ""}
               for p in role["privileges"])

    [user] = calls["users"]
    assert user["user"] == "insiders_app" and user["pwd"] == password
    assert user["roles"] == [{"role": role["role"], "db": "insiders"}]
    assert not any(password in line for line in calls["prints"])


def test_init_script_can_run_again(tmp_path: Path) -> None:
    result = _run_init(tmp_path, {"INSIDERS_MONGO_PASSWORD": os.urandom(12).hex(),
                                  "INSIDERS_MONGO_USER": "app"}, existing=True)
    assert result.returncode == 0, result.stderr
    calls = json.loads(result.stdout)
    assert not calls["created"]
    assert {c["collMod"] for c in calls["collMod"]} == set(COLLECTIONS)
    assert [r["op"] for r in calls["roles"]] == ["update"]
    assert [(u["op"], u["user"]) for u in calls["users"]] == [("update", "app")]


def test_init_script_refuses_to_run_without_the_app_password(tmp_path: Path) -> None:
    result = _run_init(tmp_path, {})
    assert result.returncode != 0
    assert "INSIDERS_MONGO_PASSWORD" in result.stderr


# --- the same validators on a MongoDB-compatible server ------------------------------------


@pytest.mark.mongo
def test_a_server_with_the_validators_agrees_with_this_checker() -> None:
    """The checker above stands in for MongoDB in the tests that have no server; on a real
    one (CI), the examples are accepted and every contract-breaking value is refused (121)."""
    import uuid

    import pymongo
    from pymongo.errors import WriteError
    from test_documents import mongo_uri_or_skip

    uri = mongo_uri_or_skip()
    name = f"insiders_validators_{uuid.uuid4().hex[:8]}"
    raw = json.loads((MONGO_INIT / "validators.json").read_text(encoding="utf-8"))
    with pymongo.MongoClient(uri, tz_aware=False) as client:
        db = client[name]
        try:
            for collection, validator in raw.items():
                db.create_collection(collection, validator=validator, validationLevel="strict",
                                     validationAction="error")
            for collection, docs in example_documents().items():
                for doc in docs:  # one at a time: the runs examples share their _id
                    db[collection].insert_one(copy.deepcopy(doc))
                    db[collection].delete_many({})
            accepted = []
            for collection, changes in BREAKING:
                doc = {**copy.deepcopy(example_documents()[collection][0]), **changes}
                try:
                    db[collection].insert_one(doc)
                    accepted.append((collection, changes))
                    db[collection].delete_many({})
                except WriteError as error:
                    assert error.code == 121, (collection, changes, error)
            assert accepted == []
        finally:
            client.drop_database(name)
