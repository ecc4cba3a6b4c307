"""The monthly service: one run per month, published to the document store and SQL.

A run covers the month that just ended: as-of 2011-12-01 (exclusive) is run
`2011-11`. The DAG runs `stages.MONTHLY` one task per stage; `run_month` runs the
same stages in this process, for engineers without Airflow (`insiders backfill`)
and for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import stages
from .config import Settings
from .context import Run, as_of_date

if TYPE_CHECKING:  # the DAG file imports this module: it parses without pandas
    import pandas as pd


def run_month(as_of: object, settings: Settings | None = None) -> dict[str, dict]:
    """Every task of the DAG for one month, in order, in this process: each stage's figures.

    The month is held for the whole run (the same lease a DAG run takes in `plan`), so no
    DAG run or other process writes its folder or stores meanwhile."""
    from . import pipeline, schedule

    run = Run.monthly(settings or Settings.from_env(), as_of)
    with schedule.month_lease(run.settings.home, run.month):
        _, outputs = pipeline.run_stages(run, stages.MONTHLY)
    return outputs


def months(start: object, end: object) -> list[pd.Timestamp]:
    """As-of dates of the monthly runs from `start` to `end` (first days of months)."""
    import pandas as pd

    return list(pd.date_range(as_of_date(start), as_of_date(end), freq="MS"))


def metabase_configured(settings: Settings) -> bool:
    return bool(settings.metabase_url and settings.metabase_user and settings.metabase_password)


def refresh_metabase(settings: Settings) -> dict:
    """Make Metabase match the dashboard definitions (idempotent: usually changes nothing),
    with the source's own dashboards (Olist: the customer experience)."""
    from .dashboards import provision
    from .sources import get_source

    out = {"insiders": str(provision.provision_configured(settings))}
    for name in get_source(settings.source_kind).dashboards:
        out[name] = str(provision.provision_configured(
            settings, definition_dir=provision.definition_dir_for(settings) / name))
    return out
