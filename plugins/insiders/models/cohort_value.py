"""Lifetime value by acquisition cohort: cumulative net revenue per customer, month by month.

A cohort is the calendar month of a customer's first purchase. For each cohort and
each month since that first purchase (0 = the month of the first purchase), the
value is the cohort's net revenue (purchases minus returns) from its first month up
to and including that month, divided by the cohort's size.

Two things a chart must not misread:
- months a cohort has not lived through yet are unknown, not zero: they are NaN
  (absent from the long table, blank in the matrix);
- the as-of month is partial when the as-of is not the 1st (data to 9 December
  covers a third of December): its cells are flagged `partial`, so a flattening
  curve there is read as "month not over", never as customers leaving.
The cohort of the data's first month holds every customer already there when the
data begins, not only new ones: it is flagged `left_censored`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .text import customer_keys


@dataclass(frozen=True)
class CohortValue:
    """The long table (one row per observable cohort x month) and what it covers."""

    table: pd.DataFrame
    last_month: str  # YYYY-MM, the last month with data
    last_month_partial: bool  # the as-of falls inside it

    def matrix(self, column: str = "value_per_customer") -> pd.DataFrame:
        """Cohorts x months since the first purchase; NaN where not observable yet."""
        if self.table.empty:
            return pd.DataFrame()
        wide = self.table.pivot(index="cohort", columns="months_since_first", values=column)
        wide = wide.reindex(columns=range(int(self.table["months_since_first"].max()) + 1))
        wide.columns.name = "months_since_first"
        return wide


def cohort_value(transactions, as_of: pd.Timestamp,
                 first_cohort: pd.Timestamp | None = None) -> CohortValue:
    """Cumulative net revenue per customer by months since first purchase, per cohort.

    `transactions`: kept lines (customer_id, invoice_date, quantity, revenue,
    is_cancellation), or an engine's `Lines` (engine/aggregates.py), which hands back
    only the two small tables below; only lines before `as_of` count. `first_cohort`:
    leave out cohorts before this month (e.g. the analysed period's start).
    """
    as_of = pd.Timestamp(as_of)
    last = _month(as_of - pd.Timedelta(microseconds=1))
    partial = as_of != as_of.normalize().replace(day=1)
    if isinstance(transactions, pd.DataFrame):
        sizes, monthly = cohort_sums(transactions, as_of)
    else:  # the engine sums the lines per cohort and month, in the same order
        sizes, monthly = transactions.cohort_sums(as_of)
    return _cohort_table(sizes, monthly, last, bool(partial), first_cohort)


def cohort_sums(transactions: pd.DataFrame, as_of: pd.Timestamp
                ) -> tuple[pd.Series, pd.Series]:
    """(customers per cohort month, net revenue per cohort and calendar month) of the lines
    before `as_of`: each cell the sum of its lines in line order, from the cohort's month on;
    returns by customers who never bought belong to no cohort."""
    tx = transactions[transactions["invoice_date"] < as_of]
    bought = ((tx["quantity"] > 0) & ~tx["is_cancellation"].astype(bool)).to_numpy()
    if not bought.any():
        return empty_sums()
    keys = customer_keys(tx["customer_id"])  # one integer per customer: only grouped on
    months = _month(tx["invoice_date"]).to_numpy(dtype=np.int64)
    first = pd.Series(months[bought], index=keys[bought])
    first = first[first.index >= 0].groupby(level=0).min()
    frame = pd.DataFrame({"customer": keys, "month": months,
                          "revenue": tx["revenue"].astype(float).to_numpy()})
    frame["cohort"] = first.reindex(frame["customer"]).to_numpy()
    frame = frame[frame["cohort"].notna()]
    frame["cohort"] = frame["cohort"].astype(np.int64)
    frame = frame[frame["month"] >= frame["cohort"]]  # nothing before the first purchase
    sizes = first.value_counts().sort_index()
    return sizes, frame.groupby(["cohort", "month"])["revenue"].sum()


def empty_sums() -> tuple[pd.Series, pd.Series]:
    index = pd.MultiIndex.from_arrays([np.zeros(0, np.int64), np.zeros(0, np.int64)],
                                      names=["cohort", "month"])
    return pd.Series(dtype="int64"), pd.Series(dtype="float64", index=index)


def _cohort_table(sizes: pd.Series, monthly: pd.Series, last: int, partial: bool,
                  first_cohort: pd.Timestamp | None) -> CohortValue:
    """The long table from the cohorts' sizes and monthly sums (either path's)."""
    empty = CohortValue(_empty(), _label(last), partial)
    if sizes.empty:
        return empty
    data_start = int(sizes.index.min())
    if first_cohort is not None:
        sizes = sizes[sizes.index >= _month(pd.Timestamp(first_cohort))]
    if sizes.empty:
        return empty
    rows = []
    for cohort, size in sizes.items():
        cohort = int(cohort)
        months = np.arange(cohort, last + 1)
        revenue = monthly.reindex(pd.MultiIndex.from_product([[cohort], months]),
                                  fill_value=0.0).to_numpy()
        cumulative = np.cumsum(revenue)
        for offset, month in enumerate(months):
            rows.append({
                "cohort": _label(cohort), "months_since_first": offset,
                "calendar_month": _label(int(month)), "customers": int(size),
                "revenue": round(float(revenue[offset]), 2),
                "cumulative_revenue": round(float(cumulative[offset]), 2),
                "value_per_customer": round(float(cumulative[offset]) / int(size), 4),
                "partial": bool(partial and month == last),
                "left_censored": cohort == data_start,
            })
    return CohortValue(pd.DataFrame(rows), _label(last), partial)


def _month(values):
    """Months as integers (year * 12 + month - 1): contiguous, easy to subtract."""
    if isinstance(values, pd.Timestamp):
        return values.year * 12 + values.month - 1
    return values.dt.year * 12 + values.dt.month - 1


def _label(month: int) -> str:
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"cohort": pd.Series(dtype="str"),
                         "months_since_first": pd.Series(dtype="int64"),
                         "calendar_month": pd.Series(dtype="str"),
                         "customers": pd.Series(dtype="int64"),
                         "revenue": pd.Series(dtype="float64"),
                         "cumulative_revenue": pd.Series(dtype="float64"),
                         "value_per_customer": pd.Series(dtype="float64"),
                         "partial": pd.Series(dtype="bool"),
                         "left_censored": pd.Series(dtype="bool")})
