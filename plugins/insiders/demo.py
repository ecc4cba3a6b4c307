"""A deterministic, realistic demo data set in the Online Retail layout.

It lets a fresh clone run the whole product without the real file, and it
scales (same shape, more customers) for the memory and speed benchmarks.
Dates end where the UCI Online Retail data ends (2011-12-09), two years deep,
so every example (and the monthly DAG's dates) works on either. Shape, as in
the Online Retail data: a November peak, no Saturday trading,
a heavy tail of wholesale buyers, ~20 lines per invoice, cancellations (`C...`
invoices with negative quantities), ~25% of lines without a customer id,
postage/discount/manual lines, a few zero prices and exact duplicates.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]

# Relative demand per calendar month: autumn build-up to a November peak.
SEASON = np.array([0.75, 0.7, 0.9, 0.85, 0.95, 0.95, 0.95, 1.0, 1.3, 1.45, 1.85, 0.9])
COUNTRIES = np.array(
    [
        "United Kingdom", "Germany", "France", "EIRE", "Spain", "Netherlands",
        "Belgium", "Switzerland", "Portugal", "Australia", "Norway", "Italy",
    ]
)
COUNTRY_P = np.array([0.86, 0.03, 0.025, 0.02, 0.01, 0.01, 0.01, 0.008, 0.007, 0.005, 0.004,
                      0.003])
WORDS_A = ["WHITE", "RED", "PINK", "VINTAGE", "JUMBO", "REGENCY", "SET OF 3", "PAPER", "HEART",
           "LUNCH", "GLASS", "WOODEN", "RETRO", "SPOTTY", "FLORAL", "CHRISTMAS"]
WORDS_B = ["T-LIGHT HOLDER", "BAG", "CAKESTAND", "MUG", "LANTERN", "BUNTING", "TEACUP",
           "CANDLE", "DOORMAT", "CLOCK", "BOX", "NAPKINS", "SIGN", "FRAME", "ORNAMENT"]


def _catalogue(rng: np.random.Generator, n: int = 2000) -> pd.DataFrame:
    codes = np.array([f"{20000 + i}" for i in range(n)], dtype=object)
    letters = rng.choice(["", "", "", "A", "B", "C"], n)
    codes = np.char.add(codes.astype(str), letters)
    desc = np.char.add(
        np.char.add(rng.choice(WORDS_A, n).astype(str), " "), rng.choice(WORDS_B, n).astype(str)
    )
    price = np.round(np.exp(rng.normal(np.log(2.5), 0.8, n)).clip(0.19, 60), 2)
    popularity = 1.0 / np.arange(1, n + 1) ** 0.9
    popularity = rng.permutation(popularity)
    return pd.DataFrame({"code": codes, "desc": desc, "price": price,
                         "p": popularity / popularity.sum()})


def _months(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    return pd.date_range(start.to_period("M").to_timestamp(), end, freq="MS")


def _invoices(
    rng: np.random.Generator, n_customers: int, first_id: int, start: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """One row per invoice of identified customers, vectorised over customers x months."""
    months = _months(start, end)
    m = len(months)
    wholesale = rng.random(n_customers) < 0.06
    # a third of the base is already there at the start, the rest arrives over time
    existing = rng.random(n_customers) < 0.35
    acquired = np.where(existing, 0, rng.integers(0, m, n_customers))
    churn = rng.beta(1.2, 9.0, n_customers)  # monthly probability of leaving for good
    rate = rng.gamma(0.9, 0.85, n_customers) * np.where(wholesale, 2.6, 1.0) + 0.05
    month_idx = np.arange(m)
    age = month_idx[None, :] - acquired[:, None]
    survival = (1 - churn)[:, None] ** np.clip(age, 0, None)
    alive = (age >= 0) & (rng.random((n_customers, m)) < survival)
    lam = rate[:, None] * SEASON[months.month.values - 1][None, :]
    counts = np.where(alive, rng.poisson(lam), 0)
    # a newcomer's first month has their first purchase; existing customers have no such rule
    new = np.nonzero(~existing)[0]
    counts[new, acquired[new]] = np.maximum(counts[new, acquired[new]], 1)
    cust_idx, month_pos = np.nonzero(counts)
    reps = counts[cust_idx, month_pos]
    cust_idx = np.repeat(cust_idx, reps)
    month_pos = np.repeat(month_pos, reps)
    dates = _random_moments(rng, months[month_pos], end)
    country = rng.choice(COUNTRIES, n_customers, p=COUNTRY_P / COUNTRY_P.sum())
    frame = pd.DataFrame(
        {
            "customer": (first_id + cust_idx).astype(np.int64),
            "wholesale": wholesale[cust_idx],
            "date": dates,
            "country": country[cust_idx],
        }
    )
    return frame[frame["date"] < end]  # the data set ends mid-month, as the real one does


def _random_moments(
    rng: np.random.Generator, month_starts: pd.DatetimeIndex, end: pd.Timestamp
) -> np.ndarray:
    n = len(month_starts)
    days_in = month_starts.days_in_month.values
    day = (rng.random(n) * days_in).astype(int)
    minutes = rng.integers(8 * 60, 18 * 60, n)
    ts = month_starts.values + day.astype("timedelta64[D]") + minutes.astype("timedelta64[m]")
    ts = pd.DatetimeIndex(ts)
    # the shop does not trade on Saturdays: move those sales to the Friday
    ts = ts - pd.to_timedelta((ts.dayofweek == 5).astype(int), unit="D")
    return ts.values


def _lines(rng: np.random.Generator, inv: pd.DataFrame, cat: pd.DataFrame) -> pd.DataFrame:
    n_inv = len(inv)
    mean_lines = np.where(inv["wholesale"].values, 28, 16)
    n_lines = 1 + rng.geometric(1.0 / mean_lines)
    n_lines = np.minimum(n_lines, 150)
    inv_idx = np.repeat(np.arange(n_inv), n_lines)
    prod = rng.choice(len(cat), len(inv_idx), p=cat["p"].values)
    base_q = rng.choice([1, 2, 3, 4, 6, 8, 10, 12, 24], len(inv_idx),
                        p=[0.18, 0.14, 0.08, 0.1, 0.14, 0.06, 0.08, 0.16, 0.06])
    mult = np.where(inv["wholesale"].values[inv_idx], rng.choice([4, 6, 10, 12, 25], len(inv_idx)),
                    1)
    return pd.DataFrame(
        {
            "inv": inv_idx,
            "StockCode": cat["code"].values[prod],
            "Description": cat["desc"].values[prod],
            "Quantity": base_q * mult,
            "UnitPrice": cat["price"].values[prod],
        }
    )


def _chunk(
    rng: np.random.Generator, n_customers: int, first_id: int, first_invoice: int,
    start: pd.Timestamp, end: pd.Timestamp, cat: pd.DataFrame,
) -> tuple[pd.DataFrame, int]:
    inv = _invoices(rng, n_customers, first_id, start, end)
    # guests: invoices with no customer id, about a quarter of all lines
    n_guest = int(len(inv) * 0.3)
    guests = inv.sample(n=n_guest, random_state=int(rng.integers(1 << 31)), replace=True)
    guests = guests.assign(customer=-1, date=_random_moments(
        rng, pd.DatetimeIndex(guests["date"]).to_period("M").to_timestamp(), end))
    guests = guests[guests["date"] < end]
    inv = pd.concat([inv, guests], ignore_index=True).sort_values("date", kind="stable")
    inv = inv.reset_index(drop=True)
    inv["invoice"] = (first_invoice + np.arange(len(inv))).astype(str)
    lines = _lines(rng, inv, cat)
    lines = lines.join(inv[["invoice", "customer", "date", "country"]], on="inv")

    # postage on some foreign invoices, occasional manual lines and zero prices
    foreign = inv.index[(inv["country"] != "United Kingdom") & (rng.random(len(inv)) < 0.6)]
    post = inv.loc[foreign, ["invoice", "customer", "date", "country"]].assign(
        StockCode="POST", Description="POSTAGE", Quantity=rng.integers(1, 4, len(foreign)),
        UnitPrice=18.0)
    manual_n = max(1, len(inv) // 700)
    manual = inv.sample(n=manual_n, random_state=int(rng.integers(1 << 31)))[
        ["invoice", "customer", "date", "country"]].assign(
        StockCode="M", Description="Manual", Quantity=1,
        UnitPrice=np.round(rng.uniform(0.5, 40, manual_n), 2))
    lines = pd.concat([lines.drop(columns="inv"), post, manual], ignore_index=True)
    zero = rng.random(len(lines)) < 0.0005
    lines.loc[zero, "UnitPrice"] = 0.0

    # cancellations: part of an earlier invoice comes back on a C-invoice a few days later
    known = lines[(lines["customer"] >= 0) & (lines["StockCode"] != "POST")]
    canc_inv = inv.loc[(inv["customer"] >= 0) & (rng.random(len(inv)) < 0.035), "invoice"]
    canc = known[known["invoice"].isin(canc_inv)]
    canc = canc[rng.random(len(canc)) < 0.35].copy()
    canc["Quantity"] = -np.maximum(1, (canc["Quantity"] * rng.uniform(0.3, 1.0, len(canc))).round()
                                   ).astype(int)
    canc["date"] = (pd.DatetimeIndex(canc["date"])
                    + pd.to_timedelta(rng.integers(0, 21, len(canc)), "D")).values
    canc = canc[canc["date"] < end]  # returns after the data ends are not in the data
    canc["invoice"] = "C" + canc["invoice"]
    discounts = canc.drop_duplicates("invoice").sample(frac=0.1, random_state=1).assign(
        StockCode="D", Description="Discount", Quantity=-1,
        UnitPrice=np.round(rng.uniform(1, 30), 2))
    lines = pd.concat([lines, canc, discounts], ignore_index=True)

    dup = lines[rng.random(len(lines)) < 0.005]
    lines = pd.concat([lines, dup]).sort_values(["date", "invoice"], kind="stable")
    out = pd.DataFrame(
        {
            "InvoiceNo": lines["invoice"].values,
            "StockCode": lines["StockCode"].values,
            "Description": lines["Description"].values,
            "Quantity": lines["Quantity"].astype(np.int64).values,
            "InvoiceDate": pd.DatetimeIndex(lines["date"]).strftime("%Y-%m-%d %H:%M:%S"),
            "UnitPrice": lines["UnitPrice"].round(2).values,
            "CustomerID": np.where(lines["customer"].values >= 0,
                                   lines["customer"].astype(str).values + ".0", ""),
            "Country": lines["country"].values,
        }
    )
    return out, first_invoice + len(inv)


def generate(
    customers: int = 1500,
    start: str = "2009-12-01",
    end: str = "2011-12-10",
    seed: int = 7,
    chunk_customers: int = 20_000,
) -> Iterator[pd.DataFrame]:
    """Yield the data set in chunks of at most `chunk_customers` customers (bounded memory)."""
    t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
    seeds = np.random.SeedSequence(seed)
    cat = _catalogue(np.random.default_rng(seeds.spawn(1)[0]))
    n_chunks = max(1, -(-customers // chunk_customers))
    children = seeds.spawn(n_chunks + 1)[1:]
    next_invoice = 536365
    for i in range(n_chunks):
        size = min(chunk_customers, customers - i * chunk_customers)
        rng = np.random.default_rng(children[i])
        frame, next_invoice = _chunk(rng, size, 12346 + i * chunk_customers, next_invoice, t0, t1,
                                     cat)
        yield frame


def write(path: Path | str, customers: int = 1500, seed: int = 7, **kwargs) -> Path:
    """Write the demo set as a CSV (gzip when the name ends in .gz); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    tmp = path.with_name(path.name + ".partial")
    with opener(tmp, "wt", encoding="utf-8", newline="") as fh:
        header = True
        for frame in generate(customers=customers, seed=seed, **kwargs):
            frame.to_csv(fh, index=False, header=header)
            header = False
    tmp.replace(path)
    return path


def demo_path(home: Path, customers: int = 1500, seed: int = 7) -> Path:
    """The cached demo file under `home`, generated on first use."""
    path = Path(home) / "demo" / f"demo_transactions_{customers}_{seed}.csv.gz"
    if not path.exists():
        write(path, customers=customers, seed=seed)
    return path
