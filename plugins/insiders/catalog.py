"""The run folder: one object that names every file of a run and reads and writes it.

The catalog idea of Kedro's `catalog.yml` and Dagster's I/O managers: stages ask
for a dataset by name (`folder.read("features")`), never build a path, so a
reader finds every file of a run in `DATASETS` below and a stage cannot write
where another does not expect it. Final outputs sit at the top of the folder
(what marketing and analysts open), intermediates under `work/`:

    answers.json  insiders.csv  customers.parquet  quarantine.csv.gz  report.html
    work/raw.parquet  work/rejects.parquet  work/transactions.parquet
    work/features.parquet  work/values.parquet  work/segments.parquet
    work/cohorts.parquet  work/out_of_time_members.json  work/<stage>.json
    work/source/<table>.parquet

A source adapter keeps its own tables (Olist's orders and reviews) under
`work/source/`, through `read_source_table` / `write_source_table`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where a frame is read: the DAG file parses light
    import pandas as pd
    import pyarrow as pa


@dataclass(frozen=True)
class Dataset:
    path: str
    description: str


DATASETS: dict[str, Dataset] = {
    # final outputs
    "answers": Dataset("answers.json", "the nine answers for marketing, with their figures"),
    "insiders_csv": Dataset("insiders.csv", "the Insiders, most valuable first"),
    "customers": Dataset("customers.parquet",
                         "every customer of the period: features, segment, predictions (churn "
                         "risk, expected spend, CLV), membership"),
    "quarantine": Dataset("quarantine.csv.gz", "every set-aside input line with its reason"),
    "report": Dataset("report.html", "the self-contained report"),
    "campaigns": Dataset("campaigns.csv", "this month's lists for marketing: welcome, at risk, "
                                          "win back, next in line"),
    # intermediates
    "raw": Dataset("work/raw.parquet", "every input line as text, with its file and row"),
    "raw_days": Dataset("work/raw_days.parquet", "lines per day of a SQL input aggregated in "
                        "its database (its lines stay there: no raw file)"),
    "rejects": Dataset("work/rejects.parquet", "lines that could not be split into columns"),
    "transactions": Dataset("work/transactions.parquet", "the kept lines, typed"),
    "features": Dataset("work/features.parquet", "per-customer features as of the as-of date"),
    "segments": Dataset("work/segments.parquet", "segment and persona per active customer"),
    "values": Dataset("work/values.parquet",
                      "every customer's value score (the champion value model) and the purchase "
                      "model's profile: churn risk, expected spend, CLV, probably gone"),
    "selection": Dataset("work/selection.parquet",
                         "every customer valued and selected (before the forecast calibrates "
                         "the expected spend; no segment: selecting waits for none)"),
    "expected_values": Dataset("work/expected_values.parquet",
                               "every customer's expected spend and 12-month CLV as the "
                               "forecast calibrated them, in the selection's order"),
    "cohorts": Dataset("work/cohorts.parquet", "retention by first-purchase month"),
    "cohort_value": Dataset("work/cohort_value.parquet",
                            "cumulative net revenue per customer by months since the first "
                            "purchase, per cohort"),
    "out_of_time_members": Dataset("work/out_of_time_members.json",
                                   "the group chosen one horizon earlier (forecast backtest)"),
}
STAGE_RESULT = "work/{name}.json"  # each stage's figures (what it logged and returned)
SOURCE_TABLE = "work/source/{name}.parquet"  # tables a source adapter keeps for later stages
MARKER = ".insiders-run"  # written first: marks a folder the product owns
# what a run writes at the top of its folder (everything else there is the user's)
OUTPUTS = tuple(sorted({d.path.split("/")[0] for d in DATASETS.values()}))


class RunFolder:
    """Every file of one run. Reads are plain; writes are atomic (a reader never sees half)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._transactions: tuple[tuple, pd.DataFrame] | None = None
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ------------------------------------------------------------------ paths

    def path_of(self, name: str) -> Path:
        """The file of a named dataset (its folder is created)."""
        return self._file(DATASETS[name].path)

    def _file(self, relative: str) -> Path:
        path = self.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def exists(self, name: str) -> bool:
        return (self.path / DATASETS[name].path).exists()

    # ------------------------------------------------------------------ frames

    def read(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self.path / DATASETS[name].path, columns=columns)

    def write(self, name: str, frame: pd.DataFrame) -> Path:
        return _write_parquet(self.path_of(name), frame)

    def transactions(self) -> pd.DataFrame:
        """The kept lines, text as categoricals (groupbys on ids are several times faster).

        Stages of one process (the CLI) share this folder object and so one copy: they
        only read it. A rewritten file (another run) is read again.
        """
        import pandas as pd

        path = self.path / DATASETS["transactions"].path
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        if self._transactions is not None and self._transactions[0] == key:
            return self._transactions[1]
        frame = pd.read_parquet(path)
        for column in ("invoice", "stock_code", "description", "customer_id", "country",
                       "source_file"):
            if column in frame and not isinstance(frame[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].astype("category")
        self._transactions = (key, frame)
        return frame

    def cached(self, key: str, load: Callable[[], Any], per_process: bool = False) -> Any:
        """What `load` returns, computed once per folder object (stages of one process share
        it: the stability curve asks for a source table at six cuts). Reset by `start`.

        A stage run side by side in a forked copy of the process (`pipeline.run_stages`)
        finds what was cached before the fork; `per_process` keeps one per process instead,
        for what a copy must not share (an engine connection, the tables read through it)."""
        if per_process:
            key = f"{key}@pid-{os.getpid()}"
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    # ------------------------------------------------------------------ documents

    def read_json(self, name: str) -> dict:
        return json.loads((self.path / DATASETS[name].path).read_text())

    def write_json(self, name: str, data: dict) -> Path:
        return _write_json(self.path_of(name), data)

    def stage(self, name: str) -> dict:
        """What a stage reported (its `work/<stage>.json`)."""
        return json.loads((self.path / STAGE_RESULT.format(name=name)).read_text())

    def has_stage(self, name: str) -> bool:
        return (self.path / STAGE_RESULT.format(name=name)).exists()

    def save_stage(self, name: str, result: dict) -> Path:
        return _write_json(self._file(STAGE_RESULT.format(name=name)), result)

    def stages(self, names: tuple[str, ...]) -> dict[str, dict]:
        return {n: self.stage(n) for n in names}

    # ------------------------------------------------------------------ source tables

    def source_table_path(self, name: str) -> Path:
        return self._file(SOURCE_TABLE.format(name=name))

    def read_source_table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self.path / SOURCE_TABLE.format(name=name), columns=columns)

    def write_source_table(self, name: str, frame: pd.DataFrame) -> Path:
        return _write_parquet(self.source_table_path(name), frame)

    # ------------------------------------------------------------------ lifecycle

    def start(self, description: dict | None = None) -> None:
        """Begin a run here: remove what an earlier run left, never what the product did not
        write.

        A folder is a run folder when it holds the marker a run leaves (`.insiders-run`), or
        only the files a run writes with its `work/extract.json` (a run from before the
        marker). Then the earlier run's outputs are removed (an Olist run's source tables
        would otherwise outlive it) and files the user put there stay. Any other non-empty
        folder (a home directory!) is refused.
        """
        from .errors import InputError

        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path} is a file, not a folder; choose a folder for the "
                             "run's outputs")
        if self.path.is_dir():
            entries = sorted(p.name for p in self.path.iterdir())
            marked = MARKER in entries
            foreign = [e for e in entries if e not in OUTPUTS and e != MARKER]
            # an unmarked folder is a run's only with a run's own record in it, not the names
            legacy = not foreign and (self.path / STAGE_RESULT.format(name="extract")).is_file()
            if entries and not marked and not legacy:
                shown = ", ".join((foreign or entries)[:3]) + (
                    ", ..." if len(foreign or entries) > 3 else "")
                raise InputError(f"{self.path.resolve()} is not empty and is not an Insiders "
                                 f"run folder (it holds {shown}); choose a new or empty "
                                 "folder, e.g. --out insiders-out")
            for name in OUTPUTS:
                path = self.path / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        self._transactions = None
        self._cache.clear()
        (self.path / MARKER).write_text(
            "written by Insiders: the files listed below are replaced by the next run into "
            "this folder\n" + "\n".join(OUTPUTS) + "\n"
            + "".join(f"{k}: {v}\n" for k, v in (description or {}).items()))


# --------------------------------------------------------------------------- JSON


def statistics_of(schema: pa.Schema) -> list[str]:
    """The columns worth min/max statistics in a Parquet file: numbers, dates and flags,
    which the engines' date filters use to skip row groups. Text columns' statistics cost a
    third of the time of writing millions of lines, and no query filters on their range."""
    import pyarrow as pa

    return [f.name for f in schema
            if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                    or pa.types.is_dictionary(f.type))]


BLOCK_ROWS = 500_000  # lines per row group of the large files
# file metadata: these columns' whole dictionaries are in the first block (BlockWriter)
WHOLE_FIRST = "insiders.whole_dictionaries_first"


class BlockWriter:
    """A Parquet file written block by block (row groups), in place once closed.

    A categorical column keeps its whole dictionary in the first block only; every later
    block carries just the values it uses. Readers unify the blocks' dictionaries in block
    order, so pandas (and `engine.aggregates.categories_of`) still read the first block's
    categories, in their order, while the file holds one copy of a dictionary of a million
    invoices instead of one per block (50x set: 289 of the transactions file's 563 MB were
    such copies, read again by every query on the invoice column)."""

    def __init__(self, path: Path, schema: pa.Schema, rows: int = BLOCK_ROWS) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path, self.schema, self.rows, self.blocks = path, schema, rows, 0
        self._tmp = path.with_name(path.name + ".tmp")
        self._writer = pq.ParquetWriter(self._tmp, schema,
                                        write_statistics=statistics_of(schema))
        self._coded = [f.name for f in schema if pa.types.is_dictionary(f.type)]
        self._first: dict[str, pa.Array] = {}
        self._whole = True  # every block's values drawn from the first block's dictionaries

    def write(self, table: pa.Table) -> None:
        for start in range(0, table.num_rows, self.rows):
            block = table.slice(start, self.rows)
            for name in self._coded:
                for chunk in block.column(name).chunks:
                    first = self._first.setdefault(name, chunk.dictionary)
                    self._whole = self._whole and chunk.dictionary.equals(first)
            if self.blocks:
                block = _compact_dictionaries(block)
            self._writer.write_table(block, row_group_size=self.rows)
            self.blocks += 1

    def close(self) -> Path:
        """Finish the file (an empty one, same layout, when no row came) and put it in place."""
        if self._whole and self._coded:  # categories_of then reads the first block only
            self._writer.add_key_value_metadata({WHOLE_FIRST: ",".join(self._coded)})
        self._writer.close()
        self._tmp.replace(self.path)
        return self.path

    def __enter__(self) -> BlockWriter:
        return self

    def __exit__(self, kind, *exc: object) -> None:
        if kind is None:
            self.close()
        else:  # a failed write leaves the earlier file as it was
            self._writer.close()
            self._tmp.unlink(missing_ok=True)


class WriteBehind:
    """`write(item)` for each item on a thread of its own, in order, while the caller
    produces the next one: encoding and compressing a block (Parquet, gzip) and producing
    the next (reading a CSV, an engine's query) both run outside Python's lock, so on two
    cores they overlap. At most `depth` items wait. The first error of `write` is raised
    in the caller (at its next call, or when the block ends); the thread is gone when the
    `with` block ends, so no stage forks with it alive (pipeline.run_stages)."""

    _DONE = object()

    def __init__(self, write: Callable[[Any], None], depth: int = 2) -> None:
        import queue
        import threading

        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="insiders-write-behind",
                                        daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if self._error is None:  # after an error, items are taken and dropped
                try:
                    self._write(item)
                except BaseException as exc:  # noqa: BLE001 (raised in the caller)
                    self._error = exc

    def __call__(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        """Wait for every item to be written; raise the writer's error if it had one."""
        if self._thread.is_alive():
            self._queue.put(self._DONE)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, kind, *exc: object) -> None:
        if kind is None:
            self.close()
            return
        try:  # the caller's own error wins; the thread still ends first
            self.close()
        except BaseException:  # noqa: BLE001
            pass


def _compact_dictionaries(block: pa.Table) -> pa.Table:
    """The block with each dictionary column encoded on the values it uses."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for field, column in zip(block.schema, block.columns, strict=True):
        if pa.types.is_dictionary(field.type):
            values = column.cast(field.type.value_type).combine_chunks()
            encoded = pc.dictionary_encode(values)
            column = pa.DictionaryArray.from_arrays(
                encoded.indices.cast(field.type.index_type), encoded.dictionary)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=block.schema)


def _write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)  # what to_parquet writes
    with BlockWriter(path, table.schema) as writer:
        writer.write(table)
    return path


def _write_json(path: Path, data: dict) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean_floats(data), indent=2, default=json_default,
                              allow_nan=False))
    tmp.replace(path)
    return path


def json_default(value: object) -> object:
    """Numpy scalars, timestamps and sets as JSON (dates without a time as YYYY-MM-DD)."""
    import numpy as np
    import pandas as pd

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else value.isoformat()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clean_floats(data: Any) -> Any:
    """NaN and infinities become None so JSON stays strict (documents and files alike)."""
    import numpy as np

    if isinstance(data, dict):
        return {k: clean_floats(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [clean_floats(v) for v in data]
    if isinstance(data, (float, np.floating)):
        return None if not math.isfinite(float(data)) else float(data)
    if isinstance(data, np.integer):
        return int(data)
    if isinstance(data, np.bool_):
        return bool(data)
    return data


def csv_floats(frame: pd.DataFrame, digits: int) -> pd.DataFrame:
    """Float columns rounded to what the CSV shows, without negative zeros: a sum that is
    -1e-17 in one engine's order and 0 in another's wrote "-0.00" beside "0.00"."""
    out = frame.copy()
    for column in out.select_dtypes("float").columns:
        out[column] = out[column].round(digits) + 0.0  # -0.0 + 0.0 == 0.0
    return out
