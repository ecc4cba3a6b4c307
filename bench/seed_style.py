"""The seed-style pipeline: the same analysis as a plain notebook would do it, in pandas.

What it does, cell by cell: read the CSV, drop lines without a customer, copies, zero or
negative prices and postage-like codes; RFM-style features per customer over the last 12
months (recency, purchase invoices, net spend, average ticket, units per invoice); log and
standardise them, KMeans for k = 2..8 and keep the best silhouette (on a 5,000-customer
sample); the Insiders are the top customers by net spend until they bring 50% of the
period's revenue; a Prophet forecast of their daily revenue over the next 3 months. It
prints one line of figures. It is the reference for "N times faster than a notebook"; it
has no quarantine, no out-of-time check, no stability curve, no report.

    .venv/bin/python bench/seed_style.py ../shared/data/online_retail.csv.gz
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np
import pandas as pd


def main(path: str) -> int:
    started = time.perf_counter()
    df = pd.read_csv(path, encoding="latin-1", dtype={"CustomerID": str, "InvoiceNo": str,
                                                      "StockCode": str})
    df = df.dropna(subset=["CustomerID"]).drop_duplicates()
    df = df[(df["UnitPrice"] > 0) & (df["Quantity"] != 0)]
    df = df[~df["StockCode"].str.upper().isin(["POST", "DOT", "M", "D", "C2", "BANK CHARGES",
                                               "AMAZONFEE", "CRUK", "PADS", "S", "B"])]
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"], format="mixed")
    df["revenue"] = df["Quantity"] * df["UnitPrice"]
    as_of = df["InvoiceDate"].max().normalize() + pd.Timedelta(days=1)
    period = df[df["InvoiceDate"] >= as_of - pd.DateOffset(months=12)]
    buys = period[(period["Quantity"] > 0) & ~period["InvoiceNo"].str.startswith("C")]
    invoices = buys.groupby(["CustomerID", "InvoiceNo"]).agg(
        date=("InvoiceDate", "min"), value=("revenue", "sum"), units=("Quantity", "sum"))
    per = invoices.groupby(level=0)
    rfm = pd.DataFrame({
        "recency": (as_of - per["date"].max()).dt.days,
        "frequency": per.size(),
        "avg_ticket": per["value"].mean(),
        "basket": per["units"].mean(),
    })
    rfm["monetary"] = period.groupby("CustomerID")["revenue"].sum().reindex(rfm.index)

    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(np.log1p(rfm.clip(lower=0)))
    rng = np.random.default_rng(42)
    sample = rng.choice(len(x), size=min(5000, len(x)), replace=False)
    best = max(range(2, 9), key=lambda k: silhouette_score(
        x[sample], KMeans(k, n_init=4, random_state=42).fit_predict(x[sample])))
    rfm["segment"] = KMeans(best, n_init=4, random_state=42).fit_predict(x)
    ranked = rfm.sort_values("monetary", ascending=False)
    share = ranked["monetary"].clip(lower=0).cumsum() / ranked["monetary"].clip(lower=0).sum()
    insiders = ranked[share <= 0.5].index

    from prophet import Prophet

    logging.getLogger("cmdstanpy").disabled = True
    daily = df[df["CustomerID"].isin(insiders)].groupby(
        df["InvoiceDate"].dt.floor("D"))["revenue"].sum()
    model = Prophet(yearly_seasonality=True, weekly_seasonality=True).fit(
        pd.DataFrame({"ds": daily.index, "y": daily.to_numpy()}))
    future = model.make_future_dataframe(periods=91)
    total = float(model.predict(future).tail(91)["yhat"].sum())
    print(f"seed-style: {len(df):,} lines kept, {len(rfm):,} customers, k={best}, "
          f"{len(insiders):,} Insiders, forecast {total:,.0f}; "
          f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
