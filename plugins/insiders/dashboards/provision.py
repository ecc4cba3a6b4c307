"""Provision the Insiders dashboard in Metabase from its files, through the REST API.

`provision()` makes a Metabase match `metabase/dashboard.json` and its SQL files
(`spec.py`), finding every object by name, so running it again changes nothing and
editing one SQL file updates exactly one card. Where real Metabase differs from what a
client would guess, the code follows Metabase's source (v0.64, see `metabase.py`):

- first-run setup ignores `prefs.allow_tracking` and turns usage tracking on, so it is
  turned off afterwards with `PUT /api/setting/anon-tracking-enabled`;
- `GET /api/database` masks the password, so a rotated password could never be seen as
  a change: a salted PBKDF2 fingerprint of the password we sent is kept in the
  database's details (`insiders-password-fingerprint`) and compared instead;
- `PUT /api/dashboard/:id` with `dashcards` but without `tabs` deletes every tab (and the
  cards on them), so the dashboard's tabs are always sent back, and cards on tabs
  that hold none of ours are left alone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from insiders.dashboards.metabase import (
    DEFAULT_DATABASE_NAME,
    DEFAULT_URL,
    MASKED_DETAIL_KEYS,
    SITE_NAME,
    MetabaseClient,
    MetabaseError,
    ProvisionReport,
    error_text,
    is_subset,
    listing,
    native_sql,
    same_sql,
)
from insiders.dashboards.spec import (
    CURRENCY_SQL,
    CardSpec,
    DashboardSpec,
    DefinitionError,
    currency_settings,
    default_definition_dir,
    load_definition,
)

if TYPE_CHECKING:
    from insiders.config import MetabaseSettings, Settings

FINGERPRINT_KEY = "insiders-password-fingerprint"
FINGERPRINT_ROUNDS = 100_000
DASHCARD_FIELDS = ("id", "card_id", "action_id", "dashboard_tab_id", "row", "col", "size_x",
                   "size_y", "parameter_mappings", "visualization_settings")


def password_fingerprint(password: str, salt: str | None = None) -> str:
    """`pbkdf2-sha256$rounds$salt$hash` of a password: comparable, not reversible."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt),
                                 FINGERPRINT_ROUNDS)
    return f"pbkdf2-sha256${FINGERPRINT_ROUNDS}${salt}${digest.hex()}"


def fingerprint_matches(fingerprint: Any, password: str) -> bool:
    """Whether `fingerprint` (from Metabase, may be missing or mangled) is of `password`."""
    parts = fingerprint.split("$") if isinstance(fingerprint, str) else []
    if len(parts) != 4 or parts[0] != "pbkdf2-sha256" or parts[1] != str(FINGERPRINT_ROUNDS):
        return False
    try:
        expected = password_fingerprint(password, parts[2])
    except ValueError:  # salt is not hex
        return False
    return hmac.compare_digest(expected, fingerprint)


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


def database_from_settings(sql_url: str | None, db: MetabaseSettings) -> dict:
    """The SQL store as Metabase must reach it: `db` (INSIDERS_METABASE_DB_*) first.

    Inside Docker, Metabase reaches the store under another host name than the pipeline,
    so the explicit values win; what they leave out comes from `sql_url` (INSIDERS_SQL_URL).
    """
    parsed = None
    if sql_url:
        from sqlalchemy.engine import make_url

        parsed = make_url(sql_url)
    backend = parsed.get_backend_name() if parsed is not None else None
    engine = db.db_engine or ("sqlite" if backend == "sqlite" else "postgres")
    name = db.db_display_name or DEFAULT_DATABASE_NAME
    if engine == "sqlite":
        path = db.db_path or (parsed.database if backend == "sqlite" else None)
        return {"engine": "sqlite", "name": name, "path": path}
    pg = parsed if backend == "postgresql" else None
    return {
        "engine": engine,
        "name": name,
        "host": db.db_host or (pg.host if pg else None) or "localhost",
        "port": int(db.db_port or (pg.port if pg else None) or 5432),
        "dbname": db.db_name or (pg.database if pg else None) or "insiders",
        "user": db.db_user or (pg.username if pg else None) or "insiders",
        "password": db.db_password or (pg.password if pg else None) or "",
    }


# --------------------------------------------------------------------------- provision


def _with_fingerprint(wanted: dict) -> dict:
    """The database body with the password's fingerprint next to it (see module doc)."""
    secret = wanted["details"].get("password")
    if secret is None:
        return wanted
    return {**wanted, "details": {**wanted["details"],
                                  FINGERPRINT_KEY: password_fingerprint(secret)}}


def _as_sent(dashcard: dict) -> dict:
    """An existing dashcard as `PUT /api/dashboard/:id` takes it back unchanged."""
    sent = {k: dashcard[k] for k in DASHCARD_FIELDS if dashcard.get(k) is not None}
    sent["series"] = [{"id": s["id"]} for s in dashcard.get("series") or []
                      if isinstance(s, dict) and "id" in s]
    return sent


class _Provisioner:
    def __init__(self, client: MetabaseClient, report: ProvisionReport, *,
                 sync_timeout: float, poll_interval: float) -> None:
        self.client = client
        self.report = report
        self.sync_timeout = sync_timeout
        self.poll_interval = poll_interval

    def setup_if_needed(self, email: str, password: str) -> bool:
        """First-run setup when Metabase has no user yet; whether it was run."""
        props = self.client.get("/api/session/properties", auth=False) or {}
        if props.get("has-user-setup", True):
            return False
        token = props.get("setup-token")
        if not token:
            raise MetabaseError(
                f"Metabase at {self.client.url} has no user yet but offers no setup token"
            )
        body = {
            "token": token,
            "user": {"email": email, "password": password, "first_name": "Insiders",
                     "last_name": "Admin"},
            # Metabase ignores prefs.allow_tracking here: see turn_off_tracking()
            "prefs": {"site_name": SITE_NAME, "site_locale": "en"},
        }
        resp = self.client.request("POST", "/api/setup", body=body, auth=False,
                                   ok=(400, 403))
        if isinstance(resp, requests.Response):
            text = error_text(resp)
            hint = ""
            if "password" in text:
                hint = (" (INSIDERS_METABASE_PASSWORD: Metabase's default rule needs at least "
                        "6 characters with a digit, and refuses ~12,000 common passwords)")
            raise MetabaseError(
                f"First-run setup of Metabase at {self.client.url} failed: {text}{hint}"
            )
        self.report.add("setup", email, "created", detail="first admin user")
        return True

    def turn_off_tracking(self) -> None:
        """Setup turns Metabase's anonymous usage tracking on whatever it is sent; undo that."""
        self.client.put("/api/setting/anon-tracking-enabled", {"value": False})
        self.report.add("setting", "anon-tracking-enabled", "updated", detail="false")

    def ensure_database(self, wanted: dict) -> int:
        secret = wanted["details"].get("password")
        for db in listing(self.client.get("/api/database")):
            if db.get("name") != wanted["name"]:
                continue
            current = db.get("details") or {}
            changed = sorted(
                k for k, v in wanted["details"].items()
                if k not in MASKED_DETAIL_KEYS and str(current.get(k)) != str(v)
            )
            if db.get("engine") != wanted["engine"]:
                changed.insert(0, "engine")
            if secret is not None and not fingerprint_matches(current.get(FINGERPRINT_KEY),
                                                              secret):
                changed.append("password")
            if changed:
                self._database_call("PUT", f"/api/database/{db['id']}",
                                    _with_fingerprint(wanted))
                self.report.add("database", wanted["name"], "updated", db["id"],
                                f"{wanted['engine']}: {', '.join(changed)}")
            else:
                self.report.add("database", wanted["name"], "unchanged", db["id"])
            return int(db["id"])
        body = dict(_with_fingerprint(wanted), is_full_sync=True)
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
                f"{error_text(resp)}. Check the INSIDERS_METABASE_DB_* settings: they are "
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
        for coll in listing(self.client.get("/api/collection")):
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
        items = listing(self.client.get(
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

    def store_currency(self, database_id: int) -> str | None:
        """The latest run's currency (`runs.currency`), asked of Metabase like the cards; None
        when the store has no run, no such column yet or no currency recorded."""
        result = self.client.run_native(database_id, CURRENCY_SQL)
        rows = ((result.get("data") or {}).get("rows") or []) if not result.get("error") else []
        value = rows[0][0] if rows and rows[0] else None
        return (str(value).strip().upper() or None) if value else None

    def ensure_card(self, card: CardSpec, database_id: int, collection_id: int,
                    existing: int | None, currency: str | None = None) -> int:
        query = {"database": database_id, "type": "native", "native": {"query": card.sql}}
        settings = currency_settings(card, currency)
        if existing is None:
            body: dict[str, Any] = {
                "name": card.name,
                "type": "question",
                "display": card.display,
                "visualization_settings": settings,
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
        if (not same_sql(native_sql(current_query), card.sql)
                or (current_query or {}).get("database") != database_id):
            changes["dataset_query"] = query
        if current.get("display") != card.display:
            changes["display"] = card.display
        if (current.get("description") or "") != card.description:
            changes["description"] = card.description or None
        if not is_subset(settings, current.get("visualization_settings")):
            changes["visualization_settings"] = settings
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
        tabs = sorted((t for t in current.get("tabs") or [] if isinstance(t, dict)),
                      key=lambda t: (t.get("position") or 0, t.get("id") or 0))
        first_tab = tabs[0]["id"] if tabs else None
        free: dict[Any, dict] = {}
        for dashcard in sorted(dashcards, key=lambda d: d.get("id") or 0):
            free.setdefault(dashcard.get("card_id"), dashcard)
        wanted, matched, new_id = [], set(), -1
        for card in spec.cards:
            p = card.position
            layout: dict[str, Any] = {"card_id": card_ids[card.name], "row": p.row,
                                      "col": p.col, "size_x": p.size_x, "size_y": p.size_y}
            match = free.pop(card_ids[card.name], None)
            if tabs:  # with tabs, every card needs one: ours stay where they are
                layout["dashboard_tab_id"] = (match or {}).get("dashboard_tab_id") or first_tab
            if match is not None:
                wanted.append({"id": int(match["id"]), **layout})
                matched.add(match["id"])
            else:
                wanted.append({"id": new_id, **layout})
                new_id -= 1
        # Cards on a tab that holds none of ours were put there by hand: keep them as they
        # are. Elsewhere the files own the dashboard, so a card added by hand goes.
        our_tabs = {d.get("dashboard_tab_id") for d in wanted}
        for dashcard in dashcards:
            if (tabs and dashcard["id"] not in matched
                    and dashcard.get("dashboard_tab_id") not in our_tabs):
                wanted.append(_as_sent(dashcard))

        def key(d: dict) -> tuple:
            return (d.get("card_id"), d.get("row"), d.get("col"), d.get("size_x"),
                    d.get("size_y"), d.get("dashboard_tab_id") if tabs else None)

        same_cards = sorted(map(key, dashcards), key=str) == sorted(map(key, wanted), key=str)
        changes: dict[str, Any] = {}
        if (current.get("description") or "") != spec.description:
            changes["description"] = spec.description or None
        if not same_cards:
            changes["dashcards"] = wanted
            # without `tabs`, Metabase deletes every tab and the cards on them
            changes["tabs"] = [{"id": t["id"], "name": t["name"]} for t in tabs]
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
    did_setup = steps.setup_if_needed(email, password)
    client.login(email, password)
    if did_setup:
        steps.turn_off_tracking()
    database_id = steps.ensure_database(wanted_db)
    steps.wait_for_sync(database_id)
    steps.validate_cards(spec, database_id)
    currency = steps.store_currency(database_id)
    collection_id = steps.ensure_collection(spec.collection)
    existing = steps.collection_items(collection_id)
    card_ids = {
        card.name: steps.ensure_card(card, database_id, collection_id,
                                     existing.get(("card", card.name)), currency)
        for card in spec.cards
    }
    steps.ensure_dashboard(spec, collection_id, card_ids, existing.get(("dashboard", spec.name)))
    return report


def definition_dir_for(settings: Settings) -> Path:
    """Where the dashboard files are: INSIDERS_METABASE_DEFINITIONS, else the default."""
    return settings.metabase.definitions or default_definition_dir()


def provision_configured(settings: Settings, url: str | None = None,
                         definition_dir: Path | None = None) -> ProvisionReport:
    """`provision()` with what `settings` says, for the CLI and the DAG.

    URL: the argument, else INSIDERS_METABASE_URL, else http://localhost:3000. Admin:
    INSIDERS_METABASE_USER / INSIDERS_METABASE_PASSWORD. The SQL store as Metabase sees
    it: `settings.metabase.db_*` over `settings.sql_url` (see `database_from_settings`).
    """
    if not settings.metabase_user or not settings.metabase_password:
        raise MetabaseError(
            "Set INSIDERS_METABASE_USER and INSIDERS_METABASE_PASSWORD: the Metabase admin's "
            "e-mail and password (on a fresh Metabase, provisioning creates that admin)"
        )
    return provision(
        url or settings.metabase_url or DEFAULT_URL,
        email=settings.metabase_user,
        password=settings.metabase_password,
        database=database_from_settings(settings.sql_url, settings.metabase),
        definition_dir=definition_dir or definition_dir_for(settings),
        wait=settings.metabase.wait,
    )


def provision_from_env(url: str | None = None,
                       definition_dir: Path | None = None) -> ProvisionReport:
    """`provision_configured()` with `Settings.from_env()` (config.py reads the environment)."""
    from insiders.config import Settings

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise MetabaseError(str(exc)) from None
    return provision_configured(settings, url, definition_dir)
