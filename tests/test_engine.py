"""Engines (engine/): the same lines kept and the same accounting as the pandas quality.

Hand-made lines with every reason (quality's CASES, plus missing values, spellings that
clean to one customer, duplicates in different places, a line the source already set
aside and one the reader could not split) go through the quality stage on each engine
and on pandas: the transactions file must be the same frame (values, dtypes, category
order), the quarantine the same rows in the same order. On the real file every engine
runs `insiders run` end to end against the pandas reference (answers, Insiders,
accounting). Spark runs in local mode (marker `spark`; CI installs the extra).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_stage
from insiders import pipeline, stages
from insiders.config import Settings
from insiders.engine import connect
from insiders.engine.aggregates import Lines
from insiders.engine.backends import parse_conf
from insiders.errors import InputError
from insiders.models import clv, cohort_value, evaluation, forecast, hypotheses
from insiders.models import features as feats
from test_quality import AS_OF, CASES, _raw

HAS_SPARK = importlib.util.find_spec("pyspark") is not None
# fixed ports in this project's range (a second Spark on the machine must not collide)
SPARK_CONF = ("spark.driver.port=56341,spark.driver.blockManager.port=56342,"
              "spark.ui.enabled=false")
SPARK = pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.skipif(
    not HAS_SPARK, reason="pyspark is not installed: pip install '.[spark]' (CI does)")])
ENGINES = ["duckdb", SPARK]
MORE: list[tuple[dict, str | None]] = [
    ({"customer_id": "17850"}, None),  # cleans to the same customer as 17850.0
    ({"customer_id": " 17850,0 "}, None),
    ({"description": None}, None),  # a missing text value
    ({"customer_id": None}, "missing_customer_id"),
    ({"country": ""}, None),  # an empty country is 'Unknown'
    ({"invoice_date": "11/30/2011 10:00"}, None),  # month-first slash date
    ({"unit_price": "2,55"}, None),  # decimal comma
    ({"quantity": "1,200"}, None),  # thousands separator beside plain quantities: 1200
    ({"invoice_date": None}, "unparseable_date"),
    ({"stock_code": " post "}, "non_product_code"),  # the list is case- and space-blind
    ({"stock_code": "GIFT_0001_10"}, "non_product_code"),  # a prefix of the list
]


def _settings(engine: str) -> dict:
    return {"engine": engine, "spark_conf": SPARK_CONF if engine == "spark" else None}


def _quality_folder(tmp_path: Path, raw: pd.DataFrame, engine: str, **settings
                    ) -> tuple[Path, dict]:
    folder = tmp_path / engine
    (folder / "work").mkdir(parents=True)
    raw.to_parquet(folder / "work" / "raw.parquet", index=False)
    pd.DataFrame({"raw_text": pd.Series(["a,b"], dtype="str"), "source_file": ["hand.csv"],
                  "source_row": [999]}).to_parquet(folder / "work" / "rejects.parquet")
    result = run_stage(stages.quality, folder, as_of=AS_OF, **_settings(engine), **settings)
    return folder, result


def _lines_with_everything() -> pd.DataFrame:
    cases = CASES + MORE
    raw = pd.concat([_raw(cases), _raw(cases[:6], first_row=100),  # copies: duplicates
                     _raw(cases, first_row=2, source="second.csv")], ignore_index=True)
    raw["source_reason"] = ""
    raw.loc[len(raw) - 1, "source_reason"] = "order_not_delivered"
    return raw


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a 1e308 price: no overflow warning
@pytest.mark.parametrize("engine", ENGINES)
def test_quality_on_an_engine_is_the_pandas_quality(tmp_path: Path, engine: str) -> None:
    raw = _lines_with_everything()
    ref_dir, ref = _quality_folder(tmp_path, raw, "pandas")
    got_dir, got = _quality_folder(tmp_path, raw, engine)
    for key in ("rows_in", "rows_kept", "set_aside", "notes"):
        assert got[key] == ref[key], key
    # every reason of the hand-made lines shows up, so each rule was compared
    assert set(ref["set_aside"]) >= {"stray_date", "non_product_code", "after_as_of",
                                     "implausible_quantity", "non_positive_price",
                                     "implausible_price"}
    assert ref["set_aside"]["order_not_delivered"] == 1 and ref["set_aside"]["malformed_row"] == 1
    # copies: one of rows 100..105 (which repeat 2..7) and every kept line of second.csv
    kept_cases = sum(reason is None for _, reason in CASES + MORE)
    assert ref["set_aside"]["duplicate"] == 1 + kept_cases
    want = pd.read_parquet(ref_dir / "work" / "transactions.parquet")
    have = pd.read_parquet(got_dir / "work" / "transactions.parquet")
    pd.testing.assert_frame_equal(have, want)  # values, dtypes and category order
    assert have["customer_id"].astype(str).value_counts()["17850"] > 3
    q_want = pd.read_csv(ref_dir / "quarantine.csv.gz", dtype=str, keep_default_na=False)
    q_have = pd.read_csv(got_dir / "quarantine.csv.gz", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(q_have, q_want)


def test_the_non_product_guard_stops_on_the_engine_too(tmp_path: Path) -> None:
    """A catalogue coded CD/LP with CD listed as a non-product: most lines would go, so the
    engine stops with the pandas path's message instead of discarding them."""
    raw = _raw([({"stock_code": "CD", "invoice": str(600000 + i)}, None) for i in range(30)]
               + [({"stock_code": "LP", "invoice": str(700000 + i)}, None) for i in range(5)])
    messages = []
    for engine in ("pandas", "duckdb"):
        with pytest.raises(InputError) as err:
            _quality_folder(tmp_path / engine, raw, engine, non_product_codes="CD")
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "86% of the usable lines (30 of 35)" in messages[0]


def test_a_quarantine_that_misses_lines_stops_the_stage(tmp_path: Path, monkeypatch) -> None:
    """The set-aside lines written must be the ones counted: an engine that loses a block
    of its result (a bug, or a Spark result written where this process cannot read it)
    fails the stage instead of leaving a quarantine short of lines."""
    from insiders.engine import lines as ln

    whole = ln.quarantine_batches

    def short(*args, **kwargs):
        batches = list(whole(*args, **kwargs))
        yield from batches[:-1]
        yield batches[-1].slice(1)  # one line lost

    monkeypatch.setattr(ln, "quarantine_batches", short)
    with pytest.raises(RuntimeError, match="nothing is lost silently"):
        _quality_folder(tmp_path, _lines_with_everything(), "duckdb")


def test_a_set_aside_line_whose_text_is_in_no_dictionary_stops_the_quarantine(
        tmp_path: Path) -> None:
    """The quarantine's raw text comes from the dictionaries of distinct values: a line whose
    value is missing from its dictionary (an engine's bug) stops the quarantine instead of
    being written with an empty value."""
    from insiders.engine import lines as ln

    path = tmp_path / "raw.parquet"
    _lines_with_everything().to_parquet(path, index=False)
    engine = connect("duckdb", temp_dir=tmp_path / "spill")
    try:
        table = engine.raw_lines(path)
        dictionaries = ln.build_dictionaries(engine, table, AS_OF)
        complete = engine.materialize(ln.classify(engine, table, dictionaries, sources=False))
        dups = engine.materialize(ln.duplicates(complete))
        written = sum(b.num_rows for b in ln.quarantine_batches(engine, complete, dups,
                                                                dictionaries, path))
        assert written > 0
        first_aside = engine.to_pandas(complete.filter(complete.reason.notnull())
                                       .order_by("_pos").limit(1))
        lost = int(first_aside["rc_customer_id"].iloc[0])
        d = dictionaries["customer_id"]
        d.frame = d.frame[d.frame["rc"] != lost].reset_index(drop=True)  # the engine's "bug"
        broken = engine.materialize(ln.classify(engine, table, dictionaries, sources=False))
        with pytest.raises(RuntimeError, match="customer_id is in no dictionary"):
            list(ln.quarantine_batches(engine, broken, dups, dictionaries, path))
    finally:
        engine.close()


class _SparkWriting:
    """Stands in for the ibis PySpark connection: `to_parquet` writes the part files Spark
    would (or none, as when the executors write on disks this process does not see)."""

    def __init__(self, parts: dict[str, pd.DataFrame]) -> None:
        self.parts = parts

    def to_parquet(self, expr, path: Path) -> None:
        path.mkdir(parents=True)
        (path / "_SUCCESS").write_text("")
        for name, frame in self.parts.items():
            frame.to_parquet(path / name, index=False)


def test_spark_results_are_read_from_its_part_files_in_partition_order(tmp_path: Path) -> None:
    from insiders.engine.backends import Engine
    from insiders.errors import InsidersError

    parts = {f"part-0000{i}-abc-c000.snappy.parquet": pd.DataFrame({"n": [10 * i, 10 * i + 1]})
             for i in (2, 0, 1)}  # written in any order, named by partition
    engine = Engine("spark", _SparkWriting(parts), temp_dir=tmp_path / "engine-tmp")
    got = [v for batch in engine.batches("expr", rows=1) for v in batch.column("n").to_pylist()]
    assert got == [0, 1, 10, 11, 20, 21]
    assert not list((tmp_path / "engine-tmp").iterdir())  # read, then removed
    unseen = Engine("spark", _SparkWriting({}), temp_dir=tmp_path / "engine-tmp")
    with pytest.raises(InsidersError, match="must share the run folder"):
        list(unseen.batches("expr"))


@pytest.fixture(scope="module")
def demo_lines(demo_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo set's transactions file, as `insiders run` writes it."""
    folder = tmp_path_factory.mktemp("engine-demo")
    run_stage(stages.extract, folder, demo_file)
    run_stage(stages.quality, folder, demo_file, as_of="2011-12-01", engine="pandas")
    return folder / "work" / "transactions.parquet"


@pytest.mark.parametrize("engine", ENGINES)
def test_aggregates_match_pandas(demo_lines: Path, engine: str) -> None:
    """What the models read from the lines: features at several dates (the features and
    stability stages), one row per customer and day (the value models), a group's daily
    revenue (the forecast). DuckDB bit for bit; Spark's exact decimal sums differ from
    pandas' float sums in the 15th digit."""
    tx = pd.read_parquet(demo_lines)
    exact = engine == "duckdb"
    with connect(engine, spark_conf=parse_conf(SPARK_CONF)) as eng:
        lines = Lines.from_parquet(eng, demo_lines)
        assert len(lines) == len(tx)
        assert feats.date_range(lines) == feats.date_range(tx)
        for as_of in ("2011-12-01", "2011-06-15", "2010-03-31"):
            day = pd.Timestamp(as_of)
            want = feats.customer_features(tx, day, 12)
            have = feats.customer_features(lines, day, 12)
            assert len(want) > 100
            pd.testing.assert_frame_equal(have, want, check_exact=exact, rtol=1e-12, atol=1e-9)
            days = lines.activity(day)
            pd.testing.assert_frame_equal(days, clv.activity(tx[tx["invoice_date"] < day]),
                                          check_exact=exact, rtol=1e-12, atol=1e-9)
        end = pd.Timestamp("2011-12-01")
        table = feats.customer_features(tx, end, 12)
        group = set(table.nlargest(40, "monetary")["customer_id"])
        pd.testing.assert_series_equal(lines.daily_revenue(group, end),
                                       forecast.daily_revenue(tx, group, end),
                                       check_exact=exact, rtol=1e-12, atol=1e-9)


def test_features_at_many_cuts_filter_one_invoice_table_until_an_invoice_spans_days(
        demo_lines: Path, tmp_path: Path) -> None:
    """The stability curve's cuts filter one table of every purchase invoice (each invoice's
    lines on one day); an invoice with lines on two days falls back to aggregating each
    window's lines. Both give pandas' features to the last bit, at a cut between the two
    days too."""
    tx = pd.read_parquet(demo_lines)
    with connect("duckdb") as eng:
        lines = Lines.from_parquet(eng, demo_lines)
        assert lines.purchase_invoices() is not None  # the demo's invoices: one day each
        for as_of in ("2011-12-01", "2011-09-01", "2011-06-15"):
            pd.testing.assert_frame_equal(lines.customer_features(pd.Timestamp(as_of), 12),
                                          feats.customer_features(tx, pd.Timestamp(as_of), 12),
                                          check_exact=True)
    buys = tx[(tx["quantity"] > 0) & ~tx["is_cancellation"]
              & (tx["invoice_date"] >= pd.Timestamp("2011-03-01"))
              & (tx["invoice_date"] < pd.Timestamp("2011-10-01"))]
    sizes = buys.groupby("invoice", observed=True).size()
    invoice = sizes[sizes >= 3].index[0]
    rows = tx.index[tx["invoice"] == invoice]
    spanning = tx.copy()
    last = spanning.loc[rows[-1], "invoice_date"]
    next_day = (last + pd.Timedelta(days=1)).normalize() + pd.Timedelta(hours=9)
    spanning.loc[rows[-1], "invoice_date"] = next_day
    path = tmp_path / "transactions.parquet"
    spanning.to_parquet(path, index=False)
    with connect("duckdb") as eng:
        lines = Lines.from_parquet(eng, path)
        assert lines.purchase_invoices() is None
        for as_of in (next_day.normalize(), pd.Timestamp("2011-12-01"),
                      next_day.normalize() + pd.DateOffset(months=12)):
            pd.testing.assert_frame_equal(lines.customer_features(as_of, 12),
                                          feats.customer_features(spanning, as_of, 12),
                                          check_exact=True)


def test_the_category_orders_are_the_ones_pandas_reads(tmp_path: Path) -> None:
    """`categories_of` reads only the files' dictionaries, yet gives the categories (and so
    the tie-breaking and summing order) pandas gets from the whole column: blocks with the
    same dictionary, blocks whose dictionaries differ, a text column, an empty file."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from insiders.engine.aggregates import categories_of

    def block(invoices: list[str], countries: list[str]) -> pa.Table:
        return pa.Table.from_pandas(pd.DataFrame({
            "invoice": pd.Categorical(invoices),
            "country": pd.Categorical(countries, categories=["UK", "France", "EIRE"]),
            "note": pd.Series(invoices, dtype="str")}), preserve_index=False)

    first = block(["536370", "536365", "C536379"], ["France", "UK", "UK"])
    second = block(["536399", "536365", "536401"], ["EIRE", "UK", "UK"])
    path = tmp_path / "blocks.parquet"
    with pq.ParquetWriter(path, first.schema) as writer:
        writer.write_table(first)
        writer.write_table(second)  # a dictionary of its own
    read = pd.read_parquet(path)
    got = categories_of(path, ["invoice", "country", "note"])
    assert got["note"] is None
    for column in ("invoice", "country"):
        assert list(got[column]) == list(read[column].cat.categories)
    assert list(got["invoice"])[:3] == ["536365", "536370", "C536379"]  # first block first
    assert len(got["invoice"]) == 5
    empty = tmp_path / "empty.parquet"
    pq.write_table(first.schema.empty_table(), empty)
    assert list(categories_of(empty, ["invoice"])["invoice"]) == \
        list(pd.read_parquet(empty)["invoice"].cat.categories)


def test_invoices_ranked_once_sort_as_their_categorical_does() -> None:
    """`invoice_ranks`: the place of each invoice in the category order, one not in it after
    all of them, so sorting a customer's invoices by rank is sorting the categorical pandas
    builds (a missing category last, ties kept in order)."""
    from insiders.engine.aggregates import invoice_ranks

    order = ["536370", "536365", "C536379", "536401"]
    frame = pd.DataFrame({"customer_id": ["b", "a", "a", "b", "a", "a", "b"],
                          "invoice": ["536401", "999999", "536370", "536365", "C536379",
                                      "888888", "536370"],
                          "n": range(7)})
    by_rank = frame.assign(rank=invoice_ranks(frame["invoice"], order)).sort_values(
        ["customer_id", "rank"], kind="stable")
    by_category = frame.assign(invoice=pd.Categorical(frame["invoice"], categories=order)) \
        .sort_values(["customer_id", "invoice"], kind="stable")
    assert list(by_rank["n"]) == list(by_category["n"]) == [2, 4, 1, 5, 6, 3, 0]


def test_large_files_keep_one_copy_of_each_dictionary_and_read_back_the_same(
        demo_lines: Path, tmp_path: Path) -> None:
    """`BlockWriter`: the first block holds a categorical column's whole dictionary (unused
    values too), later blocks only the values they use; pandas reads back the same frame,
    categories in the same order, and a failed write leaves the earlier file in place."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from insiders.catalog import WHOLE_FIRST, BlockWriter
    from insiders.engine.aggregates import categories_of

    tx = pd.read_parquet(demo_lines)
    tx["invoice"] = tx["invoice"].cat.add_categories(["Z-unused"])  # kept through the trip
    table = pa.Table.from_pandas(tx, preserve_index=False)
    path = tmp_path / "blocks.parquet"
    with BlockWriter(path, table.schema, rows=len(tx) // 7) as writer:
        writer.write(table)
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, tx)
    assert list(back["invoice"].cat.categories) == list(tx["invoice"].cat.categories)
    meta = pq.ParquetFile(path)
    assert meta.num_row_groups >= 7
    dictionaries = [len(meta.read_row_group(i, columns=["invoice"]).column(0).chunk(0)
                        .dictionary) for i in range(meta.num_row_groups)]
    assert dictionaries[0] == len(tx["invoice"].cat.categories)
    assert max(dictionaries[1:]) < dictionaries[0] / 3
    assert meta.metadata.metadata[WHOLE_FIRST.encode()]  # the lists are in the first block
    for column, categories in categories_of(path, ["invoice", "country"]).items():
        assert list(categories) == list(tx[column].cat.categories)
    # blocks that bring values of their own: no such promise, and the lists still right
    other = tx.head(50).copy()
    other["invoice"] = pd.Categorical(["X-new"] * 50)
    mixed = tmp_path / "mixed.parquet"
    with BlockWriter(mixed, table.schema) as writer:
        writer.write(table)
        writer.write(pa.Table.from_pandas(other, preserve_index=False).cast(table.schema))
    assert WHOLE_FIRST.encode() not in pq.ParquetFile(mixed).metadata.metadata
    assert list(categories_of(mixed, ["invoice"])["invoice"]) == \
        list(pd.read_parquet(mixed)["invoice"].cat.categories)
    assert list(categories_of(mixed, ["invoice"])["invoice"])[-1] == "X-new"
    with pytest.raises(RuntimeError), BlockWriter(path, table.schema) as writer:
        writer.write(table.slice(0, 10))
        raise RuntimeError("the engine failed half way")
    pd.testing.assert_frame_equal(pd.read_parquet(path), tx)
    assert not list(tmp_path.glob("*.tmp"))


def test_write_behind_writes_in_order_and_raises_the_writers_error_in_the_caller() -> None:
    """`catalog.WriteBehind`: the blocks reach the writer in the order given, all of them
    by the end of the block, and its thread is gone then (stages fork afterwards); a
    failing writer's error comes out in the caller, and the caller's own error wins."""
    import threading
    import time as _time

    from insiders.catalog import WriteBehind

    written: list[int] = []

    def slow(item: int) -> None:
        _time.sleep(0.002)
        written.append(item)

    with WriteBehind(slow) as write:
        for i in range(50):
            write(i)
    assert written == list(range(50))
    assert not [t for t in threading.enumerate() if t.name == "insiders-write-behind"]

    def failing(item: int) -> None:
        if item == 3:
            raise OSError("disk full")
        written.append(item)

    written.clear()
    with pytest.raises(OSError, match="disk full"), WriteBehind(failing) as write:
        for i in range(10):
            write(i)
    assert written == [0, 1, 2]
    with pytest.raises(KeyError), WriteBehind(failing) as write:
        write(3)
        raise KeyError("the producer failed")
    assert not [t for t in threading.enumerate() if t.name == "insiders-write-behind"]


def test_rows_in_order_reads_the_asked_rows_across_blocks_and_refuses_past_the_end(
        demo_lines: Path, tmp_path: Path) -> None:
    """`lines.RowsInOrder`: where the kept lines' sources come from on DuckDB; increasing
    positions spanning several blocks (and blocks with none asked) give the file's rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from insiders.engine.lines import RowsInOrder

    table = pq.read_table(demo_lines, columns=["source_file", "source_row"])
    rng = np.random.default_rng(3)
    at = np.sort(rng.choice(table.num_rows, size=table.num_rows // 5, replace=False))
    block = max(table.num_rows // 11, 1)
    rows = RowsInOrder(demo_lines, ["source_file", "source_row"], block=block)
    parts = [rows.take(part) for part in np.array_split(at, 7)]
    assert pa.concat_tables(parts).combine_chunks().equals(table.take(at).combine_chunks())
    assert rows.take(np.array([], np.int64)).num_rows == 0
    with pytest.raises(ValueError, match="must increase"):
        rows.take(at[:3])  # behind what was read
    with pytest.raises(IndexError, match="past the end"):
        rows.take(np.array([table.num_rows + 5]))
    # the raw extract's text column (the input files' names) comes back as codes into its
    # few values, the same names row for row
    text = table.set_column(0, "source_file", table.column("source_file").cast(pa.string()))
    pq.write_table(text, tmp_path / "raw.parquet", row_group_size=block // 2)
    rows = RowsInOrder(tmp_path / "raw.parquet", ["source_file", "source_row"], block=block)
    got = pa.concat_tables([rows.take(part) for part in np.array_split(at, 7)])
    assert pa.types.is_dictionary(got.schema.field("source_file").type)
    assert got.column("source_file").cast(pa.string()).to_pylist() \
        == text.column("source_file").take(at).to_pylist()
    assert got.column("source_row").equals(text.column("source_row").take(at))


@pytest.mark.parametrize("engine", ENGINES)
def test_the_evaluation_reads_the_engine_tables_with_the_same_results(demo_lines: Path,
                                                                       engine: str) -> None:
    """The evaluate stage's checks (cohorts, cohort value, hypotheses) on the engine's
    per-customer and per-month tables give what they give on the lines: DuckDB to the
    last bit (its sums add each cell's lines in file order), Spark to 1e-12."""
    tx = pd.read_parquet(demo_lines)
    exact = engine == "duckdb"
    chosen = feats.customer_features(tx, pd.Timestamp("2011-12-01"), 12)
    chosen["is_insider"] = chosen["monetary"] >= chosen["monetary"].quantile(0.9)
    with connect(engine, spark_conf=parse_conf(SPARK_CONF)) as eng:
        lines = Lines.from_parquet(eng, demo_lines)
        for as_of in ("2011-12-01", "2011-06-15"):
            day = pd.Timestamp(as_of)
            want = cohort_value.cohort_sums(tx, day)
            have = lines.cohort_sums(day)
            assert len(want[1]) > 20 and want[0].sum() > 100
            pd.testing.assert_series_equal(have[0], want[0], check_names=False)
            pd.testing.assert_series_equal(have[1], want[1], check_names=False,
                                           check_exact=exact, rtol=1e-12)
            start = feats.period_start(day, 12)
            for got, ref in ((cohort_value.cohort_value(lines, day, start),
                              cohort_value.cohort_value(tx, day, start)),):
                pd.testing.assert_frame_equal(got.table, ref.table, check_exact=exact)
            pd.testing.assert_frame_equal(evaluation.cohorts(lines, day, 12),
                                          evaluation.cohorts(tx, day, 12))
            days = lines.purchase_days(day)
            ref_days = hypotheses.purchase_days(tx[tx["invoice_date"] < day])
            assert len(days) == len(ref_days) > 100
            pd.testing.assert_frame_equal(
                days.sort_values(["customer_id", "day"]).reset_index(drop=True),
                ref_days.sort_values(["customer_id", "day"]).reset_index(drop=True),
                check_dtype=False)
            got_h = hypotheses.evaluate_hypotheses(lines, chosen, day, 12)
            want_h = hypotheses.evaluate_hypotheses(tx, chosen, day, 12)
            if exact:
                assert got_h == want_h
            else:
                assert [h["verdict"] for h in got_h] == [h["verdict"] for h in want_h]
            assert any(h["figures"].get("insiders_customers", 0) > 10 for h in want_h)


def test_the_evaluate_stage_on_duckdb_never_holds_the_lines(demo_file: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    """At 50x the lines as a pandas frame were the evaluate stage's 6 GB peak: on DuckDB it
    reads neither the transactions frame nor its columns, and says what pandas says."""
    from insiders.catalog import RunFolder

    folder = tmp_path / "run"
    for stage in (stages.extract, stages.quality, stages.features, stages.segment,
                  stages.value, stages.insiders):
        run_stage(stage, folder, demo_file, as_of="2011-12-01", engine="duckdb")
    read = RunFolder.read

    def no_lines(self, name, columns=None):
        assert name != "transactions", "the evaluate stage read the lines"
        return read(self, name, columns)

    with monkeypatch.context() as patch:
        patch.setattr(RunFolder, "read", no_lines)
        patch.setattr(RunFolder, "transactions", lambda self: pytest.fail("read the lines"))
        got = run_stage(stages.evaluate, folder, demo_file, as_of="2011-12-01",
                        engine="duckdb")
    tables = {n: pd.read_parquet(folder / "work" / f"{n}.parquet")
              for n in ("cohorts", "cohort_value")}
    want = run_stage(stages.evaluate, folder, demo_file, as_of="2011-12-01", engine="pandas")
    for key in ("insiders_vs_rest", "out_of_time", "hypotheses", "cohort_value"):
        assert got[key] == want[key], key
    for name, table in tables.items():
        assert len(table) > 10
        pd.testing.assert_frame_equal(table, pd.read_parquet(folder / "work" /
                                                             f"{name}.parquet"))


def _run(real_file: Path, out: Path, engine: str) -> dict:
    settings = Settings(home=out.parent / f"{out.name}-home", **_settings(engine))
    return pipeline.run(settings, real_file, None, out)


@pytest.fixture(scope="module")
def pandas_real_run(real_file: Path, tmp_path_factory, one_thread) -> Path:
    """`insiders run` on the real file with the pandas engine: the reference."""
    out = tmp_path_factory.mktemp("real-pandas") / "pandas"
    _run(real_file, out, "pandas")
    yield out
    shutil.rmtree(out.parent, ignore_errors=True)


@pytest.mark.realdata
@pytest.mark.parametrize("engine", ENGINES)
def test_engines_agree_on_the_real_file(real_file: Path, tmp_path_factory, one_thread,
                                        pandas_real_run: Path, engine: str) -> None:
    """Accounting, the Insiders and every answer: the engine against the pandas reference."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from compare_runs import compare

    base = tmp_path_factory.mktemp(f"real-{engine}")
    reference = pandas_real_run
    _run(real_file, base / engine, engine)
    assert compare(reference, base / engine) == []
    a = pd.read_csv(reference / "insiders.csv")
    b = pd.read_csv(base / engine / "insiders.csv")
    assert len(a) > 100
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pd.read_parquet(base / engine / "work/transactions.parquet"),
                                  pd.read_parquet(reference / "work/transactions.parquet"))
    q = pd.read_csv(base / engine / "quarantine.csv.gz", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(q, pd.read_csv(reference / "quarantine.csv.gz", dtype=str,
                                                 keep_default_na=False))
    assert len(q) == 541_909 - 399_656
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.postgres
def test_a_sql_source_is_aggregated_in_its_database(fresh_pg: str, demo_file: Path,
                                                     demo_lines: Path) -> None:
    """PostgreSQL types the lines, counts the set-aside ones and computes what the models
    read; only the dictionaries of distinct values, the counts and per-customer (or
    per-day) rows cross the network, never the lines."""
    import json

    import sqlalchemy as sa
    from insiders.engine.pushdown import connect_url, summarise

    raw = pd.read_csv(demo_file, dtype=str, keep_default_na=False)
    db = sa.create_engine(fresh_pg)
    raw.to_sql("sales_lines", db, if_exists="replace", index=False, chunksize=20_000)
    db.dispose()
    want = json.loads((demo_lines.parent / "quality.json").read_text())
    tx = pd.read_parquet(demo_lines)
    engine = connect_url(fresh_pg)
    try:
        got = summarise(engine, "sales_lines", pd.Timestamp("2011-12-01"), pd.Timestamp.now())
        assert (got.rows_in, got.rows_kept) == (want["rows_in"], want["rows_kept"])
        assert got.set_aside == want["set_aside"]
        assert got.set_aside["duplicate"] > 0 and got.set_aside["missing_customer_id"] > 0
        for as_of in ("2011-12-01", "2011-06-15"):
            day = pd.Timestamp(as_of)
            pd.testing.assert_frame_equal(got.lines.customer_features(day, 12),
                                          feats.customer_features(tx, day, 12),
                                          rtol=1e-12, atol=1e-9)
            pd.testing.assert_frame_equal(got.lines.activity(day),
                                          clv.activity(tx[tx["invoice_date"] < day]),
                                          rtol=1e-12, atol=1e-9)
        end = pd.Timestamp("2011-12-01")
        group = set(tx["customer_id"].astype(str).unique()[:30])
        pd.testing.assert_series_equal(got.lines.daily_revenue(group, end),
                                       forecast.daily_revenue(tx, group, end),
                                       rtol=1e-12, atol=1e-9)
    finally:
        engine.close()


@pytest.mark.postgres
def test_insiders_run_pushed_down_is_the_run_that_pulls_the_lines(fresh_pg: str, demo_file: Path,
                                                                  tmp_path: Path) -> None:
    """`insiders run --pushdown` on a PostgreSQL table: the database counts and aggregates,
    no raw file and no lines file are written (every stage reads the lines in the database);
    the Insiders (in rank order), the accounting per reason and the value figures are those
    of the same table read line by line."""
    import json

    import sqlalchemy as sa

    raw = pd.read_csv(demo_file, dtype=str, keep_default_na=False)
    db = sa.create_engine(fresh_pg)
    raw.to_sql("sales_lines", db, if_exists="replace", index=False, chunksize=20_000)
    db.dispose()
    settings = Settings(home=tmp_path / "home", source_query="sales_lines", stability_months=2,
                        bootstrap=200)
    runs = {}
    for name, pushdown in (("pull", False), ("push", True)):
        out = tmp_path / name
        pipeline.run(settings.with_(pushdown=pushdown), fresh_pg, None, out)
        runs[name] = out
    pull, push = runs["pull"], runs["push"]
    assert (pull / "work" / "raw.parquet").exists()
    assert not (push / "work" / "raw.parquet").exists()  # the lines stayed in the database
    assert (pull / "work" / "transactions.parquet").exists()
    assert not (push / "work" / "transactions.parquet").exists()  # no kept line copied out
    q = {n: json.loads((runs[n] / "work" / "quality.json").read_text()) for n in runs}
    for key in ("rows_in", "rows_kept", "set_aside"):
        assert q["push"][key] == q["pull"][key], key
    assert q["push"]["set_aside"]["duplicate"] > 0
    assert len(pd.read_csv(push / "quarantine.csv.gz")) == 0
    assert any("stay in the database" in n for n in q["push"]["notes"])
    assert "source database" in q["push"]["set_aside_where"]
    assert q["pull"]["set_aside_where"] == "see quarantine.csv.gz"
    assert "kept in the source database" in (push / "report.html").read_text()
    members = {n: pd.read_csv(runs[n] / "insiders.csv", dtype={"customer_id": str})
               for n in runs}
    assert len(members["pull"]) >= 10
    assert members["push"]["customer_id"].tolist() == members["pull"]["customer_id"].tolist()
    pd.testing.assert_series_equal(members["push"]["monetary"], members["pull"]["monetary"])
    answers = {n: json.loads((runs[n] / "answers.json").read_text()) for n in runs}
    assert answers["push"]["data_quality"]["rows_kept"] == \
        answers["pull"]["data_quality"]["rows_kept"]
    assert answers["push"]["expected_revenue"]["total"] == pytest.approx(
        answers["pull"]["expected_revenue"]["total"], rel=1e-6)


def test_push_down_is_asked_for_and_only_for_a_database_table(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """INSIDERS_PUSHDOWN (config.py) turns it on; a file, or a `--query` SELECT (which the
    database cannot be handed as a table), is read line by line as before."""
    from insiders.engine.pushdown import wanted

    url = "postgresql+psycopg://reader@db/shop"
    monkeypatch.setenv("INSIDERS_PUSHDOWN", "1")
    on = Settings.from_env(home=tmp_path)
    assert on.pushdown and wanted(on, url)
    assert not wanted(on, str(tmp_path / "sales.csv"))
    assert not wanted(on.with_(source_query="SELECT * FROM sales_lines"), url)
    assert wanted(on.with_(source_query="sales_lines"), url)
    monkeypatch.delenv("INSIDERS_PUSHDOWN")
    assert not wanted(Settings.from_env(home=tmp_path), url)


def test_the_engine_comes_from_the_environment_and_a_wrong_name_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from insiders.errors import InsidersError

    assert Settings().engine == "auto"  # the embedded default: pandas or DuckDB by size
    monkeypatch.setenv("INSIDERS_ENGINE", "spark")
    monkeypatch.setenv("INSIDERS_SPARK_MASTER", "spark://spark-master:7077")
    settings = Settings.from_env()
    assert (settings.engine, settings.spark_master) == ("spark", "spark://spark-master:7077")
    assert Settings.from_env(engine="pandas").engine == "pandas"  # --engine wins
    monkeypatch.setenv("INSIDERS_ENGINE", "duck")
    with pytest.raises(InsidersError, match="'duck' .* is not one of auto, duckdb, spark, pandas"):
        Settings.from_env()


def test_the_auto_engine_takes_pandas_for_a_small_input_and_duckdb_beyond(
        demo_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` (the default) decides on the lines the extract read, so every stage and every
    Airflow task of a run decides the same; both choices keep the same lines."""
    from insiders.engine import steps

    kept = {}
    for limit, expected in ((10**9, "pandas"), (10, "duckdb")):
        monkeypatch.setattr(steps, "AUTO_PANDAS_LINES", limit)
        folder = tmp_path / expected
        ex = run_stage(stages.extract, folder, demo_file)
        assert ex["rows"] > 10
        q = run_stage(stages.quality, folder, as_of="2011-12-01")
        assert q["engine"] == expected
        kept[expected] = pd.read_parquet(folder / "work" / "transactions.parquet")
    pd.testing.assert_frame_equal(kept["pandas"], kept["duckdb"])
    monkeypatch.setattr(steps, "AUTO_PANDAS_LINES", 10**9)
    q = run_stage(stages.quality, tmp_path / "duckdb", as_of="2011-12-01", engine="duckdb")
    assert q["engine"] == "duckdb"  # a named engine is never overridden
