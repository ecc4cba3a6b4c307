"""Features: one row per customer, as known on the as-of date.

Every feature is computed from lines dated in the analysed period
[as_of - lookback, as_of) except tenure, which looks at the whole history
before as_of. Returns and cancellations net against purchases: `monetary` is
what the customer really left with the shop.
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd

DAY = np.timedelta64(1, "D")
DAYS_PER_MONTH = 30.4375

FEATURES = [
    "recency_days",
    "frequency",
    "monetary",
    "avg_ticket",
    "basket_size",
    "basket_variety",
    "avg_days_between",
    "purchases_per_month",
    "tenure_days",
    "return_rate",
    "revenue_90d",
]

# what each feature means, for the report and the data dictionary
DESCRIPTIONS = {
    "recency_days": "days since the last purchase",
    "frequency": "purchase invoices in the period",
    "monetary": "net revenue in the period (purchases minus returns)",
    "avg_ticket": "average gross value of a purchase invoice",
    "basket_size": "average units per purchase invoice",
    "basket_variety": "average distinct products per purchase invoice",
    "avg_days_between": "average days between purchases (empty for one purchase)",
    "purchases_per_month": "purchase invoices per month of tenure in the period",
    "tenure_days": "days since the first purchase ever",
    "return_rate": "returned value as a share of purchased value",
    "revenue_90d": "net revenue in the last 90 days",
}


def period_start(as_of: pd.Timestamp, lookback_months: int) -> pd.Timestamp:
    return as_of - pd.DateOffset(months=lookback_months)


def first_date(transactions, default: pd.Timestamp) -> pd.Timestamp:
    """The earliest line's date (`default` when there are no lines); `transactions` is a
    frame or an engine's `Lines` (engine/aggregates.py)."""
    if not isinstance(transactions, pd.DataFrame):
        return transactions.first_date() if len(transactions) else default
    return transactions["invoice_date"].min() if len(transactions) else default


def date_range(transactions) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The first and last line's dates (None, None without lines); a frame or `Lines`."""
    if not len(transactions):
        return None, None
    if not isinstance(transactions, pd.DataFrame):
        return transactions.first_date(), transactions.last_date()
    dates = transactions["invoice_date"]
    return dates.min(), dates.max()


def window(transactions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    dates = transactions["invoice_date"]
    return transactions[(dates >= start) & (dates < end)]


_CACHE: dict[tuple[int, pd.Timestamp, int], tuple[weakref.ref, pd.DataFrame]] = {}


def customer_features(
    transactions: pd.DataFrame, as_of: pd.Timestamp, lookback_months: int = 12
) -> pd.DataFrame:
    """Per-customer features (vectorised groupbys; no per-customer Python).

    The value model, its replay, the out-of-time check and the stability curve
    all ask for features at the same few dates: results are cached per
    transactions frame (a copy is returned, so callers may modify it).
    """
    if not isinstance(transactions, pd.DataFrame):  # an engine's Lines: it aggregates
        return transactions.customer_features(pd.Timestamp(as_of), lookback_months)
    key = (id(transactions), pd.Timestamp(as_of), lookback_months)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is transactions:
        return hit[1].copy()
    table = _customer_features(transactions, pd.Timestamp(as_of), lookback_months)
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = (weakref.ref(transactions), table)
    return table.copy()


def _customer_features(
    transactions: pd.DataFrame, as_of: pd.Timestamp, lookback_months: int
) -> pd.DataFrame:
    as_of = pd.Timestamp(as_of)
    start = period_start(as_of, lookback_months)
    history = transactions[transactions["invoice_date"] < as_of]
    lines = window(history, start, as_of)
    if lines.empty:
        return _empty()

    purchase = (lines["quantity"] > 0) & ~lines["is_cancellation"]
    buys = lines[purchase]
    rets = lines[~purchase]
    cust = "customer_id"

    net = lines.groupby(cust, observed=True)["revenue"].sum()
    out = pd.DataFrame(index=pd.Index(net.index.astype("str"), name=cust))
    out["monetary"] = net.to_numpy()

    def on(values: pd.Series) -> pd.Series:
        """Per-customer values aligned on `out` (plain text ids: an empty groupby over a
        categorical id cannot be reindexed under pandas 3)."""
        values = values.copy()
        values.index = pd.Index(values.index.astype("str"))
        return values.reindex(out.index)

    invoices = buys.groupby([cust, "invoice"], observed=True).agg(
        date=("invoice_date", "min"),
        value=("revenue", "sum"),
        units=("quantity", "sum"),
        products=("stock_code", "nunique"),
    ).reset_index()
    per = invoices.groupby(cust, observed=True)
    frequency = per.size()
    first_buy = per["date"].min()
    last_buy = per["date"].max()
    gross = on(per["value"].sum())
    out["frequency"] = on(frequency).fillna(0).astype("int64")
    out["recency_days"] = on((as_of - last_buy) / DAY)
    out["avg_ticket"] = gross / out["frequency"].where(out["frequency"] > 0)
    out["basket_size"] = on(per["units"].sum() / frequency)
    out["basket_variety"] = on(per["products"].sum() / frequency)
    span = (last_buy - first_buy) / DAY
    out["avg_days_between"] = on((span / (frequency - 1)).where(frequency > 1))

    ever_first = history[(history["quantity"] > 0) & ~history["is_cancellation"]].groupby(
        cust, observed=True)["invoice_date"].min()
    out["tenure_days"] = on((as_of - ever_first) / DAY)
    months_in_period = np.minimum(
        ((as_of - on(first_buy)) / DAY).to_numpy(dtype=float, na_value=np.nan),
        (as_of - start) / DAY,
    ) / DAYS_PER_MONTH
    out["purchases_per_month"] = out["frequency"] / np.maximum(months_in_period, 1.0)

    returned = on(-rets.groupby(cust, observed=True)["revenue"].sum()).fillna(0.0)
    rate = returned / gross
    out["return_rate"] = rate.clip(0, 1).where(gross > 0, 0.0)

    recent = lines[lines["invoice_date"] >= as_of - pd.Timedelta(days=90)]
    out["revenue_90d"] = on(recent.groupby(cust, observed=True)["revenue"].sum()).fillna(0.0)
    out["country"] = on(_main_country(lines))
    out["has_purchase"] = out["frequency"] > 0
    out = out.reset_index().rename(columns={"index": cust})
    out[cust] = out[cust].astype("str")
    return out[[cust, "country", *FEATURES, "has_purchase"]].sort_values(cust).reset_index(
        drop=True)


def _main_country(lines: pd.DataFrame) -> pd.Series:
    """The country a customer buys from most (a few customers appear under several)."""
    counts = lines.groupby(["customer_id", "country"], observed=True).size().reset_index(
        name="n")
    counts = counts.sort_values(["customer_id", "n", "country"], ascending=[True, False, True])
    return counts.drop_duplicates("customer_id").set_index("customer_id")["country"].astype("str")


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({"customer_id": pd.Series([], dtype="str"),
                          "country": pd.Series([], dtype="str")})
    for name in FEATURES:
        frame[name] = pd.Series([], dtype="float64")
    frame["frequency"] = frame["frequency"].astype("int64")
    frame["has_purchase"] = pd.Series([], dtype="bool")
    return frame


def future_revenue(
    transactions: pd.DataFrame, start: pd.Timestamp, months: int
) -> pd.Series:
    """Net revenue per customer in [start, start + months): what the value model learns."""
    end = pd.Timestamp(start) + pd.DateOffset(months=months)
    lines = window(transactions, pd.Timestamp(start), end)
    return lines.groupby("customer_id", observed=True)["revenue"].sum().rename("future_revenue")
