"""Forecast helpers: month-long periods that tile the time line, a group's daily revenue,
and a quiet Prophet.

The forecast itself is `models.group_forecast`: the members' expected spend, calibrated
on earlier groups, split over the months by Prophet's shape.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from .text import as_text

MIN_HISTORY_DAYS = 60


def periods(as_of: pd.Timestamp, count: int, before: bool = False) -> list[pd.Timestamp]:
    """Starts of month-long periods after `as_of` (or before it): calendar months on the 1st."""
    return bounds(as_of, count, before)[:-1]


def bounds(as_of: pd.Timestamp, count: int, before: bool = False) -> list[pd.Timestamp]:
    """count + 1 boundaries, each a whole number of months from `as_of`, so periods tile
    the time line even from the 31st (31 Jan, 29 Feb, 31 Mar... never a gap)."""
    if before:
        return [as_of - pd.DateOffset(months=count - i) for i in range(count + 1)]
    return [as_of + pd.DateOffset(months=i) for i in range(count + 1)]


def _pairs(starts: list[pd.Timestamp]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(start, end) of each period; the end of the last is one month after its start."""
    ends = [*starts[1:], starts[-1] + pd.DateOffset(months=1)] if starts else []
    return list(zip(starts, ends, strict=True))


def daily_revenue(transactions: pd.DataFrame, customers: set[str], end: pd.Timestamp
                  ) -> pd.Series:
    """Net revenue per day of the given customers before `end` (days without sales are 0)."""
    lines = transactions[(transactions["invoice_date"] < end)
                         & as_text(transactions["customer_id"]).isin(customers)]
    if lines.empty:
        return pd.Series(dtype=float)
    day = lines["invoice_date"].dt.floor("D")
    daily = lines.groupby(day)["revenue"].sum()
    first = transactions["invoice_date"].min().floor("D")
    index = pd.date_range(first, pd.Timestamp(end) - pd.Timedelta(days=1), freq="D")
    return daily.reindex(index, fill_value=0.0)


def period_totals(daily: pd.Series, starts: list[pd.Timestamp]) -> list[float]:
    return [float(daily[(daily.index >= start) & (daily.index < end)].sum())
            for start, end in _pairs(starts)]


def prophet_class() -> type:
    """Prophet's model class, imported without its plotting stack.

    `prophet` imports matplotlib for `Prophet.plot` at import time (0.4-0.5 s of a 9 s run
    on the real file, in every forecast task of the DAG); Insiders never plots with it.
    While Prophet is first imported, matplotlib is made unimportable (Prophet catches
    that and only its plot functions stop working) and its one-line complaint is muted;
    afterwards matplotlib imports normally for anyone else. A process that already
    loaded matplotlib keeps it."""
    if "prophet" not in sys.modules and "matplotlib" not in sys.modules:
        muted = logging.getLogger("prophet.plot")
        saved = muted.disabled
        muted.disabled = True
        sys.modules["matplotlib"] = None  # type: ignore[assignment]  # import -> ImportError
        try:
            import prophet  # noqa: F401 (the first import, the one that matters)
        finally:
            del sys.modules["matplotlib"]
            muted.disabled = saved
    from prophet import Prophet

    return Prophet


@contextmanager
def quiet_prophet() -> Iterator[None]:
    """Silence cmdstanpy's and Prophet's per-fit chatter for this call only.

    The loggers' own settings are restored afterwards, so a caller that wants them
    (debugging a fit) still gets them elsewhere; warnings are caught the same way.
    """
    stan, prophet = logging.getLogger("cmdstanpy"), logging.getLogger("prophet")
    saved = stan.disabled, prophet.level
    stan.disabled = True
    prophet.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        stan.disabled, _ = saved
        prophet.setLevel(saved[1])
