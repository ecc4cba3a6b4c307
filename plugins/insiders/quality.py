"""Quality: turn text lines into typed transactions and set aside what cannot be used.

Nothing is dropped: each line is either kept or set aside with one reason (the
first that applies, in the order of `REASONS`), so rows in = rows kept + rows
set aside, per reason. Returns (negative quantities) and cancellations (`C...`
invoices) are kept: they are netted against purchases downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .extract import RAW_COLUMNS

# reason -> what it means, in the order reasons are checked
REASONS: dict[str, str] = {
    "malformed_row": "the line could not be split into the file's columns",
    "order_not_delivered": "the order was cancelled or not delivered (yet): not a purchase",
    "unparseable_date": "the invoice date is not a date (or an impossible one, e.g. 30 Feb)",
    "implausible_date": "the invoice date is before 1990",
    "after_as_of": "dated on or after the as-of date: not yet known on the day of the run",
    "missing_customer_id": "no customer id: the line cannot be attributed to a customer",
    "unparseable_quantity": "the quantity is not a whole number",
    "implausible_quantity": "the quantity is beyond a million units",
    "zero_quantity": "the quantity is zero",
    "unparseable_price": "the unit price is not a number",
    "non_positive_price": "the unit price is zero or negative (free samples, adjustments)",
    "non_product_code": "postage, discounts, fees, manual adjustments and other non-products",
    "duplicate": "an exact copy of an earlier line",
}

# Stock codes that are not products in the Online Retail data and its look-alikes.
NON_PRODUCT_CODES = frozenset(
    {"POST", "DOT", "D", "M", "C2", "C3", "CRUK", "BANK CHARGES", "AMAZONFEE", "S", "PADS", "B",
     "ADJUST", "ADJUST2", "TEST001", "TEST002", "GIFT", "CARRIAGE", "SAMPLES", "FEE",
     "DISCOUNT", "POSTAGE", "SHIPPING"}
)
# DCGS... codes are real products (party bags, dog collars) and stay in
NON_PRODUCT_PREFIXES = ("GIFT_", "TEST", "ADJUST", "AMAZON", "BANK")
MISSING_IDS = frozenset({"", "nan", "none", "null", "na", "n/a", "-", "?"})

ISO_FORMAT = "ISO8601"
MONTH_FIRST = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y", "%m/%d/%y %H:%M", "%m/%d/%y")
DAY_FIRST = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y", "%d/%m/%y %H:%M", "%d/%m/%y")
OTHER_FORMATS = ("%d-%b-%y", "%d-%b-%Y", "%d-%b-%y %H:%M", "%d-%b-%Y %H:%M", "%d.%m.%Y %H:%M",
                 "%d.%m.%Y", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")


@dataclass
class QualityReport:
    """Row accounting for one run: rows_in == rows_kept + sum(set_aside)."""

    rows_in: int = 0
    rows_kept: int = 0
    set_aside: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    notes: list[str] = field(default_factory=list)

    def add(self, reason: str, count: int) -> None:
        self.set_aside[reason] = self.set_aside.get(reason, 0) + int(count)

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_kept + sum(self.set_aside.values())

    def as_dict(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "set_aside": {k: v for k, v in self.set_aside.items() if v},
            "reasons": {k: REASONS[k] for k, v in self.set_aside.items() if v and k in REASONS},
            "notes": list(self.notes),
        }


class DateParser:
    """Parses the date spellings users bring; decides month- or day-first once per source.

    `12/1/2010` is 1 December in the US copies of Online Retail. A source whose
    slash dates only make sense day-first (13/1/2011) is read day-first; the
    choice is made on the first block with slash dates and then kept, so one
    file never mixes both readings.
    """

    def __init__(self) -> None:
        self.slash_formats: tuple[str, ...] | None = None

    def parse_unique(self, text: pd.Series) -> pd.Series:
        """Parse distinct date strings (dates repeat a lot: parse each spelling once)."""
        text = text.astype("str").str.strip()
        out = pd.to_datetime(text, format=ISO_FORMAT, errors="coerce")
        slash = out.isna() & text.str.contains("/", regex=False)
        if slash.any():
            if self.slash_formats is None:
                self.slash_formats = self._choose(text[slash])
            out = _cascade(text, out, slash, self.slash_formats)
        rest = out.isna() & ~slash
        if rest.any():
            out = _cascade(text, out, rest, OTHER_FORMATS)
        return out.astype("datetime64[us]")

    @staticmethod
    def _choose(text: pd.Series) -> tuple[str, ...]:
        sample = text.head(5000)
        everything = pd.Series(True, index=sample.index)
        empty = pd.Series(pd.NaT, index=sample.index)
        month_first = _cascade(sample, empty, everything, MONTH_FIRST).notna().sum()
        day_first = _cascade(sample, empty, everything, DAY_FIRST).notna().sum()
        return DAY_FIRST if day_first > month_first else MONTH_FIRST


def _cascade(text: pd.Series, out: pd.Series, mask: pd.Series, formats: tuple[str, ...]
             ) -> pd.Series:
    out = out.astype("datetime64[us]")
    for fmt in formats:
        todo = mask & out.isna()
        if not todo.any():
            break
        out.loc[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
    return out


def normalise_customer_id(values: pd.Series) -> pd.Series:
    """'17850.0', '17850,0' and '17850' are the same customer; blanks and 'nan' are none."""
    text = values.astype("str").str.strip()
    text = text.str.replace(r"[.,]0+$", "", regex=True)
    missing = text.str.lower().isin(MISSING_IDS)
    return text.where(~missing, None)


def is_non_product(codes: pd.Series) -> pd.Series:
    """Postage, fees, discounts, manual lines: not products a customer chose to buy."""
    upper = codes.astype("str").str.strip().str.upper()
    digits = upper.str.count(r"\d")
    # short codes with hardly a digit (POST, DOT, PADS, C2, M) are services, not products
    return (upper.isin(NON_PRODUCT_CODES) | upper.str.startswith(NON_PRODUCT_PREFIXES)
            | (digits < 3) & (upper.str.len() <= 5))


def to_number(values: pd.Series) -> pd.Series:
    """Numbers as users write them, including a decimal comma (`2,55`, `0,165`)."""
    text = values.astype("str").str.strip()
    number = pd.to_numeric(text, errors="coerce")
    # `1,000` may be a thousand or one (decimal comma): neither guess is safe, so not a number
    comma = (number.isna() & text.str.fullmatch(r"-?\d+,\d+")
             & ~text.str.fullmatch(r"-?[1-9]\d{0,2}(,\d{3})+"))
    if comma.any():
        number[comma] = pd.to_numeric(text[comma].str.replace(",", ".", regex=False),
                                      errors="coerce")
    return number.astype("float64")


class _Column:
    """A text column as codes into its distinct values: parse each value once."""

    def __init__(self, values: pd.Series) -> None:
        codes, uniques = pd.factorize(values.astype("str"), use_na_sentinel=False)
        self.codes = codes
        self.uniques = pd.Series(uniques, dtype="str")

    def map(self, func) -> np.ndarray:
        return np.asarray(func(self.uniques))[self.codes]

    def hash(self) -> np.ndarray:
        return pd.util.hash_array(self.uniques.to_numpy(dtype=object))[self.codes]

    def categorical(self, keep: np.ndarray, cleaned: pd.Series | None = None) -> pd.Categorical:
        categories = self.uniques if cleaned is None else cleaned
        codes = self.codes[keep]
        if cleaned is not None:
            # cleaning may merge spellings ('17850.0', '17850'): re-factorize the distinct values
            new_codes, merged = pd.factorize(categories)
            return pd.Categorical.from_codes(new_codes[codes], pd.Index(merged, dtype="str"))
        return pd.Categorical.from_codes(codes, pd.Index(categories, dtype="str"))


def _combine(hashes: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(len(hashes[0]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for h in hashes:
            out = (out * np.uint64(1_000_003)) ^ h
    return out


def clean_chunk(
    raw: pd.DataFrame, as_of: pd.Timestamp, parse_dates: DateParser | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed transactions and set-aside lines (with `reason`) for one block of text lines.

    Duplicates are not decided here (they may span blocks): kept lines carry a
    `row_hash` of their raw text for `duplicate_mask`.
    """
    parse_dates = parse_dates or DateParser()
    as_of = pd.Timestamp(as_of)
    cols = {c: _Column(raw[c]) for c in RAW_COLUMNS}
    dates = cols["invoice_date"].map(parse_dates.parse_unique).astype("datetime64[us]")
    customer_clean = normalise_customer_id(cols["customer_id"].uniques)
    customer_missing = customer_clean.isna().to_numpy()[cols["customer_id"].codes]
    quantity = cols["quantity"].map(to_number)
    price = cols["unit_price"].map(to_number)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(quantity) & (quantity == np.round(quantity))
        nat = np.isnat(dates)
        checks = [
            ("unparseable_date", nat),
            ("implausible_date", ~nat & (dates < np.datetime64("1990-01-01"))),
            ("after_as_of", ~nat & (dates >= as_of.to_datetime64())),
            ("missing_customer_id", customer_missing),
            ("unparseable_quantity", ~whole),
            ("implausible_quantity", np.abs(quantity) > 1_000_000),
            ("zero_quantity", quantity == 0),
            ("unparseable_price", ~np.isfinite(price)),
            ("non_positive_price", price <= 0),
            ("non_product_code", cols["stock_code"].map(is_non_product).astype(bool)),
        ]
    # a source adapter may already know a line is not a purchase (Olist: undelivered orders)
    if "source_reason" in raw:
        source_reason = raw["source_reason"].fillna("").astype("str").to_numpy(dtype=object)
        unknown = set(source_reason[source_reason != ""]) - set(REASONS)
        if unknown:
            raise ValueError(f"unknown set-aside reason(s) from the source: {sorted(unknown)}")
        checks.insert(0, ("source", source_reason != ""))
    else:
        source_reason = None
    reason_code = np.full(len(raw), -1, dtype=np.int8)
    for i, (_, mask) in enumerate(checks):
        reason_code[(reason_code < 0) & mask] = i
    keep = reason_code < 0
    names = np.array([name for name, _ in checks], dtype=object)[reason_code[~keep]]
    if source_reason is not None:
        from_source = reason_code[~keep] == 0
        names[from_source] = source_reason[~keep][from_source]

    quarantine = raw.loc[~keep, RAW_COLUMNS + ["source_file", "source_row"]].reset_index(drop=True)
    quarantine["reason"] = pd.Series(names, dtype="str")

    qty = quantity[keep].astype(np.int64)
    unit_price = price[keep]
    invoice = cols["invoice"].categorical(keep, cols["invoice"].uniques.str.strip())
    frame = pd.DataFrame(
        {
            "invoice": invoice,
            "stock_code": cols["stock_code"].categorical(keep, cols["stock_code"].uniques
                                                         .str.strip()),
            "description": cols["description"].categorical(keep, cols["description"].uniques
                                                           .str.strip()),
            "quantity": qty,
            "invoice_date": dates[keep],
            "unit_price": unit_price,
            "customer_id": cols["customer_id"].categorical(keep, customer_clean.fillna("")),
            "country": cols["country"].categorical(
                keep, cols["country"].uniques.str.strip().replace("", "Unknown")),
        }
    )
    frame["revenue"] = np.round(qty * unit_price, 4)
    frame["is_return"] = qty < 0
    cancel_codes = invoice.categories.str.upper().str.startswith("C")
    frame["is_cancellation"] = np.asarray(cancel_codes)[invoice.codes]
    frame["source_file"] = pd.Categorical(raw["source_file"].to_numpy()[keep]).astype(
        pd.CategoricalDtype(pd.Index(raw["source_file"].unique(), dtype="str")))
    frame["source_row"] = raw["source_row"].to_numpy()[keep].astype(np.int64)
    frame["row_hash"] = _combine([cols[c].hash() for c in RAW_COLUMNS])[keep]
    return frame, quarantine


def malformed_to_quarantine(rejects: pd.DataFrame) -> pd.DataFrame:
    """Lines the reader could not split, in the quarantine's layout (raw text kept)."""
    out = pd.DataFrame({c: pd.Series([""] * len(rejects), dtype="str") for c in RAW_COLUMNS})
    out["description"] = rejects["raw_text"].astype("str").to_numpy()
    out["source_file"] = rejects["source_file"].astype("str").to_numpy()
    out["source_row"] = rejects["source_row"].astype("int64").to_numpy()
    out["reason"] = "malformed_row"
    return out


def duplicate_mask(hashes: np.ndarray) -> np.ndarray:
    """True for every line that repeats an earlier one (the first copy is kept)."""
    return pd.Series(hashes).duplicated(keep="first").to_numpy()


def customers_with_several_countries(transactions: pd.DataFrame) -> int:
    counts = transactions.groupby("customer_id", observed=True)["country"].nunique()
    return int((counts > 1).sum())


# --------------------------------------------------------------------------- the end of the data


def lines_per_day(raw_path: Path | str, since: str = "1990-01-01") -> pd.Series:
    """Lines per calendar day, from the raw extract's readable dates (since `since`)."""
    import pyarrow.parquet as pq

    parser = DateParser()
    counts: pd.Series | None = None
    for batch in pq.ParquetFile(raw_path).iter_batches(columns=["invoice_date"],
                                                        batch_size=500_000):
        values = batch.column(0).to_pandas().value_counts()
        dates = parser.parse_unique(pd.Series(values.index, dtype="str"))
        days = pd.Series(values.to_numpy(), index=dates.dt.normalize().to_numpy())
        days = days[days.index.notna() & (days.index >= pd.Timestamp(since))]
        days = days.groupby(level=0).sum()
        counts = days if counts is None else counts.add(days, fill_value=0)
    return (counts if counts is not None else pd.Series(dtype="int64")).sort_index()


def last_supported_day(days: pd.Series, support: float) -> tuple[pd.Timestamp, int]:
    """The last day whose 30 days up to it hold at least `support` of all lines, and how
    many lines lie after it (stray dates, such as a typo in the year)."""
    total = float(days.sum())
    index = days.index
    cum = days.cumsum().to_numpy()
    start = index.searchsorted(index - pd.Timedelta(days=30), side="left")
    before = [cum[i - 1] if i > 0 else 0.0 for i in start]
    window = cum - before
    supported = window >= max(1.0, support * total)
    last = index[supported.nonzero()[0][-1]] if supported.any() else index[-1]
    return last, int(days[days.index > last].sum())
