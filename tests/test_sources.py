"""The source is configured, not hard-coded: a file, a glob, or a table or query in a SQL database
(the retailer's transactions usually live in one), read in chunks."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
from insiders import extract, pipeline, stages
from insiders.config import Settings
from insiders.context import Run
from insiders.errors import InputError


@pytest.fixture(scope="module")
def sales_db(demo_file, tmp_path_factory) -> str:
    """The demo lines as the retailer's own table, with its own column names and types."""
    frame = pd.read_csv(demo_file, dtype=str, keep_default_na=False)
    typed = pd.DataFrame({
        "invoice": frame["InvoiceNo"],
        "sku": frame["StockCode"],
        "description": frame["Description"],
        "qty": pd.to_numeric(frame["Quantity"]),
        "invoice_date": pd.to_datetime(frame["InvoiceDate"]),
        "price": pd.to_numeric(frame["UnitPrice"]),
        "customer_id": pd.to_numeric(frame["CustomerID"], errors="coerce").astype("Int64"),
        "country": frame["Country"],
    })
    url = f"sqlite:///{tmp_path_factory.mktemp('shop') / 'shop.sqlite'}"
    engine = sa.create_engine(url)
    typed.to_sql("sales_lines", engine, index=False)
    engine.dispose()
    return url


def test_a_table_is_read_in_chunks_with_every_row_accounted(sales_db, demo_file):
    stats = extract.ExtractStats()
    chunks = list(extract.read_source(sales_db, chunk_rows=10_000, stats=stats,
                                      query="sales_lines"))
    rows = sum(len(c.frame) for c in chunks)
    expected = len(pd.read_csv(demo_file, dtype=str))
    assert rows == expected == stats.rows
    assert len(chunks) == -(-expected // 10_000)  # chunked, not one big read
    first = chunks[0].frame
    assert list(first.columns[:8]) == extract.RAW_COLUMNS
    assert first["source_row"].iloc[0] == 1 and chunks[1].frame["source_row"].iloc[0] == 10_001
    assert "sales_lines" in first["source_file"].iloc[0]


def test_a_database_source_gives_the_same_answers_as_the_file(sales_db, demo_file, tmp_path):
    """Same lines, same Insiders, whether they come from the CSV or the retailer's database."""
    settings = Settings(home=tmp_path / "home", stability_months=0, bootstrap=200,
                        chunk_rows=20_000)
    from_file = pipeline.run(settings, demo_file, "2011-12-01", tmp_path / "file")
    from_db = pipeline.run(settings.with_(source_query="SELECT * FROM sales_lines"), sales_db,
                           "2011-12-01", tmp_path / "db")
    a = json.loads((tmp_path / "file" / "answers.json").read_text())
    b = json.loads((tmp_path / "db" / "answers.json").read_text())
    assert a["who"]["customer_ids"] == b["who"]["customer_ids"]
    assert a["data_quality"]["rows_in"] == b["data_quality"]["rows_in"]
    assert a["data_quality"]["set_aside"] == b["data_quality"]["set_aside"]
    assert a["revenue_share"] == b["revenue_share"]
    assert from_file["as_of"] == from_db["as_of"] == "2011-12-01"


def test_the_dag_reads_the_configured_database(sales_db, tmp_path, monkeypatch):
    monkeypatch.setenv("INSIDERS_SOURCE", sales_db)
    monkeypatch.setenv("INSIDERS_SOURCE_QUERY", "sales_lines")
    monkeypatch.setenv("INSIDERS_HOME", str(tmp_path / "home"))
    run = Run.monthly(Settings.from_env(), "2011-12-01")
    out = stages.extract(run)
    assert out["rows"] > 50_000 and run.month == "2011-11"
    assert run.folder.path == tmp_path / "home" / "runs" / "2011-11"
    assert out["source"] == sales_db  # a file URL has no password to hide


def test_a_database_password_never_appears_in_what_is_stored(tmp_path):
    assert extract.redact_url("postgresql+psycopg://reader:s3cr3t@db:5432/shop") == \
        "postgresql+psycopg://reader:***@db:5432/shop"
    with pytest.raises(InputError) as err:
        list(extract.read_source("postgresql+psycopg://reader:s3cr3t@127.0.0.1:9/shop"
                                 "?connect_timeout=2", query="sales"))
    assert "s3cr3t" not in str(err.value) and "***" in str(err.value)


def test_a_missing_table_is_a_clear_error(sales_db):
    with pytest.raises(InputError, match="the database query failed"):
        list(extract.read_source(sales_db, query="no_such_table"))


def test_a_glob_reads_every_matching_file_in_order(demo_file, tmp_path):
    frame = pd.read_csv(demo_file, dtype=str, keep_default_na=False)
    half = len(frame) // 2
    frame.iloc[:half].to_csv(tmp_path / "sales_2011a.csv", index=False)
    frame.iloc[half:].to_csv(tmp_path / "sales_2011b.csv", index=False)
    stats = extract.ExtractStats()
    chunks = list(extract.read_source(str(tmp_path / "sales_*.csv"), stats=stats))
    assert sum(len(c.frame) for c in chunks) == len(frame)
    assert list(stats.files) == [str(tmp_path / "sales_2011a.csv"),
                                 str(tmp_path / "sales_2011b.csv")]


def test_the_olist_folder_without_its_source_kind_says_which_to_choose(olist_dir, tmp_path):
    """The refusal stays the one the default source gives (naming the file and its columns)
    and adds the source that recognises the folder."""
    from conftest import run_stage

    with pytest.raises(InputError) as refused:
        run_stage(stages.extract, tmp_path / "run", olist_dir)
    text = str(refused.value)
    assert "olist_customers_dataset.csv.gz: missing required columns InvoiceNo" in text
    assert text.endswith("It looks like the olist input: choose it with --source olist "
                         "(INSIDERS_SOURCE_KIND=olist for the DAG).")


def test_the_retail_file_given_to_olist_says_which_to_choose(real_file, tmp_path):
    from conftest import run_stage

    with pytest.raises(InputError, match=r"must be the folder .* It looks like the "
                                         r"online_retail input: choose it with --source "
                                         r"online_retail"):
        run_stage(stages.extract, tmp_path / "run", real_file, kind="olist")


def test_a_refusal_no_source_recognises_gets_no_advice(tmp_path):
    from conftest import run_stage

    path = tmp_path / "notes.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError) as refused:
        run_stage(stages.extract, tmp_path / "run", path)
    assert "missing required columns InvoiceNo" in str(refused.value)
    assert "looks like" not in str(refused.value)


def test_a_database_url_is_never_probed_to_name_a_source() -> None:
    """Recognising an input reads its first lines; a database URL would mean connecting
    (here to an unroutable address, which would hang until a timeout)."""
    from insiders.sources import SOURCES

    url = "postgresql+psycopg://reader@10.255.255.1/shop"
    assert [kind for kind, source in SOURCES.items() if source.recognises(url)] == []
