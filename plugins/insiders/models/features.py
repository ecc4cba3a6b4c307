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
_CODED: dict[int, tuple[weakref.ref, _Coded]] = {}


def customer_features(
    transactions: pd.DataFrame, as_of: pd.Timestamp, lookback_months: int = 12
) -> pd.DataFrame:
    """Per-customer features (vectorised groupbys; no per-customer Python).

    The value model, its replay, the out-of-time check and the stability curve
    all ask for features at the same dozen dates: results are cached per
    transactions frame (a copy is returned, so callers may modify it), and the
    frame is coded once (`_Coded`) so that each new date costs a few array masks.
    """
    if not isinstance(transactions, pd.DataFrame):  # an engine's Lines: it aggregates
        return transactions.customer_features(pd.Timestamp(as_of), lookback_months)
    key = (id(transactions), pd.Timestamp(as_of), lookback_months)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is transactions:
        return hit[1].copy()
    as_of = pd.Timestamp(as_of)
    start = period_start(as_of, lookback_months)
    coded = _coded(transactions)
    if coded is not None and coded.answers(as_of, start):
        table = _assemble(coded.pieces(as_of, start), as_of, start)
    else:
        table = _customer_features(transactions, as_of, lookback_months)
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = (weakref.ref(transactions), table)
    return table.copy()


def _customer_features(
    transactions: pd.DataFrame, as_of: pd.Timestamp, lookback_months: int
) -> pd.DataFrame:
    """The features from the frame's own lines (the reference `_Coded` must equal)."""
    as_of = pd.Timestamp(as_of)
    start = period_start(as_of, lookback_months)
    return _assemble(_pieces(transactions, as_of, start), as_of, start)


def _pieces(transactions: pd.DataFrame, as_of: pd.Timestamp,
            start: pd.Timestamp) -> dict[str, pd.Series] | None:
    """Per-customer sums and dates of the lines in [start, as_of) (None: no line there):
    what `_assemble` turns into features. Indexed by the customer id as it is stored."""
    history = transactions[transactions["invoice_date"] < as_of]
    lines = window(history, start, as_of)
    if lines.empty:
        return None
    purchase = (lines["quantity"] > 0) & ~lines["is_cancellation"]
    cust = "customer_id"
    invoices = lines[purchase].groupby([cust, "invoice"], observed=True).agg(
        date=("invoice_date", "min"),
        value=("revenue", "sum"),
        units=("quantity", "sum"),
        products=("stock_code", "nunique"),
    ).reset_index()
    per = invoices.groupby(cust, observed=True)
    recent = lines[lines["invoice_date"] >= as_of - pd.Timedelta(days=90)]
    return {
        "net": lines.groupby(cust, observed=True)["revenue"].sum(),
        "frequency": per.size(), "first_buy": per["date"].min(),
        "last_buy": per["date"].max(), "gross": per["value"].sum(),
        "units": per["units"].sum(), "products": per["products"].sum(),
        "ever_first": history[(history["quantity"] > 0) & ~history["is_cancellation"]].groupby(
            cust, observed=True)["invoice_date"].min(),
        "returned": lines[~purchase].groupby(cust, observed=True)["revenue"].sum(),
        "recent": recent.groupby(cust, observed=True)["revenue"].sum(),
        "country": _main_country(lines),
    }


def _assemble(pieces: dict[str, pd.Series] | None, as_of: pd.Timestamp,
              start: pd.Timestamp) -> pd.DataFrame:
    """The feature table from `_pieces` (or `_Coded.pieces`): the same ratios either way."""
    if pieces is None:
        return _empty()
    cust = "customer_id"
    net = pieces["net"]
    out = pd.DataFrame(index=pd.Index(net.index.astype("str"), name=cust))
    out["monetary"] = net.to_numpy()

    def on(values: pd.Series) -> pd.Series:
        """Per-customer values aligned on `out` (plain text ids: an empty groupby over a
        categorical id cannot be reindexed under pandas 3)."""
        values = values.copy()
        values.index = pd.Index(values.index.astype("str"))
        return values.reindex(out.index)

    frequency, first_buy, last_buy = (pieces["frequency"], pieces["first_buy"],
                                      pieces["last_buy"])
    gross = on(pieces["gross"])
    out["frequency"] = on(frequency).fillna(0).astype("int64")
    out["recency_days"] = on((as_of - last_buy) / DAY)
    out["avg_ticket"] = gross / out["frequency"].where(out["frequency"] > 0)
    out["basket_size"] = on(pieces["units"] / frequency)
    out["basket_variety"] = on(pieces["products"] / frequency)
    span = (last_buy - first_buy) / DAY
    out["avg_days_between"] = on((span / (frequency - 1)).where(frequency > 1))
    out["tenure_days"] = on((as_of - pieces["ever_first"]) / DAY)
    months_in_period = np.minimum(
        ((as_of - on(first_buy)) / DAY).to_numpy(dtype=float, na_value=np.nan),
        (as_of - start) / DAY,
    ) / DAYS_PER_MONTH
    out["purchases_per_month"] = out["frequency"] / np.maximum(months_in_period, 1.0)
    returned = on(-pieces["returned"]).fillna(0.0)
    rate = returned / gross
    out["return_rate"] = rate.clip(0, 1).where(gross > 0, 0.0)
    out["revenue_90d"] = on(pieces["recent"]).fillna(0.0)
    out["country"] = on(pieces["country"])
    out["has_purchase"] = out["frequency"] > 0
    out = out.reset_index().rename(columns={"index": cust})
    out[cust] = out[cust].astype("str")
    return out[[cust, "country", *FEATURES, "has_purchase"]].sort_values(cust).reset_index(
        drop=True)


def _coded(transactions: pd.DataFrame) -> _Coded | None:
    """The frame's `_Coded` (made on first use; None where it cannot stand in for the lines)."""
    hit = _CODED.get(id(transactions))
    if hit is not None and hit[0]() is transactions:
        return hit[1]
    coded = _Coded.of(transactions)
    if len(_CODED) > 8:
        _CODED.clear()
    _CODED[id(transactions)] = (weakref.ref(transactions), coded)
    return coded


class _Coded:
    """A transactions frame as integer codes and plain arrays, made once per frame.

    Each date's features otherwise copy the frame twice and group every purchase line by
    invoice again (0.3-0.4 s on the real file, a dozen dates a run). An invoice's figures
    are those of its own lines, so while no invoice has lines on two days a window from
    midnight to midnight holds the same row of the all-history invoice table: filtering
    it, and summing array slices with the same group-bys (pandas' compensated sums, in
    the lines' order), gives the reference's numbers to the last bit
    (tests/test_features.py holds them equal). Where that cannot hold (an invoice over
    two days, a missing id or country, a cut at a time of day) the reference runs."""

    def __init__(self, transactions: pd.DataFrame, invoices: pd.DataFrame) -> None:
        self.customer, self.customers = _codes(transactions["customer_id"])
        self.country, self.countries = _codes(transactions["country"])
        self.dates = transactions["invoice_date"].to_numpy()
        self.revenue = transactions["revenue"].to_numpy(dtype="float64")
        self.buy = ((transactions["quantity"] > 0)
                    & ~transactions["is_cancellation"]).to_numpy(dtype=bool)
        self.invoices = invoices
        self.invoice_customer, _ = _codes(invoices["customer_id"], self.customers)
        self.invoice_dates = invoices["date"].to_numpy()

    @classmethod
    def of(cls, transactions: pd.DataFrame) -> _Coded | None:
        if (transactions.empty or transactions["invoice_date"].dtype.kind != "M"
                or transactions[["customer_id", "country"]].isna().any().any()):
            return None
        purchase = (transactions["quantity"] > 0) & ~transactions["is_cancellation"]
        invoices = transactions[purchase].groupby(["customer_id", "invoice"], observed=True).agg(
            date=("invoice_date", "min"),
            last=("invoice_date", "max"),
            value=("revenue", "sum"),
            units=("quantity", "sum"),
            products=("stock_code", "nunique"),
        ).reset_index()
        if (invoices["date"].dt.floor("D") != invoices["last"].dt.floor("D")).any():
            return None
        return cls(transactions, invoices.drop(columns="last"))

    @staticmethod
    def answers(as_of: pd.Timestamp, start: pd.Timestamp) -> bool:
        """Whole invoices fall in or out of [start, as_of) only at midnights."""
        return as_of == as_of.normalize() and start == start.normalize()

    def pieces(self, as_of: pd.Timestamp, start: pd.Timestamp) -> dict[str, pd.Series] | None:
        """`_pieces` of the lines in [start, as_of), from the arrays."""
        unit = self.dates.dtype
        end, begin = np.datetime64(as_of, "us").astype(unit), np.datetime64(start, "us").astype(
            unit)
        inside = (self.dates >= begin) & (self.dates < end)
        if not inside.any():
            return None
        customer = self.customer[inside]
        revenue = self.revenue[inside]
        buy = self.buy[inside]
        recent = self.dates[inside] >= np.datetime64(as_of - pd.Timedelta(days=90), "us").astype(
            unit)
        dates = self.invoice_dates
        held = (dates >= begin) & (dates < end)
        invoices = self.invoices[held]
        per = invoices.groupby(self.invoice_customer[held])
        before = dates < end
        names = self.customers
        return {
            "net": self._named(pd.Series(revenue).groupby(customer).sum()),
            "frequency": self._named(per.size()),
            "first_buy": self._named(per["date"].min()),
            "last_buy": self._named(per["date"].max()),
            "gross": self._named(per["value"].sum()),
            "units": self._named(per["units"].sum()),
            "products": self._named(per["products"].sum()),
            "ever_first": self._named(self.invoices["date"][before].groupby(
                self.invoice_customer[before]).min()),
            "returned": self._named(pd.Series(revenue[~buy]).groupby(customer[~buy]).sum()),
            "recent": self._named(pd.Series(revenue[recent]).groupby(customer[recent]).sum()),
            "country": pd.Series(self.countries[self._main_country(customer, inside)],
                                 index=names[np.unique(customer)], dtype="str"),
        }

    def _named(self, values: pd.Series) -> pd.Series:
        """A series over customer codes -> over their ids."""
        return pd.Series(values.to_numpy(), index=self.customers[values.index.to_numpy()])

    def _main_country(self, customer: np.ndarray, inside: np.ndarray) -> np.ndarray:
        """Per customer (in code order), the country code it has most lines from, the
        first in the countries' order on a tie: `_main_country`'s choice."""
        country = self.country[inside]
        key = customer.astype("int64") * len(self.countries) + country
        pairs, n = np.unique(key, return_counts=True)
        who, where = np.divmod(pairs, len(self.countries))
        order = np.lexsort((where, -n, who))
        who, where = who[order], where[order]
        first = np.r_[True, who[1:] != who[:-1]]
        return where[first]


def _codes(values: pd.Series, categories: pd.Index | None = None) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and the ids (as text) they stand for: a categorical's own order, else
    sorted (the order a group-by of the values sorts them in). With `categories`, the
    codes of `values` among those."""
    if categories is not None:
        return categories.get_indexer(values.astype("str")), categories
    if isinstance(values.dtype, pd.CategoricalDtype):
        return (values.cat.codes.to_numpy(),
                pd.Index(values.cat.categories.astype("str"), dtype="str"))
    codes, uniques = pd.factorize(values, sort=True)
    return codes, pd.Index(pd.Index(uniques).astype("str"), dtype="str")


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
