"""A session over Metabase's REST API, and what provisioning reports.

The calls follow the API of Metabase v0.64 (`METABASE_VERSION`), checked against its
source (`setup/api.clj`, `session/api.clj`, `warehouses_rest/api.clj`,
`collections_rest/api.clj`, `queries_rest/api/card.clj`, `dashboards_rest/api.clj`,
`query_processor/api.clj`, `util/password.clj`) and the API changelog: since v0.57
`GET /api/card/:id` returns `dataset_query` as MBQL 5, so both query shapes are read
here and the same code drives v0.50 to v0.64.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from insiders.errors import InsidersError

log = logging.getLogger(__name__)

# The Metabase whose API this follows (Docker image metabase/metabase:v0.64.1.5, the
# v0.64 LTS line); the calls also hold for v0.50-v0.63.
METABASE_VERSION = "v0.64.1.5"
DEFAULT_URL = "http://localhost:3000"
DEFAULT_DATABASE_NAME = "Insiders SQL store"
SITE_NAME = "Insiders"
MASKED_DETAIL_KEYS = frozenset({"password", "tunnel-pass", "tunnel-private-key"})


class MetabaseError(InsidersError):
    """A provisioning failure, worded for the person running the command (one line)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


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


def error_text(resp: requests.Response) -> str:
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
                f"Metabase refused {method} {path} (HTTP {resp.status_code}): {error_text(resp)}"
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
            raise MetabaseError(f"Metabase at {self.url} refused the login: {error_text(resp)}")
        if not isinstance(resp, dict) or not resp.get("id"):
            raise MetabaseError(f"Metabase at {self.url} answered the login without a session")
        self.session_id = str(resp["id"])

    def run_native(self, database_id: int, sql: str) -> dict:
        """Run SQL as an ad-hoc native query and return Metabase's answer as a dict.

        A failing query used to answer 202 with `status: failed` in the body; since late
        2025 (v0.57) Metabase answers HTTP 500 with the same kind of body. Both come back
        here as `{"status": "failed", "error": ...}`, so the caller can name the card.
        """
        body = {"database": database_id, "type": "native", "native": {"query": sql}}
        result = self.request("POST", "/api/dataset", body=body, timeout=self.query_timeout,
                              ok=(500,))
        if isinstance(result, requests.Response):
            try:
                payload = result.json()
            except ValueError:
                payload = None
            answer = payload if isinstance(payload, dict) else {}
            return {**answer, "status": "failed",
                    "error": answer.get("error") or error_text(result)}
        return result if isinstance(result, dict) else {}


def listing(payload: Any) -> list[dict]:
    """Lists come bare or as `{"data": [...]}` depending on the endpoint and version."""
    if isinstance(payload, dict):
        payload = payload.get("data", [])
    return [x for x in payload or [] if isinstance(x, dict)]


def native_sql(dataset_query: Any) -> str | None:
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


def same_sql(a: str | None, b: str) -> bool:
    return a is not None and _normal_sql(a) == _normal_sql(b)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def is_subset(wanted: Any, actual: Any) -> bool:
    """Whether every setting we define is in place (Metabase may add its own keys)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            k in actual and is_subset(v, actual[k]) for k, v in wanted.items()
        )
    return _canonical(wanted) == _canonical(actual)


