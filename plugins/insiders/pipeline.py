"""Running the stages: the whole analysis in one process (`insiders run`) and one month of
the monthly service (`insiders backfill`, tests). The DAG runs the same `stages.MONTHLY`,
one task per stage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from . import stages
from .config import Settings
from .context import Run
from .log import info


def run_stages(run: Run, steps: Sequence[stages.Stage],
               on_stage: Callable[[str], None] | None = None) -> tuple[Run, dict[str, dict]]:
    """Run `steps` in order on `run`; after extract, a run without an as-of date takes the
    source's default (the day after the last line). Returns the run (with its as-of) and
    each stage's figures."""
    outputs: dict[str, dict] = {}
    for stage in steps:
        if on_stage:
            on_stage(stage.name)
        outputs[stage.name] = stage(run)
        if stage is stages.extract and run.as_of is None:
            run = run.with_as_of(run.source.default_as_of(run.folder))
            info("as-of date: %s", run.day.date())
    return run, outputs


def run(
    settings: Settings,
    source: str | Path | None = None,
    as_of: str | pd.Timestamp | None = None,
    out_dir: str | Path = "insiders-out",
    kind: str | None = None,
    previous_members: set[str] | None = None,
    on_stage: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Every analysis stage into `out_dir` (nothing is published to the stores)."""
    one = Run.one_off(settings, out_dir, source, as_of, kind, previous_members, progress)
    done, outputs = run_stages(one, stages.ANALYSIS, on_stage)
    return {"as_of": str(done.day.date()),
            "timings": {name: out["seconds"] for name, out in outputs.items()},
            **outputs["report"]}
