"""The binary table formats extract reads: workbooks (.xlsx, .xls, .ods, ...: every sheet
with the transaction columns) and Parquet files (a data engineer's export). Each becomes the
same text chunks as a delimited file (`extract.Chunk`), so one set of quality rules
judges every format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError
from .extract import (
    OPTIONAL_DEFAULTS,
    RAW_COLUMNS,
    RAW_SCHEMA,
    Chunk,
    ExtractStats,
    brief,
    canonical,
    cell_text,
    column_notes,
    map_columns,
    no_rejects,
    note_empty,
    text_column,
)

# --------------------------------------------------------------------------- workbooks

# a title or notes above the header: the header is looked for in this many first rows
HEADER_SEARCH_ROWS = 10


def read_workbook(fh, where: str, chunk_rows: int, stats: ExtractStats) -> Iterator[Chunk]:
    """Every sheet of a workbook with the transaction columns, in blocks of rows.

    python-calamine (compiled) reads the UCI workbook's 541,909 rows in ~5 s where
    openpyxl took ~50 s. Rows are numbered as the spreadsheet shows them, whatever the
    sheet's first used row; a title above the header is skipped and said."""
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_filelike(fh)
    except Exception as exc:  # the reader raises its own types for a broken workbook
        raise InputError(f"{where}: not a readable workbook ({brief(str(exc))})") from None
    used, skipped = 0, []
    try:
        for title in book.sheet_names:
            sheet = book.get_sheet_by_name(title)
            sheet_where = f"{where}[{title}]"
            found = _find_header(sheet, sheet_where)
            if found is None:
                skipped.append(title)
                continue
            rows, header_row, names, mapping = found
            used += 1
            stats.notes.extend(column_notes(names, mapping, sheet_where))
            if header_row > 1 + (sheet.start[0] if sheet.start else 0):
                stats.notes.append(f"{sheet_where}: the header is row {header_row}; the rows "
                                   "above it (a title?) were not read")
            index = {canon: names.index(orig) for canon, orig in mapping.items()}
            buffer: list[list] = []
            done = kept = 0
            empty = [0]
            for row in rows:
                buffer.append(row)
                if len(buffer) >= chunk_rows:
                    chunk = _xlsx_chunk(buffer, index, sheet_where, header_row + 1 + done,
                                        empty)
                    yield chunk
                    done += len(buffer)
                    kept += len(chunk)
                    buffer = []
            if buffer or done == 0:
                chunk = _xlsx_chunk(buffer, index, sheet_where, header_row + 1 + done, empty)
                yield chunk
                done += len(buffer)
                kept += len(chunk)
            stats.rows += kept
            stats.files[sheet_where] = kept
            note_empty(stats, sheet_where, empty[0])
    finally:
        book.close()
    if not used:
        raise InputError(f"{where}: no sheet has the transaction columns (sheets: "
                         f"{', '.join(skipped)}); expected InvoiceNo, StockCode, Quantity, "
                         "InvoiceDate, UnitPrice, CustomerID")
    if skipped:
        sheets = "sheet" if len(skipped) == 1 else "sheets"
        stats.notes.append(f"{where}: ignored {sheets} without transactions: {', '.join(skipped)}")


def _find_header(sheet, where: str):
    """(the rows after the header, its row number, the column names, their mapping), or
    None for a sheet without the transaction columns in its first rows."""
    rows = iter(sheet.iter_rows())
    first = 1 + (sheet.start[0] if sheet.start else 0)  # the first used row, 1-based
    for k, row in enumerate(rows):
        if k >= HEADER_SEARCH_ROWS:
            return None
        names = [cell_text(h) for h in row]
        try:
            return rows, first + k, names, map_columns(names, where)
        except InputError:
            continue
    return None


def _xlsx_chunk(rows: list[list], index: dict[str, int], where: str, first_row: int,
                empty: list[int]) -> Chunk:
    width = max(index.values()) + 1
    if any(len(r) < width for r in rows):  # a reader may stop a row at its last value
        rows = [[*r, *[""] * (width - len(r))] for r in rows]
    # one pass per column, not per cell; every row has at least `width` cells now
    columns = list(zip(*rows, strict=False)) if rows else [()] * width
    data = {canon: pd.Series(list(map(cell_text, columns[i])), dtype="str")
            for canon, i in index.items()}
    frame = canonical(pd.DataFrame(data))
    frame["source_file"] = where
    frame["source_row"] = first_row + np.arange(len(frame))
    # rows without a value (formatted but empty, or a gap) are not transactions
    blank = np.logical_and.reduce([data[c].to_numpy() == "" for c in index]) if len(frame) \
        else np.zeros(0, dtype=bool)
    if blank.any():
        empty[0] += int(blank.sum())
        frame = frame.loc[~blank].reset_index(drop=True)
    return Chunk(frame=frame, rejects=no_rejects())


# --------------------------------------------------------------------------- Parquet


def read_parquet(path: Path | BinaryIO, chunk_rows: int, stats: ExtractStats,
                 where: str | None = None) -> Iterator[Chunk]:
    """A Parquet file (a data engineer's export): its typed columns become the text the
    quality stage reads from any file, so the same rules judge them. Rows are numbered as
    in the other formats (a spreadsheet's numbers, the column names being row 1): the
    quarantine's `source_row` means one thing whatever the file. `path` may be an open
    binary file (a zip's member), then `where` names it."""
    import pyarrow.parquet as pq

    where = where or str(path)
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{where}: not a readable Parquet file ({brief(str(exc))})") from None
    names = file.schema_arrow.names
    mapping = map_columns(names, where)
    stats.notes.extend(column_notes(names, mapping, where))
    columns = sorted(set(mapping.values()), key=names.index)
    for orig in columns:
        _check_parquet_type(file.schema_arrow.field(orig), where)
    done = kept = 0
    empty = [0]
    try:
        for batch in file.iter_batches(batch_size=chunk_rows, columns=columns):
            text = {canon: parquet_text(batch.column(orig)) for canon, orig in mapping.items()}
            rows = done + 2 + np.arange(batch.num_rows)
            done += batch.num_rows
            blank = None
            for values in text.values():  # rows without a single value are not transactions
                is_empty = pc.equal(pc.binary_length(values), 0)
                blank = is_empty if blank is None else pc.and_(blank, is_empty)
            if blank is not None and pc.any(blank).as_py():
                keep = pc.invert(blank)
                empty[0] += batch.num_rows - int(pc.sum(keep.cast(pa.int64())).as_py() or 0)
                text = {c: v.filter(keep) for c, v in text.items()}
                rows = rows[keep.to_numpy(zero_copy_only=False)]
            count = len(rows)
            for column, default in OPTIONAL_DEFAULTS.items():
                text.setdefault(column, pa.repeat(pa.scalar(default), count))
            kept += count
            yield Chunk(table=pa.Table.from_arrays(
                [text[c] for c in RAW_COLUMNS]
                + [pa.repeat(pa.scalar(where), count), pa.array(rows, pa.int64())],
                schema=RAW_SCHEMA))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{where}: stopped reading after row {done:,}: {brief(str(exc))}. "
                         "The file looks truncated or corrupt: export it again") from None
    if not done:
        yield Chunk(table=RAW_SCHEMA.empty_table())
    stats.rows += kept
    stats.files[where] = kept
    note_empty(stats, where, empty[0])


def _check_parquet_type(field: pa.Field, where: str) -> None:
    kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
    if pa.types.is_nested(kind):
        raise InputError(f"{where}: column {field.name!r} holds {kind} values, not one value "
                         "per line; export it as text, a number or a date")


def parquet_text(column: pa.Array) -> pa.Array:
    """A typed column as the text a CSV export of it would hold: numbers in their shortest
    form (17850.0 -> "17850"), times to the second as written (a zone's local time), and
    nothing for a missing value."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    kind = column.type
    if pa.types.is_timestamp(kind):
        column = pc.strftime(column.cast(pa.timestamp("s", kind.tz), safe=False),
                             format="%Y-%m-%d %H:%M:%S")
    elif pa.types.is_date(kind):
        column = pc.strftime(column, format="%Y-%m-%d")
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        column = text_column(pa.chunked_array([column]), [0]).combine_chunks()
    column = column.cast(pa.string())
    return pc.fill_null(column, "")
