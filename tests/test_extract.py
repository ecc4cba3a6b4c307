"""Extract: the good variants of the Online Retail layout all read the same lines.

Each test writes a handful of lines in one of the layouts users bring (the bad
files are tests/test_bad_input.py's corpus) and checks what extract yields as
text, and what the quality stage makes of it once typed, against values worked
out by hand from the lines below.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import default_as_of, run_stage
from insiders import extract, stages
from insiders.errors import InputError

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country"]
# Five lines as the UCI file has them: one customer written `17850.0` and `17850`, a
# cancellation, a quoted description with the delimiter in it, a French customer.
ROWS = [
    ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "6", "2010-12-01 08:26:00",
     "2.55", "17850.0", "United Kingdom"],
    ["536365", "71053", "WHITE METAL LANTERN, LARGE", "6", "2010-12-01 08:26:00", "3.39",
     "17850.0", "United Kingdom"],
    ["536366", "22633", "HAND WARMER UNION JACK", "6", "2010-12-01 08:28:00", "1.85", "17850",
     "United Kingdom"],
    ["C536379", "22423", "REGENCY CAKESTAND 3 TIER", "-1", "2010-12-01 09:41:00", "12.75",
     "14527.0", "United Kingdom"],
    ["536370", "22728", "ALARM CLOCK BAKELIKE PINK", "24", "2010-12-01 08:45:00", "3.75",
     "12583.0", "France"],
]
AS_OF = pd.Timestamp("2011-01-01")
# typed, by hand: revenue = quantity x price; ids lose their `.0`; rows count from the header
EXPECTED = pd.DataFrame({
    "invoice": ["536365", "536365", "536366", "C536379", "536370"],
    "customer_id": ["17850", "17850", "17850", "14527", "12583"],
    "quantity": [6, 6, 6, -1, 24],
    "revenue": [6 * 2.55, 6 * 3.39, 6 * 1.85, -12.75, 24 * 3.75],  # 15.30 20.34 11.10 ... 90
    "is_cancellation": [False, False, False, True, False],
    "is_return": [False, False, False, True, False],
    "source_row": [2, 3, 4, 5, 6],
})


def _write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER,
               delimiter: str = ",", encoding: str = "utf-8") -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _write_xlsx(path: Path, rows: list[list[str]]) -> Path:
    """Cells typed as Excel stores them: numbers, a datetime, ids as floats, C-invoices as text."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Online Retail"
    sheet.append(HEADER)
    for r in rows:
        invoice = int(r[0]) if r[0].isdigit() else r[0]
        sheet.append([invoice, r[1], r[2], int(r[3]), dt.datetime.fromisoformat(r[4]),
                      float(r[5]), float(r[6]), r[7]])
    book.save(path)
    return path


def _write_parquet(path: Path, rows: list[list[str]]) -> Path:
    """Columns typed as a data engineer's export has them: integers, a timestamp, float
    ids, a dictionary-encoded country."""
    frame = pd.DataFrame(rows, columns=HEADER)
    frame["Quantity"] = frame["Quantity"].astype("int64")
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    frame["UnitPrice"] = frame["UnitPrice"].astype(float)
    frame["CustomerID"] = frame["CustomerID"].astype(float)
    frame["Country"] = frame["Country"].astype("category")
    frame.to_parquet(path, index=False)
    return path


def _write_with_pandas(path: Path, rows: list[list[str]], engine: str) -> Path:
    """An .ods (LibreOffice) or old .xls workbook with typed cells, as those programs save."""
    frame = pd.DataFrame(rows, columns=HEADER)
    frame["InvoiceNo"] = [int(v) if v.isdigit() else v for v in frame["InvoiceNo"]]
    frame["Quantity"] = frame["Quantity"].astype(int)
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    frame["UnitPrice"] = frame["UnitPrice"].astype(float)
    frame["CustomerID"] = frame["CustomerID"].astype(float)
    if engine == "xlwt":  # pandas no longer writes .xls: xlwt itself, as old Excel did
        import xlwt

        book = xlwt.Workbook()
        sheet = book.add_sheet("Online Retail")
        dates = xlwt.easyxf(num_format_str="yyyy-mm-dd hh:mm:ss")
        for c, name in enumerate(HEADER):
            sheet.write(0, c, name)
        for r, values in enumerate(frame.itertuples(index=False), start=1):
            for c, value in enumerate(values):
                if isinstance(value, pd.Timestamp):
                    sheet.write(r, c, value.to_pydatetime(), dates)
                else:
                    sheet.write(r, c, value.item() if hasattr(value, "item") else value)
        book.save(str(path))
        return path
    frame.to_excel(path, sheet_name="Online Retail", index=False, engine=engine)
    return path


def _make(fmt: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        return _write_csv(folder / "online_retail.csv", ROWS)
    if fmt == "csv.gz":
        return _write_csv(folder / "online_retail.csv.gz", ROWS)
    if fmt == "zip":
        inner = _write_csv(folder / "online_retail.csv", ROWS)
        with zipfile.ZipFile(folder / "online_retail.zip", "w", zipfile.ZIP_DEFLATED) as z:
            z.write(inner, "online_retail.csv")
        inner.unlink()
        return folder / "online_retail.zip"
    if fmt == "parquet":
        return _write_parquet(folder / "online_retail.parquet", ROWS)
    if fmt == "parquet.zip":  # a Parquet export zipped for mail
        inner = _write_parquet(folder / "online_retail.parquet", ROWS)
        with zipfile.ZipFile(folder / "online_retail.zip", "w", zipfile.ZIP_DEFLATED) as z:
            z.write(inner, "export/online_retail.parquet")
        inner.unlink()
        return folder / "online_retail.zip"
    if fmt == "ods":
        return _write_with_pandas(folder / "online_retail.ods", ROWS, "odf")
    if fmt == "xls":
        return _write_with_pandas(folder / "online_retail.xls", ROWS, "xlwt")
    return _write_xlsx(folder / "online_retail.xlsx", ROWS)


def _read(source: Path, chunk_rows: int = 250_000) -> tuple[pd.DataFrame, extract.ExtractStats]:
    stats = extract.ExtractStats()
    chunks = list(extract.read_source(source, chunk_rows, stats))
    return pd.concat([c.frame for c in chunks], ignore_index=True), stats


def _stages(source: Path, run_dir: Path, as_of: pd.Timestamp = AS_OF
            ) -> tuple[dict, dict, pd.DataFrame]:
    """Extract and quality as the DAG runs them; returns both results and the transactions."""
    ex = run_stage(stages.extract, run_dir, source)
    q = run_stage(stages.quality, run_dir, as_of=as_of)
    tx = pd.read_parquet(run_dir / "work/transactions.parquet").sort_values("source_row")
    return ex, q, tx.reset_index(drop=True)


def _typed(tx: pd.DataFrame) -> pd.DataFrame:
    out = tx[EXPECTED.columns].copy()
    for c in ("invoice", "customer_id"):
        out[c] = out[c].astype("str")
    return out


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "zip", "xlsx", "parquet", "parquet.zip",
                                 "ods", "xls"])
def test_each_format_reads_the_same_lines(fmt: str, tmp_path: Path) -> None:
    source = _make(fmt, tmp_path)
    frame, stats = _read(source)
    assert list(frame.columns) == [*extract.RAW_COLUMNS, "source_file", "source_row"]
    assert stats.rows == 5 and stats.rejects == 0
    assert frame["source_row"].tolist() == [2, 3, 4, 5, 6]
    assert frame["stock_code"].tolist() == [r[1] for r in ROWS]
    assert frame["description"].tolist() == [r[2] for r in ROWS]  # the quoted comma survives
    assert frame["quantity"].tolist() == [r[3] for r in ROWS]
    assert frame["invoice_date"].tolist() == [r[4] for r in ROWS]  # xlsx datetimes as ISO text
    assert frame["country"].tolist() == [r[7] for r in ROWS]
    # a float id cell (17850.0) reads as 17850 from xlsx and Parquet; the text files keep
    # what was written
    typed_ids = ["17850", "17850", "17850", "14527", "12583"]
    ids = typed_ids if fmt in ("xlsx", "parquet", "parquet.zip", "ods", "xls") \
        else [r[6] for r in ROWS]
    assert frame["customer_id"].tolist() == ids
    where = frame["source_file"].iloc[0]
    assert where.startswith(str(source))
    if fmt == "zip":
        assert where.endswith(":online_retail.csv")
    if fmt == "parquet.zip":
        assert where.endswith(":export/online_retail.parquet")
    if fmt in ("xlsx", "ods", "xls"):
        assert where.endswith("[Online Retail]")


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "zip", "xlsx", "parquet", "parquet.zip",
                                 "ods", "xls"])
def test_each_format_gives_the_same_transactions(fmt: str, tmp_path: Path) -> None:
    ex, q, tx = _stages(_make(fmt, tmp_path / "in"), tmp_path / "run")
    assert ex["rows"] == 5 and ex["rejects"] == 0
    assert q["rows_in"] == 5 and q["rows_kept"] == 5 and q["set_aside"] == {}
    pd.testing.assert_frame_equal(_typed(tx), EXPECTED, check_dtype=False)
    assert (tx["invoice_date"] == pd.Timestamp("2010-12-01 08:26")).sum() == 2
    assert tx["unit_price"].tolist() == [2.55, 3.39, 1.85, 12.75, 3.75]


@pytest.mark.parametrize(("text", "expected"), [
    ("2010-12-01 08:26:00", "2010-12-01 08:26:00"),  # ISO, the UCI csv export
    ("12/1/2010 8:26", "2010-12-01 08:26:00"),  # US month-first, the Kaggle copy
    ("29-Nov-16", "2016-11-29 00:00:00"),  # day-month name-2-digit year
    ("12/1/2010 8:26 AM", "2010-12-01 08:26:00"),  # a US spreadsheet's 12-hour clock
    ("12/1/2010 8:26 PM", "2010-12-01 20:26:00"),
    ("Dec 1, 2010 8:26 PM", "2010-12-01 20:26:00"),  # a month's name, US order
    ("1 Dec 2010 08:26", "2010-12-01 08:26:00"),  # a month's name, day first
    ("1 December 2010", "2010-12-01 00:00:00"),
    ("01.12.2010 08:26:00", "2010-12-01 08:26:00"),  # dotted day-first with seconds
])
def test_date_variants(text: str, expected: str, tmp_path: Path) -> None:
    rows = [[*r[:4], text, *r[5:]] for r in ROWS]
    source = _write_csv(tmp_path / "dates.csv", rows)
    _, q, tx = _stages(source, tmp_path / "run", pd.Timestamp("2017-01-01"))
    assert q["rows_kept"] == 5 and q["set_aside"] == {}
    assert set(tx["invoice_date"]) == {pd.Timestamp(expected)}


def test_spreadsheet_serial_dates_are_named_with_what_to_do(tmp_path: Path) -> None:
    """`40513.35` is 1 Dec 2010 08:24 in a sheet whose date column was not formatted as dates:
    both refusals (no default as-of; with one, every row unreadable) now say so."""
    rows = [[*r[:4], f"{40513.35 + i:.5f}", *r[5:]] for i, r in enumerate(ROWS)]
    source = _write_csv(tmp_path / "serial.csv", rows)
    run_dir = tmp_path / "run"
    run_stage(stages.extract, run_dir, source)
    with pytest.raises(InputError, match=r"serial.csv: no row has a readable invoice date.*"
                                         r"look like spreadsheet serial day numbers \(e.g. "
                                         r"40513.35000\): format the column as dates"):
        default_as_of(run_dir)
    with pytest.raises(InputError, match=r"every one of the 5 rows was set aside "
                                         r"\(unparseable_date 5\).*serial day numbers"):
        run_stage(stages.quality, run_dir, as_of=AS_OF)
    # ordinary unreadable dates get no such hint
    rows = [[*r[:4], "not a date", *r[5:]] for r in ROWS]
    other = tmp_path / "other"
    run_stage(stages.extract, other, _write_csv(tmp_path / "words.csv", rows))
    with pytest.raises(InputError) as error:
        default_as_of(other)
    assert "words.csv: no row has a readable invoice date" in str(error.value)
    assert "serial day numbers" not in str(error.value)


def test_a_column_mostly_unreadable_is_said_beside_the_figures(tmp_path: Path) -> None:
    """Unreadable prices (`2.55 each`) set most lines aside and the run went on with the
    rest, said only in the per-reason counts: now a data quality note says which column."""
    rows = [[*r[:5], "2.55 each" if i < 3 else r[5], *r[6:]] for i, r in enumerate(ROWS)]
    _, q, _ = _stages(_write_csv(tmp_path / "prices.csv", rows), tmp_path / "run")
    assert q["set_aside"] == {"unparseable_price": 3} and q["rows_kept"] == 2
    assert ("60.0% of the lines (3) have a unit price that cannot be read (unparseable_price): "
            "check that column's format") in " ".join(q["notes"])
    assert not any("cannot be read" in n for n in q["notes"] if "unit price" not in n)


def test_latin1_file_reads_like_utf8(tmp_path: Path) -> None:
    """A file saved by Excel on Windows (latin-1) reads the same text as its UTF-8 twin."""
    rows = [[*r[:2], "CAFÉ CRÈME MUG £2 OFF", *r[3:]] for r in ROWS]
    utf8, u_stats = _read(_write_csv(tmp_path / "utf8.csv", rows))
    latin, l_stats = _read(_write_csv(tmp_path / "latin1.csv", rows, encoding="latin-1"))
    assert utf8["description"].tolist() == ["CAFÉ CRÈME MUG £2 OFF"] * 5
    assert latin["description"].tolist() == utf8["description"].tolist()
    assert u_stats.notes == []
    # the fallback is reported: 5 values (one description per row) were not UTF-8
    assert any("5 values were not UTF-8" in n for n in l_stats.notes)


def test_parquet_times_numbers_and_gaps_read_as_their_text(tmp_path: Path) -> None:
    """A zone-aware timestamp keeps its local clock time (as a zone in a CSV date does),
    a fractional quantity stays fractional (set aside later, not rounded here), a missing
    id is empty, and a row without any value is counted as empty, not read as a line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    when = pd.Timestamp("2011-06-01 09:30:15", tz="Europe/London")  # 08:30:15 UTC
    table = pa.table({
        "InvoiceNo": pa.array(["1", "2", None]).dictionary_encode(),
        "StockCode": ["A", "B", None],
        "Quantity": pa.array([2.0, 1.5, None]),
        "InvoiceDate": pa.array([when, when, None], pa.timestamp("ns", "Europe/London")),
        "UnitPrice": pa.array([1.25, 3.0, None]),
        "CustomerID": pa.array([12345, None, None], pa.int64()),
        "Country": ["France", "France", None],
    })
    path = tmp_path / "export"  # no suffix: known by its first bytes
    pq.write_table(table, path)
    frame, stats = _read(path)
    assert frame["invoice_date"].tolist() == ["2011-06-01 09:30:15"] * 2
    assert frame["quantity"].tolist() == ["2", "1.5"]
    assert frame["unit_price"].tolist() == ["1.25", "3"]
    assert frame["customer_id"].tolist() == ["12345", ""]
    assert frame["source_row"].tolist() == [2, 3]
    assert stats.rows == 2
    assert f"{path}: 1 empty row skipped" in " ".join(stats.notes)


def test_a_title_above_the_header_is_skipped_and_rows_keep_the_sheets_numbers(
        tmp_path: Path) -> None:
    """A report-style sheet: a title in row 1, nothing in row 2, the header in row 3."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sales"
    sheet["A1"] = "Online store export, December 2010"
    for r, values in enumerate([HEADER, *ROWS], start=3):
        for c, value in enumerate(values, start=1):
            sheet.cell(row=r, column=c, value=value)
    book.save(tmp_path / "report.xlsx")
    frame, stats = _read(tmp_path / "report.xlsx")
    assert frame["source_row"].tolist() == [4, 5, 6, 7, 8]
    assert frame["invoice"].tolist() == [r[0] for r in ROWS]
    assert (f"{tmp_path / 'report.xlsx'}[Sales]: the header is row 3; the rows above it (a "
            "title?) were not read") in stats.notes


def test_parquet_list_column_is_refused_by_name(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: [r[i] for r in ROWS] for i, name in enumerate(HEADER)})
    table = table.set_column(1, "StockCode", pa.array([[r[1]] for r in ROWS]))
    pq.write_table(table, tmp_path / "nested.parquet")
    with pytest.raises(InputError, match=r"nested.parquet: column 'StockCode' holds list"):
        _read(tmp_path / "nested.parquet")


def test_an_export_appended_with_its_header_is_named_where_it_starts(tmp_path: Path) -> None:
    """Two exports joined: the second header (row 7) is not a transaction (set aside: its
    date is not a date), the note names its row, and the lines after it, copies here, are
    set aside as duplicates."""
    path = _write_csv(tmp_path / "joined.csv", [*ROWS, HEADER, *ROWS])
    ex, q, tx = _stages(path, tmp_path / "run")
    assert (f"{path}: 1 row repeats the header line (row 7): exports joined into one "
            "file?") in " ".join(ex["notes"])
    assert q["set_aside"] == {"unparseable_date": 1, "duplicate": 5}
    assert tx["source_row"].tolist() == [2, 3, 4, 5, 6]
    aside = pd.read_csv(tmp_path / "run/quarantine.csv.gz", dtype="str")
    assert aside.loc[aside["reason"] == "unparseable_date", "source_row"].tolist() == ["7"]


def test_a_value_equal_to_one_column_name_is_no_header(tmp_path: Path) -> None:
    rows = [[*ROWS[0][:4], "InvoiceDate", *ROWS[0][5:]]]  # one unreadable date, not a header
    _, stats = _read(_write_csv(tmp_path / "odd.csv", [*ROWS, *rows]))
    assert not any("repeat the header" in n for n in stats.notes)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_file_is_named_as_such(tmp_path: Path, encoding: str) -> None:
    """Excel's "Unicode Text" export is UTF-16: it was refused as "binary content"."""
    path = tmp_path / "unicode.csv"
    path.write_bytes(("\ufeff" if encoding.endswith("be") else "").encode(encoding)
                     + "\n".join(",".join(r) for r in [HEADER, *ROWS]).encode(encoding))
    with pytest.raises(InputError, match=r"unicode.csv: the text is UTF-16 .*CSV UTF-8"):
        _read(path)


def test_customer_id_with_and_without_decimal_is_one_customer(tmp_path: Path) -> None:
    _, _, tx = _stages(_write_csv(tmp_path / "ids.csv", ROWS), tmp_path / "run")
    # rows 2-4 are 17850.0, 17850.0 and 17850: one customer with three lines
    assert tx["customer_id"].astype("str").value_counts().to_dict() == {
        "17850": 3, "14527": 1, "12583": 1}


def test_extra_unnamed_columns_are_ignored(tmp_path: Path) -> None:
    """pandas' index column in front, an empty trailing column: the layout is still found."""
    header = ["", *HEADER, "Unnamed: 9"]
    rows = [[str(i), *r, ""] for i, r in enumerate(ROWS)]
    _, q, tx = _stages(_write_csv(tmp_path / "extra.csv", rows, header), tmp_path / "run")
    assert q["rows_kept"] == 5
    pd.testing.assert_frame_equal(_typed(tx), EXPECTED, check_dtype=False)


def test_online_retail_ii_column_names(tmp_path: Path) -> None:
    header = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price",
              "Customer ID", "Country"]
    mapping = extract.map_columns(header, "ii.csv")
    assert mapping == {"invoice": "Invoice", "stock_code": "StockCode",
                       "description": "Description", "quantity": "Quantity",
                       "invoice_date": "InvoiceDate", "unit_price": "Price",
                       "customer_id": "Customer ID", "country": "Country"}
    _, q, tx = _stages(_write_csv(tmp_path / "ii.csv", ROWS, header), tmp_path / "run")
    assert q["rows_kept"] == 5
    pd.testing.assert_frame_equal(_typed(tx), EXPECTED, check_dtype=False)


def test_semicolon_delimiter_and_decimal_comma(tmp_path: Path) -> None:
    """A European export: `;` between fields, `2,55` for prices."""
    rows = [[*r[:5], r[5].replace(".", ","), *r[6:]] for r in ROWS]
    source = _write_csv(tmp_path / "semicolon.csv", rows, delimiter=";")
    frame, _ = _read(source)
    assert frame["unit_price"].tolist() == ["2,55", "3,39", "1,85", "12,75", "3,75"]
    _, q, tx = _stages(source, tmp_path / "run")
    assert q["rows_kept"] == 5
    assert tx["unit_price"].tolist() == [2.55, 3.39, 1.85, 12.75, 3.75]
    pd.testing.assert_frame_equal(_typed(tx), EXPECTED, check_dtype=False)


def test_source_rows_count_like_a_spreadsheet(tmp_path: Path) -> None:
    """Header = row 1; a quoted line break stays inside its row; numbering runs across chunks."""
    rows = [list(r) for r in ROWS]
    rows[1][2] = "WHITE METAL\nLANTERN"  # one record over two physical lines
    frame, _ = _read(_write_csv(tmp_path / "newline.csv", rows))
    assert frame["source_row"].tolist() == [2, 3, 4, 5, 6]
    assert frame["invoice"].tolist() == [r[0] for r in ROWS]
    # xlsx is read in chunks of chunk_rows lines: 2 + 2 + 1 here, still rows 2..6
    book = _write_xlsx(tmp_path / "chunks.xlsx", ROWS)
    chunks = list(extract.read_source(book, chunk_rows=2))
    assert [len(c.frame) for c in chunks] == [2, 2, 1]
    assert pd.concat([c.frame for c in chunks])["source_row"].tolist() == [2, 3, 4, 5, 6]


def test_folder_and_glob_read_every_table_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "monthly"
    folder.mkdir()
    _write_csv(folder / "2010-12.csv", ROWS[:3])
    _write_csv(folder / "2011-01.csv.gz", ROWS[3:])
    (folder / "README.md").write_text("not a table")
    for source in (folder, folder / "*.csv*"):
        frame, stats = _read(source)
        assert frame["invoice"].tolist() == [r[0] for r in ROWS]
        # each file numbers its own rows from 2
        assert frame["source_row"].tolist() == [2, 3, 4, 2, 3]
        assert sorted(Path(f).name for f in stats.files) == ["2010-12.csv", "2011-01.csv.gz"]


def test_column_notes_name_aliases_and_unread_columns() -> None:
    """Aliases are guesses about someone else's export and unread columns may matter: both are
    said. The Online Retail I and II spellings go without a note."""
    header = ["order_id", "SKU", "qty", "date", "Price", "customer", "Quantity", "Warehouse", ""]
    mapping = extract.map_columns(header, "shop.csv")
    assert mapping["quantity"] == "Quantity"  # the first spelling in ALIASES order wins
    notes = extract.column_notes(header, mapping, "shop.csv")
    assert notes[0] == ("shop.csv: read columns by another name: 'order_id' as InvoiceNo, "
                        "'SKU' as StockCode, 'date' as InvoiceDate, 'customer' as CustomerID; "
                        "check that they mean this")
    assert notes[1].startswith("shop.csv: columns not used: 'qty', 'Warehouse', an "
                               "unnamed column (the product reads InvoiceNo")
    # the optional columns it lacks are said with what every line gets instead
    assert notes[2:] == ["shop.csv: no Country column: every customer's country reads "
                         "'Unknown'", "shop.csv: no Description column: products are shown "
                         "by their stock code only"]
    standard = HEADER
    assert extract.column_notes(standard, extract.map_columns(standard, "a.csv"), "a.csv") == []


def test_xlsx_column_notes_reach_the_extract_notes(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sales"
    sheet.append(["order_id", "sku", "Description", "qty", "date", "price", "customer",
                  "Country", "channel"])
    sheet.append(["536365", "85123A", "WHITE HANGING HEART", 6, "2010-12-01 08:26:00", 2.55,
                  17850, "United Kingdom", "web"])
    path = tmp_path / "shop.xlsx"
    book.save(path)
    stats = extract.ExtractStats()
    chunks = list(extract.read_source(path, stats=stats))
    assert len(chunks[0].frame) == 1
    notes = " ".join(stats.notes)
    assert f"{path}[Sales]: read columns by another name: 'order_id' as InvoiceNo" in notes
    assert f"{path}[Sales]: column not used: 'channel'" in notes
