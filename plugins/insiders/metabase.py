"""Provision the Insiders dashboard in Metabase through its REST API.

Open-source Metabase keeps questions and dashboards only in its application database
(serialization to files is a paid feature), so the product keeps them as files instead:
`metabase/dashboard.json` lists the cards, their visualisation and their place on the
24-column grid, and each card is a plain SQL file in `metabase/cards/`. `provision()`
makes a Metabase match those files, finding every object by name, so running it again
changes nothing and editing one SQL file updates exactly one card.

The calls follow the API of Metabase v0.64 (the pinned `METABASE_VERSION`), checked
against its source (`setup/api.clj`, `session/api.clj`, `warehouses_rest/api.clj`,
`collections_rest/api.clj`, `queries_rest/api/card.clj`, `dashboards_rest/api.clj`,
`query_processor/api.clj`) and the API changelog: since v0.57 `GET /api/card/:id`
returns `dataset_query` as MBQL 5, so both query shapes are read here and the same
code drives v0.50 to v0.64.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from insiders.errors import InsidersError

log = logging.getLogger(__name__)

# The Metabase whose API this follows (Docker image metabase/metabase:v0.64.1.5, the
# v0.64 LTS line); the calls also hold for v0.50-v0.63.
METABASE_VERSION = "v0.64.1.5"
GRID_COLUMNS = 24  # Metabase's dashboard grid
DISPLAYS = frozenset(
    {"scalar", "smartscalar", "line", "area", "bar", "row", "combo", "pie", "table",
     "scatter", "waterfall", "funnel", "progress", "gauge"}
)
DEFAULT_URL = "http://localhost:3000"
DEFAULT_DATABASE_NAME = "Insiders SQL store"
SITE_NAME = "Insiders"
MASKED_DETAIL_KEYS = frozenset({"password", "tunnel-pass", "tunnel-private-key"})


class MetabaseError(InsidersError):
    """A provisioning failure, worded for the person running the command (one line)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class DefinitionError(InsidersError, ValueError):
    """The dashboard definition files are inconsistent (one line)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# --------------------------------------------------------------------------- definition


@dataclass(frozen=True)
class Position:
    """A card's place on Metabase's 24-column dashboard grid."""

    row: int
    col: int
    size_x: int
    size_y: int


@dataclass(frozen=True)
class CardSpec:
    """One card of the dashboard: a SQL file plus how Metabase shows it."""

    name: str
    file: str
    sql: str
    display: str
    visualization_settings: dict
    position: Position
    description: str = ""


@dataclass(frozen=True)
class DashboardSpec:
    """The dashboard as code, read from `dashboard.json` and its SQL files."""

    name: str
    collection: str
    description: str
    cards: tuple[CardSpec, ...]
    directory: Path


def default_definition_dir() -> Path:
    """`$INSIDERS_METABASE_DEFINITIONS`, else the repository's `metabase/`, else `./metabase`."""
    configured = os.environ.get("INSIDERS_METABASE_DEFINITIONS")
    if configured:
        return Path(configured).expanduser()
    in_repo = Path(__file__).resolve().parents[2] / "metabase"
    if (in_repo / "dashboard.json").is_file():
        return in_repo
    return Path.cwd() / "metabase"


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionError(f"{where} must be an integer, got {value!r}")
    return value


def load_definition(definition_dir: Path | None = None) -> DashboardSpec:
    """Read and check the dashboard definition, so both renderers fail early and clearly."""
    directory = Path(definition_dir) if definition_dir else default_definition_dir()
    path = directory / "dashboard.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DefinitionError(f"No dashboard definition at {path}") from None
    except json.JSONDecodeError as exc:
        raise DefinitionError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path} must hold a JSON object")
    for key in ("name", "collection", "cards"):
        if not raw.get(key):
            raise DefinitionError(f"{path} needs a non-empty {key!r}")
    cards: list[CardSpec] = []
    names: set[str] = set()
    for index, item in enumerate(raw["cards"]):
        where = f"{path.name} card {index + 1}"
        if not isinstance(item, dict):
            raise DefinitionError(f"{where} must be an object")
        for key in ("name", "file", "display", "position"):
            if not item.get(key):
                raise DefinitionError(f"{where} needs {key!r}")
        name = str(item["name"])
        where = f"{path.name} card {name!r}"
        if name in names:
            raise DefinitionError(f"{where} appears twice; card names must be unique")
        names.add(name)
        display = str(item["display"])
        if display not in DISPLAYS:
            raise DefinitionError(f"{where} has unknown display {display!r}")
        settings = item.get("visualization_settings") or {}
        if not isinstance(settings, dict):
            raise DefinitionError(f"{where}: visualization_settings must be an object")
        pos = item["position"]
        if not isinstance(pos, dict):
            raise DefinitionError(f"{where}: position must be an object")
        position = Position(
            *(_int(pos.get(k), f"{where} position.{k}") for k in ("row", "col", "size_x", "size_y"))
        )
        if position.row < 0 or position.col < 0 or position.size_x < 1 or position.size_y < 1:
            raise DefinitionError(f"{where} has an invalid position {pos}")
        if position.col + position.size_x > GRID_COLUMNS:
            raise DefinitionError(f"{where} is wider than the {GRID_COLUMNS}-column grid")
        sql_path = directory / str(item["file"])
        try:
            sql = sql_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise DefinitionError(f"{where}: SQL file {item['file']} not found") from None
        if not sql:
            raise DefinitionError(f"{where}: SQL file {item['file']} is empty")
        cards.append(
            CardSpec(
                name=name,
                file=str(item["file"]),
                sql=sql,
                display=display,
                visualization_settings=settings,
                position=position,
                description=str(item.get("description") or "").strip(),
            )
        )
    _check_overlaps(cards, path.name)
    return DashboardSpec(
        name=str(raw["name"]),
        collection=str(raw["collection"]),
        description=str(raw.get("description") or "").strip(),
        cards=tuple(cards),
        directory=directory,
    )


def _check_overlaps(cards: list[CardSpec], where: str) -> None:
    taken: dict[tuple[int, int], str] = {}
    for card in cards:
        p = card.position
        for r in range(p.row, p.row + p.size_y):
            for c in range(p.col, p.col + p.size_x):
                if (r, c) in taken:
                    raise DefinitionError(
                        f"{where}: cards {taken[(r, c)]!r} and {card.name!r} overlap "
                        f"at row {r}, col {c}"
                    )
                taken[(r, c)] = card.name


# --------------------------------------------------------------------------- report


@dataclass
class ProvisionItem:
    """What provisioning did to one Metabase object."""

    kind: str  # setup | database | collection | card | dashboard
    name: str
    action: str  # created | updated | unchanged
    id: int | str | None = None
    detail: str = ""


@dataclass
class ProvisionReport:
    """Everything `provision()` created, updated or left alone, in order."""

    url: str
    items: list[ProvisionItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dashboard_id: int | None = None

    def add(self, kind: str, name: str, action: str, id: int | str | None = None,
            detail: str = "") -> None:
        self.items.append(ProvisionItem(kind, name, action, id, detail))
        log.info("%s %r: %s%s", kind, name, action, f" ({detail})" if detail else "")

    def _with(self, action: str) -> list[ProvisionItem]:
        return [i for i in self.items if i.action == action]

    @property
    def created(self) -> list[ProvisionItem]:
        return self._with("created")

    @property
    def updated(self) -> list[ProvisionItem]:
        return self._with("updated")

    @property
    def unchanged(self) -> list[ProvisionItem]:
        return self._with("unchanged")

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    @property
    def dashboard_url(self) -> str | None:
        return f"{self.url}/dashboard/{self.dashboard_id}" if self.dashboard_id else None

    def summary(self) -> str:
        lines = [
            f"{i.action:<9}  {i.kind:<10}  {i.name}" + (f"  ({i.detail})" if i.detail else "")
            for i in self.items
        ]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged"
            + (f"; dashboard: {self.dashboard_url}" if self.dashboard_url else "")
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------- client


def _reason(exc: Exception) -> str:
    """The useful end of a requests connection error ("Connection refused", ...)."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    for hint in ("Name or service not known", "timed out", "Connection refused"):
        if hint in text:
            return hint
    return type(exc).__name__


def _error_text(resp: requests.Response) -> str:
    """Metabase's own error message from a response, in one short line."""
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    text = ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, dict) and errors:
            text = "; ".join(f"{k}: {v}" for k, v in errors.items())
        text = text or str(body.get("message") or body.get("error") or "")
        text = text or json.dumps(body)[:300]
    else:
        text = str(body)
    text = " ".join(text.split())
    return text[:400] or resp.reason or "no details"


class MetabaseClient:
    """A thin session over Metabase's REST API with one-line errors."""

    def __init__(self, url: str, *, timeout: float = 30.0, query_timeout: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.query_timeout = query_timeout
        self.http = requests.Session()
        self.session_id: str | None = None

    def request(self, method: str, path: str, *, body: Any = None, params: Any = None,
                auth: bool = True, timeout: float | None = None, ok: tuple[int, ...] = ()) -> Any:
        headers = {"Accept": "application/json"}
        if auth:
            if not self.session_id:
                raise MetabaseError(f"Not logged in to Metabase at {self.url}")
            headers["X-Metabase-Session"] = self.session_id
        try:
            resp = self.http.request(
                method, self.url + path, json=body, params=params, headers=headers,
                timeout=timeout or self.timeout,
            )
        except requests.Timeout:
            raise MetabaseError(
                f"Metabase at {self.url} did not answer {method} {path} within "
                f"{timeout or self.timeout:.0f} s"
            ) from None
        except requests.ConnectionError as exc:
            raise MetabaseError(
                f"Cannot reach Metabase at {self.url}: {_reason(exc)}. "
                "Is it running, and is the URL right?"
            ) from None
        except requests.RequestException as exc:
            raise MetabaseError(f"Cannot call Metabase at {self.url}: {exc}") from None
        if resp.status_code >= 400 and resp.status_code not in ok:
            raise MetabaseError(
                f"Metabase refused {method} {path} (HTTP {resp.status_code}): {_error_text(resp)}"
            )
        if resp.status_code in ok:
            return resp
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise MetabaseError(
                f"{self.url}{path} did not answer with JSON; is {self.url} a Metabase?"
            ) from None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("POST", path, body=body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("PUT", path, body=body, **kw)

    def wait_until_ready(self, wait: float) -> None:
        """Poll `/api/health` for up to `wait` seconds: a fresh Metabase takes a while."""
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                resp = self.request("GET", "/api/health", auth=False, ok=(503,))
                if not isinstance(resp, requests.Response):
                    return
                problem = f"Metabase at {self.url} is still starting"
            except MetabaseError as exc:
                problem = str(exc)
            if time.monotonic() >= deadline:
                raise MetabaseError(problem)
            time.sleep(min(2.0, max(0.05, deadline - time.monotonic())))

    def login(self, email: str, password: str) -> None:
        resp = self.request(
            "POST", "/api/session", body={"username": email, "password": password},
            auth=False, ok=(400, 401),
        )
        if isinstance(resp, requests.Response):
            if resp.status_code == 401:
                raise MetabaseError(
                    f"Metabase at {self.url} rejected the login for {email}: wrong e-mail or "
                    "password (check INSIDERS_METABASE_USER and INSIDERS_METABASE_PASSWORD)"
                )
            raise MetabaseError(f"Metabase at {self.url} refused the login: {_error_text(resp)}")
        if not isinstance(resp, dict) or not resp.get("id"):
            raise MetabaseError(f"Metabase at {self.url} answered the login without a session")
        self.session_id = str(resp["id"])

    def run_native(self, database_id: int, sql: str) -> dict:
        """Run SQL as an ad-hoc native query; Metabase answers 202 even when it fails."""
        body = {"database": database_id, "type": "native", "native": {"query": sql}}
        result = self.post("/api/dataset", body, timeout=self.query_timeout)
        return result if isinstance(result, dict) else {}


def _listing(payload: Any) -> list[dict]:
    """Lists come bare or as `{"data": [...]}` depending on the endpoint and version."""
    if isinstance(payload, dict):
        payload = payload.get("data", [])
    return [x for x in payload or [] if isinstance(x, dict)]


def _native_sql(dataset_query: Any) -> str | None:
    """The SQL of a native card, whether Metabase returns MBQL 4 (legacy) or MBQL 5."""
    if not isinstance(dataset_query, dict):
        return None
    native = dataset_query.get("native")
    if isinstance(native, dict) and isinstance(native.get("query"), str):
        return native["query"]
    stages = dataset_query.get("stages")
    if isinstance(stages, list) and stages and isinstance(stages[0], dict):
        query = stages[0].get("native")
        if isinstance(query, str):
            return query
    return None


def _normal_sql(sql: str) -> str:
    return "\n".join(line.rstrip() for line in sql.strip().splitlines())


def _same_sql(a: str | None, b: str) -> bool:
    return a is not None and _normal_sql(a) == _normal_sql(b)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _is_subset(wanted: Any, actual: Any) -> bool:
    """Whether every setting we define is in place (Metabase may add its own keys)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            k in actual and _is_subset(v, actual[k]) for k, v in wanted.items()
        )
    return _canonical(wanted) == _canonical(actual)


# --------------------------------------------------------------------------- database


def metabase_database(database: Mapping[str, Any]) -> dict:
    """Turn our description of the SQL store into Metabase's `{name, engine, details}`.

    `database` is `{"engine": "postgres", "host", "port", "dbname", "user", "password"}` or
    `{"engine": "sqlite", "path"}`, plus an optional display `name`. SSL is left to
    Metabase (it tries it first): sending it would make every later run look different.
    """
    engine = str(database.get("engine") or "postgres")
    name = str(database.get("name") or DEFAULT_DATABASE_NAME)
    if engine == "postgres":
        missing = [k for k in ("host", "dbname", "user") if not database.get(k)]
        if missing:
            raise MetabaseError(f"The SQL store's PostgreSQL connection lacks {', '.join(missing)}")
        details = {
            "host": str(database["host"]),
            "port": int(database.get("port") or 5432),
            "dbname": str(database["dbname"]),
            "user": str(database["user"]),
            "password": str(database.get("password") or ""),
        }
    elif engine == "sqlite":
        if not database.get("path"):
            raise MetabaseError("The SQL store's SQLite connection needs a path")
        details = {"db": str(database["path"])}
    else:
        raise MetabaseError(f"Unsupported SQL store engine for Metabase: {engine!r}")
    return {"name": name, "engine": engine, "details": details}


def database_from_env(sql_url: str | None = None,
                      env: Mapping[str, str] | None = None) -> dict:
    """The SQL store as Metabase must reach it, from INSIDERS_METABASE_DB_* variables.

    Inside Docker, Metabase reaches the store under another host name than the pipeline,
    so the variables win; what they leave out comes from `sql_url` (INSIDERS_SQL_URL).
    """
    env = os.environ if env is None else env

    def var(name: str) -> str | None:
        value = env.get(f"INSIDERS_METABASE_DB_{name}")
        return value if value else None

    parsed = None
    if sql_url:
        from sqlalchemy.engine import make_url

        parsed = make_url(sql_url)
    backend = parsed.get_backend_name() if parsed is not None else None
    engine = var("ENGINE") or ("sqlite" if backend == "sqlite" else "postgres")
    name = var("DISPLAY_NAME") or DEFAULT_DATABASE_NAME
    if engine == "sqlite":
        path = var("PATH") or (parsed.database if backend == "sqlite" else None)
        return {"engine": "sqlite", "name": name, "path": path}
    pg = parsed if backend == "postgresql" else None
    return {
        "engine": engine,
        "name": name,
        "host": var("HOST") or (pg.host if pg else None) or "localhost",
        "port": int(var("PORT") or (pg.port if pg else None) or 5432),
        "dbname": var("NAME") or (pg.database if pg else None) or "insiders",
        "user": var("USER") or (pg.username if pg else None) or "insiders",
        "password": var("PASSWORD") or (pg.password if pg else None) or "",
    }


# --------------------------------------------------------------------------- provision


class _Provisioner:
    def __init__(self, client: MetabaseClient, report: ProvisionReport, *,
                 sync_timeout: float, poll_interval: float) -> None:
        self.client = client
        self.report = report
        self.sync_timeout = sync_timeout
        self.poll_interval = poll_interval

    def setup_if_needed(self, email: str, password: str) -> None:
        props = self.client.get("/api/session/properties", auth=False) or {}
        if props.get("has-user-setup", True):
            return
        token = props.get("setup-token")
        if not token:
            raise MetabaseError(
                f"Metabase at {self.client.url} has no user yet but offers no setup token"
            )
        body = {
            "token": token,
            "user": {"email": email, "password": password, "first_name": "Insiders",
                     "last_name": "Admin", "site_name": SITE_NAME},
            "prefs": {"site_name": SITE_NAME, "site_locale": "en", "allow_tracking": False},
        }
        resp = self.client.request("POST", "/api/setup", body=body, auth=False,
                                   ok=(400, 403))
        if isinstance(resp, requests.Response):
            raise MetabaseError(
                f"First-run setup of Metabase at {self.client.url} failed: {_error_text(resp)}"
            )
        self.report.add("setup", email, "created", detail="first admin user")

    def ensure_database(self, wanted: dict) -> int:
        for db in _listing(self.client.get("/api/database")):
            if db.get("name") != wanted["name"]:
                continue
            current = db.get("details") or {}
            differs = db.get("engine") != wanted["engine"] or any(
                str(current.get(k)) != str(v)
                for k, v in wanted["details"].items()
                if k not in MASKED_DETAIL_KEYS
            )
            if differs:
                self._database_call("PUT", f"/api/database/{db['id']}", wanted)
                self.report.add("database", wanted["name"], "updated", db["id"], wanted["engine"])
            else:
                self.report.add("database", wanted["name"], "unchanged", db["id"])
            return int(db["id"])
        body = dict(wanted, is_full_sync=True)
        created = self._database_call("POST", "/api/database", body)
        self.report.add("database", wanted["name"], "created", created["id"], wanted["engine"])
        return int(created["id"])

    def _database_call(self, method: str, path: str, body: dict) -> dict:
        resp = self.client.request(method, path, body=body, ok=(400,))
        if isinstance(resp, requests.Response):
            details = body["details"]
            where = details.get("db") or (
                f"{details.get('host')}:{details.get('port')}/{details.get('dbname')}"
            )
            raise MetabaseError(
                f"Metabase could not connect to the SQL store ({body['engine']} {where}): "
                f"{_error_text(resp)}. Check the INSIDERS_METABASE_DB_* settings: they are "
                "the store as seen from the Metabase server"
            )
        return resp

    def wait_for_sync(self, database_id: int) -> None:
        deadline = time.monotonic() + self.sync_timeout
        while True:
            db = self.client.get(f"/api/database/{database_id}") or {}
            status = db.get("initial_sync_status")
            if status in (None, "complete", "aborted"):
                return
            if time.monotonic() >= deadline:
                self.report.notes.append(
                    f"the database's first sync was still {status} after "
                    f"{self.sync_timeout:.0f} s; native cards do not need it"
                )
                return
            time.sleep(self.poll_interval)

    def ensure_collection(self, name: str) -> int:
        for coll in _listing(self.client.get("/api/collection")):
            if (coll.get("name") == name and isinstance(coll.get("id"), int)
                    and not coll.get("archived") and coll.get("personal_owner_id") is None):
                self.report.add("collection", name, "unchanged", coll["id"])
                return coll["id"]
        created = self.client.post(
            "/api/collection",
            {"name": name,
             "description": "Provisioned from files by `insiders metabase provision`; "
                            "edits made here are overwritten on the next provision."},
        )
        self.report.add("collection", name, "created", created["id"])
        return int(created["id"])

    def collection_items(self, collection_id: int) -> dict[tuple[str, str], int]:
        items = _listing(self.client.get(
            f"/api/collection/{collection_id}/items",
            # include cards someone moved into the dashboard (hidden by default since v0.53)
            params={"models": ["card", "dashboard"], "show_dashboard_questions": "true"},
        ))
        found: dict[tuple[str, str], int] = {}
        for item in sorted(items, key=lambda i: i.get("id") or 0):
            model = item.get("model")
            model = "card" if model in ("card", "dataset", "metric") else model
            found.setdefault((str(model), str(item.get("name"))), int(item["id"]))
        return found

    def validate_cards(self, spec: DashboardSpec, database_id: int) -> None:
        for card in spec.cards:
            result = self.client.run_native(database_id, card.sql)
            error = result.get("error")
            if result.get("status") == "failed" or error:
                raise MetabaseError(
                    f"Card {card.file} ({card.name!r}) fails in Metabase: "
                    f"{error or 'query failed'}"
                )

    def ensure_card(self, card: CardSpec, database_id: int, collection_id: int,
                    existing: int | None) -> int:
        query = {"database": database_id, "type": "native", "native": {"query": card.sql}}
        if existing is None:
            body: dict[str, Any] = {
                "name": card.name,
                "type": "question",
                "display": card.display,
                "visualization_settings": card.visualization_settings,
                "dataset_query": query,
                "collection_id": collection_id,
            }
            if card.description:
                body["description"] = card.description
            created = self.client.post("/api/card", body)
            self.report.add("card", card.name, "created", created["id"], card.file)
            return int(created["id"])
        current = self.client.get(f"/api/card/{existing}") or {}
        changes: dict[str, Any] = {}
        current_query = current.get("dataset_query")
        if (not _same_sql(_native_sql(current_query), card.sql)
                or (current_query or {}).get("database") != database_id):
            changes["dataset_query"] = query
        if current.get("display") != card.display:
            changes["display"] = card.display
        if (current.get("description") or "") != card.description:
            changes["description"] = card.description or None
        if not _is_subset(card.visualization_settings, current.get("visualization_settings")):
            changes["visualization_settings"] = card.visualization_settings
        if current.get("collection_id") != collection_id:
            changes["collection_id"] = collection_id
        if changes:
            self.client.put(f"/api/card/{existing}", changes)
            self.report.add("card", card.name, "updated", existing,
                            f"{card.file}: {', '.join(sorted(changes))}")
        else:
            self.report.add("card", card.name, "unchanged", existing)
        return existing

    def ensure_dashboard(self, spec: DashboardSpec, collection_id: int,
                         card_ids: dict[str, int], existing: int | None) -> int:
        action = "unchanged"
        if existing is None:
            body: dict[str, Any] = {"name": spec.name, "collection_id": collection_id}
            if spec.description:
                body["description"] = spec.description
            existing = int(self.client.post("/api/dashboard", body)["id"])
            action = "created"
        current = self.client.get(f"/api/dashboard/{existing}") or {}
        dashcards = [d for d in current.get("dashcards") or [] if isinstance(d, dict)]
        free = {}
        for dashcard in sorted(dashcards, key=lambda d: d.get("id") or 0):
            free.setdefault(dashcard.get("card_id"), dashcard)
        wanted, new_id = [], -1
        for card in spec.cards:
            p = card.position
            layout = {"card_id": card_ids[card.name], "row": p.row, "col": p.col,
                      "size_x": p.size_x, "size_y": p.size_y}
            match = free.pop(card_ids[card.name], None)
            if match is not None:
                wanted.append({"id": int(match["id"]), **layout})
            else:
                wanted.append({"id": new_id, **layout})
                new_id -= 1

        def key(d: dict) -> tuple:
            return (d.get("card_id"), d.get("row"), d.get("col"), d.get("size_x"), d.get("size_y"))

        same_cards = sorted(map(key, dashcards), key=str) == sorted(map(key, wanted), key=str)
        changes: dict[str, Any] = {}
        if (current.get("description") or "") != spec.description:
            changes["description"] = spec.description or None
        if not same_cards:
            changes["dashcards"] = wanted
        if changes:
            self.client.put(f"/api/dashboard/{existing}", changes)
            action = "updated" if action == "unchanged" else action
        self.report.add("dashboard", spec.name, action, existing,
                        f"{len(wanted)} cards" if changes else "")
        self.report.dashboard_id = existing
        return existing


def provision(
    url: str,
    *,
    email: str,
    password: str,
    database: Mapping[str, Any],
    definition_dir: Path | None = None,
    wait: float = 0.0,
    sync_timeout: float = 120.0,
    poll_interval: float = 1.0,
    timeout: float = 30.0,
    query_timeout: float = 300.0,
) -> ProvisionReport:
    """Make the Metabase at `url` hold the dashboard defined in `definition_dir`.

    Completes first-run setup if Metabase has no user yet, logs in, registers the SQL store
    (`database`, see `metabase_database`), then finds or creates by name the collection,
    each card and the dashboard, changing only what differs from the files. Every card's
    SQL is run through Metabase before anything is written, so a broken card stops the
    run with its file named. Raises `MetabaseError` with a one-line message.
    """
    try:
        spec = load_definition(definition_dir)
    except DefinitionError as exc:
        raise MetabaseError(str(exc)) from None
    wanted_db = metabase_database(database)
    client = MetabaseClient(url, timeout=timeout, query_timeout=query_timeout)
    report = ProvisionReport(url=client.url)
    steps = _Provisioner(client, report, sync_timeout=sync_timeout, poll_interval=poll_interval)

    client.wait_until_ready(wait)
    steps.setup_if_needed(email, password)
    client.login(email, password)
    database_id = steps.ensure_database(wanted_db)
    steps.wait_for_sync(database_id)
    steps.validate_cards(spec, database_id)
    collection_id = steps.ensure_collection(spec.collection)
    existing = steps.collection_items(collection_id)
    card_ids = {
        card.name: steps.ensure_card(card, database_id, collection_id,
                                     existing.get(("card", card.name)))
        for card in spec.cards
    }
    steps.ensure_dashboard(spec, collection_id, card_ids, existing.get(("dashboard", spec.name)))
    return report


def provision_from_env(url: str | None, definition_dir: Path | None = None) -> ProvisionReport:
    """`provision()` configured from the environment, for `insiders metabase provision`.

    URL: the argument, else INSIDERS_METABASE_URL, else http://localhost:3000. Admin:
    INSIDERS_METABASE_USER / INSIDERS_METABASE_PASSWORD. SQL store as Metabase sees it:
    INSIDERS_METABASE_DB_* (see `database_from_env`). INSIDERS_METABASE_WAIT: seconds to
    wait for a starting Metabase.
    """
    from insiders.config import Settings

    settings = Settings.from_env()
    if not settings.metabase_user or not settings.metabase_password:
        raise MetabaseError(
            "Set INSIDERS_METABASE_USER and INSIDERS_METABASE_PASSWORD: the Metabase admin's "
            "e-mail and password (on a fresh Metabase, provisioning creates that admin)"
        )
    try:
        wait = float(os.environ.get("INSIDERS_METABASE_WAIT") or 0)
    except ValueError:
        raise MetabaseError("INSIDERS_METABASE_WAIT must be a number of seconds") from None
    return provision(
        url or settings.metabase_url or DEFAULT_URL,
        email=settings.metabase_user,
        password=settings.metabase_password,
        database=database_from_env(settings.sql_url),
        definition_dir=definition_dir,
        wait=wait,
    )
