"""The quality stage and the models' lines on an engine: same files, same figures as pandas.

`stages.py` calls these when the settings name an engine other than `pandas`.
Results stream back in blocks (Arrow batches): the transactions file and the
quarantine are written block by block, so only the engine (which spills to
disk) ever holds all the lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .. import quality
from .backends import Engine, connect, parse_conf

if TYPE_CHECKING:
    from ..catalog import RunFolder


def quality_on(engine: Engine, folder: RunFolder, as_of: pd.Timestamp,
               ) -> quality.QualityReport:
    """Raw extract -> transactions + quarantine files and the row accounting."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..quarantine import QuarantineWriter
    from . import lines

    report = quality.QualityReport()
    raw = engine.raw_lines(folder.path_of("raw"))
    unknown = lines.unknown_source_reasons(engine, raw)
    if unknown:
        raise ValueError(f"unknown set-aside reason(s) from the source: {unknown}")
    dictionaries = lines.build_dictionaries(engine, raw, as_of)
    classified = engine.materialize(lines.classify(engine, raw, dictionaries))
    dups = engine.materialize(lines.duplicates(classified))
    outcome = lines.account(engine, classified, dups)
    with QuarantineWriter(folder.path_of("quarantine")) as set_aside:
        rejects = folder.read("rejects")
        if len(rejects):
            set_aside(quality.malformed_to_quarantine(rejects))
            report.add("malformed_row", len(rejects))
            report.rows_in += len(rejects)
        for frame in lines.quarantine_batches(engine, raw, classified, dups):
            set_aside(frame)
    report.rows_in += outcome.rows_in
    for reason in quality.REASONS:
        if outcome.counts.get(reason):
            report.add(reason, outcome.counts[reason])
    path = folder.path_of("transactions")
    tmp = path.with_name(path.name + ".tmp")
    writer = None
    rows = 0
    try:
        for frame in lines.kept_batches(engine, classified, dups, dictionaries,
                                        lines.source_files(engine, raw)):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            rows += len(frame)
        if writer is None:  # nothing kept: an empty file of the right layout
            from ..quarantine import TRANSACTION_COLUMNS

            pd.DataFrame(columns=TRANSACTION_COLUMNS).to_parquet(tmp, index=False)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    report.rows_kept = rows
    if outcome.several_countries:
        report.notes.append(f"{outcome.several_countries} customer(s) appear under several "
                            "countries; each is shown with the country of most of their lines")
    return report


def engine_of(run) -> Engine:
    """The run's engine, opened once per process (the CLI's stages share it; each Airflow
    task opens its own) and closed when the process ends."""
    settings = run.settings
    return run.folder.cached(f"engine:{settings.engine}", lambda: connect(
        settings.engine, temp_dir=run.folder.path / "work" / "engine-tmp",
        memory_limit=settings.engine_memory, spark_master=settings.spark_master,
        spark_conf=parse_conf(settings.spark_conf)))


def lines_of(run):
    """The run's transactions file as the engine's `Lines` (one per file version)."""
    from .aggregates import Lines

    path = run.folder.path_of("transactions")
    stat = path.stat()

    return run.folder.cached(f"lines:{stat.st_mtime_ns}:{stat.st_size}",
                             lambda: Lines.from_parquet(engine_of(run), path))
