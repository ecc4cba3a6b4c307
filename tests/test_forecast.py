"""Forecast: monthly periods, daily revenue, the naive baseline, Prophet and the backtest.

A synthetic shop trades 1,000 a weekday, 500 on Sundays and nothing on
Saturdays (as the Online Retail shop), with a little seeded noise, so the true
monthly totals are known and Prophet must land near them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from insiders.models import forecast as fc

AS_OF = pd.Timestamp("2011-12-01")


def pattern(days: pd.DatetimeIndex) -> np.ndarray:
    """The shop without noise: Monday-Friday 1000, Saturday 0, Sunday 500."""
    weekday = days.dayofweek
    return np.select([weekday < 5, weekday == 5], [1000.0, 0.0], 500.0)


def shop_daily(start: str = "2010-12-01", end: str = "2011-11-30", seed: int = 0) -> pd.Series:
    days = pd.date_range(start, end, freq="D")
    noise = np.random.default_rng(seed).normal(0, 50, len(days))
    return pd.Series(np.where(pattern(days) > 0, pattern(days) + noise, 0.0), index=days)


def month_of_pattern(start: pd.Timestamp) -> float:
    days = pd.date_range(start, start + pd.DateOffset(months=1) - pd.Timedelta(days=1))
    return float(pattern(days).sum())


# --------------------------------------------------------------------------- periods & series


def test_periods_after_and_before_the_as_of_date() -> None:
    assert fc.periods(AS_OF, 3) == [pd.Timestamp("2011-12-01"), pd.Timestamp("2012-01-01"),
                                    pd.Timestamp("2012-02-01")]
    assert fc.periods(AS_OF, 3, before=True) == [
        pd.Timestamp("2011-09-01"), pd.Timestamp("2011-10-01"), pd.Timestamp("2011-11-01")]
    # an as-of in mid-month gives month-long periods from that day
    assert fc.periods(pd.Timestamp("2011-12-10"), 2) == [pd.Timestamp("2011-12-10"),
                                                         pd.Timestamp("2012-01-10")]


def test_periods_tile_the_horizon_for_an_end_of_month_as_of() -> None:
    """From the 31st, periods are whole months from the as-of and touch: no day is lost."""
    as_of = pd.Timestamp("2011-01-31")
    starts = fc.periods(as_of, 3)
    edges = fc.bounds(as_of, 3)
    assert starts == edges[:-1]
    assert edges == [pd.Timestamp(d) for d in ("2011-01-31", "2011-02-28", "2011-03-31",
                                               "2011-04-30")]
    ones = pd.Series(1.0, index=pd.date_range("2011-01-01", "2011-12-31"))
    # every day from 31 Jan to 29 Apr falls in exactly one period: 28 + 31 + 30 days
    assert fc.period_totals(ones, starts) == [28.0, 31.0, 30.0]



def test_daily_revenue_of_the_group() -> None:
    tx = pd.DataFrame({
        "customer_id": pd.Categorical(["B", "A", "A", "B", "A", "A"]),
        "invoice_date": pd.to_datetime(["2011-10-30 09:00", "2011-11-01 10:00",
                                        "2011-11-01 15:00", "2011-11-02 11:00",
                                        "2011-11-03 12:00", "2011-11-05 08:00"]),
        "revenue": [1.0, 10.0, 5.0, 100.0, -3.0, 7.0],
    })
    daily = fc.daily_revenue(tx, {"A"}, pd.Timestamp("2011-11-05"))
    # from the first day of any line (B's, 30 Oct) to the day before the end; A nets per day;
    # the 5 Nov line is on the end date and not counted
    assert daily.index.tolist() == list(pd.date_range("2011-10-30", "2011-11-04"))
    assert daily.tolist() == [0.0, 0.0, 15.0, 0.0, -3.0, 0.0]
    assert fc.daily_revenue(tx, {"nobody"}, pd.Timestamp("2011-11-05")).empty


def test_period_totals() -> None:
    """Consecutive periods end where the next begins; the last one a month after its start."""
    ones = pd.Series(1.0, index=pd.date_range("2011-01-01", "2011-12-31"))
    assert fc.period_totals(ones, [pd.Timestamp("2011-02-01"), pd.Timestamp("2011-03-01"),
                                   pd.Timestamp("2011-04-01")]) == [28.0, 31.0, 30.0]
    # the data ends on 31 Dec: a period starting 15 Dec holds 17 days of it
    assert fc.period_totals(ones, [pd.Timestamp("2011-12-15")]) == [17.0]


def test_prophet_is_quieted_for_one_call_only() -> None:
    """Prophet's and cmdstanpy's chatter is silenced inside the call and given back after:
    no process-wide logger switch-off."""
    import logging

    stan, prophet = logging.getLogger("cmdstanpy"), logging.getLogger("prophet")
    before = stan.disabled, prophet.level
    with fc.quiet_prophet():
        assert stan.disabled and prophet.level == logging.WARNING
    assert (stan.disabled, prophet.level) == before


def test_prophet_is_imported_without_matplotlib_which_stays_importable() -> None:
    """A fresh process: Prophet's class comes without matplotlib loaded and without a
    logged complaint, fits and predicts; matplotlib then imports as usual."""
    import subprocess
    import sys

    script = """
import logging, sys
import pandas as pd
logging.basicConfig(level=logging.DEBUG)
from insiders.models import forecast as fc
Prophet = fc.prophet_class()
assert 'matplotlib' not in sys.modules, 'matplotlib was loaded'
days = pd.date_range('2011-01-01', periods=120)
with fc.quiet_prophet():
    model = Prophet(uncertainty_samples=0).fit(
        pd.DataFrame({'ds': days, 'y': (days.dayofweek < 5) * 100.0}))
    yhat = model.predict(pd.DataFrame({'ds': pd.date_range('2011-05-01', periods=7)}))['yhat']
assert yhat.between(-50, 150).all(), list(yhat)
import matplotlib
print('ok', fc.prophet_class() is Prophet)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "True"]
    assert "Importing matplotlib failed" not in done.stderr
