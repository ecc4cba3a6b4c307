"""A local stand-in for Metabase's REST API, as strict as Metabase where provisioning goes.

It mirrors Metabase v0.64.1.5 (`MIRRORS`, the same version `insiders.dashboards.metabase`
pins): the endpoints provisioning uses, on 127.0.0.1 in a thread, each request checked
as Metabase's source checks it. Read against the source: `setup/api.clj`,
`session/api.clj`, `util/password.clj`, `warehouses_rest/api.clj`,
`collections_rest/api.clj`, `queries_rest/api/card.clj`, `dashboards_rest/api.clj`,
`query_processor/api.clj`, `settings_rest/api.clj`. Where Metabase is strict, so is this:

- first-run setup applies Metabase's default password rule (`:normal`: at least 6
  characters and one digit, and not one of the ~12,000 common passwords it ships;
  here a sample of that list) and ignores `prefs.allow_tracking`: setup turns
  `anon-tracking-enabled` on whatever it is sent;
- `POST` and `PUT /api/database`, `POST /api/card`, `PUT /api/card/:id`,
  `POST`/`PUT /api/dashboard` take closed maps: an unknown key is a 400;
- `GET /api/database` masks passwords; a `PUT` merges the details it is sent into the
  stored ones and keeps the stored password where it is sent the mask;
- a failing native query answers HTTP 500 from `POST /api/dataset` (Metabase since late
  2025); `query_error_status=202` gives the older answer (202 with `status: failed`);
- `PUT /api/dashboard/:id` with `dashcards` and without `tabs` deletes every tab and the
  cards on them; with tabs, every dashcard needs its `dashboard_tab_id` (a single tab is
  filled in).

An unknown endpoint answers 404, a malformed body 400, a missing or wrong
`X-Metabase-Session` 401; each of these is also kept in `violations`. State (users,
sessions, settings, databases, collections, cards, dashboards with tabs and dashcards)
lives in plain dicts that tests can read. Every request is recorded; `mutations` are
the ones that changed content (login and ad-hoc queries are not). Like Metabase since
v0.57, cards come back with `dataset_query` in MBQL 5. `POST /api/dataset` really runs
the SQL when the database is SQLite, so a broken card fails the way Metabase reports it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MIRRORS = "v0.64.1.5"  # the Metabase release whose API this fake follows
VERSION = MIRRORS
ENGINES = {"postgres", "sqlite", "h2", "mysql"}
MASK = "**MetabasePass**"  # what Metabase shows instead of a stored password
# A sample of resources/common_passwords.txt (zxcvbn's list, lower case, ~12,000 entries),
# restricted to entries that pass the length and digit rule, so only the list refuses them.
COMMON_PASSWORDS = {"123456", "12345678", "123456789", "1234567890", "111111", "123123",
                    "654321", "666666", "696969", "abc123", "password1", "trustno1",
                    "1qaz2wsx", "passw0rd", "qwerty123", "iloveyou1", "letmein1"}
SETTINGS = {"anon-tracking-enabled", "site-name", "site-locale", "admin-email",
            "site-url", "report-timezone", "enable-embedding"}
ITEM_MODELS = {"card", "dataset", "document", "metric", "collection", "dashboard", "pulse",
               "snippet", "no_models", "timeline", "table"}
DISPLAYS = {"scalar", "smartscalar", "line", "area", "bar", "row", "combo", "pie", "table",
            "scatter", "waterfall", "funnel", "progress", "gauge", "object", "map", "pivot"}


class ApiError(Exception):
    """An answer other than success: status, body, and whether the client broke a rule."""

    def __init__(self, status: int, body: Any, violation: str | None = None) -> None:
        super().__init__(violation or str(body))
        self.status = status
        self.body = body
        self.violation = violation


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    body: Any
    status: int


# ----------------------------------------------------------------- value checks


def _non_blank(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pos_int(v: Any) -> bool:
    return _int(v) and v > 0


def _nonneg_int(v: Any) -> bool:
    return _int(v) and v >= 0


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _map(v: Any) -> bool:
    return isinstance(v, dict)


def _list(v: Any) -> bool:
    return isinstance(v, list)


def _email(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", v) is not None


def _maybe(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _anything(v: Any) -> bool:
    return True


MESSAGES = {
    _non_blank: "value must be a non-blank string.",
    _int: "value must be an integer.",
    _pos_int: "value must be an integer greater than zero.",
    _nonneg_int: "value must be an integer greater than or equal to zero.",
    _bool: "value must be a boolean.",
    _str: "value must be a string.",
    _map: "value must be a map.",
    _list: "value must be a sequence.",
    _email: "value must be a valid email address.",
}


def password_problem(password: str) -> str | None:
    """Why Metabase's default rule (`:normal` in util/password.clj) refuses it, or None."""
    if len(password) < 6 or not any(c.isdigit() for c in password):
        return "password is too common."  # Metabase says this for every refusal
    if password.lower() in COMMON_PASSWORDS:
        return "password is too common."
    return None


def check_body(where: str, body: Any, required: dict, optional: dict | None = None,
               closed: bool = True) -> dict:
    """Validate a JSON object like Metabase's malli schemas; 400 with `errors` if not."""
    if not isinstance(body, dict):
        raise ApiError(400, {"errors": {"body": "value must be a map."}},
                     f"{where}: body is not a JSON object")
    optional = optional or {}
    errors: dict[str, str] = {}
    for key, check in required.items():
        if key not in body:
            errors[key] = "missing required key"
        elif not check(body[key]):
            errors[key] = MESSAGES.get(check, "invalid value")
    for key, check in optional.items():
        if key in body and not check(body[key]):
            errors[key] = MESSAGES.get(check, "invalid value")
    if closed:
        for key in body:
            if key not in required and key not in optional:
                errors[key] = "disallowed key"
    if errors:
        raise ApiError(400, {"errors": errors, "specific-errors": errors},
                     f"{where}: {json.dumps(errors, sort_keys=True)}")
    return body


# ----------------------------------------------------------------- the fake


class FakeMetabase:
    """Metabase's REST API for provisioning tests. Use as a context manager."""

    def __init__(self, *, admin_email: str | None = None, admin_password: str | None = None,
                 sync_polls: int = 1, query_error_status: int = 500,
                 postgres_users: dict[str, str] | None = None) -> None:
        self.lock = threading.RLock()
        # PostgreSQL roles and passwords the fake "server" accepts; None: any
        self.postgres_users = postgres_users
        self.query_error_status = query_error_status
        self.settings: dict[str, Any] = {"anon-tracking-enabled": False,
                                         "site-name": "Metabase"}
        self.setup_token = str(uuid.uuid4())
        self.users: dict[str, dict] = {}
        self.sessions: dict[str, int] = {}
        self.databases: dict[int, dict] = {}
        self.collections: dict[int, dict] = {}
        self.cards: dict[int, dict] = {}
        self.dashboards: dict[int, dict] = {}
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.sync_polls = sync_polls
        self._ids: dict[str, int] = {}
        self._sync_seen: dict[int, int] = {}
        if admin_email:
            self._create_user(admin_email, admin_password or "", "Existing", "Admin")
            self.setup_token = None
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> FakeMetabase:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stalls

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload = fake.handle(self.command, self.path, raw, dict(self.headers))
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                if status == 204:  # No Content: a body would break the connection
                    data = b""
                self.send_response(status)
                kind = "text/plain" if isinstance(payload, str) else "application/json"
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - http.server names

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> FakeMetabase:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.server, "start() the fake first"
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- what tests look at

    @property
    def mutations(self) -> list[Recorded]:
        """Successful requests that changed content (not logins, not ad-hoc queries)."""
        return [
            r for r in self.requests
            if r.method in ("POST", "PUT", "DELETE") and r.status < 400
            and r.path not in ("/api/session", "/api/dataset")
        ]

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()
            self.violations.clear()

    def card_by_name(self, name: str) -> dict:
        return next(c for c in self.cards.values() if c["name"] == name)

    def dashboard_by_name(self, name: str) -> dict:
        return next(d for d in self.dashboards.values() if d["name"] == name)

    # ---- dispatch

    def _next_id(self, kind: str) -> int:
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    def handle(self, method: str, raw_path: str, raw_body: bytes,
               headers: dict[str, str]) -> tuple[int, Any]:
        split = urlsplit(raw_path)
        path, query = split.path.rstrip("/") or "/", parse_qs(split.query)
        body: Any = None
        with self.lock:
            try:
                if raw_body:
                    try:
                        body = json.loads(raw_body)
                    except ValueError:
                        raise ApiError(400, {"message": "Malformed JSON in request body."},
                                     f"{method} {path}: malformed JSON body") from None
                status, payload = self._route(method, path, query, body, headers)
            except ApiError as rej:
                status, payload = rej.status, rej.body
                if rej.violation:
                    self.violations.append(rej.violation)
            self.requests.append(Recorded(method, path, query, body, status))
            return status, payload

    ROUTES = [
        ("GET", r"/api/health", "health", False),
        ("GET", r"/api/session/properties", "properties", False),
        ("POST", r"/api/setup", "setup", False),
        ("POST", r"/api/session", "login", False),
        ("GET", r"/api/database", "list_databases", True),
        ("POST", r"/api/database", "create_database", True),
        ("GET", r"/api/database/(\d+)", "get_database", True),
        ("PUT", r"/api/database/(\d+)", "update_database", True),
        ("GET", r"/api/collection", "list_collections", True),
        ("POST", r"/api/collection", "create_collection", True),
        ("GET", r"/api/collection/(\d+)/items", "collection_items", True),
        ("POST", r"/api/dataset", "dataset", True),
        ("POST", r"/api/card", "create_card", True),
        ("GET", r"/api/card/(\d+)", "get_card", True),
        ("PUT", r"/api/card/(\d+)", "update_card", True),
        ("POST", r"/api/dashboard", "create_dashboard", True),
        ("GET", r"/api/dashboard/(\d+)", "get_dashboard", True),
        ("PUT", r"/api/dashboard/(\d+)", "update_dashboard", True),
        ("GET", r"/api/setting/([a-z0-9-]+)", "get_setting", True),
        ("PUT", r"/api/setting/([a-z0-9-]+)", "put_setting", True),
    ]

    def _route(self, method: str, path: str, query: dict, body: Any,
               headers: dict[str, str]) -> tuple[int, Any]:
        for verb, pattern, name, auth in self.ROUTES:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                if auth:
                    session = next(
                        (v for k, v in headers.items() if k.lower() == "x-metabase-session"), None
                    )
                    if session not in self.sessions:
                        raise ApiError(401, "Unauthenticated",
                                     f"{method} {path}: no valid X-Metabase-Session")
                args = [int(g) if g.isdigit() else g for g in match.groups()]
                return getattr(self, f"_{name}")(*args, query=query, body=body)
        raise ApiError(404, "API endpoint does not exist.", f"{method} {path}: unknown endpoint")

    def _missing(self, kind: str, ident: Any) -> ApiError:
        return ApiError(404, "Not found.", f"{kind} {ident} does not exist")

    # ---- setup and sessions

    def _create_user(self, email: str, password: str, first: str | None,
                     last: str | None) -> dict:
        user = {"id": self._next_id("user"), "email": email, "password": password,
                "first_name": first, "last_name": last, "is_superuser": True}
        self.users[email.lower()] = user
        return user

    def _new_session(self, user: dict) -> str:
        token = str(uuid.uuid4())
        self.sessions[token] = user["id"]
        return token

    def _health(self, **_: Any) -> tuple[int, Any]:
        return 200, {"status": "ok"}

    def _properties(self, **_: Any) -> tuple[int, Any]:
        return 200, {
            "setup-token": self.setup_token,
            "has-user-setup": bool(self.users),
            "version": {"tag": VERSION},
            "site-name": "Metabase",
        }

    def _setup(self, *, body: Any, **_: Any) -> tuple[int, Any]:
        check_body("POST /api/setup", body, {"token": _non_blank, "user": _map, "prefs": _map},
                   {"invite": _map, "database": _map}, closed=False)
        user = check_body("POST /api/setup user", body["user"],
                          {"email": _email, "password": _non_blank},
                          {"first_name": _maybe(_non_blank), "last_name": _maybe(_non_blank),
                           "site_name": _maybe(_non_blank)}, closed=False)
        check_body("POST /api/setup prefs", body["prefs"], {"site_name": _non_blank},
                   {"site_locale": _maybe(_str),
                    "allow_tracking": _maybe(lambda v: isinstance(v, bool | str))},
                   closed=False)
        if self.setup_token is None or body["token"] != self.setup_token:
            raise ApiError(400, {"errors": {"token": "Token does not match the setup token."}},
                         "POST /api/setup: wrong setup token")
        if self.users:
            raise ApiError(403, {"message": "The /api/setup route can only be used to create the "
                                          "first user, however a user currently exists."},
                         "POST /api/setup: a user already exists")
        password = user["password"]
        problem = password_problem(password)
        if problem:
            raise ApiError(400, {"errors": {"password": problem},
                                 "specific-errors": {"password": [problem]}})
        created = self._create_user(user["email"], password, user.get("first_name"),
                                    user.get("last_name"))
        # setup-set-settings!: site name, admin e-mail, and tracking on, whatever prefs say
        self.settings.update({"site-name": body["prefs"]["site_name"], "admin-email":
                              user["email"], "anon-tracking-enabled": True})
        if body["prefs"].get("site_locale"):
            self.settings["site-locale"] = body["prefs"]["site_locale"]
        self.setup_token = None  # setup/clear-token!: it can never be used again
        return 200, {"id": self._new_session(created)}

    # ---- settings

    def _get_setting(self, key: str, **_: Any) -> tuple[int, Any]:
        if key not in SETTINGS:
            raise ApiError(404, "Not found.", f"GET /api/setting/{key}: unknown setting")
        return 200, self.settings.get(key)

    def _put_setting(self, key: str, *, body: Any, **_: Any) -> tuple[int, Any]:
        if key not in SETTINGS:
            raise ApiError(404, "Not found.", f"PUT /api/setting/{key}: unknown setting")
        check_body(f"PUT /api/setting/{key}", body, {"value": _anything}, closed=False)
        self.settings[key] = body["value"]
        return 204, None

    def _login(self, *, body: Any, **_: Any) -> tuple[int, Any]:
        check_body("POST /api/session", body,
                   {"username": _non_blank, "password": _non_blank}, closed=False)
        user = self.users.get(body["username"].lower())
        if not user or user["password"] != body["password"]:
            raise ApiError(401, {"errors": {"password": "did not match stored password"}})
        return 200, {"id": self._new_session(user)}

    # ---- databases

    def _public_db(self, db: dict) -> dict:
        details = dict(db["details"])
        if details.get("password"):
            details["password"] = MASK
        return {**db, "details": details}

    def _check_details(self, where: str, engine: str, details: dict) -> None:
        if engine == "postgres":
            check_body(f"{where} details", details,
                       {"host": _non_blank, "port": _pos_int, "dbname": _non_blank,
                        "user": _non_blank}, {"password": _str, "ssl": _bool}, closed=False)
            problem = self._postgres_login_problem(details)
            if problem:
                raise ApiError(400, {"message": problem, "errors": {"password": problem}})
        elif engine == "sqlite":
            check_body(f"{where} details", details, {"db": _non_blank}, closed=False)
            if not Path(details["db"]).is_file():
                raise ApiError(400, {"message": f"Couldn't connect to {details['db']}",
                                   "errors": {"db": "file does not exist"}})

    def _postgres_login_problem(self, details: dict) -> str | None:
        if self.postgres_users is None:
            return None
        if self.postgres_users.get(details.get("user")) != details.get("password"):
            return f'FATAL: password authentication failed for user "{details.get("user")}"'
        return None

    def _list_databases(self, **_: Any) -> tuple[int, Any]:
        data = [self._public_db(db) for db in self.databases.values()]
        return 200, {"data": data, "total": len(data)}

    def _create_database(self, *, body: Any, **_: Any) -> tuple[int, Any]:
        check_body("POST /api/database", body,
                   {"name": _non_blank, "engine": _non_blank, "details": _map},
                   {"is_full_sync": _maybe(_bool), "is_on_demand": _maybe(_bool),
                    "schedules": _maybe(_map), "auto_run_queries": _maybe(_bool),
                    "cache_ttl": _maybe(_pos_int),
                    "connection_source": _maybe(lambda v: v in ("admin", "setup")),
                    "provider_name": _maybe(_str), "is_stub": _maybe(_bool)})
        if body.get("is_stub") is True:
            raise ApiError(400, {"message": "is_stub may not be set via the API"},
                           "POST /api/database: is_stub")
        if body["engine"] not in ENGINES:
            raise ApiError(400, {"errors": {"engine": "value must be a valid database engine."}},
                         f"POST /api/database: unknown engine {body['engine']!r}")
        self._check_details("POST /api/database", body["engine"], body["details"])
        ident = self._next_id("database")
        db = {"id": ident, "name": body["name"], "engine": body["engine"],
              "details": dict(body["details"]), "is_full_sync": body.get("is_full_sync", True),
              "initial_sync_status": "incomplete", "is_sample": False}
        self.databases[ident] = db
        self._sync_seen[ident] = 0
        return 200, self._public_db(db)

    def _get_database(self, ident: int, **_: Any) -> tuple[int, Any]:
        db = self.databases.get(ident) or self._raise(self._missing("database", ident))
        self._sync_seen[ident] = self._sync_seen.get(ident, 0) + 1
        if self._sync_seen[ident] >= self.sync_polls:
            db["initial_sync_status"] = "complete"
        return 200, self._public_db(db)

    def _update_database(self, ident: int, *, body: Any, **_: Any) -> tuple[int, Any]:
        db = self.databases.get(ident) or self._raise(self._missing("database", ident))
        check_body(f"PUT /api/database/{ident}", body, {}, self.DATABASE_UPDATE)
        engine = body.get("engine") or db["engine"]
        if body.get("details") is not None:
            # upsert-sensitive-fields: the mask keeps the stored password, and the details
            # sent are merged into the stored ones (unless the engine changes)
            details = dict(body["details"])
            if details.get("password") == MASK:
                details["password"] = db["details"].get("password")
            if engine == db["engine"]:
                details = {**db["details"], **details}
            if details != db["details"] or engine != db["engine"]:
                self._check_details(f"PUT /api/database/{ident}", engine, details)
            db["details"] = details
        db.update({k: v for k, v in body.items() if k in ("name", "engine") and v is not None})
        return 200, self._public_db(db)

    DATABASE_UPDATE = {
        "name": _maybe(_non_blank), "engine": _maybe(_non_blank),
        "refingerprint": _maybe(_bool), "details": _maybe(_map),
        "write_data_details": _maybe(_map), "schedules": _maybe(_map),
        "is_full_sync": _maybe(_bool), "is_on_demand": _maybe(_bool),
        "description": _maybe(_str), "caveats": _maybe(_str),
        "points_of_interest": _maybe(_str), "auto_run_queries": _maybe(_bool),
        "cache_ttl": _maybe(_pos_int), "provider_name": _maybe(_str),
        "settings": _maybe(_map), "is_stub": _maybe(_bool),
    }

    @staticmethod
    def _raise(rej: ApiError) -> Any:
        raise rej

    # ---- collections

    def _list_collections(self, **_: Any) -> tuple[int, Any]:
        root = {"id": "root", "name": "Our analytics", "can_write": True, "location": None}
        return 200, [root] + [c for c in self.collections.values() if not c["archived"]]

    def _create_collection(self, *, body: Any, **_: Any) -> tuple[int, Any]:
        check_body("POST /api/collection", body, {"name": _non_blank},
                   {"description": _maybe(_non_blank), "parent_id": _maybe(_pos_int),
                    "namespace": _maybe(_non_blank), "authority_level": _maybe(_str)},
                   closed=False)
        if body.get("parent_id") and body["parent_id"] not in self.collections:
            raise self._missing("collection", body["parent_id"])
        ident = self._next_id("collection")
        self.collections[ident] = {
            "id": ident, "name": body["name"], "description": body.get("description"),
            "location": "/", "archived": False, "personal_owner_id": None,
        }
        return 200, self.collections[ident]

    def _collection_items(self, ident: int, *, query: dict, **_: Any) -> tuple[int, Any]:
        if ident not in self.collections:
            raise self._missing("collection", ident)
        models = set(query.get("models", [])) or {"card", "dashboard", "collection"}
        if models - ITEM_MODELS:
            raise ApiError(400, {"errors": {"models": "invalid model"}},
                         f"GET /api/collection/{ident}/items: bad models {sorted(models)}")
        data = []
        if "card" in models:
            data += [{"id": c["id"], "name": c["name"], "model": "card",
                      "description": c["description"]}
                     for c in self.cards.values()
                     if c["collection_id"] == ident and not c["archived"]]
        if "dashboard" in models:
            data += [{"id": d["id"], "name": d["name"], "model": "dashboard",
                      "description": d["description"]}
                     for d in self.dashboards.values()
                     if d["collection_id"] == ident and not d["archived"]]
        return 200, {"data": data, "total": len(data), "models": sorted(models)}

    # ---- queries and cards

    def _native_query(self, where: str, query: Any) -> tuple[int, str]:
        """Accept a native query as legacy MBQL 4 or as MBQL 5; return (database, SQL)."""
        if not isinstance(query, dict):
            raise ApiError(400, {"errors": {"dataset_query": "value must be a map."}},
                         f"{where}: dataset_query is not a map")
        if "stages" in query:
            stages = query.get("stages")
            ok = (query.get("lib/type") == "mbql/query" and _pos_int(query.get("database"))
                  and isinstance(stages, list) and len(stages) == 1
                  and isinstance(stages[0], dict)
                  and stages[0].get("lib/type") == "mbql.stage/native"
                  and _non_blank(stages[0].get("native")))
            sql = stages[0]["native"] if ok else None
        else:
            native = query.get("native")
            ok = (query.get("type") == "native" and _pos_int(query.get("database"))
                  and isinstance(native, dict) and _non_blank(native.get("query")))
            sql = native["query"] if ok else None
        if not ok:
            raise ApiError(400, {"errors": {"dataset_query": "invalid native query"}},
                         f"{where}: not a native query of the right shape: {query!r}")
        if query["database"] not in self.databases:
            raise ApiError(400, {"errors": {"database": "database does not exist"}},
                         f"{where}: database {query['database']} does not exist")
        return query["database"], sql

    def _dataset(self, *, body: Any, **_: Any) -> tuple[int, Any]:
        database, sql = self._native_query("POST /api/dataset", body)
        db = self.databases[database]
        started = {"database_id": database, "started_at": "2026-11-23T00:00:00Z",
                   "json_query": body}
        if db["engine"] == "postgres" and self._postgres_login_problem(db["details"]):
            problem = self._postgres_login_problem(db["details"])
            return self.query_error_status, {**started, "status": "failed", "error": problem,
                                             "error_type": "invalid-query", "row_count": 0,
                                             "data": {"rows": [], "cols": []}}
        if db["engine"] != "sqlite":
            return 202, {**started, "status": "completed", "row_count": 0,
                         "data": {"rows": [], "cols": []}}
        try:
            conn = sqlite3.connect(f"file:{db['details']['db']}?mode=ro", uri=True)
            try:
                cursor = conn.execute(sql)
                rows = [list(r) for r in cursor.fetchmany(2000)]
                cols = [{"name": d[0], "display_name": d[0]} for d in cursor.description or []]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return self.query_error_status, {**started, "status": "failed", "error": str(exc),
                         "error_type": "invalid-query", "row_count": 0,
                         "data": {"rows": [], "cols": []},
                         "via": [{"status": "failed", "error": str(exc)}]}
        return 202, {**started, "status": "completed", "row_count": len(rows),
                     "data": {"rows": rows, "cols": cols}}

    CARD_CREATE_REQUIRED = {"name": _non_blank, "dataset_query": _map, "display": _non_blank,
                            "visualization_settings": _map}
    CARD_CREATE_OPTIONAL = {
        "type": _maybe(lambda v: v in ("question", "model", "metric")),
        "entity_id": _maybe(_non_blank), "parameters": _maybe(_list),
        "parameter_mappings": _maybe(_list), "description": _maybe(_non_blank),
        "collection_id": _maybe(_pos_int), "collection_position": _maybe(_pos_int),
        "result_metadata": _maybe(_list), "cache_ttl": _maybe(_pos_int),
        "dashboard_id": _maybe(_pos_int), "dashboard_tab_id": _maybe(_pos_int),
        "size": _maybe(_map), "source_card_id": _maybe(_pos_int),
    }
    CARD_UPDATE = {
        "name": _maybe(_non_blank), "parameters": _maybe(_list),
        "parameter_mappings": _maybe(_list), "dataset_query": _maybe(_map),
        "type": _maybe(lambda v: v in ("question", "model", "metric")),
        "display": _maybe(_non_blank), "description": _maybe(_str),
        "visualization_settings": _maybe(_map), "archived": _maybe(_bool),
        "enable_embedding": _maybe(_bool), "embedding_type": _maybe(_str),
        "embedding_params": _maybe(_map), "collection_id": _maybe(_pos_int),
        "collection_position": _maybe(_pos_int), "result_metadata": _maybe(_list),
        "cache_ttl": _maybe(_pos_int), "collection_preview": _maybe(_bool),
        "dashboard_id": _maybe(_pos_int), "dashboard_tab_id": _maybe(_pos_int),
    }

    @staticmethod
    def _mbql5(database: int, sql: str) -> dict:
        return {"lib/type": "mbql/query", "database": database,
                "stages": [{"lib/type": "mbql.stage/native", "native": sql,
                            "template-tags": {}}]}

    def _check_card_fields(self, where: str, body: dict) -> None:
        if body.get("display") is not None and body["display"] not in DISPLAYS:
            raise ApiError(400, {"errors": {"display": "unknown display"}},
                         f"{where}: unknown display {body['display']!r}")
        coll = body.get("collection_id")
        if coll is not None and coll not in self.collections:
            raise self._missing("collection", coll)

    def _create_card(self, *, body: Any, **_: Any) -> tuple[int, Any]:
        check_body("POST /api/card", body, self.CARD_CREATE_REQUIRED, self.CARD_CREATE_OPTIONAL)
        database, sql = self._native_query("POST /api/card", body["dataset_query"])
        self._check_card_fields("POST /api/card", body)
        ident = self._next_id("card")
        self.cards[ident] = {
            "id": ident, "name": body["name"], "type": body.get("type") or "question",
            "description": body.get("description"), "display": body["display"],
            "visualization_settings": body["visualization_settings"],
            "dataset_query": self._mbql5(database, sql), "database_id": database,
            "query_type": "native", "collection_id": body.get("collection_id"),
            "archived": False,
        }
        return 200, self.cards[ident]

    def _get_card(self, ident: int, **_: Any) -> tuple[int, Any]:
        card = self.cards.get(ident) or self._raise(self._missing("card", ident))
        return 200, card

    def _update_card(self, ident: int, *, body: Any, **_: Any) -> tuple[int, Any]:
        card = self.cards.get(ident) or self._raise(self._missing("card", ident))
        check_body(f"PUT /api/card/{ident}", body, {}, self.CARD_UPDATE)
        self._check_card_fields(f"PUT /api/card/{ident}", body)
        for key, value in body.items():
            if key == "dataset_query" and value is not None:
                database, sql = self._native_query(f"PUT /api/card/{ident}", value)
                card["dataset_query"] = self._mbql5(database, sql)
                card["database_id"] = database
            elif value is not None or key == "description":
                card[key] = value
        return 200, card

    # ---- dashboards

    DASHBOARD_CREATE = {"parameters": _maybe(_list), "description": _maybe(_str),
                        "cache_ttl": _maybe(_pos_int), "collection_id": _maybe(_pos_int),
                        "collection_position": _maybe(_pos_int)}
    DASHBOARD_UPDATE = {
        "name": _maybe(_non_blank), "description": _maybe(_str), "caveats": _maybe(_str),
        "points_of_interest": _maybe(_str), "show_in_getting_started": _maybe(_bool),
        "enable_embedding": _maybe(_bool), "embedding_type": _maybe(_str),
        "embedding_params": _maybe(_map), "parameters": _maybe(_list),
        "position": _maybe(_pos_int), "width": lambda v: v in ("fixed", "full"),
        "archived": _maybe(_bool), "auto_apply_filters": _maybe(_bool),
        "collection_id": _maybe(_pos_int), "collection_position": _maybe(_pos_int),
        "cache_ttl": _maybe(_pos_int), "dashcards": _maybe(_list), "tabs": _maybe(_list),
    }
    DASHCARD_REQUIRED = {"id": _int, "size_x": _pos_int, "size_y": _pos_int,
                         "row": _nonneg_int, "col": _nonneg_int}
    DASHCARD_OPTIONAL = {
        "card_id": _maybe(_pos_int), "action_id": _maybe(_pos_int),
        "dashboard_tab_id": _maybe(_int), "parameter_mappings": _maybe(_list),
        "visualization_settings": _maybe(_map), "inline_parameters": _maybe(_list),
        "series": _maybe(_list),
    }

    def add_tabs(self, dashboard_id: int, names: list[str]) -> list[int]:
        """Tabs added by hand in the UI: the cards already there move to the first one."""
        dash = self.dashboards[dashboard_id]
        ids = []
        for name in names:
            ident = self._next_id("tab")
            dash["tabs"].append({"id": ident, "name": name, "dashboard_id": dashboard_id,
                                 "position": len(dash["tabs"])})
            ids.append(ident)
        for dashcard in dash["dashcards"]:
            dashcard["dashboard_tab_id"] = dashcard.get("dashboard_tab_id") or ids[0]
        return ids

    def add_dashcard(self, dashboard_id: int, card_id: int, tab_id: int | None,
                     **layout: int) -> int:
        """A card placed on the dashboard by hand."""
        ident = self._next_id("dashcard")
        self.dashboards[dashboard_id]["dashcards"].append({
            "id": ident, "card_id": card_id, "dashboard_tab_id": tab_id, "row": 0, "col": 0,
            "size_x": 6, "size_y": 4, "parameter_mappings": [], "series": [],
            "visualization_settings": {"card.title": "Added by hand"}, **layout})
        return ident

    def _update_tabs(self, where: str, dash: dict, tabs: list | None) -> dict[int, int]:
        """do-update-tabs!: the tabs sent replace the dashboard's; old -> new ids."""
        for tab in tabs or []:
            check_body(f"{where} tab", tab, {"id": _int, "name": _non_blank})
        current = {t["id"]: t for t in dash["tabs"]}
        kept, renumber = [], {}
        for position, tab in enumerate(tabs or []):
            if tab["id"] > 0 and tab["id"] not in current:
                raise ApiError(400, {"errors": {"tabs": "no such tab"}},
                               f"{where}: tab {tab['id']} is not on this dashboard")
            ident = tab["id"] if tab["id"] > 0 else self._next_id("tab")
            renumber[tab["id"]] = ident
            kept.append({**current.get(tab["id"], {"dashboard_id": dash["id"]}),
                         "id": ident, "name": tab["name"], "position": position})
        dash["tabs"] = kept
        return renumber

    def _create_dashboard(self, *, body: Any, **_: Any) -> tuple[int, Any]:
        check_body("POST /api/dashboard", body, {"name": _non_blank}, self.DASHBOARD_CREATE)
        coll = body.get("collection_id")
        if coll is not None and coll not in self.collections:
            raise self._missing("collection", coll)
        ident = self._next_id("dashboard")
        self.dashboards[ident] = {
            "id": ident, "name": body["name"], "description": body.get("description"),
            "collection_id": coll, "parameters": body.get("parameters") or [],
            "archived": False, "width": "fixed", "dashcards": [], "tabs": [],
        }
        return 200, self._public_dashboard(self.dashboards[ident])

    def _public_dashboard(self, dash: dict) -> dict:
        dashcards = [{**dc, "dashboard_id": dash["id"], "card": self.cards.get(dc["card_id"])}
                     for dc in dash["dashcards"]]
        return {**dash, "dashcards": dashcards}

    def _get_dashboard(self, ident: int, **_: Any) -> tuple[int, Any]:
        dash = self.dashboards.get(ident) or self._raise(self._missing("dashboard", ident))
        return 200, self._public_dashboard(dash)

    def _update_dashboard(self, ident: int, *, body: Any, **_: Any) -> tuple[int, Any]:
        where = f"PUT /api/dashboard/{ident}"
        dash = self.dashboards.get(ident) or self._raise(self._missing("dashboard", ident))
        check_body(where, body, {}, self.DASHBOARD_UPDATE)
        if body.get("dashcards") is not None or body.get("tabs") is not None:
            incoming = body.get("dashcards")
            if incoming is None:  # tabs alone: the dashcards stay
                incoming = [{k: v for k, v in d.items() if k != "dashboard_id"}
                            for d in dash["dashcards"]]
            for dashcard in incoming:
                check_body(f"{where} dashcard", dashcard, self.DASHCARD_REQUIRED,
                           self.DASHCARD_OPTIONAL)
            ids = [d["id"] for d in incoming]
            if len(set(ids)) != len(ids):
                raise ApiError(400, {"errors": {"dashcards": "ids must be unique"}},
                             f"{where}: duplicate dashcard ids {ids}")
            tabs = body.get("tabs") or []
            if len(tabs) == 1:
                incoming = [{**d, "dashboard_tab_id": d.get("dashboard_tab_id") or tabs[0]["id"]}
                            for d in incoming]
            elif tabs and not all(d.get("dashboard_tab_id") is not None for d in incoming):
                raise ApiError(400, {"message": "This dashboard has tab, makes sure every card "
                                                "has a tab"},
                               f"{where}: a dashcard without dashboard_tab_id on a tabbed "
                               "dashboard")
            before = {t["id"] for t in dash["tabs"]}
            renumber = self._update_tabs(where, dash, body.get("tabs"))
            deleted_tabs = before - set(renumber.values())
            current = {d["id"]: d for d in dash["dashcards"]
                       if d.get("dashboard_tab_id") not in deleted_tabs}
            kept = []
            for dashcard in incoming:
                if dashcard.get("card_id") is not None:
                    card = self.cards.get(dashcard["card_id"])
                    if card is None or card["archived"]:
                        raise ApiError(400, {"errors": {"card_id": "card does not exist"}},
                                     f"{where}: card {dashcard['card_id']} does not exist")
                if dashcard["id"] > 0 and dashcard["id"] not in current:
                    raise ApiError(400, {"errors": {"id": "no such dashcard"}},
                                 f"{where}: dashcard {dashcard['id']} is not on this dashboard")
                if dashcard["col"] + dashcard["size_x"] > 24:
                    raise ApiError(400, {"errors": {"col": "outside the 24-column grid"}},
                                 f"{where}: dashcard {dashcard['id']} is wider than the grid")
                tab = dashcard.get("dashboard_tab_id")
                tab = renumber.get(tab, tab)
                if tab is not None and tab not in {t["id"] for t in dash["tabs"]}:
                    raise ApiError(400, {"errors": {"dashboard_tab_id": "no such tab"}},
                                   f"{where}: dashcard {dashcard['id']} is on tab {tab}, "
                                   "which is not on this dashboard")
                new_id = dashcard["id"] if dashcard["id"] > 0 else self._next_id("dashcard")
                base = current.get(dashcard["id"], {"parameter_mappings": [], "series": [],
                                                    "visualization_settings": {},
                                                    "dashboard_tab_id": None})
                kept.append({**base, **{k: v for k, v in dashcard.items() if k != "id"},
                             "dashboard_tab_id": tab, "id": new_id})
            dash["dashcards"] = kept
        for key, value in body.items():
            if key not in ("dashcards", "tabs") and (value is not None or key == "description"):
                dash[key] = value
        return 200, self._public_dashboard(dash)
