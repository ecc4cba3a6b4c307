"""The whole flow in one process (the `insiders run` command), stage by stage.

It calls exactly the functions the Airflow tasks call, on a run folder, so the
CLI and the DAG cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from . import demo, tasks
from .config import Settings
from .log import info

STAGES = ("extract", "quality", "features", "segment", "insiders", "evaluate", "forecast",
          "stability", "report")


def resolve_source(settings: Settings, source: str | Path | None) -> str:
    """The input to read: the given path, the configured source, or the demo data set."""
    if source:
        return str(source)
    if settings.source:
        return settings.source
    path = demo.demo_path(settings.home)
    info("no input given: using the demo data set %s", path)
    return str(path)


def run(
    settings: Settings,
    source: str | Path | None = None,
    as_of: str | pd.Timestamp | None = None,
    out_dir: str | Path = "insiders-out",
    kind: str | None = None,
    previous_members: list[str] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict:
    """Run every stage into `out_dir`; returns the timings and the output paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind = kind or settings.source_kind
    source = resolve_source(settings, source)
    timings: dict[str, float] = {}

    def step(name: str, func, *args, **kwargs):
        if on_stage:
            on_stage(name)
        started = time.perf_counter()
        result = func(*args, **kwargs)
        timings[name] = round(time.perf_counter() - started, 3)
        return result

    step("extract", tasks.extract_stage, out, source, kind, settings.source_query,
         settings.chunk_rows)
    as_of_ts = pd.Timestamp(as_of) if as_of is not None else tasks.default_as_of(out)
    info("as-of date: %s", as_of_ts.date())
    step("quality", tasks.quality_stage, out, as_of_ts, settings)
    step("features", tasks.features_stage, out, as_of_ts, settings)
    step("segment", tasks.segment_stage, out, settings)
    step("insiders", tasks.insiders_stage, out, as_of_ts, settings, previous_members)
    step("evaluate", tasks.evaluate_stage, out, as_of_ts, settings)
    step("forecast", tasks.forecast_stage, out, as_of_ts, settings)
    if settings.stability_months > 0:
        step("stability", tasks.stability_stage, out, as_of_ts, settings)
    result = step("report", tasks.report_stage, out, as_of_ts, settings)
    return {"as_of": str(as_of_ts.date()), "timings": timings, **result}
