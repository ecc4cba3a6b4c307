"""Lifetime value by cohort on frames small enough to add up by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from insiders.models.cohort_value import cohort_value


def _tx(lines: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(lines, columns=["customer_id", "invoice_date", "quantity", "unit_price"])
    frame["invoice_date"] = pd.to_datetime(frame["invoice_date"])
    frame["revenue"] = frame["quantity"] * frame["unit_price"]
    frame["is_cancellation"] = frame["quantity"] < 0
    frame["customer_id"] = frame["customer_id"].astype("category")
    return frame


LINES = [
    ("A", "2011-01-05", 10, 10.0),   # A: 100 in January
    ("B", "2011-01-20", 1, 10.0),    # B: 10 in January
    ("A", "2011-03-02", 5, 10.0),    # A: 50 in March ...
    ("A", "2011-03-09", -2, 10.0),   # ... and 20 back: March nets 30
    ("C", "2011-03-15", 3, 10.0),    # C: first purchase in March, 30
    ("D", "2011-02-01", -1, 10.0),   # D never bought in the data: in no cohort
    ("E", "2011-01-10", -1, 5.0),    # E returns in January what was bought before the data,
    ("E", "2011-02-10", 2, 5.0),     # then buys in February: cohort February, 10
    ("C", "2011-04-20", 1, 99.0),    # on or after the as-of: not known yet
]


def test_cumulative_value_per_customer_with_unknown_months_blank() -> None:
    result = cohort_value(_tx(LINES), pd.Timestamp("2011-04-15"))
    assert (result.last_month, result.last_month_partial) == ("2011-04", True)
    values = result.matrix()
    assert list(values.index) == ["2011-01", "2011-02", "2011-03"]
    # January (A, B): 110, 110, 140, 140 over 2 customers
    assert values.loc["2011-01"].tolist() == [55.0, 55.0, 70.0, 70.0]
    # February (E): 10, 10, 10, then a month not lived yet
    assert values.loc["2011-02", [0, 1, 2]].tolist() == [10.0, 10.0, 10.0]
    assert np.isnan(values.loc["2011-02", 3])
    # March (C): 30, 30; two months not observable yet are blank, not 0
    assert values.loc["2011-03", [0, 1]].tolist() == [30.0, 30.0]
    assert values.loc["2011-03", [2, 3]].isna().all()
    assert result.matrix("customers").loc[:, 0].tolist() == [2, 1, 1]


def test_the_partial_last_month_is_flagged() -> None:
    table = cohort_value(_tx(LINES), pd.Timestamp("2011-04-15")).table
    flagged = table.loc[table["partial"], ["cohort", "calendar_month"]]
    assert flagged.to_dict("records") == [
        {"cohort": "2011-01", "calendar_month": "2011-04"},
        {"cohort": "2011-02", "calendar_month": "2011-04"},
        {"cohort": "2011-03", "calendar_month": "2011-04"}]
    # only the data's first month holds customers from before the data
    assert table.groupby("cohort")["left_censored"].first().to_dict() == {
        "2011-01": True, "2011-02": False, "2011-03": False}


def test_an_as_of_on_the_first_ends_with_a_complete_month() -> None:
    result = cohort_value(_tx(LINES), pd.Timestamp("2011-04-01"))
    assert (result.last_month, result.last_month_partial) == ("2011-03", False)
    assert not result.table["partial"].any()
    assert result.matrix().loc["2011-01"].tolist() == [55.0, 55.0, 70.0]


def test_first_cohort_and_empty_input() -> None:
    result = cohort_value(_tx(LINES), pd.Timestamp("2011-04-15"),
                          first_cohort=pd.Timestamp("2011-02-01"))
    assert list(result.matrix().index) == ["2011-02", "2011-03"]
    none = cohort_value(_tx(LINES), pd.Timestamp("2010-06-01"))
    assert none.table.empty and none.matrix().empty
    assert set(none.table.columns) >= {"cohort", "months_since_first", "partial"}


def test_revenue_adds_up_to_the_cohorts_net_revenue() -> None:
    table = cohort_value(_tx(LINES), pd.Timestamp("2011-04-15")).table
    last = table.sort_values("months_since_first").groupby("cohort").last()
    # A 130 + B 10, E 10, C 30: every kept line but D's and E's pre-purchase return
    assert last["cumulative_revenue"].to_dict() == pytest.approx(
        {"2011-01": 140.0, "2011-02": 10.0, "2011-03": 30.0})
