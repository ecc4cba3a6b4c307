"""All configuration in one place, read from the environment with defaults.

This is the only module that reads the environment. Stage functions take a
`Settings`; model functions take the small parameter group they need
(`Windows`, `SelectionRules`, `SegmentationRules`, `StabilityRules`), whose
defaults are written here once, so tests and the DAG pass exactly what they mean.
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
class Windows:
    """The analysed period ends at the as-of date and spans `lookback_months`; "next" is the
    `horizon_months` after it (value model, forecast, out-of-time checks)."""

    lookback_months: int = 12
    horizon_months: int = 3


@dataclass(frozen=True)
class SelectionRules:
    """How big the Insiders group is and how sticky membership is."""

    value_coverage: float = 0.50  # as many as the top spenders who bring this share of the period
    min_share: float = 0.05  # at least this share of active customers...
    max_share: float = 0.20  # ...and at most this share
    exit_factor: float = 1.5  # members stay while within exit_factor x the entry size


@dataclass(frozen=True)
class SegmentationRules:
    k_min: int = 3
    k_max: int = 8
    min_segment_share: float = 0.02  # a segment smaller than this is not actionable
    cluster_sample: int = 2000  # candidates are fitted on at most this many customers


@dataclass(frozen=True)
class StabilityRules:
    months: int = 6  # months of re-fits to compare with the aged model (0 = skip)
    threshold: float = 0.8  # ARI below this: refresh the segmentation


# where the line-level work runs (engine/); auto: pandas up to engine.steps.AUTO_PANDAS_LINES
# input lines (faster there, in memory), DuckDB beyond (out of core)
ENGINES = ("auto", "duckdb", "spark", "pandas")
DEFAULT_SEED = 42
DEFAULT_BOOTSTRAP = 1000


@dataclass(frozen=True)
class Settings:
    """Knobs of the analysis and where things live. Defaults suit the demo and Online Retail."""

    # where things live
    home: Path = field(default_factory=lambda: Path("insiders-home").resolve())
    source: str | None = None  # file, glob, folder or SQLAlchemy URL; None = the demo data
    source_kind: str | None = None  # a registered source adapter (sources/); None = the default
    source_query: str | None = None  # table name or SELECT for SQL sources
    mongo_uri: str | None = None  # mongodb://... ; None = embedded on-disk store under home
    mongo_db: str = "insiders"
    lock_lease_seconds: int = 120  # a month's write lock is taken over once its lease expires
    sql_url: str | None = None  # SQLAlchemy URL; None = SQLite file under home
    metabase_url: str | None = None
    metabase_user: str | None = None
    metabase_password: str | None = None
    metabase: MetabaseSettings = field(default_factory=MetabaseSettings)
    start_date: str = "2011-01-01"  # first month the DAG schedules (catchup starts here)
    end_date: str | None = None  # last one, if any (unset: up to last month; demo: 2011-11)
    catchup_months: int = 12  # a longer schedule is not caught up on unpause (latest month only)
    retry_delay_seconds: int = 120  # between a failed task's tries (Airflow)
    wait_poke_seconds: int = 60  # how often a month waiting for the previous one looks again

    # the analysis (defaults: the parameter groups above)
    lookback_months: int = Windows.lookback_months
    horizon_months: int = Windows.horizon_months
    min_share: float = SelectionRules.min_share
    max_share: float = SelectionRules.max_share
    value_coverage: float = SelectionRules.value_coverage
    exit_factor: float = SelectionRules.exit_factor
    k_min: int = SegmentationRules.k_min
    k_max: int = SegmentationRules.k_max
    min_segment_share: float = SegmentationRules.min_segment_share
    cluster_sample: int = SegmentationRules.cluster_sample
    bootstrap: int = DEFAULT_BOOTSTRAP
    # the gradient-boosted `learned` challenger and its rank blend in the monthly value
    # contest: they never won on either data set and cost most of the replay (models.valuation)
    learned_challenger: bool = False
    stability_threshold: float = StabilityRules.threshold
    stability_months: int = StabilityRules.months
    seed: int = DEFAULT_SEED
    chunk_rows: int = 250_000
    # stock codes that are not products: comma separated, `NAME*` a prefix; None = the Online
    # Retail list (quality.DEFAULT_NON_PRODUCT_CODES), "" from the CLI = none
    non_product_codes: str | None = None
    # the money's currency code (GBP, EUR...) for a retailer using the Online Retail layout;
    # None = the source adapter's (GBP for Online Retail; Olist is always BRL)
    currency: str | None = None
    # where the transaction-level work runs (engine/): duckdb (embedded, out of core), spark
    # (the spark extra; spark_master local[N] or spark://host:7077), pandas (in process) or
    # auto: pandas for an input of at most engine.steps.AUTO_PANDAS_LINES lines, else duckdb
    engine: str = "auto"
    engine_memory: str | None = "2GB"  # DuckDB's memory_limit: beyond it, it spills to disk
    spark_master: str = "local[2]"
    spark_conf: str | None = None  # "key=value,key=value", e.g. spark.driver.port=4141
    # a SQL input (a table) aggregated inside its database (engine/pushdown.py): only the
    # counts and per-customer, per-day and per-month rows leave it, never the lines
    pushdown: bool = False
    # stages that read nothing of each other run side by side in one `insiders run` (the
    # extra ones in forked copies of the process, pipeline.run_stages); 1 = one stage at a
    # time. Airflow runs them side by side on its own.
    workers: int = 2

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            from .errors import InsidersError

            raise InsidersError(f"engine {self.engine!r} (INSIDERS_ENGINE or --engine) is not "
                                f"one of {', '.join(ENGINES)}")
        if self.workers < 1:
            from .errors import InsidersError

            raise InsidersError(f"workers {self.workers} (INSIDERS_WORKERS or --workers) must "
                                "be at least 1")
        if not isinstance(self.home, Path):  # a plain string from a caller is fine
            object.__setattr__(self, "home", Path(self.home).expanduser().resolve())

    @property
    def sql_url_or_default(self) -> str:
        return self.sql_url or f"sqlite:///{self.home / 'insiders.sqlite'}"

    @property
    def mongo_uri_or_default(self) -> str:
        return self.mongo_uri or f"embedded://{self.home / 'documents'}"

    @property
    def windows(self) -> Windows:
        return Windows(self.lookback_months, self.horizon_months)

    @property
    def selection(self) -> SelectionRules:
        return SelectionRules(self.value_coverage, self.min_share, self.max_share,
                              self.exit_factor)

    @property
    def segmentation(self) -> SegmentationRules:
        return SegmentationRules(self.k_min, self.k_max, self.min_segment_share,
                                 self.cluster_sample)

    @property
    def stability(self) -> StabilityRules:
        return StabilityRules(self.stability_months, self.stability_threshold)

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
            elif f.type in ("bool",):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "home" in values:
            values["home"] = Path(values["home"]).expanduser().resolve()
        return cls(**values)
