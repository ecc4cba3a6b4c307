"""Build the bad-input corpus: one small file per way a transactions file goes wrong.

Files are generated, never committed: `build(out_dir)` writes them (tests use a
temp dir; by hand use `python tests/data/bad/make_corpus.py tests/data/bad/generated`,
which git ignores). Each file starts from a small, realistic Online Retail-like
base (40 customers, a few invoices each over Dec 2010 - Dec 2011, returns,
a customer id spelt `17850.0` and `17850`), then one kind of damage is applied.

What must happen is worked out here, while the file is written, never by
running the product: every line is created with the set-aside reason it must
get (or none), so the expected counts, and the file row of each set-aside
line, follow from the lines themselves. The reason of a damaged line is the
first in `quality.REASONS` order that applies; each damage touches one field
of a line that was otherwise clean, so exactly one reason applies.

Deterministic: same code, same files (stdlib `random` with fixed seeds; gzip
and zip entries carry fixed timestamps; only .xlsx metadata holds a save time).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import random
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country"]
SEED = 20111209
START = dt.datetime(2010, 12, 1, 8, 26)
LAST = dt.datetime(2011, 12, 9, 12, 50)  # the last line of the base: default as-of 2011-12-10
DEFAULT_AS_OF = "2011-12-10"
PERIOD = dt.datetime(2010, 12, 10)  # the default 12-month analysed period starts here
ZIP_TIME = (2011, 12, 10, 0, 0, 0)

# a few real Online Retail products: code, description, unit price
CATALOGUE = [
    ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 2.55),
    ("71053", "WHITE METAL LANTERN", 3.39),
    ("84406B", "CREAM CUPID HEARTS COAT HANGER", 2.75),
    ("84029G", "KNITTED UNION FLAG HOT WATER BOTTLE", 3.39),
    ("84029E", "RED WOOLLY HOTTIE WHITE HEART.", 3.39),
    ("22752", "SET 7 BABUSHKA NESTING BOXES", 7.65),
    ("21730", "GLASS STAR FROSTED T-LIGHT HOLDER", 4.25),
    ("22633", "HAND WARMER UNION JACK", 1.85),
    ("22632", "HAND WARMER RED POLKA DOT", 1.85),
    ("84879", "ASSORTED COLOUR BIRD ORNAMENT", 1.69),
    ("22745", "POPPY'S PLAYHOUSE BEDROOM", 2.1),
    ("22748", "POPPY'S PLAYHOUSE KITCHEN", 2.1),
    ("22749", "FELTCRAFT PRINCESS CHARLOTTE DOLL", 3.75),
    ("22310", "IVORY KNITTED MUG COSY", 1.65),
    ("84969", "BOX OF 6 ASSORTED COLOUR TEASPOONS", 4.25),
    ("22623", "BOX OF VINTAGE JIGSAW BLOCKS", 4.95),
    ("22622", "BOX OF VINTAGE ALPHABET BLOCKS", 9.95),
    ("21754", "HOME BUILDING BLOCK WORD", 5.95),
    ("21755", "LOVE BUILDING BLOCK WORD", 5.95),
    ("21777", "RECIPE BOX WITH METAL HEART", 7.95),
    ("48187", "DOORMAT NEW ENGLAND", 7.95),
    ("22960", "JAM MAKING SET WITH JARS", 4.25),
    ("22913", "RED COAT RACK PARIS FASHION", 4.95),
    ("22912", "YELLOW COAT RACK PARIS FASHION", 4.95),
    ("22914", "BLUE COAT RACK PARIS FASHION", 4.95),
    ("22728", "ALARM CLOCK BAKELIKE PINK", 3.75),
    ("22727", "ALARM CLOCK BAKELIKE RED", 3.75),
    ("21724", "PANDA AND BUNNIES STICKER SHEET", 0.85),
    ("21791", "VINTAGE HEADS AND TAILS CARD GAME", 1.25),
    ("22086", "PAPER CHAIN KIT 50'S CHRISTMAS", 2.95),
    ("23084", "RABBIT NIGHT LIGHT", 2.08),
    ("85099B", "JUMBO BAG RED RETROSPOT", 1.95),
    ("47566", "PARTY BUNTING", 4.95),
    ("84077", "WORLD WAR 2 GLIDERS ASSTD DESIGNS", 0.29),
    ("22197", "SMALL POPCORN HOLDER", 0.85),
]
COUNTRIES = ["United Kingdom"] * 30 + ["Germany"] * 3 + ["France"] * 3 + ["EIRE"] * 2 + [
    "Spain", "Netherlands"]
QUANTITIES = [1, 2, 3, 4, 6, 6, 8, 10, 12, 12, 24]


@dataclass
class Line:
    """One transaction line as written, and what the product must make of it."""

    invoice: str
    code: str
    description: str
    quantity: str
    date: str  # as written
    price: str
    customer: str  # as written; "" = missing
    country: str
    reason: str | None = None  # the set-aside reason it must get; None = kept
    when: dt.datetime | None = None  # the date it means
    customer_key: str = ""  # the customer id it means
    latin1: bool = False  # written in latin-1 bytes (the rest of the file is UTF-8)
    row: int = 0  # filled in when written: row in the file, header = 1
    where: str = ""  # filled in when written: file, zip member (`a.zip:b.csv`) or sheet

    def fields(self) -> list[str]:
        return [self.invoice, self.code, self.description, self.quantity, self.date,
                self.price, self.customer, self.country]


@dataclass
class Raw:
    """A line written verbatim (one that cannot be split into the file's columns)."""

    text: str
    reason: str = "malformed_row"
    row: int = 0
    where: str = ""


BLANK = "blank"  # an empty line: not a row; the rows after it keep their file numbers


@dataclass(frozen=True)
class Case:
    """One corpus file and what must happen to it.

    outcome "run": `insiders run` completes and the quarantine accounts for every
    set-aside row. outcome "error": one line on stderr naming the file and the
    `fragments`, non-zero exit; `error_stage` is the stage that stops (extract and
    quality are the DAG's tasks; a later stage is reached by the CLI only, so the
    DAG's extract and quality tasks then succeed with the counts below).
    """

    name: str
    path: Path
    about: str
    outcome: str
    as_of: str | None = None
    error_stage: str | None = None
    fragments: tuple[str, ...] = ()
    rows_in: int | None = None
    rows_kept: int | None = None
    set_aside: dict[str, int] = field(default_factory=dict)
    aside_rows: tuple[tuple[str, int, str], ...] = ()  # (where, row, reason), sorted
    facts: dict = field(default_factory=dict)  # case-specific expectations


# --------------------------------------------------------------------------- formats


def us_date(when: dt.datetime) -> str:
    """`12/1/2010 8:26`, as in the common CSV copies of Online Retail."""
    return f"{when.month}/{when.day}/{when.year} {when.hour}:{when.minute:02d}"


def iso_date(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S")


def mon_date(when: dt.datetime) -> str:
    """`29-Nov-10`: a date without a time (month names in English whatever the locale)."""
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    return f"{when.day:02d}-{months[when.month - 1]}-{when.year % 100:02d}"


def price_text(price: float) -> str:
    return f"{price:g}"


# --------------------------------------------------------------------------- the base


def base_lines(rng: random.Random, customers: int = 40) -> list[Line]:
    """Realistic lines in invoice order: a few invoices per customer, returns, odd lines.

    With 10 customers or more it also holds what any real export holds: a
    return (`C` invoice, negative quantity) for three customers, an invoice
    without a customer id and a postage line, each with its set-aside reason.
    """
    others = [i for i in range(12346, 18288) if i != 17850]
    ids = sorted([17850, *rng.sample(others, customers - 1)])
    country = {c: rng.choice(COUNTRIES) for c in ids}
    country[17850] = "United Kingdom"
    invoices: list[tuple[dt.datetime, int | None, list[tuple[str, str, float, int]], str]] = []
    for cust in ids:
        for _ in range(rng.randint(3, 6)):
            invoices.append((_random_time(rng), cust, _basket(rng), ""))
    invoices.append((LAST, ids[-1], _basket(rng), ""))  # pins the default as-of
    extras = customers >= 10
    if extras:
        for cust in rng.sample(ids[1:], 3):  # returns: part of an earlier basket comes back
            when, _, items, _ = next(i for i in invoices if i[1] == cust)
            code, desc, price, qty = items[0]
            back = min(when + dt.timedelta(days=rng.randint(2, 20), hours=1), LAST)
            invoices.append((back, cust, [(code, desc, price, -min(qty, 2))], "C"))
        invoices.append((_random_time(rng), None, _basket(rng, 2), ""))  # no customer id
    invoices.sort(key=lambda i: i[0])
    abroad = next((i for i, inv in enumerate(invoices)
                   if inv[1] is not None and not inv[3]
                   and country[inv[1]] != "United Kingdom"), None)
    lines: list[Line] = []
    spelt = Counter()
    for number, (when, cust, items, prefix) in enumerate(invoices, start=536365):
        # ids as a float column writes them (12346.0); 17850 also as an integer, every other
        # invoice, as when two exports are appended
        spelt[cust] += 1
        plain = cust == 17850 and spelt[cust] % 2 == 0
        written = "" if cust is None else (str(cust) if plain else f"{cust}.0")
        for code, desc, price, qty in items:
            lines.append(Line(
                invoice=f"{prefix}{number}", code=code, description=desc, quantity=str(qty),
                date=us_date(when), price=price_text(price), customer=written,
                country=country.get(cust, "United Kingdom"),
                reason=None if cust is not None else "missing_customer_id", when=when,
                customer_key=str(cust) if cust is not None else ""))
        if extras and abroad is not None and number == 536365 + abroad:
            lines.append(replace(lines[-1], code="POST", description="POSTAGE", quantity="1",
                                 price="18", reason="non_product_code"))
    return lines


def _random_time(rng: random.Random) -> dt.datetime:
    while True:
        day = START + dt.timedelta(days=rng.randint(0, (LAST - START).days - 1))
        if day.weekday() != 5:  # no Saturday trading, as in the real data
            return day.replace(hour=rng.randint(8, 17), minute=rng.randint(0, 59))


def _basket(rng: random.Random, size: int | None = None) -> list[tuple[str, str, float, int]]:
    chosen = rng.sample(CATALOGUE, size or rng.randint(2, 4))
    return [(code, desc, price, rng.choice(QUANTITIES)) for code, desc, price in chosen]


def clean_purchases(lines: list[Line], n: int, rng: random.Random,
                    exclude: tuple[str, ...] = ("17850",)) -> list[Line]:
    """n kept purchase lines to damage (not returns, not the customer spelt two ways)."""
    pool = [ln for ln in lines if ln.reason is None and not ln.invoice.startswith("C")
            and ln.customer_key not in exclude and ln is not lines[-1]]
    return sorted(rng.sample(pool, n), key=lines.index)


def insert_in_order(lines: list[Line], new: list[Line]) -> None:
    """Insert lines where their date puts them (after the lines of the same moment)."""
    for line in new:
        at = next((i for i, ln in enumerate(lines) if ln.when and ln.when > line.when),
                  len(lines))
        lines.insert(at, line)


# --------------------------------------------------------------------------- writing


def csv_bytes(records: list, where: str, header: list[str] = HEADER, delimiter: str = ",",
              newline: str = "\n", bom: bool = False,
              shape: Callable[[int, list[str]], list[str]] | None = None) -> bytes:
    """The file's bytes; numbers each record's row as a spreadsheet shows it (header = 1).

    `shape(row, fields)` rearranges a line's fields for files with other columns.
    """
    out = bytearray(b"\xef\xbb\xbf" if bom else b"")
    out += _csv_line(header, delimiter, newline).encode("utf-8")
    for row, record in enumerate(records, start=2):
        if record == BLANK:
            out += newline.encode()
            continue
        record.row, record.where = row, where
        if isinstance(record, Raw):
            out += (record.text + newline).encode("utf-8")
        else:
            values = shape(row, record.fields()) if shape else record.fields()
            text = _csv_line(values, delimiter, newline)
            out += text.encode("latin-1" if record.latin1 else "utf-8")
    return bytes(out)


def _csv_line(values: list[str], delimiter: str, newline: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerow(values)
    return buffer.getvalue()


def expected(records: list) -> dict:
    """Counts and set-aside rows, from the reasons the lines were made with."""
    rows = [r for r in records if r != BLANK]
    reasons = Counter(r.reason for r in rows if r.reason)
    return {
        "rows_in": len(rows),
        "rows_kept": sum(r.reason is None for r in rows),
        "set_aside": dict(sorted(reasons.items())),
        "aside_rows": tuple(sorted((r.where, r.row, r.reason) for r in rows if r.reason)),
    }


def write_case(out: Path, name: str, filename: str, records: list, about: str, **kw) -> Case:
    """Write a plain .csv case whose outcome is a run (or a later-stage error)."""
    path = out / filename
    opts = {k: kw.pop(k) for k in ("delimiter", "newline", "bom", "header", "shape") if k in kw}
    path.write_bytes(csv_bytes(records, filename, **opts))
    return Case(name=name, path=path, about=about, **{"outcome": "run", **expected(records),
                                                      **kw})


def kept_dates(records: list) -> dict[str, str]:
    return {f"{r.where}#{r.row}": iso_date(r.when) for r in records
            if r != BLANK and not isinstance(r, Raw) and r.reason is None}


# --------------------------------------------------------------------------- the cases


def case_empty(out: Path, rng: random.Random) -> Case:
    path = out / "empty.csv"
    path.write_bytes(b"")
    return Case("empty", path, "a 0-byte file", "error", error_stage="extract",
                fragments=("empty",))


def case_header_only(out: Path, rng: random.Random) -> Case:
    path = out / "header_only.csv"
    path.write_bytes(csv_bytes([], path.name))
    return Case("header_only", path, "the header line and nothing else", "error",
                error_stage="extract", fragments=("no transaction rows",))


def case_not_a_table(out: Path, rng: random.Random) -> Case:
    path = out / "not_a_table.csv"
    path.write_text("<!DOCTYPE html>\n<html><head><title>Session expired</title></head>\n"
                    "<body><p>Please sign in again to download the report.</p></body></html>\n")
    return Case("not_a_table", path, "an HTML sign-in page saved as .csv (a failed download)",
                "error", error_stage="extract",
                fragments=("missing required columns InvoiceNo, StockCode, Quantity",
                           "found columns: '<!DOCTYPE html>'"))


def case_missing_column(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    path = out / "missing_column.csv"
    drop = HEADER.index("CustomerID")
    path.write_bytes(csv_bytes(lines, path.name, header=HEADER[:drop] + HEADER[drop + 1:],
                               shape=lambda _, values: values[:drop] + values[drop + 1:]))
    return Case("missing_column", path, "the CustomerID column is not there", "error",
                error_stage="extract",
                fragments=("missing required column CustomerID (",))


def case_renamed_columns(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    header = ["", "Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price",
              "Customer ID", "Country", "Unnamed: 9"]
    return write_case(out, "renamed_columns", "renamed_columns.csv", lines, header=header,
                      shape=lambda row, values: [str(row - 2), *values, ""],
                      about="Online Retail II column names (Invoice, Price, Customer ID), a "
                            "leading unnamed index column (pandas' to_csv) and a trailing "
                            "empty unnamed column")


def case_wrong_delimiter(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    for ln in lines:  # a European spreadsheet export: ; separated, decimal commas, d.m.Y
        ln.price = ln.price.replace(".", ",")
        ln.date = ln.when.strftime("%d.%m.%Y %H:%M")
        ln.customer = ln.customer.replace(".", ",")
    return write_case(out, "wrong_delimiter", "wrong_delimiter.csv", lines, delimiter=";",
                      about="semicolon-separated European export: decimal commas (2,55), "
                            "dates 01.12.2010 08:26, customer ids 17850,0")


def case_non_numeric(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    # `1,000` beside plain quantities reads as a thousand (quality.NumberReader): not here
    bad_qty = ["ten", "", "3.5", "12 pcs", "1,000,5"]
    bad_price = ["abc", "", "2.55 each", "N/A"]  # a currency mark alone is read: `£2.55`
    targets = clean_purchases(lines, len(bad_qty) + len(bad_price), rng)
    for ln, text in zip(targets, bad_qty, strict=False):
        ln.quantity, ln.reason = text, "unparseable_quantity"
    for ln, text in zip(targets[len(bad_qty):], bad_price, strict=True):
        ln.price, ln.reason = text, "unparseable_price"
    return write_case(out, "non_numeric", "non_numeric.csv", lines,
                      about="quantities ten, empty, 3.5, 12 pcs, 1,000,5 (neither thousands "
                            "nor a decimal comma) and prices abc, empty, 2.55 each, N/A")


def case_mixed_dates(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    formats = [iso_date, us_date, mon_date]
    invoices = list(dict.fromkeys(ln.invoice for ln in lines))
    for ln in lines:
        style = formats[invoices.index(ln.invoice) % 3]
        ln.date = style(ln.when)
        if style is mon_date:
            ln.when = ln.when.replace(hour=0, minute=0)
    case = write_case(out, "mixed_dates", "mixed_dates.csv", lines,
                      about="invoice dates in three formats, by invoice: 2010-12-01 08:26:00, "
                            "12/1/2010 8:26 and 01-Dec-10")
    return replace(case, facts={"dates": kept_dates(lines)})


def case_impossible_dates(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    bad = [("2/30/2011 10:15", "unparseable_date"), ("2011-02-30 10:15:00", "unparseable_date"),
           ("31-Feb-11", "unparseable_date"), ("13/13/2011 9:00", "unparseable_date"),
           ("#VALUE!", "unparseable_date"), ("1/1/1970 0:00", "implausible_date")]
    for ln, (text, reason) in zip(clean_purchases(lines, len(bad), rng), bad, strict=True):
        ln.date, ln.reason = text, reason
    case = write_case(out, "impossible_dates", "impossible_dates.csv", lines,
                      about="30 February (three spellings), month 13, an Excel #VALUE! and "
                            "1/1/1970 (a system's zero date)")
    return replace(case, facts={"impossible": {f"{ln.where}#{ln.row}": ln.date for ln in lines
                                               if ln.reason == "unparseable_date"}})


def case_future_dates(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    bad = [("12/10/2011 9:00", "after_as_of"), ("1/5/2012 10:00", "after_as_of"),
           ("12/9/2031 12:00", "stray_date")]  # after the day of any run of these tests
    for ln, (text, reason) in zip(clean_purchases(lines, len(bad), rng), bad, strict=True):
        ln.date, ln.reason = text, reason
    return write_case(out, "future_dates", "future_dates.csv", lines, as_of=DEFAULT_AS_OF,
                      about=f"run --as-of {DEFAULT_AS_OF}; lines dated on that day, in 2012 and "
                            "in 2031 (a typo for 2011, after today: stray_date)")


def case_future_typo_no_as_of(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    typo = clean_purchases(lines, 1, rng)[0]
    typo.date, typo.reason = us_date(typo.when.replace(year=2031)), "stray_date"
    case = write_case(out, "future_typo_no_as_of", "future_typo_no_as_of.csv", lines,
                      about="no --as-of; one line dated 2031 (a typo for 2011) among lines of "
                            "Dec 2010 - Dec 2011")
    return replace(case, facts={"as_of": DEFAULT_AS_OF})


def case_misdated_invoice(out: Path, rng: random.Random) -> Case:
    """A whole invoice typed 2021 for 2011: before today, so only its lonely date gives it
    away. Its 4 lines are 0.8% of the file, more than the 0.5% support the old default
    as-of rule asked for: it took 2021 as the end of the data."""
    lines = base_lines(rng)
    first = clean_purchases(lines, 1, rng)[0]
    when = first.when.replace(year=2021)
    extra = [replace(first, code=code, description=desc, quantity="2", price=price_text(price),
                     date=us_date(when), when=when, reason="stray_date")
             for code, desc, price in CATALOGUE[:4]]
    lines = [ln for ln in lines if ln.invoice != first.invoice] + extra
    for ln in lines:
        if ln.invoice == first.invoice:
            ln.reason = "stray_date"
    case = write_case(out, "misdated_invoice", "misdated_invoice.csv", lines,
                      about="no --as-of; one 4-line invoice dated 2021 (a typo for 2011), "
                            "alone ten years after the rest")
    return replace(case, facts={"as_of": DEFAULT_AS_OF})


WORD_CODES = ["CD", "LP", "DVD", "BOX", "TAPE", "MUG", "BAG", "PEN", "CAP", "KIT", "INK", "MAP"]


def case_word_codes(out: Path, rng: random.Random) -> Case:
    """A shop whose products are coded by short words: the old short-code rule set every
    line aside as non_product_code."""
    lines = base_lines(rng)
    for ln in lines:
        if ln.code != "POST":
            ln.code = WORD_CODES[CATALOGUE.index(next(c for c in CATALOGUE if c[0] == ln.code))
                                 % len(WORD_CODES)]
    return write_case(out, "word_codes", "word_codes.csv", lines,
                      about="products coded CD, LP, DVD, BOX, ...; the postage line stays POST")


def case_column_aliases(out: Path, rng: random.Random) -> Case:
    """Another shop's export: order_id, sku, qty, date, price, customer, and a warehouse
    column the product does not use. Both are read, and both are said in the notes."""
    lines = base_lines(rng)
    header = ["order_id", "sku", "Description", "qty", "date", "price", "customer", "Country",
              "warehouse"]
    case = write_case(out, "column_aliases", "column_aliases.csv", lines, header=header,
                      shape=lambda row, values: [*values, "LEEDS"],
                      about="columns order_id, sku, qty, date, price, customer and an "
                            "unrecognised warehouse column")
    return replace(case, facts={"aliases": {"order_id": "InvoiceNo", "sku": "StockCode",
                                            "qty": "Quantity", "date": "InvoiceDate",
                                            "customer": "CustomerID"},
                                "ignored": ["warehouse"]})


def case_bad_prices(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    bad = ["0", "0.00", "-1.5", "-0.01"]
    for ln, text in zip(clean_purchases(lines, len(bad), rng), bad, strict=True):
        ln.price, ln.reason = text, "non_positive_price"
    debt = Line("A563185", "B", "Adjust bad debt", "1", "8/12/2011 14:50", "-11062.06", "",
                "United Kingdom", reason="missing_customer_id",
                when=dt.datetime(2011, 8, 12, 14, 50))
    insert_in_order(lines, [debt])
    return write_case(out, "bad_prices", "bad_prices.csv", lines,
                      about="unit prices 0, 0.00, -1.5, -0.01 and the real 'Adjust bad debt' "
                            "line (price -11062.06, no customer: set aside for the id, the "
                            "first reason that applies)")


def case_huge_quantities(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    bad = ["5000000", "1E+09", "99999999999999999999", "-2000000"]
    big, other, *damaged = clean_purchases(lines, 2 + len(bad), rng)
    for ln, text in zip(damaged, bad, strict=True):
        ln.quantity, ln.reason = text, "implausible_quantity"
    new = []
    for cust, code, desc, qty, price, when in (
            (big, "23843", "PAPER CRAFT , LITTLE BIRDIE", 80995, 2.08,
             dt.datetime(2011, 12, 9, 9, 15)),
            (other, "23166", "MEDIUM CERAMIC TOP STORAGE JAR", 74215, 1.04,
             dt.datetime(2011, 1, 18, 10, 1))):
        for sign, prefix, minutes in ((1, "", 0), (-1, "C", 12)):
            at = when + dt.timedelta(minutes=minutes)
            new.append(Line(f"{prefix}{581483 + len(new)}", code, desc, str(sign * qty),
                            us_date(at), price_text(price), cust.customer, cust.country,
                            when=at, customer_key=cust.customer_key))
    insert_in_order(lines, new)
    return write_case(out, "huge_quantities", "huge_quantities.csv", lines,
                      about="the real 80995 and 74215 unit orders, each cancelled minutes "
                            "later (kept and netted), and 5000000, 1E+09, 99999999999999999999, "
                            "-2000000 units (beyond a million: set aside)")


def case_duplicates(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    a, b, c, d, e, f = clean_purchases(lines, 6, rng)
    for original in (c, b, a):  # submitted twice: the copy right after the line
        lines.insert(lines.index(original) + 1, replace(original, reason="duplicate"))
    lines += [replace(d, reason="duplicate"), replace(e, reason="duplicate"),
              replace(e, reason="duplicate")]  # re-exported at the end, one of them twice
    near = replace(f, quantity=str(int(f.quantity) + 1))  # same invoice and product, not a copy
    lines.insert(lines.index(f) + 1, near)
    return write_case(out, "duplicates", "duplicates.csv", lines,
                      about="3 lines repeated right after themselves, 1 repeated at the end, 1 "
                            "repeated twice at the end, and a near-copy (other quantity: kept)")


def case_malformed_lines(out: Path, rng: random.Random) -> Case:
    lines: list = base_lines(rng)
    a, b, c = clean_purchases(lines, 3, rng)
    unquoted = ",".join([a.invoice, a.code, "PAPER CRAFT , LITTLE BIRDIE", *a.fields()[3:]])
    lines[lines.index(a)] = Raw(unquoted)  # a naive exporter did not quote the comma
    lines[lines.index(b)] = Raw(",".join(b.fields()[:5]))  # cut short
    lines.insert(3, BLANK)  # early: nearly every row comes after it
    lines.insert(lines.index(c), BLANK)
    case = write_case(out, "malformed_lines", "malformed_lines.csv", lines,
                      about="a line with an unquoted comma (9 fields), a line cut after 5 "
                            "fields, and two empty lines (not rows: the rows after them keep "
                            "their numbers)")
    return replace(case, facts={"empty_rows": 2})


def case_unclosed_quote(out: Path, rng: random.Random) -> Case:
    lines: list = base_lines(rng, customers=12)
    target = clean_purchases(lines, 1, rng)[0]
    fields = target.fields()
    fields[2] = '"' + fields[2]
    lines[lines.index(target)] = Raw(",".join(fields))
    path = out / "unclosed_quote.csv"
    path.write_bytes(csv_bytes(lines, path.name))
    row = next(r for r in lines if isinstance(r, Raw)).row
    return Case("unclosed_quote", path, 'a description opened with a " that is never closed '
                "(the reader would take the rest of the file as one value)", "error",
                error_stage="extract", fragments=(f"row {row}", "quote"))


def case_truncated_gzip(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng, customers=400)
    path = out / "truncated.csv.gz"
    data = gzip.compress(csv_bytes(lines, path.name), mtime=0)
    path.write_bytes(data[: len(data) * 6 // 10])
    return Case("truncated_gzip", path, "a .csv.gz cut at 60% of its bytes (an interrupted "
                "download)", "error", error_stage="extract",
                fragments=("truncated",))


def case_zip_two_files(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    cut = dt.datetime(2011, 6, 1)
    first = [ln for ln in lines if ln.when < cut]
    second = [ln for ln in lines if ln.when >= cut]
    overlap = next(ln for ln in reversed(first) if ln.reason is None)
    second.insert(0, replace(overlap, reason="duplicate"))  # the exports overlap by one line
    path = out / "two_files.zip"
    names = ["invoices_2010-12_2011-05.csv", "invoices_2011-06_2011-12.csv"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, part in zip(names, (first, second), strict=True):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, csv_bytes(part, f"{path.name}:{name}"))
    return Case("zip_two_files", path, "a .zip holding two CSV exports (Dec-May, Jun-Dec) "
                "that overlap by one line", "run", **expected(first + second),
                facts={"sources": {f"{path.name}:{n}": len(p) for n, p in
                                   zip(names, (first, second), strict=True)}})


def case_xlsx_sheets(out: Path, rng: random.Random) -> Case:
    import openpyxl

    lines = base_lines(rng)
    cut = dt.datetime(2011, 6, 1)
    parts = {"2010-12 to 2011-05": [ln for ln in lines if ln.when < cut],
             "2011-06 to 2011-12": [ln for ln in lines if ln.when >= cut]}
    path = out / "several_sheets.xlsx"
    book = openpyxl.Workbook()
    book.remove(book.active)
    notes = book.create_sheet("Notes")
    notes.append(["Online store export"])
    notes.append(["Exported by", "finance"])
    for title, part in parts.items():
        sheet = book.create_sheet(title)
        sheet.append(HEADER)
        for i, ln in enumerate(part):
            if i == len(part) // 2 and title == "2010-12 to 2011-05":
                sheet.append([])  # a gap: an empty row between two blocks of lines
            ln.row, ln.where = sheet.max_row + 1, f"{path.name}[{title}]"
            sheet.append([_cell(ln.invoice), _cell(ln.code), ln.description, int(ln.quantity),
                          ln.when, float(ln.price),
                          float(ln.customer_key) if ln.customer_key else None, ln.country])
    # formatted but empty cells three rows below the last line: no value, so no row (the
    # reader skips them; openpyxl once returned them as three empty rows)
    sheet.cell(row=sheet.max_row + 3, column=5).number_format = "yyyy-mm-dd hh:mm"
    summary = book.create_sheet("Summary")
    summary.append(["Country", "Revenue"])
    summary.append(["United Kingdom", 12345.67])
    book.properties.creator = "insiders bad-input corpus"
    book.properties.created = dt.datetime(2011, 12, 10)
    book.save(path)
    return Case("xlsx_sheets", path, "an .xlsx with the transactions on two sheets (typed "
                "cells: numbers, dates, 17850.0 ids; an empty row between lines, formatted "
                "empty cells after them) plus a Notes and a Summary sheet", "run",
                **expected(lines),
                facts={"sheets": [f"{path.name}[{t}]" for t in parts],
                       "ignored": ["Notes", "Summary"],
                       "empty_rows": {f"{path.name}[{t}]": n for t, n in zip(parts, (1, 0),
                                                                              strict=True)}})


def _cell(text: str) -> int | str:
    return int(text) if text.isdigit() else text


LATIN1 = ["CRÈME BRÛLÉE RAMEKIN", "FRENCH CAFÉ SIGN", "PIÑATA DONKEY", "£5 GIFT VOUCHER CARD"]


def case_latin1_bytes(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    targets = clean_purchases(lines, len(LATIN1) + 1, rng)
    for ln, text in zip(targets, LATIN1, strict=False):
        ln.description, ln.latin1 = text, True
    targets[-1].description = "CAFÉ AU LAIT BOWL"  # a proper UTF-8 accent in the same file
    case = write_case(out, "latin1_bytes", "latin1_bytes.csv", lines, bom=True, newline="\r\n",
                      about="a UTF-8 file (with BOM, CRLF) where 4 descriptions are latin-1 "
                            "bytes (CRÈME BRÛLÉE, CAFÉ, PIÑATA, £5) and one is proper UTF-8")
    return replace(case, facts={
        "descriptions": {f"{ln.where}#{ln.row}": ln.description for ln in targets},
        "latin1_values": len(LATIN1)})


def case_several_countries(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    per_customer = Counter(ln.customer_key for ln in lines if ln.reason is None
                           and ln.customer_key != "17850")
    cust = max(sorted(per_customer), key=lambda c: per_customer[c])
    own = [ln for ln in lines if ln.customer_key == cust]
    home = own[0].country
    other = "Channel Islands" if home != "Channel Islands" else "EIRE"
    moved = own[-1].invoice
    for ln in own:
        if ln.invoice == moved:
            ln.country = other
    by_country = Counter(ln.country for ln in own if ln.reason is None and ln.when >= PERIOD)
    assert by_country[home] > by_country[other], "the main country must be unambiguous"
    case = write_case(out, "several_countries", "several_countries.csv", lines,
                      about=f"customer {cust} buys from {home} and, on one invoice, from "
                            f"{other}")
    return replace(case, facts={"customer": cust, "country": home, "other": other})


def case_one_customer(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng, customers=1)
    case = write_case(out, "one_customer", "one_customer.csv", lines,
                      about="every line is customer 17850's: nothing to segment")
    return replace(case, outcome="error", error_stage="segment",
                   fragments=("only 1 customer", "too few to segment"))


def case_one_day(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng)
    for i, ln in enumerate(lines):  # every invoice on the base's last day, in file order
        ln.date = us_date(LAST.replace(hour=8 + 4 * i // len(lines), minute=i % 60))
    case = write_case(out, "one_day", "one_day.csv", lines,
                      about="40 customers' invoices, all on 9 Dec 2011: no history to value "
                            "anyone on")
    return replace(case, outcome="error", error_stage="features",
                   fragments=("cover only 1 day from 2011-12-09",
                              "needs at least 28 days of history"))


def case_all_rows_bad(out: Path, rng: random.Random) -> Case:
    lines = base_lines(rng, customers=3)[:12]
    damage = [("customer", "", "missing_customer_id")] * 3 + [
        ("quantity", "0", "zero_quantity")] * 2 + [("price", "-1", "non_positive_price")] * 2 + [
        ("date", "#VALUE!", "unparseable_date"), ("date", "", "unparseable_date"),
        ("quantity", "lots", "unparseable_quantity"), ("code", "POST", "non_product_code"),
        ("code", "DOT", "non_product_code")]
    for ln, (column, text, reason) in zip(lines, damage, strict=True):
        setattr(ln, column, text)
        ln.reason = reason
    case = write_case(out, "all_rows_bad", "all_rows_bad.csv", lines,
                      about="12 lines, each with one fault (no id, zero quantity, negative "
                            "price, no date, POST/DOT codes, quantity 'lots')")
    return replace(case, outcome="error", error_stage="quality",
                   fragments=("every one of the 12 rows was set aside",))


BUILDERS = [
    case_empty, case_header_only, case_not_a_table, case_missing_column, case_renamed_columns,
    case_wrong_delimiter, case_non_numeric, case_mixed_dates, case_impossible_dates,
    case_future_dates, case_future_typo_no_as_of, case_misdated_invoice, case_word_codes,
    case_column_aliases, case_bad_prices, case_huge_quantities,
    case_duplicates,
    case_malformed_lines, case_unclosed_quote, case_truncated_gzip, case_zip_two_files,
    case_xlsx_sheets, case_latin1_bytes, case_several_countries, case_one_customer,
    case_one_day, case_all_rows_bad,
]


def names() -> list[str]:
    """The case names, without writing anything (tests parametrise on them)."""
    return [builder.__name__.removeprefix("case_") for builder in BUILDERS]


def build(out_dir: Path) -> dict[str, Case]:
    """Write every case's file into out_dir; returns the cases by name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = {}
    for name, builder in zip(names(), BUILDERS, strict=True):
        case = builder(out_dir, random.Random(f"{SEED}-{name}"))
        assert case.name == name, (case.name, name)
        cases[name] = case
    return cases


def main(argv: list[str]) -> int:
    usage = "usage: python tests/data/bad/make_corpus.py OUT_DIR"
    if argv in (["-h"], ["--help"]):
        print(usage)
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):  # `--help` once became a folder of files
        print(usage, file=sys.stderr)
        return 2
    for case in build(Path(argv[0])).values():
        outcome = case.outcome if case.outcome == "run" else f"error at {case.error_stage}"
        print(f"{case.path}  {outcome}  {case.about}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
