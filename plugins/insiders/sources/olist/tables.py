"""The Olist tables as files: which files (the Kaggle names), which columns, and reading
them as text from the folder they sit in or the zip Kaggle downloads them in, with every
row that cannot be split kept for the quarantine. `reading.py` turns them into lines."""

from __future__ import annotations

import codecs
import csv
import gzip
import tempfile
import zipfile
from pathlib import Path
from zlib import error as zlib_error

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ... import wording
from ...errors import InputError
from ...extract import shift_past

# table -> (file stem, required columns, optional columns); a table is required unless listed
# in OPTIONAL_TABLES. The stems are those of the public Kaggle copy (olistbr/brazilian-ecommerce).
TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "orders": ("olist_orders_dataset",
               ("order_id", "customer_id", "order_status", "order_purchase_timestamp",
                "order_delivered_customer_date", "order_estimated_delivery_date"),
               ("order_approved_at", "order_delivered_carrier_date")),
    "order_items": ("olist_order_items_dataset",
                    ("order_id", "order_item_id", "product_id", "seller_id", "price"),
                    ("freight_value", "shipping_limit_date")),
    "payments": ("olist_order_payments_dataset",
                 ("order_id", "payment_value"),
                 ("payment_sequential", "payment_type", "payment_installments")),
    "reviews": ("olist_order_reviews_dataset",
                ("review_id", "order_id", "review_score", "review_creation_date"),
                ("review_answer_timestamp",)),
    "customers": ("olist_customers_dataset",
                  ("customer_id", "customer_unique_id", "customer_zip_code_prefix",
                   "customer_state"),
                  ("customer_city",)),
    "products": ("olist_products_dataset", ("product_id", "product_category_name"), ()),
    "sellers": ("olist_sellers_dataset", ("seller_id",),
                ("seller_zip_code_prefix", "seller_city", "seller_state")),
    "translation": ("product_category_name_translation",
                    ("product_category_name", "product_category_name_english"), ()),
}
OPTIONAL_TABLES = ("payments", "products", "sellers", "translation")
SUFFIXES = (".csv.gz", ".csv")
NO_CATEGORY = "unknown category"


# --------------------------------------------------------------------------- reading


def find_file(directory: Path, table: str) -> Path | None:
    stem = TABLES[table][0]
    for suffix in SUFFIXES:
        path = directory / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _header(path: Path, where: str) -> list[str]:
    try:
        with _open(path) as fh:
            head = fh.read(64 * 1024)
    except (OSError, EOFError) as exc:
        raise InputError(f"{where}: cannot be read ({exc})") from None
    if head.startswith(codecs.BOM_UTF8):  # the translation file starts with a BOM
        head = head[len(codecs.BOM_UTF8):]
    lines = head.decode("utf-8", errors="replace").splitlines()
    if not lines or not lines[0].strip():
        raise InputError(f"{where}: the file is empty; expected a header row")
    return [name.strip() for name in next(csv.reader([lines[0]]))]


def read_table(path: Path, table: str, where: str | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All columns we use, as text, with `source_row` (header = row 1), and the unreadable rows.

    Quoted values may span lines (review comments): the row number is the record's number,
    as a spreadsheet shows it. `where` names the file to the user (a zip's member).
    """
    where = where or str(path)
    _, required, optional = TABLES[table]
    names = _header(path, where)
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(f"{where}: missing {wording.noun(len(missing), 'column')} "
                         f"{', '.join(missing)} for the Olist "
                         f"{table} table (found: {', '.join(names[:10]) or 'none'})")
    wanted = [c for c in (*required, *optional) if c in names]
    bad: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        bad.append((row.number if row.number is not None else -1, row.text))
        return "skip"

    reader_names = [f"c{i}" for i in range(len(names))]
    by_name = {n: f"c{i}" for i, n in reversed(list(enumerate(names)))}
    try:
        with _open(path) as fh:
            data = pacsv.read_csv(
                fh,
                read_options=pacsv.ReadOptions(column_names=reader_names, skip_rows=1,
                                               use_threads=False),
                parse_options=pacsv.ParseOptions(newlines_in_values=True,
                                                 invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in reader_names},
                    include_columns=[by_name[c] for c in wanted],
                    strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "unknown error"
        raise InputError(f"{where}: stopped reading: {first}. Is the file truncated or "
                         "corrupt?") from None
    frame = pd.DataFrame({c: data.column(by_name[c]).to_pandas().str.strip() for c in wanted})
    for column in optional:
        if column not in frame:
            frame[column] = ""
    rows = 2 + np.arange(len(frame), dtype=np.int64)
    numbers = np.sort(np.array([n for n, _ in bad if n >= 0], dtype=np.int64))
    frame["source_row"] = shift_past(rows, numbers) if len(numbers) else rows
    rejects = pd.DataFrame({"source_file": pd.Series([where] * len(bad), dtype="str"),
                            "source_row": pd.Series([n for n, _ in bad], dtype="int64"),
                            "raw_text": pd.Series([t for _, t in bad], dtype="str")})
    return frame, rejects


def _empty_table(table: str) -> pd.DataFrame:
    _, required, optional = TABLES[table]
    frame = pd.DataFrame({c: pd.Series([], dtype="str") for c in (*required, *optional)})
    frame["source_row"] = pd.Series([], dtype="int64")
    return frame


def read_tables(source: str | Path) -> tuple[dict[str, pd.DataFrame], dict[str, str],
                                             pd.DataFrame, list[str]]:
    """Every table as text, the file each came from, the unreadable rows, and notes: from
    the folder of Olist CSV files, or from the zip they are downloaded in (Kaggle's)."""
    source = Path(source)
    if source.is_file() and source.name.lower().endswith(".zip"):
        with tempfile.TemporaryDirectory(prefix="insiders-olist-") as unpacked:
            shown = _unpack(source, Path(unpacked))
            return _read_folder(Path(unpacked), source, shown)
    if not source.is_dir():
        raise InputError(f"{source}: for --source olist, --input must be the folder holding "
                         "the Olist CSV files (olist_orders_dataset.csv.gz, ...) or the zip "
                         "they came in")
    return _read_folder(source, source, {})


def holds_orders(location: str | Path) -> bool:
    """A folder or zip with the orders file in it (any folder of the zip)."""
    path = Path(location)
    if path.is_dir():
        return find_file(path, "orders") is not None
    names = {f"{TABLES['orders'][0]}{suffix}" for suffix in SUFFIXES}
    try:
        with zipfile.ZipFile(path) as book:
            return any(Path(m).name in names for m in book.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _unpack(archive: Path, into: Path) -> dict[str, str]:
    """The zip's Olist tables (by file name, in any folder of it) copied into `into`; returns
    each copy's path -> the name shown to the user (`archive.zip:member`)."""
    names = {f"{stem}{suffix}" for stem, _, _ in TABLES.values() for suffix in SUFFIXES}
    try:
        book = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive}: not a readable zip archive ({exc})") from None
    shown: dict[str, str] = {}
    with book:
        for member in book.namelist():
            name = Path(member).name
            if name not in names or member.startswith("__MACOSX") or member.endswith("/"):
                continue
            target = into / name
            if str(target) in shown:
                raise InputError(f"{archive}: holds {name} twice ({shown[str(target)]} and "
                                 f"{archive}:{member}); keep one export per zip")
            try:
                with book.open(member) as src, open(target, "wb") as out:
                    while block := src.read(1 << 20):
                        out.write(block)
            except (zipfile.BadZipFile, OSError, EOFError, zlib_error) as exc:
                raise InputError(f"{archive}:{member}: cannot be read ({exc})") from None
            shown[str(target)] = f"{archive}:{member}"
    return shown


def _read_folder(directory: Path, label: Path, shown: dict[str, str]
                 ) -> tuple[dict[str, pd.DataFrame], dict[str, str], pd.DataFrame, list[str]]:
    frames: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    rejects: list[pd.DataFrame] = []
    notes: list[str] = []
    missing = [t for t in TABLES if t not in OPTIONAL_TABLES and find_file(directory, t) is None]
    if missing:
        names = ", ".join(f"{TABLES[t][0]}.csv.gz" for t in missing)
        raise InputError(f"{label}: missing Olist {wording.noun(len(missing), 'file')} {names} "
                         "(.csv or .csv.gz)")
    for table in TABLES:
        path = find_file(directory, table)
        if path is None:
            frames[table] = _empty_table(table)
            notes.append(f"{TABLES[table][0]}: not found; "
                         + {"payments": "payments are not shown",
                            "products": f"every product is in '{NO_CATEGORY}'",
                            "sellers": "sellers have no city or state",
                            "translation": "categories keep their Portuguese names"}[table])
            continue
        where = shown.get(str(path), str(path))
        frames[table], bad = read_table(path, table, where)
        frames[table]["_bad"] = False
        files[table] = where
        if len(bad):
            rejects.append(bad)
            notes.append(f"{path.name}: {wording.counted(len(bad), 'row')} could not be split "
                         "into columns (set aside as malformed_row)")
    bad = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(
        {"source_file": pd.Series([], dtype="str"), "source_row": pd.Series([], dtype="int64"),
         "raw_text": pd.Series([], dtype="str")})
    return frames, files, bad, notes
