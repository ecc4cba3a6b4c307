"""Forecast: what the Insiders will spend over the next months, with an 80% interval.

Prophet is fitted on the group's daily net revenue (weekly seasonality; yearly
once there are two years of history) and its predictive samples are summed
per month, so each month's interval is the interval of a monthly total, not a
sum of daily intervals.

The backtest is out of time: the group chosen `horizon` months ago is
forecast from what was known then and compared with what it really spent,
next to a naive baseline (its last month, repeated). Backtesting today's group
on its own recent months would flatter the forecast: that group was chosen
*because* it spent a lot in those months.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

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
    if not isinstance(transactions, pd.DataFrame):  # an engine's Lines: it aggregates
        return transactions.daily_revenue(customers, end)
    lines = transactions[(transactions["invoice_date"] < end)
                         & transactions["customer_id"].astype("str").isin(customers)]
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


@contextmanager
def _quiet_prophet() -> Iterator[None]:
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


@contextmanager
def _numpy_global_seed(seed: int) -> Iterator[None]:
    """Prophet draws its predictive samples from numpy's global generator and takes no
    generator argument: seed it for this call and give the caller back its previous state."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _prophet(daily: pd.Series, seed: int):
    from prophet import Prophet

    span = (daily.index.max() - daily.index.min()).days
    model = Prophet(
        interval_width=0.8,
        uncertainty_samples=1000,
        weekly_seasonality=True,
        daily_seasonality=False,
        yearly_seasonality=span >= 730,
    )
    frame = pd.DataFrame({"ds": daily.index, "y": daily.to_numpy()})
    with _quiet_prophet():
        model.fit(frame, seed=seed)
    return model


def prophet_months(daily: pd.Series, as_of: pd.Timestamp, horizon: int, seed: int
                   ) -> pd.DataFrame:
    """Monthly totals with 80% intervals from Prophet's predictive samples."""
    edges = bounds(as_of, horizon)
    end = edges[-1]
    model = _prophet(daily, seed)
    future = pd.DataFrame({"ds": pd.date_range(as_of, end - pd.Timedelta(days=1), freq="D")})
    with _quiet_prophet(), _numpy_global_seed(seed):
        samples = model.predictive_samples(future)["yhat"]  # days x samples
    rows = []
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        mask = ((future["ds"] >= start) & (future["ds"] < stop)).to_numpy()
        totals = samples[mask].sum(axis=0)
        rows.append({
            "month": start,
            "revenue": max(float(np.mean(totals)), 0.0),
            "lower": max(float(np.percentile(totals, 10)), 0.0),
            "upper": max(float(np.percentile(totals, 90)), 0.0),
        })
    return pd.DataFrame(rows)


def naive_months(daily: pd.Series, as_of: pd.Timestamp, horizon: int) -> pd.DataFrame:
    """The last month before `as_of`, repeated: what a forecast must beat."""
    edges = bounds(as_of, 1, before=True)
    last = float(daily[(daily.index >= edges[0]) & (daily.index < edges[1])].sum())
    return pd.DataFrame({"month": periods(as_of, horizon), "revenue": last, "lower": np.nan,
                         "upper": np.nan})


def forecast(daily: pd.Series, as_of: pd.Timestamp, horizon: int, seed: int
             ) -> tuple[pd.DataFrame, str]:
    """Next `horizon` months: Prophet when there is enough history, else the naive baseline."""
    history_days = len(daily)
    if history_days < MIN_HISTORY_DAYS or float(np.abs(daily).sum()) == 0.0:
        return naive_months(daily, as_of, horizon), "naive"
    return prophet_months(daily, as_of, horizon, seed), "prophet"


def _errors(actual: list[float], predicted: list[float]) -> dict:
    a, p = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    nonzero = a != 0
    mape = float(np.mean(np.abs((a[nonzero] - p[nonzero]) / a[nonzero]))) if nonzero.any() else None
    total = float(abs(p.sum() - a.sum()) / abs(a.sum())) if a.sum() else None
    return {"mae": round(float(np.mean(np.abs(a - p))), 2),
            "mape": None if mape is None else round(mape, 4),
            "total_error": None if total is None else round(total, 4)}


def backtest(daily: pd.Series, cut: pd.Timestamp, horizon: int, seed: int) -> dict:
    """Forecast [cut, cut + horizon) from data before `cut`; compare with what happened."""
    before = daily[daily.index < cut]
    if len(before) < MIN_HISTORY_DAYS or float(np.abs(before).sum()) == 0.0:
        return {"available": False,
                "text": (f"Not enough history before {cut.date()} to backtest the forecast "
                         f"(needs {MIN_HISTORY_DAYS} days).")}
    starts = periods(cut, horizon)
    actual = period_totals(daily, starts)
    prophet = prophet_months(before, cut, horizon, seed)
    naive = naive_months(before, cut, horizon)
    p_err = _errors(actual, prophet["revenue"].tolist())
    n_err = _errors(actual, naive["revenue"].tolist())
    inside = [lo <= a <= hi for a, lo, hi in zip(actual, prophet["lower"], prophet["upper"],
                                                 strict=True)]
    winner = "Prophet" if (p_err["mape"] or 0) < (n_err["mape"] or 0) else "the naive baseline"
    return {
        "available": True,
        "forecast_from": str(cut.date()),
        "months": [
            {"month": str(s.date()), "actual": round(a, 2), "prophet": round(p, 2),
             "lower": round(lo, 2), "upper": round(hi, 2), "naive": round(nv, 2)}
            for s, a, p, lo, hi, nv in zip(starts, actual, prophet["revenue"], prophet["lower"],
                                           prophet["upper"], naive["revenue"], strict=True)
        ],
        "prophet": p_err,
        "naive": n_err,
        "interval_coverage": round(float(np.mean(inside)), 4),
        "text": (f"Forecasting the group chosen on {cut.date()} from what was known then, "
                 f"Prophet's monthly error was {p_err['mape']:.0%} against "
                 f"{n_err['mape']:.0%} for the naive baseline (last month repeated): "
                 f"{winner} did better; {sum(inside)} of {horizon} months fell inside "
                 "Prophet's 80% interval.") if p_err["mape"] is not None and n_err["mape"]
        is not None else "The backtest months had no revenue to compare against.",
    }
