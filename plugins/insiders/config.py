"""All configuration in one place, read from the environment with defaults.

Stage functions never read the environment themselves: they take a `Settings`
(or plain values) so tests and the DAG can pass exactly what they mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


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
    start_date: str = "2011-01-01"  # first month the DAG schedules (catchup starts here)
    end_date: str | None = None  # last one, if any (unset: up to last month; demo: 2011-11)
    catchup_months: int = 12  # a longer schedule is not caught up on unpause (latest month only)
    retry_delay_seconds: int = 120  # between a failed task's tries (Airflow)
    wait_poke_seconds: int = 60  # how often a month waiting for the previous one looks again

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
