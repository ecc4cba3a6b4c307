"""Forecast: monthly periods, daily revenue, the naive baseline, Prophet and the backtest.

A synthetic shop trades 1,000 a weekday, 500 on Sundays and nothing on
Saturdays (as the Online Retail shop), with a little seeded noise, so the true
monthly totals are known and Prophet must land near them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
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


def test_naive_baseline_repeats_the_last_month() -> None:
    daily = pd.Series(2.0, index=pd.date_range("2011-09-01", "2011-11-30"))
    daily[pd.Timestamp("2011-11-15")] += 100
    out = fc.naive_months(daily, AS_OF, 3)
    # November: 30 days x 2 + 100
    assert out["revenue"].tolist() == [160.0] * 3
    assert out["month"].tolist() == fc.periods(AS_OF, 3)
    assert out["lower"].isna().all() and out["upper"].isna().all()


def test_too_short_history_falls_back_to_naive() -> None:
    short = shop_daily("2011-10-15", "2011-11-30")  # 47 days
    months, method = fc.forecast(short, AS_OF, 3, seed=42)
    assert method == "naive"
    november = float(short[short.index >= pd.Timestamp("2011-11-01")].sum())
    assert months["revenue"].tolist() == pytest.approx([november] * 3)
    zero = pd.Series(0.0, index=pd.date_range("2010-12-01", "2011-11-30"))
    assert fc.forecast(zero, AS_OF, 3, seed=42)[1] == "naive"  # nothing to learn from


# --------------------------------------------------------------------------- Prophet


@pytest.fixture(scope="module")
def prophet_result() -> tuple[pd.DataFrame, str]:
    return fc.forecast(shop_daily(), AS_OF, 3, seed=42)


def test_prophet_months_and_intervals(prophet_result: tuple[pd.DataFrame, str]) -> None:
    months, method = prophet_result
    assert method == "prophet"
    assert months["month"].tolist() == fc.periods(AS_OF, 3)
    assert (months["lower"] <= months["revenue"]).all()
    assert (months["revenue"] <= months["upper"]).all()
    assert (months["upper"] > months["lower"]).all()  # an interval, not a point
    # the true totals of the noiseless pattern (Dec, Jan: 31 days; Feb 2012: 29)
    truth = [month_of_pattern(m) for m in fc.periods(AS_OF, 3)]
    assert months["revenue"].to_numpy() == pytest.approx(truth, rel=0.05)


def test_prophet_is_deterministic_with_its_seed(prophet_result: tuple[pd.DataFrame, str]
                                                ) -> None:
    again, _ = fc.forecast(shop_daily(), AS_OF, 3, seed=42)
    pd.testing.assert_frame_equal(again, prophet_result[0])


# --------------------------------------------------------------------------- backtest


def test_backtest_errors_match_its_months_table() -> None:
    daily = shop_daily()
    cut = pd.Timestamp("2011-09-01")
    back = fc.backtest(daily, cut, 3, seed=42)
    assert back["available"] and back["forecast_from"] == "2011-09-01"
    months = pd.DataFrame(back["months"])
    assert months["month"].tolist() == ["2011-09-01", "2011-10-01", "2011-11-01"]
    # actual: what the series holds in each month; naive: August, repeated
    for row in back["months"]:
        start = pd.Timestamp(row["month"])
        stop = start + pd.DateOffset(months=1)
        assert row["actual"] == pytest.approx(daily[(daily.index >= start)
                                                    & (daily.index < stop)].sum(), abs=0.01)
    august = daily[(daily.index >= pd.Timestamp("2011-08-01")) & (daily.index < cut)].sum()
    assert months["naive"].to_numpy() == pytest.approx([august] * 3, abs=0.01)
    a = months["actual"].to_numpy()
    for name in ("prophet", "naive"):
        p = months[name].to_numpy()
        assert back[name]["mae"] == pytest.approx(np.mean(np.abs(a - p)), abs=0.01)
        assert back[name]["mape"] == pytest.approx(np.mean(np.abs(a - p) / a), abs=1e-4)
        assert back[name]["total_error"] == pytest.approx(abs(p.sum() - a.sum()) / a.sum(),
                                                          abs=1e-4)
    inside = (months["lower"] <= a) & (a <= months["upper"])
    assert back["interval_coverage"] == pytest.approx(inside.mean(), abs=1e-4)
    assert f"{int(inside.sum())} of 3 months fell inside" in back["text"]
    assert f"{back['prophet']['mape']:.0%} against {back['naive']['mape']:.0%}" in back["text"]


def test_backtest_needs_history_before_the_cut() -> None:
    daily = shop_daily("2011-07-10", "2011-11-30")  # 53 days before the cut
    back = fc.backtest(daily, pd.Timestamp("2011-09-01"), 3, seed=42)
    assert back == {"available": False, "text": "Not enough history before 2011-09-01 to "
                                                "backtest the forecast (needs 60 days)."}
