"""Reading transaction lines from the retailer's own SQL database (a table or a SELECT), in
chunks, into the same text chunks as a file (`extract.Chunk`), so one set of quality rules
judges every input. Kept apart from extract.py because only a SQL input needs SQLAlchemy."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from . import extract as ex
from .errors import InputError


def read_sql(url: str, query: str | None, chunk_rows: int, stats: ex.ExtractStats
             ) -> Iterator[ex.Chunk]:
    """Read a table or a SELECT from a SQL database in chunks (the retailer's own store)."""
    import sqlalchemy as sa

    where = f"{ex.redact_url(url)} ({query or 'transactions'})"
    try:
        engine = sa.create_engine(url)
    except Exception as exc:  # bad URL or missing driver
        raise InputError(f"{ex.redact_url(url)}: cannot use this database URL "
                         f"({ex.brief(str(exc))})") from None
    name = query or "transactions"
    select = ex.is_select(name)
    try:
        with engine.connect() as conn:
            if select:
                statement = sa.text(name)
            else:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                statement = sa.select(table)
            result = conn.execution_options(stream_results=True).execute(statement)
            mapping = ex.map_columns(result.keys(), where)
            keys = list(result.keys())
            stats.notes.extend(ex.column_notes(keys, mapping, where))
            done = 0
            while True:
                rows = result.fetchmany(chunk_rows)
                if not rows and done:
                    break
                frame = pd.DataFrame(rows, columns=keys)
                data = {canon: frame[orig].map(ex.cell_text).astype("str") if len(frame)
                        else pd.Series([], dtype="str") for canon, orig in mapping.items()}
                out = ex.canonical(pd.DataFrame(data))
                out["source_file"] = where
                out["source_row"] = done + 1 + np.arange(len(out))
                done += len(out)
                stats.rows += len(out)
                yield ex.Chunk(frame=out, rejects=ex.no_rejects())
                if not rows:
                    break
            stats.files[where] = done
    except InputError:
        raise
    except sa.exc.SQLAlchemyError as exc:
        raise InputError(f"{where}: the database query failed ({ex.brief(str(exc))})") from None
    finally:
        engine.dispose()
