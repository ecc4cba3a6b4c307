"""Online Retail layout: one invoice line per row, from files or a SQL table.

The layout of the UCI "Online Retail" data set (InvoiceNo, StockCode,
Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country) and the
forms users bring it in (see `extract`): CSV, gzip, zip, xlsx, folders, globs
and SQL queries. It knows nothing beyond transactions, so every optional part of
the protocol keeps its default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import wording
from .base import Source

if TYPE_CHECKING:
    from ..catalog import RunFolder
    from ..config import Settings


class OnlineRetail(Source):
    kind = "online_retail"
    # the UCI data set is a UK retailer's, in pounds; another retailer using the layout sets
    # its own with INSIDERS_CURRENCY (Settings.currency)
    currency = "GBP"

    @classmethod
    def recognises(cls, location: str) -> bool:
        """A file, folder or glob whose first lines read as invoice lines (the columns map);
        never a database URL (asking would mean connecting to it)."""
        from .. import extract
        from ..errors import InputError

        if extract.is_sql_url(location):
            return False
        try:
            next(extract.read_source(location, chunk_rows=100), None)
        except (InputError, OSError, ValueError):
            return False
        return True

    def extract(self, location: str, folder: RunFolder, settings: Settings,
                progress: Callable[[int], None] | None = None) -> dict:
        """Read the input in chunks into `raw` (text) and `rejects` (unsplittable lines)."""
        import pandas as pd

        from .. import extract
        from ..catalog import BlockWriter, WriteBehind
        from ..engine import pushdown
        from ..errors import InputError
        from ..log import info

        if pushdown.wanted(settings, location):  # the lines stay in the retailer's database
            return pushdown.extract_in_database(location, folder, settings)

        stats = extract.ExtractStats()
        raw_path, rejects_path = folder.path_of("raw"), folder.path_of("rejects")
        rejects = []
        seen = 0
        # no line read: an empty file with the same columns
        with BlockWriter(raw_path, extract.RAW_SCHEMA) as writer, \
                WriteBehind(writer.write) as write:  # the next chunk is read meanwhile
            for chunk in extract.read_source(location, settings.chunk_rows, stats,
                                             settings.source_query):
                write(chunk.table)
                if len(chunk.rejects):
                    rejects.append(chunk.rejects)
                seen += len(chunk) + len(chunk.rejects)
                if progress:
                    progress(len(chunk) + len(chunk.rejects))
                info("extract: %s rows read so far", f"{seen:,}")
        frame = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(
            {"source_file": pd.Series([], dtype="str"),
             "source_row": pd.Series([], dtype="int64"),
             "raw_text": pd.Series([], dtype="str")})
        frame.to_parquet(rejects_path, index=False)
        total = stats.rows + stats.rejects
        if total == 0:
            raise InputError(f"{location}: the file has a header but no transaction rows")
        info("extract: %s rows from %s; %s could not be split into columns",
             f"{total:,}", wording.counted(len(stats.files), "file"), f"{stats.rejects:,}")
        for note in stats.notes:
            info("extract: %s", note)
        return {"rows": total, "rows_parsed": stats.rows, "rejects": stats.rejects,
                "files": stats.files, "notes": stats.notes,
                "source": extract.redact_url(str(location))}
