"""All configuration in one place, read from the environment with defaults.

Stage functions never read the environment themselves: they take a `Settings`
(or plain values) so tests and the DAG can pass exactly what they mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _number(name: str, kind: type[int] | type[float], default: Any) -> Any:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class MetabaseSettings:
    """Metabase beyond URL and admin (INSIDERS_METABASE_*): waiting, definitions, the store.

    The `db_*` values describe the SQL store as the Metabase server reaches it (inside
    Docker another host name than the pipeline's); what they leave out comes from
    `Settings.sql_url`. None means "not set".
    """

    wait: float = 0.0  # seconds to wait for a Metabase that is still starting
    definitions: Path | None = None  # folder with dashboard.json and cards/
    db_engine: str | None = None  # postgres | sqlite
    db_host: str | None = None
    db_port: int | None = None
    db_name: str | None = None
    db_user: str | None = None
    db_password: str | None = field(default=None, repr=False)  # never in logs
    db_path: str | None = None  # SQLite file, as a path on the Metabase server
    db_display_name: str | None = None  # the database's name in Metabase

    @classmethod
    def from_env(cls) -> MetabaseSettings:
        definitions = _env("INSIDERS_METABASE_DEFINITIONS")
        return cls(
            wait=float(_number("INSIDERS_METABASE_WAIT", float, 0.0) or 0.0),
            definitions=Path(definitions).expanduser() if definitions else None,
            db_engine=_env("INSIDERS_METABASE_DB_ENGINE"),
            db_host=_env("INSIDERS_METABASE_DB_HOST"),
            db_port=_number("INSIDERS_METABASE_DB_PORT", int, None),
            db_name=_env("INSIDERS_METABASE_DB_NAME"),
            db_user=_env("INSIDERS_METABASE_DB_USER"),
            db_password=_env("INSIDERS_METABASE_DB_PASSWORD"),
            db_path=_env("INSIDERS_METABASE_DB_PATH"),
            db_display_name=_env("INSIDERS_METABASE_DB_DISPLAY_NAME"),
        )


@dataclass(frozen=True)
class Settings:
    """Knobs of the analysis and where things live. Defaults suit the demo and Online Retail."""

    # where things live
    home: Path = field(default_factory=lambda: Path("insiders-home").resolve())
    source: str | None = None  # file, glob, directory (olist) or SQLAlchemy URL; None = demo
    source_kind: str = "online_retail"  # or "olist"
    source_query: str | None = None  # table name or SELECT for SQL sources
    mongo_uri: str | None = None  # mongodb://... ; None = embedded on-disk store under home
    mongo_db: str = "insiders"
    sql_url: str | None = None  # SQLAlchemy URL; None = SQLite file under home
    metabase_url: str | None = None
    metabase_user: str | None = None
    metabase_password: str | None = None
    metabase: MetabaseSettings = field(default_factory=MetabaseSettings)
    start_date: str = "2011-01-01"  # first month the DAG schedules (catchup starts here)
    end_date: str | None = None  # last one, if any

    # the analysis
    lookback_months: int = 12  # the analysed period ends at as_of and spans this many months
    horizon_months: int = 3  # "next" = this many months after as_of (value model, forecast)
    min_share: float = 0.05  # Insiders are at least this share of active customers...
    max_share: float = 0.20  # ...and at most this share
    value_coverage: float = 0.50  # smallest group expected to bring this share of next revenue
    exit_factor: float = 1.5  # members stay while within exit_factor x the entry size (hysteresis)
    k_min: int = 3
    k_max: int = 8
    min_segment_share: float = 0.02  # a segment smaller than this is not actionable
    cluster_sample: int = 2000  # clustering candidates are fitted on at most this many customers
    bootstrap: int = 1000
    stability_threshold: float = 0.8
    stability_months: int = 6
    seed: int = 42
    chunk_rows: int = 250_000

    def __post_init__(self) -> None:
        if not isinstance(self.home, Path):  # a plain string from a caller is fine
            object.__setattr__(self, "home", Path(self.home).expanduser().resolve())

    @property
    def sql_url_or_default(self) -> str:
        return self.sql_url or f"sqlite:///{self.home / 'insiders.sqlite'}"

    @property
    def mongo_uri_or_default(self) -> str:
        return self.mongo_uri or f"embedded://{self.home / 'documents'}"

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Read INSIDERS_* variables; explicit overrides win."""
        values: dict = {}
        for f in fields(cls):
            if f.name == "metabase":
                values[f.name] = MetabaseSettings.from_env()
                continue
            raw = _env(f"INSIDERS_{f.name.upper()}")
            if raw is None:
                continue
            if f.name == "home":
                values[f.name] = Path(raw).expanduser().resolve()
            elif f.type in ("int",):
                values[f.name] = int(raw)
            elif f.type in ("float",):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "home" in values:
            values["home"] = Path(values["home"]).expanduser().resolve()
        return cls(**values)
