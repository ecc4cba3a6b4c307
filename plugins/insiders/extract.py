"""Extract: read transaction lines from the files and databases users bring.

Everything is read as text and in chunks, so memory stays bounded and no value
is lost to a wrong guess of its type: the quality stage decides what each value
means and sets aside what it cannot read. Files may be .csv, .csv.gz, .txt, .zip
(one or more tables inside), a spreadsheet (.xlsx, .xls, .ods) or .parquet; UTF-8
or latin-1; comma, semicolon, tab or pipe separated; with the column names of the
common copies of the Online Retail data (`InvoiceNo` or `Invoice`, `UnitPrice` or
`Price`, ...).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import glob
import gzip
import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import InputError
from .wording import counted, noun

# canonical name -> accepted spellings (compared lower-case, without spaces, _ and -)
ALIASES: dict[str, tuple[str, ...]] = {
    "invoice": ("invoiceno", "invoice", "invoicenumber", "invoiceid", "orderid", "orderno"),
    "stock_code": ("stockcode", "productcode", "sku", "productid", "itemcode", "stockno"),
    "description": ("description", "productname", "productdescription", "item"),
    "quantity": ("quantity", "qty", "units"),
    "invoice_date": ("invoicedate", "date", "orderdate", "invoicedatetime", "purchasedate"),
    "unit_price": ("unitprice", "price", "priceperunit"),
    "customer_id": ("customerid", "customer", "customerno", "customernumber", "clientid"),
    "country": ("country", "countryname"),
}
REQUIRED = ("invoice", "stock_code", "quantity", "invoice_date", "unit_price", "customer_id")
# how a missing column is named to the user: as in the Online Retail file, not internally
DISPLAY = {"invoice": "InvoiceNo", "stock_code": "StockCode", "description": "Description",
           "quantity": "Quantity", "invoice_date": "InvoiceDate", "unit_price": "UnitPrice",
           "customer_id": "CustomerID", "country": "Country"}
OPTIONAL_DEFAULTS = {"description": "", "country": "Unknown"}
RAW_COLUMNS = list(ALIASES)
# spreadsheets (read by extract_formats.read_workbook)
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
TABLE_SUFFIXES = (".csv", ".txt", ".tsv", ".gz", ".parquet", ".pq", *WORKBOOK_SUFFIXES)
PARQUET_MAGIC = b"PAR1"
DELIMITERS = (",", ";", "\t", "|")


def _norm(name: object) -> str:
    return re.sub(r"[\s_\-./]+", "", str(name or "")).lower()


def map_columns(header: Iterable[object], where: str) -> dict[str, str]:
    """Map the file's column names to canonical names, or fail naming what is missing."""
    names = [str(h) if h is not None else "" for h in header]
    lookup = {_norm(n): n for n in reversed(names) if n}
    mapping: dict[str, str] = {}
    for canonical, spellings in ALIASES.items():
        for spelling in spellings:
            if spelling in lookup:
                mapping[canonical] = lookup[spelling]
                break
    missing = [c for c in REQUIRED if c not in mapping]
    if missing:
        wanted = ", ".join(DISPLAY[c] for c in missing)
        shown = ", ".join(repr(n) for n in names[:12]) or "none"
        raise InputError(
            f"{where}: missing required {noun(len(missing), 'column')} {wanted} (found "
            f"columns: {shown}). "
            "Expected the Online Retail layout: InvoiceNo, StockCode, Description, Quantity, "
            "InvoiceDate, UnitPrice, CustomerID, Country."
        )
    return mapping


# the spellings of the Online Retail (I and II) files: read without a note
STANDARD_SPELLINGS = frozenset({"invoiceno", "invoice", "stockcode", "description", "quantity",
                                "invoicedate", "unitprice", "price", "customerid", "country"})


def column_notes(header: Iterable[object], mapping: dict[str, str], where: str) -> list[str]:
    """What a user should know about the columns: aliases read and columns left unread.

    `sku` read as StockCode or `date` as InvoiceDate is a guess about someone else's
    export; a column the product does not read may hold something that matters (a
    second quantity, a currency). Both are said, not done silently.
    """
    names = [str(h) if h is not None else "" for h in header]
    notes = []
    aliases = [f"{orig!r} as {DISPLAY[canon]}" for canon, orig in mapping.items()
               if _norm(orig) not in STANDARD_SPELLINGS]
    if aliases:
        notes.append(f"{where}: read {_columns(aliases)} by another name: {', '.join(aliases)}; "
                     "check that they mean this")
    used = set(mapping.values())
    ignored, seen = [], set()
    for name in names:
        if name in used and name not in seen:
            seen.add(name)  # the first column of a name is read; a repeat is not
            continue
        ignored.append(repr(name) if name.strip() else "an unnamed column")
    if ignored:
        notes.append(f"{where}: {_columns(ignored)} not used: {', '.join(ignored)} (the "
                     "product reads InvoiceNo, StockCode, Description, Quantity, InvoiceDate, "
                     "UnitPrice, CustomerID, Country)")
    # an optional column the file lacks: what every line gets instead, said once
    absent = {"country": "every customer's country reads 'Unknown'",
              "description": "products are shown by their stock code only"}
    for column, effect in absent.items():
        if column not in mapping:
            notes.append(f"{where}: no {DISPLAY[column]} column: {effect}")
    return notes


def _columns(names: list[str]) -> str:
    return noun(len(names), "column")


@dataclass
class ExtractStats:
    """What was read: rows per file, rows that could not be split into fields, notes."""

    rows: int = 0
    rejects: int = 0
    files: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


RAW_SCHEMA = pa.schema([(c, pa.string()) for c in RAW_COLUMNS]
                       + [("source_file", pa.string()), ("source_row", pa.int64())])


class Chunk:
    """A block of lines as text in canonical columns (RAW_SCHEMA: RAW_COLUMNS, source_file,
    source_row), plus lines that could not be parsed (source_file, source_row, raw_text).

    The lines come as a frame or, from delimited files, as the Arrow table they were read
    into: that goes to the raw extract without a trip through pandas."""

    def __init__(self, frame: pd.DataFrame | None = None, rejects: pd.DataFrame | None = None,
                 table: pa.Table | None = None) -> None:
        self._frame, self._table = frame, table
        self.rejects = rejects if rejects is not None else no_rejects()

    def __len__(self) -> int:
        return self._table.num_rows if self._table is not None else len(self._frame)

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = self._table.to_pandas()
        return self._frame

    @property
    def table(self) -> pa.Table:
        """The lines in RAW_SCHEMA."""
        if self._table is None:
            self._table = pa.Table.from_pandas(self._frame[RAW_SCHEMA.names], schema=RAW_SCHEMA,
                                               preserve_index=False)
        return self._table


# --------------------------------------------------------------------------- sources


def expand_source(source: str | Path) -> list[Path]:
    """A file, a directory of tables, or a glob -> the files, in a stable order."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(text))
        if not paths:
            raise InputError(f"{text}: no file matches this pattern")
        return paths
    path = Path(text)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.name.lower().endswith(TABLE_SUFFIXES)
                       or p.suffix.lower() == ".zip")
        if not paths:
            raise InputError(f"{path}: the folder holds no .csv, .csv.gz, .zip, .xlsx or .parquet "
                             "file")
        return paths
    if not path.exists():
        raise InputError(f"{path}: no such file")
    return [path]


def read_source(
    source: str | Path,
    chunk_rows: int = 250_000,
    stats: ExtractStats | None = None,
    query: str | None = None,
) -> Iterator[Chunk]:
    """Yield chunks from a file, folder, glob or SQLAlchemy URL."""
    stats = stats if stats is not None else ExtractStats()
    text = str(source)
    if is_sql_url(text):
        from .extract_sql import read_sql

        yield from read_sql(text, query, chunk_rows, stats)
        return
    for path in expand_source(source):
        yield from read_file(path, chunk_rows, stats)


def read_file(path: Path, chunk_rows: int, stats: ExtractStats) -> Iterator[Chunk]:
    name = path.name.lower()
    if name.endswith(".zip"):
        yield from _read_zip(path, chunk_rows, stats)
    elif name.endswith(WORKBOOK_SUFFIXES):
        from .extract_formats import read_workbook

        with open(path, "rb") as fh:
            yield from read_workbook(fh, str(path), chunk_rows, stats)
    elif name.endswith((".parquet", ".pq")) or _starts_with(path, PARQUET_MAGIC):
        from .extract_formats import read_parquet

        yield from read_parquet(path, chunk_rows, stats)
    else:
        opener = (lambda: gzip.open(path, "rb")) if name.endswith(".gz") else (
            lambda: open(path, "rb"))
        yield from _read_delimited(opener, str(path), chunk_rows, stats)


def _read_zip(path: Path, chunk_rows: int, stats: ExtractStats) -> Iterator[Chunk]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path}: not a readable zip archive ({exc})") from None
    with archive:
        members = sorted(
            m for m in archive.namelist()
            if not m.endswith("/") and not m.startswith("__MACOSX")
            and m.lower().endswith((".csv", ".txt", ".tsv", ".parquet", ".pq",
                                    *WORKBOOK_SUFFIXES))
        )
        if not members:
            raise InputError(f"{path}: the zip holds no .csv, spreadsheet (.xlsx, .xls, .ods) "
                             "or Parquet table")
        if len(members) > 1:
            stats.notes.append(f"{path.name}: read {len(members)} tables: {', '.join(members)}")
        for member in members:
            where = f"{path}:{member}"
            if member.lower().endswith((".parquet", ".pq")):
                from .extract_formats import read_parquet

                # Parquet reads its footer first: the member is read whole (zip members
                # do not seek cheaply), then in row groups like a file on disk
                with archive.open(member) as fh:
                    yield from read_parquet(io.BytesIO(fh.read()), chunk_rows, stats, where)
            elif member.lower().endswith(WORKBOOK_SUFFIXES):
                from .extract_formats import read_workbook

                with archive.open(member) as fh:
                    yield from read_workbook(io.BytesIO(fh.read()), where, chunk_rows, stats)
            else:
                yield from _read_delimited(lambda m=member: archive.open(m), where, chunk_rows,
                                           stats)


# --------------------------------------------------------------------------- delimited text


def _header_line(opener: Callable, where: str) -> tuple[str, str]:
    """First line of the file, and the delimiter it uses."""
    try:
        with opener() as fh:
            head = fh.read(64 * 1024)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{where}: cannot be read ({exc})") from None
    if not head.strip():
        raise InputError(f"{where}: the file is empty; expected a header row and transactions")
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    first = head.splitlines()[0] if head.splitlines() else head
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(f"{where}: the text is UTF-16 (Excel's \"Unicode Text\" export), which "
                         "this reader does not take; save it as \"CSV UTF-8\" or .xlsx")
    if b"\x00" in head[:4096] or first.startswith((b"PK\x03\x04", b"\x89PNG", b"%PDF")):
        raise InputError(f"{where}: this is not a text table (binary content); expected a CSV, "
                         ".csv.gz, .zip, .xlsx or .parquet file")
    line = first.decode("utf-8", errors="replace")
    counts = {d: line.count(d) for d in DELIMITERS}
    delimiter = max(counts, key=counts.get)
    if counts[delimiter] == 0:
        delimiter = ","
    return line, delimiter


def _read_delimited(
    opener: Callable, where: str, chunk_rows: int, stats: ExtractStats
) -> Iterator[Chunk]:
    line, delimiter = _header_line(opener, where)
    names = next(csv.reader([line], delimiter=delimiter), [])
    mapping = map_columns(names, where)
    stats.notes.extend(column_notes(names, mapping, where))
    bad: list[tuple[int, str]] = []
    swallowed: list[tuple[int, int]] = []  # (row, lines): an unclosed quote ran over lines

    def on_invalid(row) -> str:
        number = row.number if row.number is not None else -1
        bad.append((number, row.text))
        if "\n" in row.text or "\r" in row.text:
            swallowed.append((number, len(row.text.splitlines()) - 1))
        return "skip"

    # positional names for the reader; the canonical mapping keeps the first spelling
    reader_names = [f"c{i}" for i in range(len(names))]
    by_name = {n: f"c{i}" for i, n in reversed(list(enumerate(names)))}
    wanted = {canon: by_name[orig] for canon, orig in mapping.items()}
    read_opts = pacsv.ReadOptions(column_names=reader_names, skip_rows=1, block_size=8 << 20,
                                  use_threads=False)
    # empty lines are read (and dropped in _to_chunk) so that row numbers count them, as a
    # spreadsheet does: skipping them here would shift every later source_row
    parse_opts = pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid,
                                    newlines_in_values=True, ignore_empty_lines=False)
    convert_opts = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in reader_names},
        include_columns=sorted(set(wanted.values()), key=reader_names.index),
        strings_can_be_null=False, quoted_strings_can_be_null=False, check_utf8=False,
    )
    records = rows_done = rejects_done = pending_rows = 0  # records: rows + empty lines
    latin, empty = [0], [0]
    # rows that repeat the header (exports joined into one file): their row numbers
    header_rows = HeaderRows({canon: mapping[canon] for canon in wanted})
    # every rejected row number so far: the reader parses ahead, so a chunk's `bad` may hold
    # rows of the next chunk; numbering past all of them keeps each chunk's numbers right
    seen_bad: list[int] = []
    with opener() as raw:
        try:
            reader = pacsv.open_csv(raw, read_options=read_opts, parse_options=parse_opts,
                                    convert_options=convert_opts)
            pending: list[pa.RecordBatch] = []
            for batch in reader:
                _check_quotes(swallowed, where)
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= chunk_rows:
                    chunk = _to_chunk(pending, wanted, where, records, bad, seen_bad, latin,
                                      empty, header_rows)
                    yield chunk
                    records += pending_rows
                    rows_done += len(chunk)
                    rejects_done += len(bad)
                    pending, pending_rows, bad[:] = [], 0, []
            _check_quotes(swallowed, where)
            if pending or bad or records == 0:
                chunk = _to_chunk(pending, wanted, where, records, bad, seen_bad, latin, empty,
                                  header_rows)
                yield chunk
                records += pending_rows
                rows_done += len(chunk)
                rejects_done += len(bad)
        except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
            read = records + pending_rows + rejects_done
            near = f" after row {read + 1:,}" if read else ""
            raise InputError(f"{where}: stopped reading{near}: {brief(str(exc))}. The file looks "
                             "truncated or corrupt: download or export it again") from None
    stats.rows += rows_done
    stats.rejects += rejects_done
    stats.files[where] = rows_done + rejects_done
    if latin[0]:
        stats.notes.append(f"{where}: {latin[0]:,} values were not UTF-8 and were read as "
                           "latin-1 (cp1252)")
    note_empty(stats, where, empty[0])
    stats.notes.extend(header_rows.notes(where))


def _check_quotes(swallowed: list[tuple[int, int]], where: str) -> None:
    """An unclosed quote makes the reader take the following lines as one value: stop."""
    if swallowed:
        row, lines = swallowed[0]
        raise InputError(
            f'{where}: row {row:,} has a quote (") that is not closed on its line, so the '
            f"{counted(lines, 'line')} after it were read as part of that row; close or remove the "
            "quote, then export the file again")


def note_empty(stats: ExtractStats, where: str, count: int) -> None:
    if count:
        stats.notes.append(f"{where}: {counted(count, 'empty row')} skipped (no values: not "
                           "transactions; the rows after them keep their row numbers)")


def brief(message: str) -> str:
    return message.strip().splitlines()[0][:200] if message.strip() else "unknown error"


def text_column(column: pa.ChunkedArray, latin: list[int]) -> pa.ChunkedArray:
    """Arrow text as read; values that are not UTF-8 are decoded as cp1252 (counted)."""
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        values = []
        for value in column.cast(pa.binary()).to_pylist():
            try:
                values.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(value.decode("cp1252", errors="replace"))
                latin[0] += 1
        return pa.chunked_array([pa.array(values, pa.string())])
    return column


class HeaderRows:
    """Rows whose values are the header's names: a second export appended to the first,
    header and all. Such a row is no transaction (quality sets it aside: its date cannot be
    read); the note says where it is, so the user checks what follows it."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = {c: names[c] for c in ("invoice_date", "invoice", "quantity") if c in names}
        self.rows: list[int] = []

    def find(self, text: dict[str, pa.ChunkedArray], rows: np.ndarray) -> None:
        match = None  # one comparison per line: the other columns only where the date matches
        for canon, name in self.names.items():
            same = pc.equal(text[canon], name)  # the text as read, as the header's names are
            match = same if match is None else pc.and_(match, same)
            if not pc.any(match).as_py():
                return
        if match is not None:
            self.rows.extend(int(r) for r in rows[match.to_numpy(zero_copy_only=False)])

    def notes(self, where: str) -> list[str]:
        if not self.rows:
            return []
        shown = ", ".join(f"{r:,}" for r in self.rows[:5]) + (", ..." if len(self.rows) > 5
                                                              else "")
        verb = "repeats" if len(self.rows) == 1 else "repeat"
        return [f"{where}: {counted(len(self.rows), 'row')} {verb} the header line (row {shown}): "
                "exports joined into one file? Each is set aside (its date is not a date); "
                "check that the lines after it are not a second copy"]


def _to_chunk(
    batches: list[pa.RecordBatch], wanted: dict[str, str], where: str, offset: int,
    bad: list[tuple[int, str]], seen_bad: list[int], latin: list[int], empty: list[int],
    header_rows: HeaderRows | None = None,
) -> Chunk:
    """`offset`: records (rows and empty lines) before these batches."""
    table = pa.Table.from_batches(batches) if batches else None
    count = table.num_rows if table is not None else 0
    # row numbers as a spreadsheet shows them: the header is row 1. pyarrow numbers the rows it
    # could not split the same way, so kept rows move past the rejected rows before them.
    seen_bad.extend(n for n, _ in bad if n >= 0)
    rows = offset + 2 + np.arange(count)
    if seen_bad:
        rows = shift_past(rows, np.sort(np.asarray(seen_bad, dtype=np.int64)))
    if table is not None:
        blank = _blank_rows(table, list(wanted.values()))
        if blank is not None:
            empty[0] += int(blank.sum())
            table, rows = table.filter(pa.array(~blank)), rows[~blank]
        text = {canon: text_column(table.column(col), latin) for canon, col in wanted.items()}
        if header_rows is not None:
            header_rows.find(text, rows)
    else:
        text = {canon: pa.chunked_array([], pa.string()) for canon in wanted}
    kept = len(rows)
    for column, default in OPTIONAL_DEFAULTS.items():  # as canonical fills them
        text.setdefault(column, pa.chunked_array([pa.repeat(pa.scalar(default), kept)]))
    lines = pa.Table.from_arrays(
        [text[c].cast(pa.string()) for c in RAW_COLUMNS]
        + [pa.repeat(pa.scalar(where), kept), pa.array(rows, pa.int64())], schema=RAW_SCHEMA)
    rejects = pd.DataFrame(
        {"source_file": pd.Series([where] * len(bad), dtype="str"),
         "source_row": pd.Series([n for n, _ in bad], dtype="int64"),
         "raw_text": pd.Series([t for _, t in bad], dtype="str")}
    )
    return Chunk(table=lines, rejects=rejects)


def _blank_rows(table: pa.Table, columns: list[str]) -> np.ndarray | None:
    """Rows without a single value (empty lines, `,,,,`): None when there is none."""
    blank = None
    for column in dict.fromkeys(columns):
        is_empty = pc.equal(pc.binary_length(table.column(column)), 0)
        blank = is_empty if blank is None else pc.and_(blank, is_empty)
    if blank is None or not pc.any(blank).as_py():
        return None
    return blank.to_numpy(zero_copy_only=False)


def shift_past(rows: np.ndarray, bad_numbers: np.ndarray) -> np.ndarray:
    """Kept row i sits after every rejected row numbered at or before its final position."""
    out = rows.copy()
    for _ in range(len(bad_numbers) + 1):
        moved = rows + np.searchsorted(bad_numbers, out, side="right")
        if np.array_equal(moved, out):
            break
        out = moved
    return out


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    for column, default in OPTIONAL_DEFAULTS.items():
        if column not in frame:
            frame[column] = default
    return frame[RAW_COLUMNS]


def cell_text(value: object) -> str:
    """A spreadsheet or database cell as the text a CSV export would hold: `536365.0` as
    `536365`, a date-time as `2010-12-01 08:26:00`, nothing as "". Text and floats first:
    millions of cells are one of these."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float or isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if value is None:
        return ""
    if isinstance(value, dt.datetime):  # pandas' Timestamp too
        return value.isoformat(sep=" ")
    if hasattr(value, "isoformat"):  # a date or a time of day
        return value.isoformat()
    return str(value)


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:
        return False


def no_rejects() -> pd.DataFrame:
    return pd.DataFrame({"source_file": pd.Series([], dtype="str"),
                         "source_row": pd.Series([], dtype="int64"),
                         "raw_text": pd.Series([], dtype="str")})


# --------------------------------------------------------------------------- SQL


def is_sql_url(location: str) -> bool:
    """A SQLAlchemy database URL (`postgresql+psycopg://...`), not a file or folder."""
    return "://" in location and not location.startswith("file://")


def is_select(query: str | None) -> bool:
    """`--query` is a SELECT (or WITH ...) rather than a table name."""
    return bool(query) and query.strip().lower().startswith(("select", "with"))


def redact_url(url: str) -> str:
    """The URL without its password, for logs and documents."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
