"""The quality stage and the models' lines on an engine: same files, same figures as pandas.

`stages.py` calls these when the settings name an engine other than `pandas`.
Results stream back in blocks (Arrow batches): the transactions file and the
quarantine are written block by block, so only the engine (which spills to
disk) ever holds all the lines.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pandas as pd

from .. import quality, quality_notes, wording
from .backends import Engine, connect, parse_conf

if TYPE_CHECKING:
    from ..catalog import RunFolder


def quality_on(engine: Engine, folder: RunFolder, as_of: pd.Timestamp,
               today: pd.Timestamp | None = None, stray_from: pd.Timestamp | None = None,
               non_products: quality.NonProductTally | None = None,
               where: str = "the input") -> quality.QualityReport:
    """Raw extract -> transactions + quarantine files and the row accounting.

    The same rules and arguments as `quality.clean_chunk`; the non-product guard
    (`NonProductTally.check`) stops before any file is written."""

    from ..catalog import BlockWriter, WriteBehind
    from ..quarantine import QuarantineWriter
    from . import lines

    report = quality.QualityReport()
    raw = engine.raw_lines(folder.path_of("raw"))
    unknown = lines.unknown_source_reasons(engine, raw)
    if unknown:
        raise ValueError(f"unknown set-aside reason(s) from the source: {unknown}")
    tally = non_products or quality.NonProductTally()
    # where the engine's positions are the extract's rows, a line's source is read from the
    # file when the kept lines are written, not carried through the engine's table
    from_file = engine.positions_are_rows
    judged = lines.judge(engine, raw, as_of, today, stray_from, tally, where,
                         sources=not from_file)
    dictionaries, classified, dups, outcome = (judged.dictionaries, judged.classified,
                                               judged.dups, judged.outcome)
    quarantined = 0
    with QuarantineWriter(folder.path_of("quarantine")) as quarantine, \
            WriteBehind(quarantine) as set_aside:
        _malformed(folder, set_aside, report)
        for frame in lines.quarantine_batches(engine, classified, dups, dictionaries,
                                              folder.path_of("raw")):
            set_aside(frame)
            quarantined += frame.num_rows
            quality_notes.count_aside(report, frame.column("source_file"), frame.column("reason"))
    counted = sum(outcome.counts.values())
    if quarantined != counted:  # a bug or an engine's lost result, never a data problem
        raise RuntimeError(f"the quarantine holds {quarantined:,} set-aside lines but "
                           f"{counted:,} were counted; nothing is lost silently")
    report.rows_in += outcome.rows_in
    for reason in quality.REASONS:
        if outcome.counts.get(reason):
            report.add(reason, outcome.counts[reason])
    rows = 0
    schema, tables = lines.kept_batches(engine, classified, dups, dictionaries,
                                        lines.source_files(engine, raw),
                                        folder.path_of("raw") if from_file else None)
    with BlockWriter(folder.path_of("transactions"), schema) as writer, \
            WriteBehind(writer.write) as write:
        for table in tables:  # no line kept: an empty file, same layout
            write(table)
            rows += table.num_rows
    report.rows_kept = rows
    engine.release(dups)
    engine.release(classified)
    if outcome.several_countries:
        report.notes.append(several_countries_note(outcome.several_countries))
    return report


def _malformed(folder: RunFolder, set_aside, report: quality.QualityReport) -> None:
    """The lines the reader could not split: first in the quarantine, counted as read."""
    rejects = folder.read("rejects")
    if len(rejects):
        set_aside(quality.malformed_to_quarantine(rejects))
        report.add("malformed_row", len(rejects))
        quality_notes.count_aside(report, rejects["source_file"].astype("str"), "malformed_row")
        report.rows_in += len(rejects)


# `auto` (the default engine) runs an input of at most this many lines in pandas, a larger
# one on DuckDB. Measured on 2 cores (bench/engines.py, `insiders run` wall, pandas against
# DuckDB): the real file (0.54M lines) 15.7 against 19.4 s, a 3x set (1.6M) 23-26 against
# 26-29 s, a 10x set (5.4M) 27.8 against 19.6 s; pandas holds ~230 MB per million lines,
# DuckDB spills to disk. Both write the same files (tests/test_engine.py).
AUTO_PANDAS_LINES = 2_500_000


def engine_name(run) -> str:
    """The engine this run's line-level work uses: the settings', with `auto` decided by
    the number of lines the extract read (so every stage, in any process, decides the
    same)."""
    name = run.settings.engine
    if name != "auto":
        return name
    lines = run.folder.stage("extract").get("rows", 0) if run.folder.has_stage("extract") \
        else AUTO_PANDAS_LINES + 1
    return "pandas" if lines <= AUTO_PANDAS_LINES else "duckdb"


def run_quality(run, where: str) -> tuple[quality.QualityReport, int]:
    """The quality stage's work on the run's engine: (row accounting, kept lines).

    Both paths read the extract's raw lines and write the transactions file and the
    quarantine with the same rules (`quality.py`), the same reasons and the same order."""
    folder = run.folder
    today = pd.Timestamp.now()
    stray_from = folder.stage("extract").get("stray_from") if folder.has_stage("extract") \
        else None
    stray_from = pd.Timestamp(stray_from) if stray_from else None
    non_products = quality.NonProductTally(
        quality.NonProductCodes.parse(run.settings.non_product_codes))
    from . import pushdown

    if pushdown.pushed_down(folder):
        report = pushdown.quality_in_database(run, non_products)
        return report, report.rows_kept
    name = engine_name(run)
    if name == "pandas":
        return _pandas_quality(folder, run.day, today, stray_from, non_products, where)
    if name == "duckdb":
        # a connection of its own, closed at the end: DuckDB keeps its buffer pool (up to
        # engine_memory) until the connection closes, and the models need that memory
        with _connect(run) as engine:
            report = quality_on(engine, folder, run.day, today, stray_from, non_products,
                                where)
    else:
        report = quality_on(engine_of(run), folder, run.day, today, stray_from,
                            non_products, where)
    return report, report.rows_kept


def _pandas_quality(folder: RunFolder, as_of: pd.Timestamp, today: pd.Timestamp,
                    stray_from: pd.Timestamp | None, non_products: quality.NonProductTally,
                    where: str) -> tuple[quality.QualityReport, int]:
    """The quality stage in pandas (engine `pandas`), block by block: the reference the
    engines are tested against. The typed lines that pass are compact (categorical text),
    so holding them until duplicates are decided keeps memory proportional to the kept
    data, not to the raw text."""
    import pyarrow.parquet as pq

    from ..quarantine import QuarantineWriter, concat_categorical, raw_rows

    report = quality.QualityReport()
    parser = quality.DateParser()
    numbers = quality.number_readers()  # `1,000` read one way for the whole source
    raw_path = folder.path_of("raw")
    blocks: list[pd.DataFrame] = []
    with QuarantineWriter(folder.path_of("quarantine")) as set_aside:
        _malformed(folder, set_aside, report)
        for batch in pq.ParquetFile(raw_path).iter_batches(batch_size=250_000):
            raw = batch.to_pandas()
            kept, aside = quality.clean_chunk(raw, as_of, parser, today, stray_from,
                                              non_products, numbers)
            report.rows_in += len(raw)
            for reason, count in aside["reason"].value_counts().items():
                report.add(str(reason), int(count))
            set_aside(aside)
            quality_notes.count_aside(report, aside["source_file"].astype("str"), aside["reason"])
            blocks.append(kept)
            del raw, aside
        non_products.check(where)
        kept = concat_categorical(blocks)
        del blocks
        # exact duplicates may sit in different blocks: decide on all hashes at once
        dup = quality.duplicate_mask(kept["row_hash"].to_numpy())
        if dup.any():
            set_aside(raw_rows(raw_path, kept.loc[dup, ["source_file", "source_row"]],
                               "duplicate"))
            report.add("duplicate", int(dup.sum()))
            quality_notes.count_aside(report, kept.loc[dup, "source_file"].astype("str"),
                                      "duplicate")
        kept = kept.loc[~dup].drop(columns="row_hash").reset_index(drop=True)
    report.rows_kept = len(kept)
    folder.write("transactions", kept)
    if len(kept) and report.balanced:
        several = quality.customers_with_several_countries(kept)
        if several:
            report.notes.append(several_countries_note(several))
    return report, len(kept)


def engine_of(run) -> Engine:
    """The run's engine, opened once per process (the CLI's stages share it; each Airflow
    task opens its own) and closed when the process ends."""
    return run.folder.cached(f"engine:{engine_name(run)}", lambda: _connect(run),
                             per_process=True)


def _connect(run, name: str | None = None) -> Engine:
    settings = run.settings
    # one spill folder per process: DuckDB instances must not share one
    temp_dir = run.folder.path / "work" / "engine-tmp" / str(os.getpid())
    temp_dir.parent.mkdir(parents=True, exist_ok=True)
    return connect(name or engine_name(run), temp_dir=temp_dir,
                   memory_limit=settings.engine_memory, spark_master=settings.spark_master,
                   spark_conf=parse_conf(settings.spark_conf))


def lines_of(run):
    """The run's kept lines as `Lines` for the models (aggregated out of core), or None on
    the pandas engine, whose models read the whole transactions frame. One per file
    version and process: the stages of `insiders run` share it.

    The aggregation runs on DuckDB over the transactions file on every engine but pandas:
    its compensated sums in file order are pandas' floats to the last bit, while Spark's
    (and PostgreSQL's) exact decimal sums differ in the 15th digit, enough to move the
    forecast's backtest (factor 1.005 -> 0.992 on the real file with Spark's sums). Spark
    does the line-level quality work; the models' inputs are one row per customer or day."""
    from . import pushdown

    if pushdown.pushed_down(run.folder):  # aggregated by the source's own database
        return pushdown.summary_of(run).lines
    if engine_name(run) == "pandas":
        return None
    from .aggregates import Lines

    path = run.folder.path_of("transactions")
    stat = path.stat()

    version = f"{stat.st_mtime_ns}:{stat.st_size}"

    def load() -> Lines:
        engine = run.folder.cached("engine:duckdb", lambda: _connect(run, "duckdb"),
                                   per_process=True)
        # what the lines gave (features per cut, the invoice table) is shared: a copy forked
        # for the stability curve starts with the features stage's
        return Lines.from_parquet(engine, path, memo=run.folder.cached(f"memo:{version}", dict))

    # per process: a forked copy running a stage beside this one opens its own connection
    return run.folder.cached(f"lines:{version}", load, per_process=True)


def several_countries_note(n: int) -> str:
    """The data-quality note for customers whose lines name more than one country."""
    verb = "appears" if n == 1 else "appear"
    return (f"{wording.counted(n, 'customer')} {verb} under several countries; each is shown "
            "with the country of most of their lines")
