"""Connections to the engines, behind one small interface.

Everything engine-specific lives here: how to open the backend, how to read
the raw extract with each line's position in the file (duplicates keep the
first copy, so order matters), and how results come back (Arrow batches, so
a large result never has to fit in memory at once). The expressions in
`lines.py` and `aggregates.py` are the same for every engine.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd
    import pyarrow as pa

from ..config import ENGINES

POSITION = "_pos"


@dataclass
class Engine:
    """An open Ibis backend plus what differs between engines."""

    name: str
    con: Any
    spark: Any = None  # the SparkSession, for the Spark engine
    # where large results are written for the driver to read (Spark; `batches`): the run
    # folder's, which a cluster's executors reach as they reach the raw extract
    temp_dir: Path | None = None
    _views: int = field(default=0, repr=False)

    @property
    def positions_are_rows(self) -> bool:
        """Whether `_pos` is the line's row in the raw file (DuckDB's file_row_number; Spark's
        ids only increase)."""
        return self.name == "duckdb"

    def raw_lines(self, path: Path | str) -> ir.Table:
        """The raw extract (text columns) with `_pos`, the line's position in the file."""
        if self.name == "spark":
            from pyspark.sql import functions as F  # noqa: N812 (Spark's own convention)

            frame = self.spark.read.parquet(str(path)).withColumn(
                POSITION, F.monotonically_increasing_id())
            return self._view(frame)
        table = self.con.read_parquet(str(path), file_row_number=True)
        return table.rename({POSITION: "file_row_number"})

    def read_parquet(self, path: Path | str) -> ir.Table:
        if self.name == "spark":
            return self._view(self.spark.read.parquet(str(path)))
        return self.con.read_parquet(str(path))

    def table(self, frame: pd.DataFrame) -> ir.Table:
        """A small pandas frame (a dictionary of distinct values) as a table of this engine."""
        import ibis

        if self.name == "spark":  # a real view: Spark plans see it in cached frames too
            import pyarrow as pa

            return self._view(self.spark.createDataFrame(
                pa.Table.from_pandas(frame, preserve_index=False)))
        return ibis.memtable(frame)

    def materialize(self, expr: ir.Table) -> ir.Table:
        """Compute once and keep (DuckDB: a temporary table that spills to disk; Spark: a
        cached frame): later queries read it instead of re-running the joins."""
        if self.name == "spark":
            return expr.cache()
        self._views += 1
        return self.con.create_table(f"insiders_tmp_{self._views}", obj=expr, temp=True)

    def release(self, table: ir.Table) -> None:
        """Free what `materialize` kept (its rows would otherwise stay in memory, or in
        DuckDB's spill files, for the rest of the process)."""
        if self.name == "spark":
            self.spark.catalog.clearCache()
            return
        name = table.get_name()
        if name.startswith("insiders_tmp_"):
            self.con.drop_table(name, force=True)

    def batches(self, expr: ir.Table, rows: int = 500_000) -> Iterator[pa.RecordBatch]:
        """The result in Arrow batches, in the expression's order."""
        if self.name == "spark":
            yield from self._spark_batches(expr, rows)
            return
        yield from self.con.to_pyarrow_batches(expr, chunk_size=rows)

    def _spark_batches(self, expr: ir.Table, rows: int) -> Iterator[pa.RecordBatch]:
        """Spark writes the result as Parquet files, one per partition, and they are read
        back in partition order (a sorted result's order), block by block. Its own way to
        Python (ibis' `to_pyarrow`: the whole result through pandas on the driver) held
        every row at once: at 50x the kept lines stopped the 4 GB driver."""
        import shutil

        import pyarrow.parquet as pq

        base = Path(self.temp_dir) if self.temp_dir is not None else None
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="spark-result-", dir=base))
        try:
            out = folder / "result"
            self.con.to_parquet(expr, out)
            parts = sorted(out.glob("part-*.parquet"))  # part-00000, part-00001, ...
            if not parts:  # Spark writes one even for no rows: it wrote where we cannot see
                from ..errors import InsidersError

                raise InsidersError(
                    f"Spark wrote its result under {out}, but this process sees no file "
                    "there: the executors must share the run folder (INSIDERS_HOME on "
                    "shared storage, docs/deploy.md)")
            for part in parts:
                yield from pq.ParquetFile(part).iter_batches(batch_size=rows)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def to_pandas(self, expr: ir.Expr) -> pd.DataFrame:
        return self.con.execute(expr)

    def close(self) -> None:
        if self.spark is not None:
            self.spark.stop()
        else:
            self.con.disconnect()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _view(self, frame: Any) -> ir.Table:
        self._views += 1
        name = f"insiders_{self._views}"
        frame.createOrReplaceTempView(name)
        return self.con.table(name)


def connect(name: str, temp_dir: Path | str | None = None, memory_limit: str | None = None,
            spark_master: str = "local[2]", spark_conf: dict[str, str] | None = None,
            threads: int | None = None) -> Engine:
    """Open an engine. `temp_dir` is where DuckDB spills when a step exceeds `memory_limit`
    (out of core); `spark_master` and `spark_conf` configure Spark (ports, memory)."""
    if name == "duckdb":
        import ibis

        config: dict[str, Any] = {"preserve_insertion_order": True}
        if temp_dir is not None:  # DuckDB makes it (its parent must exist) when it spills
            config["temp_directory"] = str(temp_dir)
        if memory_limit:
            config["memory_limit"] = memory_limit
        if threads:
            config["threads"] = threads
        return Engine("duckdb", ibis.duckdb.connect(**config))
    if name == "spark":
        engine = _spark(spark_master, spark_conf or {})
        engine.temp_dir = Path(temp_dir) if temp_dir is not None else None
        return engine
    raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")


def _spark(master: str, conf: dict[str, str]) -> Engine:
    try:
        import ibis
        from pyspark.sql import SparkSession
    except ImportError as exc:  # an optional extra
        from ..errors import InsidersError

        raise InsidersError("the Spark engine needs the spark extra: pip install 'insiders[spark]'"
                          f" ({exc})") from None
    settings = {
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.driver.memory": "2g",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(Path(tempfile.gettempdir()) / "insiders-spark-warehouse"),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.ansi.enabled": "false",
        **conf,
    }
    import logging

    # py4j says at INFO when each gateway connection closes, also from `__del__` at exit,
    # after logging's streams are closed ("Logging error ... I/O operation on closed file")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    builder = SparkSession.builder.master(master).appName("insiders")
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return Engine("spark", ibis.pyspark.connect(session), spark=session)


def parse_conf(text: str | None) -> dict[str, str]:
    """`spark.ui.port=4140,spark.driver.port=4141` as a dict (INSIDERS_SPARK_CONF)."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if item.strip():
            key, _, value = item.partition("=")
            out[key.strip()] = value.strip()
    return out
