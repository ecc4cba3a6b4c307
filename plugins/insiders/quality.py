"""Quality: turn text lines into typed transactions and set aside what cannot be used.

Nothing is dropped: each line is either kept or set aside with one reason (the
first that applies, in the order of `REASONS`), so rows in = rows kept + rows
set aside, per reason. Returns (negative quantities) and cancellations (`C...`
invoices) are kept: they are netted against purchases downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import InputError
from .extract import RAW_COLUMNS

# reason -> what it means, in the order reasons are checked
REASONS: dict[str, str] = {
    "malformed_row": "the line could not be split into the file's columns",
    "order_not_delivered": "the order was cancelled or not delivered (yet): not a purchase",
    "unparseable_date": "the invoice date is not a date (or an impossible one, e.g. 30 Feb)",
    "implausible_date": "the invoice date is before 1990",
    "stray_date": ("dated after the day of the run, or alone far after the rest of the data: a "
                   "typo (e.g. 2031 for 2011), not the end of the data"),
    "after_as_of": "dated on or after the as-of date: not yet known on the day of the run",
    "missing_customer_id": "no customer id: the line cannot be attributed to a customer",
    "unparseable_quantity": "the quantity is not a whole number",
    "implausible_quantity": "the quantity is beyond a million units",
    "zero_quantity": "the quantity is zero",
    "unparseable_price": "the unit price is not a number",
    "non_positive_price": "the unit price is zero or negative (free samples, adjustments)",
    "implausible_price": "the unit price is beyond a million (a typo or a broken export)",
    "non_product_code": "postage, discounts, fees, manual adjustments and other non-products",
    "duplicate": "an exact copy of an earlier line",
}

# Stock codes that are not products (postage, fees, discounts, manual lines, tests) in the
# Online Retail data; `NAME*` is a prefix. Another catalogue brings its own list through
# Settings.non_product_codes (INSIDERS_NON_PRODUCT_CODES, `insiders run --non-product-codes`).
# DCGS... codes are real products (party bags, dog collars) and stay in.
DEFAULT_NON_PRODUCT_CODES = (
    "POST,DOT,D,M,C2,C3,CRUK,BANK CHARGES,AMAZONFEE,S,PADS,B,ADJUST*,TEST*,GIFT_*,AMAZON*,BANK*,"
    "GIFT,CARRIAGE,SAMPLES,FEE,DISCOUNT,POSTAGE,SHIPPING"
)
# a non-product rule that would set aside more than this share of the usable lines or of their
# revenue describes the catalogue wrongly: stop and say so rather than discard the file
MAX_NON_PRODUCT_SHARE = 0.5
MIN_LINES_FOR_THE_GUARD = 20  # below this many usable lines a share says little
# beyond these a number is a typo or a broken export, not a purchase: one such line would
# outweigh a year of trade in every total, forecast and cluster (1e308 overflows to infinity)
MAX_QUANTITY = 1_000_000
MAX_UNIT_PRICE = 1_000_000


@dataclass(frozen=True)
class NonProductCodes:
    """Which stock codes are not products a customer chose to buy: exact codes and prefixes.

    A list, not a pattern: a rule like "short codes without digits" fits one catalogue
    only (a shop coding CDs as `CD` lost every line to it).
    """

    codes: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def parse(cls, text: str | None) -> NonProductCodes:
        """`POST, DOT, GIFT_*`: comma separated, case-insensitive; None = the default list."""
        text = DEFAULT_NON_PRODUCT_CODES if text is None else text
        items = [item.strip().upper() for item in text.split(",") if item.strip()]
        return cls(frozenset(i for i in items if not i.endswith("*")),
                   tuple(i[:-1] for i in items if i.endswith("*") and len(i) > 1))

    def mask(self, codes: pd.Series) -> np.ndarray:
        upper = codes.astype("str").str.strip().str.upper()
        out = upper.isin(self.codes)
        if self.prefixes:
            out |= upper.str.startswith(self.prefixes)
        return out.to_numpy(dtype=bool)

    def describe(self) -> str:
        if self == NonProductCodes.parse(None):
            return "the Online Retail list, POST, DOT, M, D, BANK CHARGES, GIFT_*, ..."
        return ",".join(sorted(self.codes) + [p + "*" for p in self.prefixes]) or "none"


DEFAULT_NON_PRODUCTS = NonProductCodes.parse(None)


@dataclass
class NonProductTally:
    """Lines and revenue the non-product rule sets aside against those kept, across blocks.

    Only lines that pass every other check count, so the shares say what the rule alone
    would discard.
    """

    rule: NonProductCodes = DEFAULT_NON_PRODUCTS
    aside_lines: int = 0
    aside_revenue: float = 0.0
    kept_lines: int = 0
    kept_revenue: float = 0.0
    codes: dict[str, int] = field(default_factory=dict)

    def add(self, aside_codes: pd.Series, aside_revenue: float, kept_lines: int,
            kept_revenue: float) -> None:
        self.aside_lines += len(aside_codes)
        self.aside_revenue += float(aside_revenue)
        self.kept_lines += int(kept_lines)
        self.kept_revenue += float(kept_revenue)
        for code, count in aside_codes.astype("str").str.strip().value_counts().items():
            self.codes[code] = self.codes.get(code, 0) + int(count)

    def check(self, where: str) -> None:
        """Raise InputError when the rule would discard most of the usable lines or revenue."""
        lines = self.aside_lines + self.kept_lines
        revenue = self.aside_revenue + self.kept_revenue
        line_share = self.aside_lines / lines if lines else 0.0
        revenue_share = self.aside_revenue / revenue if revenue > 0 else 0.0
        if lines < MIN_LINES_FOR_THE_GUARD or max(line_share, revenue_share) <= \
                MAX_NON_PRODUCT_SHARE:
            return
        top = sorted(self.codes.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        shown = ", ".join(f"{code} ({count:,})" for code, count in top)
        raise InputError(
            f"{where}: the non-product codes would set aside {line_share:,.0%} of the usable "
            f"lines ({self.aside_lines:,} of {lines:,}) and {revenue_share:,.0%} of their "
            f"revenue, most coded {shown}; these look like this catalogue's products. List "
            "the codes that are not products with --non-product-codes or "
            f"INSIDERS_NON_PRODUCT_CODES (now: {self.rule.describe()})")


MISSING_IDS = frozenset({"", "nan", "none", "null", "na", "n/a", "-", "?"})

ISO_FORMAT = "ISO8601"
ZONE_SUFFIX = r"^(.*\d:\d\d(?::\d\d(?:\.\d+)?)?)\s*(?:Z|UTC|GMT|[+-]\d\d(?::?\d\d)?)$"
# slash dates, with a 24-hour or a 12-hour clock (`12/1/2010 8:26 AM`: US spreadsheets)
MONTH_FIRST = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y", "%m/%d/%y %H:%M", "%m/%d/%y",
               "%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%y %I:%M %p")
DAY_FIRST = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y", "%d/%m/%y %H:%M", "%d/%m/%y",
             "%d/%m/%Y %I:%M %p", "%d/%m/%Y %I:%M:%S %p", "%d/%m/%y %I:%M %p")
# unambiguous spellings: a month's name (`29-Nov-16`, `1 Dec 2010`, `Dec 1, 2010 8:26 AM`),
# dotted day-first (`01.12.2010`, German and Dutch exports), year first with slashes
OTHER_FORMATS = ("%d-%b-%y", "%d-%b-%Y", "%d-%b-%y %H:%M", "%d-%b-%Y %H:%M", "%d.%m.%Y %H:%M",
                 "%d.%m.%Y", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%d.%m.%Y %H:%M:%S",
                 "%d %b %Y %H:%M", "%d %b %Y", "%d %B %Y %H:%M", "%d %B %Y",
                 "%b %d, %Y %I:%M %p", "%b %d, %Y %H:%M", "%b %d, %Y", "%B %d, %Y %I:%M %p",
                 "%B %d, %Y %H:%M", "%B %d, %Y")


@dataclass
class QualityReport:
    """Row accounting for one run: rows_in == rows_kept + sum(set_aside)."""

    rows_in: int = 0
    rows_kept: int = 0
    set_aside: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    notes: list[str] = field(default_factory=list)
    # set-aside lines per input file (`source_file`): exact copies, and the lines set aside
    # for another reason; a file made mostly of copies is an export delivered twice
    copies: dict[str, int] = field(default_factory=dict)
    other_aside: dict[str, int] = field(default_factory=dict)

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
        try:
            out = pd.to_datetime(text, format=ISO_FORMAT, errors="coerce")
            zoned = isinstance(out.dtype, pd.DatetimeTZDtype)
        except ValueError:  # several time zones in one block, or zoned and plain values
            zoned = True
        if zoned:
            # a time zone after the time (`2011-06-01T08:26:00Z`, `+01:00`) is dropped: the
            # time is the shop's clock as written, and one file may mix offsets (summer time)
            text = text.str.replace(ZONE_SUFFIX, r"\1", regex=True)
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


def is_non_product(codes: pd.Series, rule: NonProductCodes = DEFAULT_NON_PRODUCTS
                   ) -> pd.Series:
    """Postage, fees, discounts, manual lines: not products a customer chose to buy."""
    return pd.Series(rule.mask(codes), index=codes.index)


# a currency written beside a price (`£2.55`, `2,55 €`, `BRL 10.00`, `-$3`): the money is the
# data's one currency (INSIDERS_CURRENCY), so the sign says nothing the number does not
CURRENCY_MARK = r"(?:US\$|R\$|[£€$¥]|GBP|EUR|USD|BRL)"


def without_currency(text: pd.Series) -> pd.Series:
    """`£2.55`, `-$3`, `2,55 €` without their currency mark (the sign kept in front)."""
    return (text.str.replace(rf"^(-?)\s*{CURRENCY_MARK}\s*", r"\1", regex=True)
                .str.replace(rf"\s*{CURRENCY_MARK}$", "", regex=True))


def to_number(values: pd.Series, money: bool = False) -> pd.Series:
    """Numbers as users write them: a decimal comma (`2,55`, `0,165`), thousands separators
    beside a decimal mark (`1,234.50`, `1.234,50`) and, for `money`, a currency mark.

    `1,000` may be a thousand or one (decimal comma): neither guess is safe, so it is not a
    number (the line is set aside as unparseable, and counted); with a decimal mark after
    the separators the reading is unambiguous."""
    text = values.astype("str").str.strip()
    number = pd.to_numeric(text, errors="coerce")
    todo = number.isna() & (text != "")
    if not todo.any():
        return number.astype("float64")
    rest = text[todo]
    if money:
        rest = without_currency(rest)
    point = rest.str.fullmatch(r"-?\d{1,3}(,\d{3})+\.\d+")  # 1,234.50
    comma = rest.str.fullmatch(r"-?\d{1,3}(\.\d{3})+,\d+")  # 1.234,50
    decimal_comma = (rest.str.fullmatch(r"-?\d+,\d+")
                     & ~rest.str.fullmatch(r"-?[1-9]\d{0,2}(,\d{3})+"))
    rest = rest.mask(point, rest.str.replace(",", "", regex=False))
    rest = rest.mask(comma, rest.str.replace(".", "", regex=False))
    rest = rest.mask(comma | decimal_comma, rest.str.replace(",", ".", regex=False))
    number[todo] = pd.to_numeric(rest, errors="coerce")  # `1,000` is left as written: NaN
    return number.astype("float64")


GROUPED = r"-?[1-9]\d{0,2}(,\d{3})+"  # 1,000 / -12,500 / 1,234,567: thousands, or a decimal comma


class NumberReader:
    """A number column as `to_number` reads it, and `1,000` read once the source says how.

    `1,000` alone may be a thousand or one (decimal comma). The rest of the column tells:
    beside plain numbers (`6`, `2.55`) and no decimal comma (`2,5`) the commas are
    thousands separators, the reading a spreadsheet export with "use 1000 separator" needs
    (its biggest wholesale lines, 1,000 units and up, were set aside as not whole). With
    a decimal comma elsewhere, or nothing to compare with, `1,000` stays unreadable and is
    set aside, as before. Like `DateParser`, the choice is made on the first block that
    holds such a value and then kept, so one file never mixes both readings.
    """

    def __init__(self, money: bool = False) -> None:
        self.money = money
        self.thousands: bool | None = None

    def parse_unique(self, values: pd.Series) -> pd.Series:
        number = to_number(values, money=self.money)
        text = values.astype("str").str.strip()
        if self.money:
            text = without_currency(text)
        grouped = text.str.fullmatch(GROUPED).fillna(False).to_numpy(dtype=bool)
        if not grouped.any():
            return number
        if self.thousands is None:
            plain = text.str.fullmatch(r"-?\d+(\.\d+)?").fillna(False).to_numpy(dtype=bool)
            decimal_comma = (text.str.fullmatch(r"-?\d+,\d+").fillna(False)
                             .to_numpy(dtype=bool) & ~grouped)
            self.thousands = bool(plain.any()) and not bool(decimal_comma.any())
        if self.thousands:
            number = number.copy()
            number[grouped] = pd.to_numeric(text[grouped].str.replace(",", "", regex=False))
        return number


def number_readers() -> dict[str, NumberReader]:
    """One reader per number column of a source, kept across its blocks."""
    return {"quantity": NumberReader(), "unit_price": NumberReader(money=True)}


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


def stray_mask(dates: np.ndarray, today: pd.Timestamp | None,
               stray_from: pd.Timestamp | None) -> np.ndarray:
    """Dates that are typos, not data: after the day of the run (`today`) or on or after
    the first day of the lines found alone far after the rest (`stray_from`)."""
    stray = np.zeros(len(dates), dtype=bool)
    with np.errstate(invalid="ignore"):
        if today is not None:
            stray |= dates >= (pd.Timestamp(today).normalize() + pd.Timedelta(days=1)
                               ).to_datetime64()
        if stray_from is not None:
            stray |= dates >= pd.Timestamp(stray_from).to_datetime64()
    return stray


def clean_chunk(
    raw: pd.DataFrame, as_of: pd.Timestamp, parse_dates: DateParser | None = None,
    today: pd.Timestamp | None = None, stray_from: pd.Timestamp | None = None,
    non_products: NonProductTally | None = None,
    numbers: dict[str, NumberReader] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed transactions and set-aside lines (with `reason`) for one block of text lines.

    Duplicates are not decided here (they may span blocks): kept lines carry a
    `row_hash` of their raw text for `duplicate_mask`. `today`: the day of the run
    (lines dated after it are typos); `stray_from`: the first day of lines found alone
    far after the rest (`default_as_of`); `non_products`: the non-product rule and the
    tally its guard reads (default: the Online Retail codes, not tallied).
    """
    parse_dates = parse_dates or DateParser()
    tally = non_products or NonProductTally()
    as_of = pd.Timestamp(as_of)
    cols = {c: _Column(raw[c]) for c in RAW_COLUMNS}
    dates = cols["invoice_date"].map(parse_dates.parse_unique).astype("datetime64[us]")
    customer_clean = normalise_customer_id(cols["customer_id"].uniques)
    customer_missing = customer_clean.isna().to_numpy()[cols["customer_id"].codes]
    numbers = numbers if numbers is not None else number_readers()
    quantity = cols["quantity"].map(numbers["quantity"].parse_unique)
    price = cols["unit_price"].map(numbers["unit_price"].parse_unique)
    stray = stray_mask(dates, today, stray_from)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(quantity) & (quantity == np.round(quantity))
        nat = np.isnat(dates)
        checks = [
            ("unparseable_date", nat),
            ("implausible_date", ~nat & (dates < np.datetime64("1990-01-01"))),
            ("stray_date", ~nat & stray),
            ("after_as_of", ~nat & (dates >= as_of.to_datetime64())),
            ("missing_customer_id", customer_missing),
            ("unparseable_quantity", ~whole),
            ("implausible_quantity", np.abs(quantity) > MAX_QUANTITY),
            ("zero_quantity", quantity == 0),
            ("unparseable_price", ~np.isfinite(price)),
            ("non_positive_price", price <= 0),
            ("implausible_price", price > MAX_UNIT_PRICE),
            ("non_product_code", cols["stock_code"].map(tally.rule.mask).astype(bool)),
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
    if non_products is not None:
        only_code = reason_code == len(checks) - 1  # every other check passed
        with np.errstate(invalid="ignore", over="ignore"):  # 1e308 x 6: set aside anyway
            value = np.abs(np.nan_to_num(quantity * price))
        non_products.add(raw.loc[only_code, "stock_code"], value[only_code].sum(),
                         int(keep.sum()), value[keep].sum())
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
