"""The run context: what one run of the stages is about, decided once.

Every stage takes a `Run`: the settings, the run folder, the source adapter, the
input, and the as-of date - normalised here once (midnight, naive UTC) so no
stage converts dates again. A monthly run (the DAG, `insiders backfill`) is
named by the month it covers and reads the previous month's Insiders from the
document store; a one-off run (`insiders run`) writes into a folder of the
user's choice and takes previous members only when given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import RunFolder
from .config import Settings
from .sources import Source, get_source

if TYPE_CHECKING:
    import pandas as pd


def as_of_date(value: object) -> pd.Timestamp:
    """The as-of date (midnight, naive UTC) from a date, a string or a data_interval_end."""
    import pandas as pd

    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"not a date: {value!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def month_of(as_of: object) -> str:
    """The month a monthly run covers: the month before its as-of date (as-of 2011-12-01:
    run `2011-11`, every line dated before 2011-12-01)."""
    import pandas as pd

    return (as_of_date(as_of) - pd.Timedelta(days=1)).strftime("%Y-%m")


@dataclass(frozen=True)
class Run:
    settings: Settings
    folder: RunFolder
    source: Source
    location: str  # the input as given: file, folder, glob or SQLAlchemy URL
    as_of: pd.Timestamp | None = None  # None until the data decide it (one-off runs)
    month: str | None = None  # "2011-11" for a monthly run, None for a one-off run
    # Insiders of the previous run; None = read them from the document store (monthly runs)
    previous_members: frozenset[str] | None = None
    progress: Callable[[int], None] | None = None  # called with rows read (CLI progress bar)

    @classmethod
    def monthly(cls, settings: Settings, as_of: object) -> Run:
        """The run for the month before `as_of`, in INSIDERS_HOME/runs/<YYYY-MM>."""
        day = as_of_date(as_of)
        month = month_of(day)
        return cls(settings=settings, folder=RunFolder(settings.home / "runs" / month),
                   source=get_source(settings.source_kind),
                   location=resolve_location(settings, None), as_of=day, month=month)

    @classmethod
    def one_off(cls, settings: Settings, out_dir: Path | str, location: str | Path | None = None,
                as_of: object | None = None, kind: str | None = None,
                previous_members: set[str] | frozenset[str] | None = None,
                progress: Callable[[int], None] | None = None) -> Run:
        """A run of the analysis into `out_dir` (no stores: nothing is published)."""
        return cls(settings=settings, folder=RunFolder(out_dir),
                   source=get_source(kind or settings.source_kind),
                   location=resolve_location(settings, location),
                   as_of=None if as_of is None else as_of_date(as_of),
                   previous_members=frozenset(previous_members or ()), progress=progress)

    @property
    def day(self) -> pd.Timestamp:
        """The as-of date; a stage that needs it runs after it is known."""
        if self.as_of is None:
            raise RuntimeError("the as-of date is not decided yet (run the extract stage first)")
        return self.as_of

    def with_as_of(self, as_of: object) -> Run:
        return replace(self, as_of=as_of_date(as_of))


def resolve_location(settings: Settings, location: str | Path | None) -> str:
    """The input to read: the given one, the configured source, or the demo data set."""
    if location:
        return str(location)
    if settings.source:
        return settings.source
    from . import demo
    from .log import info

    path = demo.demo_path(settings.home)
    info("no input given: using the demo data set %s", path)
    return str(path)
