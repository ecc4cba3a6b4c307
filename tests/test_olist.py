"""The Olist source: adapter edge cases on hand-built tables, then the real data end to end.

The real-data tests share one `insiders run --source olist` (a module fixture) and skip with
a printed reason when ../shared/data/olist is absent; the experience cards run on SQLite and,
with INSIDERS_TEST_PG_URL, on PostgreSQL.
"""

from __future__ import annotations

import codecs
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import run_stage
from insiders import extract, stages
from insiders.catalog import RunFolder
from insiders.dashboards.page import render_page, run_card_sql
from insiders.dashboards.provision import provision, provision_from_env
from insiders.dashboards.spec import load_definition
from insiders.errors import InputError
from insiders.models import segmentation
from insiders.sources import olist
from insiders.sources.olist import experience, personas, reading, tables
from insiders.sources.olist import sql as olist_sql
from sqlstore_fixture import build_synthetic_store, postgres_schema_url

ROOT = Path(__file__).resolve().parents[1]
EXPERIENCE = ROOT / "metabase" / "experience"
NINE = ("who", "how_many", "characteristics", "revenue_share", "expected_revenue",
        "entry_conditions", "exit_conditions", "guarantee", "marketing_actions")
# rows per file, from ../shared/data/olist/README.md
FILE_ROWS = {"orders": 99_441, "order_items": 112_650, "payments": 103_886, "reviews": 99_224,
             "customers": 99_441, "products": 32_951, "sellers": 3_095, "translation": 71}


# --------------------------------------------------------------------------- hand-built tables

# product ids as Olist writes them (32 hex digits): short codes read as non-products
P1, P2, P3 = ("1e9e8ef04dbcff4541ed26657ea517e5", "3aa071139cb16b67ca9e5dea641aaa2f",
              "96bd76ec8810374ed1b65e291975717f")
ORDERS = """\
"order_id","customer_id","order_status","order_purchase_timestamp","order_approved_at",\
"order_delivered_carrier_date","order_delivered_customer_date","order_estimated_delivery_date"
o1,c1,delivered,2018-01-10 10:00:00,,,2018-01-20 15:00:00,2018-01-18 00:00:00
o2,c2,canceled,2018-01-15 09:00:00,,,,2018-01-30 00:00:00
o3,c3,unavailable,2018-02-01 08:00:00,,,,2018-02-20 00:00:00
o4,c4,delivered,2018-02-03 12:00:00,,,2018-02-10 10:00:00,2018-02-20 00:00:00
o5,c9,delivered,2018-02-04 12:00:00,,,2018-02-12 10:00:00,2018-02-20 00:00:00
cafe0006,c6,delivered,2018-02-12 12:00:00,,,2018-02-20 10:00:00,2018-02-25 00:00:00
"""
ITEMS = f"""\
"order_id","order_item_id","product_id","seller_id","shipping_limit_date","price","freight_value"
o1,1,{P1},s1,2018-01-12 00:00:00,100.00,10.00
o2,1,{P2},s1,2018-01-17 00:00:00,50.00,5.00
o4,1,{P1},s2,2018-02-05 00:00:00,30.00,3.00
o4,2,{P1},s2,2018-02-05 00:00:00,30.00,3.00
o4,3,{P2},s2,2018-02-05 00:00:00,20.00,3.00
o5,1,{P1},s1,2018-02-06 00:00:00,10.00,1.00
cafe0006,1,{P2},s1,2018-02-14 00:00:00,45.50,4.00
"""
REVIEWS = '''\
"review_id","order_id","review_score","review_comment_title","review_comment_message",\
"review_creation_date","review_answer_timestamp"
r1,o1,2,,"Chegou
atrasado, ""ruim""",2018-01-21 00:00:00,2018-01-22 10:00:00
r2,o1,4,,,2018-03-01 00:00:00,2018-03-02 10:00:00
r3,o4,5,,,2018-02-11 00:00:00,2018-02-12 10:00:00
r3,o4,5,,,2018-02-11 00:00:00,2018-02-12 10:00:00
r4,o2,1,,"nunca chegou",2018-01-30 00:00:00,2018-01-31 10:00:00
'''
CUSTOMERS = """\
"customer_id","customer_unique_id","customer_zip_code_prefix","customer_city","customer_state"
c1,P1,"01001",sao paulo,SP
c2,P1,"01001",sao paulo,SP
c3,P2,"20000",rio de janeiro,RJ
c4,P2,"20000",rio de janeiro,RJ
c6,P3,"30000",belo horizonte,MG
c7,P4,"40000",salvador,BA
"""
PRODUCTS = f"""\
"product_id","product_category_name","product_name_lenght"
{P1},beleza_saude,40
{P2},,12
{P3},pc_gamer,30
"""
SELLERS = """\
"seller_id","seller_zip_code_prefix","seller_city","seller_state"
s1,"13023",campinas,SP
s2,"01002",sao paulo,SP
"""
PAYMENTS = """\
"order_id","payment_sequential","payment_type","payment_installments","payment_value"
o1,1,credit_card,2,110.00
o2,1,boleto,1,55.00
"""
TRANSLATION = "product_category_name,product_category_name_english\nbeleza_saude,health_beauty\n"


def write_olist(folder: Path, skip: tuple[str, ...] = ()) -> Path:
    """A tiny Olist folder: .csv.gz for some tables, .csv for others, a BOM on the translation."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"orders": ORDERS, "order_items": ITEMS, "reviews": REVIEWS,
             "customers": CUSTOMERS, "products": PRODUCTS, "sellers": SELLERS,
             "payments": PAYMENTS}
    for table, text in texts.items():
        if table in skip:
            continue
        stem = tables.TABLES[table][0]
        if table in ("orders", "reviews", "customers"):
            with gzip.open(folder / f"{stem}.csv.gz", "wt", encoding="utf-8") as fh:
                fh.write(text)
        else:
            (folder / f"{stem}.csv").write_text(text, encoding="utf-8")
    if "translation" not in skip:
        (folder / "product_category_name_translation.csv").write_bytes(
            codecs.BOM_UTF8 + TRANSLATION.encode())
    return folder


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, dict]:
    """The hand-built tables extracted into a run folder."""
    run = tmp_path / "run"
    result = run_stage(stages.extract, run, write_olist(tmp_path / "olist"), kind="olist")
    return run, result


def test_per_table_accounting_on_edge_cases(small) -> None:
    _, result = small
    tables = result["tables"]
    for name, acc in tables.items():
        assert acc["rows_in"] == acc["rows_kept"] + sum(acc["set_aside"].values()), name
    assert tables["orders"] == {"rows_in": 6, "rows_kept": 3, "set_aside": {
        "order_not_delivered": 2, "unknown_customer": 1}}
    assert tables["order_items"] == {"rows_in": 7, "rows_kept": 5, "set_aside": {
        "order_not_delivered": 1, "unknown_customer": 1}}
    assert tables["reviews"] == {"rows_in": 5, "rows_kept": 4, "set_aside": {"duplicate": 1}}
    assert tables["customers"]["set_aside"] == {"order_not_delivered": 2, "no_order": 1}
    assert tables["translation"] == {"rows_in": 1, "rows_kept": 1, "set_aside": {}}
    assert result["default_as_of"] == "2018-02-13"  # the day after the last delivered purchase
    # counted over the orders read: c7 (P4) placed none, so is not among them
    assert ("The person is customer_unique_id: 3 people behind the 5 per-order customer_ids "
            "of these orders.") in result["notes"]
    # the line whose order's customer is unknown is counted in a note, by cause
    assert ("1 item line belongs to no known order or customer (customer_id not in the "
            "customers table 1): nobody to attribute it to, so it is set aside as "
            "missing_customer_id.") in result["notes"]


def test_canonical_lines_and_quarantine_reasons(small) -> None:
    run, _ = small
    raw = pd.read_parquet(run / "work" / "raw.parquet")
    assert list(raw.columns[:8]) == extract.RAW_COLUMNS
    assert raw["source_row"].dtype == np.int64
    lines = {(r.invoice, r.stock_code, r.unit_price): r for r in raw.itertuples()}
    # two identical items are one line of quantity 2 (not a duplicate to set aside)
    assert lines[("order-o4", P1, "30.00")].quantity == "2"
    assert lines[("order-o4", P1, "30.00")].description == "health_beauty"
    assert lines[("order-o4", P2, "20.00")].description == reading.NO_CATEGORY
    # the person, not the per-order customer id; the state as country
    assert lines[("order-o1", P1, "100.00")].customer_id == "P1"
    assert lines[("order-o1", P1, "100.00")].country == "SP"
    # a cancelled order's item and an order without items are set aside, not dropped
    assert lines[("order-o2", P2, "50.00")].source_reason == "order_not_delivered"
    lone = lines[("order-o3", "", "")]
    assert (lone.source_reason, lone.quantity) == ("order_not_delivered", "0")
    assert lines[("order-o5", P1, "10.00")].source_reason == "missing_customer_id"

    result = run_stage(stages.quality, run, as_of=pd.Timestamp("2018-06-01"), kind="olist")
    assert result["rows_in"] == len(raw) == 7
    assert result["set_aside"] == {"order_not_delivered": 2, "missing_customer_id": 1}
    kept = pd.read_parquet(run / "work" / "transactions.parquet")
    assert sorted(kept["invoice"].astype(str).unique()) == [
        "order-cafe0006", "order-o1", "order-o4"]
    # a hex order id starting with "c" is not read as a cancellation
    assert not kept["is_cancellation"].any()
    quarantine = pd.read_csv(run / "quarantine.csv.gz", dtype=str, keep_default_na=False)
    assert set(quarantine.loc[quarantine["reason"] == "order_not_delivered", "invoice"]) == {
        "order-o2", "order-o3"}


def test_multi_line_review_comment_keeps_record_numbers(tmp_path: Path) -> None:
    folder = write_olist(tmp_path / "olist")
    frame, rejects = tables.read_table(folder / "olist_order_reviews_dataset.csv.gz", "reviews")
    assert rejects.empty
    assert frame["review_id"].tolist() == ["r1", "r2", "r3", "r3", "r4"]
    assert frame["source_row"].tolist() == [2, 3, 4, 5, 6]  # records, as a spreadsheet shows


def test_experience_features_use_only_what_was_known(small) -> None:
    run, _ = small
    table = pd.DataFrame({"customer_id": ["P1", "P2", "P3"]})
    early = experience.add_experience_features(RunFolder(run), table,
                                               pd.Timestamp("2018-02-15"), 12)
    p1, p2, p3 = (early.iloc[i] for i in range(3))
    # P1: the first review (2 stars) only; the 4-star one came later. Delivered 2 days late
    assert (p1.review_score_mean, p1.low_review_share, p1.review_count) == (2.0, 1.0, 1)
    assert (p1.late_share, p1.avg_days_late) == (1.0, 2.0)
    # P2: the duplicated review counts once; delivered early
    assert (p2.review_score_mean, p2.review_count, p2.late_share) == (5.0, 1, 0.0)
    # P3: not delivered yet and not due: nothing known; no review: the period's mean
    assert (p3.review_count, p3.late_share, p3.avg_days_late) == (0, 0.0, 0.0)
    assert p3.review_score_mean == pytest.approx(3.5)
    assert p3.low_review_share == pytest.approx(0.5)
    later = experience.add_experience_features(RunFolder(run), table,
                                               pd.Timestamp("2018-04-01"), 12)
    assert later.iloc[0].review_score_mean == 4.0  # the latest review of the order counts
    assert len(later) == len(table)


def test_experience_tables(small) -> None:
    run, _ = small
    orders = pd.read_parquet(run / "work" / "source" / "orders.parquet").set_index("order_id")
    assert orders.loc["o1", "days_late"] == 2 and bool(orders.loc["o1", "delivered_late"])
    assert orders.loc["o4", "days_late"] == -10 and not orders.loc["o4", "delivered_late"]
    assert pd.isna(orders.loc["o2", "delivered_late"])
    assert orders.loc["o1", "review_score"] == 4  # the latest review
    assert not orders.loc["o2", "is_purchase"] and orders.loc["o4", "is_purchase"]
    reviews = pd.read_parquet(run / "work" / "source" / "reviews.parquet")
    assert len(reviews) == 4
    assert reviews.set_index("review_id").loc["r4", "customer_zip_prefix"] == "01001"


@pytest.mark.parametrize(("skip", "edit", "message"), [
    (("reviews",), None, "olist_order_reviews_dataset.csv.gz"),
    ((), ("olist_orders_dataset.csv.gz", "order_status"), "missing column order_status"),
])
def test_missing_file_or_column_is_one_clear_line(tmp_path: Path, skip, edit,
                                                  message: str) -> None:
    folder = write_olist(tmp_path / "olist", skip=skip)
    if edit:
        name, column = edit
        with gzip.open(folder / name, "rt") as fh:
            text = fh.read()
        with gzip.open(folder / name, "wt") as fh:
            fh.write(text.replace(f'"{column}"', '"something_else"', 1))
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) \
            as error:
        run_stage(stages.extract, tmp_path / "run", folder, kind="olist")
    assert "\n" not in str(error.value)


def test_an_orders_table_without_rows_is_one_clear_line(tmp_path: Path) -> None:
    """A header-only orders file (items still there) stopped with an Arrow error, exit 1."""
    folder = write_olist(tmp_path / "olist")
    path = folder / "olist_orders_dataset.csv.gz"
    with gzip.open(path, "rt") as fh:
        header = fh.readline()
    with gzip.open(path, "wt") as fh:
        fh.write(header)
    with pytest.raises(InputError, match="olist_orders_dataset.csv.gz: no order rows") as error:
        run_stage(stages.extract, tmp_path / "run", folder, kind="olist")
    assert "\n" not in str(error.value)


def test_a_purchase_typed_in_the_future_is_a_stray_date_not_the_as_of(tmp_path: Path) -> None:
    """An order typed 2031 made the default as-of 2031 and the run refuse it, blaming
    --as-of; it is a typo, set aside as stray_date, as in the Online Retail reader."""
    folder = write_olist(tmp_path / "olist")
    orders = ORDERS + "o8,c6,delivered,2031-02-12 12:00:00,,,2031-02-20 10:00:00,\n"
    with gzip.open(folder / "olist_orders_dataset.csv.gz", "wt") as fh:
        fh.write(orders)
    (folder / "olist_order_items_dataset.csv").write_text(
        ITEMS + f"o8,1,{P3},s1,2031-02-14 00:00:00,80.00,4.00\n", encoding="utf-8")
    run = tmp_path / "run"
    extracted = run_stage(stages.extract, run, folder, kind="olist")
    assert extracted["default_as_of"] == "2018-02-13"
    assert extracted["default_stray_from"] == "2031-02-12"
    as_of = olist.Olist().default_as_of(RunFolder(run))
    assert as_of == pd.Timestamp("2018-02-13")
    said = RunFolder(run).stage("extract")
    assert said["stray_from"] == "2031-02-12"
    note = next(n for n in said["notes"] if n.startswith("The last delivered purchase"))
    assert "1 delivered purchase line dated after 2018-02-12 (2031-02-12" in note
    quality = run_stage(stages.quality, run, folder, as_of=as_of, kind="olist")
    assert quality["set_aside"].get("stray_date") == 1, quality["set_aside"]


def test_an_absurd_price_is_set_aside_and_unknown_in_the_experience_tables(
        tmp_path: Path) -> None:
    """A price of 1e308 ran into scikit-learn's "Input X contains infinity"; 1e12 gave
    absurd figures everywhere. It is implausible_price, and no seller's revenue."""
    folder = write_olist(tmp_path / "olist")
    (folder / "olist_order_items_dataset.csv").write_text(
        ITEMS.replace(f"o4,3,{P2},s2,2018-02-05 00:00:00,20.00,3.00",
                      f"o4,3,{P2},s2,2018-02-05 00:00:00,1e308,3.00"), encoding="utf-8")
    run = tmp_path / "run"
    run_stage(stages.extract, run, folder, kind="olist")
    items = pd.read_parquet(run / "work" / "source" / "items.parquet").set_index("order_id")
    o4 = items.loc["o4"].set_index("order_item_id")["price"]
    assert pd.isna(o4[3]) and o4[1] == o4[2] == 30
    quality = run_stage(stages.quality, run, folder, as_of="2018-02-13", kind="olist")
    assert quality["set_aside"].get("implausible_price") == 1, quality["set_aside"]
    kept = pd.read_parquet(run / "work" / "transactions.parquet")
    assert np.isfinite(kept["revenue"]).all() and kept["unit_price"].max() < 1_000


def test_a_run_with_its_own_as_of_states_no_default(small) -> None:
    """The default as-of's note is for runs that take it, not for every extract."""
    _, result = small
    assert not any(n.startswith("The last delivered purchase") for n in result["notes"])


def test_input_must_be_a_folder(tmp_path: Path) -> None:
    folder = write_olist(tmp_path / "olist")
    with pytest.raises(InputError, match="must be the folder"):
        run_stage(stages.extract, tmp_path / "run", folder / "olist_orders_dataset.csv.gz",
                  kind="olist")


def test_the_zip_kaggle_downloads_reads_like_its_folder(tmp_path: Path) -> None:
    """Kaggle's download is one zip of the CSVs (here in a folder inside it, beside a
    __MACOSX copy and a README): the same lines and accounting as the unpacked folder,
    each file named as zip:member."""
    import zipfile

    folder = write_olist(tmp_path / "olist")
    archive = tmp_path / "brazilian-ecommerce.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.iterdir()):
            z.write(path, f"archive/{path.name}")
        z.writestr("__MACOSX/archive/._olist_orders_dataset.csv.gz", b"\x00\x05junk")
        z.writestr("archive/README.txt", "not a table")
    from_folder = run_stage(stages.extract, tmp_path / "a", folder, kind="olist")
    from_zip = run_stage(stages.extract, tmp_path / "b", archive, kind="olist")
    assert from_zip["tables"] == from_folder["tables"]
    assert from_zip["rows"] == from_folder["rows"]
    assert set(from_zip["files"]) == {f"{archive}:archive/{p.name}"
                                      for p in folder.iterdir()}
    a = pd.read_parquet(tmp_path / "a/work/raw.parquet").drop(columns="source_file")
    b = pd.read_parquet(tmp_path / "b/work/raw.parquet").drop(columns="source_file")
    pd.testing.assert_frame_equal(a, b)


def test_a_zip_without_the_orders_names_what_is_missing(tmp_path: Path) -> None:
    import zipfile

    folder = write_olist(tmp_path / "olist", skip=("orders",))
    archive = tmp_path / "partial.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in folder.iterdir():
            z.write(path, path.name)
    with pytest.raises(InputError, match=r"partial.zip: missing Olist files? "
                                         r"olist_orders_dataset"):
        run_stage(stages.extract, tmp_path / "run", archive, kind="olist")


def test_personas_follow_the_figures() -> None:
    rng = np.random.default_rng(3)
    n = 200

    def block(frequency, monetary, score, late, days):
        return pd.DataFrame({
            "customer_id": [f"x{rng.integers(1e9)}" for _ in range(n)],
            "recency_days": rng.uniform(20, 300, n), "frequency": frequency,
            "monetary": monetary * rng.uniform(0.9, 1.1, n), "avg_ticket": monetary,
            "return_rate": 0.0, "tenure_days": 200.0, "avg_days_between": np.nan,
            "review_score_mean": score, "late_share": late, "avg_days_late": days})

    features = pd.concat([block(3, 300, 4.8, 0.0, 0.0), block(1, 90, 1.5, 0.0, 0.0),
                          block(1, 90, 2.2, 1.0, 12.0), block(1, 400, 4.7, 0.0, 0.0)],
                         ignore_index=True)
    labels = np.repeat(np.arange(4), n)
    prof = personas.personas(segmentation.profile(features, labels, olist.MODEL_FEATURES))
    names = prof["persona"].tolist()
    assert names[0] == "Delighted repeat buyers"
    assert "Unhappy" in names[1]
    assert names[2].endswith("let down by late deliveries")
    assert "big spenders" in names[3]
    assert prof["persona"].is_unique
    assert prof["description"].str.len().gt(40).all() and prof["action"].str.len().gt(40).all()
    assert "12 days late" in prof["description"][2]


# --------------------------------------------------------------------------- the real data


@pytest.fixture(scope="module")
def real_run(olist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`insiders run --source olist --input ../shared/data/olist`, once for the module."""
    out = tmp_path_factory.mktemp("olist-run")
    done = subprocess.run(
        [sys.executable, "-c", "from insiders.cli import main; raise SystemExit(main())",
         "run", "--source", "olist", "--input", str(olist_dir), "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=900, cwd=out,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _answers(run: Path) -> dict:
    return json.loads((run / "answers.json").read_text())


@pytest.mark.realdata
def test_real_run_writes_answers_report_and_stability(real_run: Path) -> None:
    answers = _answers(real_run)
    for key in NINE:
        assert answers[key]["text"].strip(), key
    sat = answers["satisfaction"]
    assert sat["text"] and 1 <= sat["review_score_mean"] <= 5
    assert sat["low_review_share_when_late"] > sat["low_review_share_when_on_time"]
    assert answers["characteristics"]["not_applicable"] == ["return_rate"]
    # question 5 is answered on the marketplace too: the one-time buyers' expected spend
    er = answers["expected_revenue"]
    assert "expected_revenue.forecast" not in answers["not_applicable"]
    assert er["total"] > 0 and er["marketplace_note"]
    assert er["total"] == pytest.approx(er["sum_of_insiders_expected_value"], abs=0.05)
    assert answers["model"]["value_model"]["method"] in ("past_spend", "bgnbd", "blend",
                                                         "learned", "blend_learned")
    assert answers["data_quality"]["tables"]["orders"]["rows_in"] == FILE_ROWS["orders"]
    assert "Olist records none" in answers["characteristics"]["text"]
    stability = answers["stability"]
    curve = stability["ari_by_month"]
    assert [p["months_since_fit"] for p in curve] == list(range(1, len(curve) + 1))
    assert len(curve) >= 3 and all(-1 <= p["ari"] <= 1 for p in curve)
    assert stability["threshold"] == 0.8
    months = stability["recommended_refresh_months"]
    assert isinstance(months, int) and 1 <= months <= len(curve)
    above = [p["ari"] >= stability["threshold"] for p in curve]
    assert months == (above.index(False) if False in above else len(curve)) or (
        months == 1 and not above[0])
    report = (real_run / "report.html").read_text(encoding="utf-8")
    assert "How often to refresh the segmentation" in report
    assert "How satisfied are they?" in report
    assert (real_run / "insiders.csv").stat().st_size > 0


def check_report_in_reais_by_state(run: Path) -> None:
    """Olist's report: BRL everywhere, states labelled as states, and a proof box that says
    what the table beside it says (same figures, same rounding, colour = verdict)."""
    import html
    import re

    from insiders import wording
    from insiders.publish.answers import PROOF_TONES, proof_verdict

    a = _answers(run)
    assert next(iter(a)) == "currency" and a["currency"] == "BRL"
    assert a["region_label"] == "State"
    page = (run / "report.html").read_text(encoding="utf-8")
    found = dict(re.findall(r"<section id='([^']+)'>(.*?)</section>", page, flags=re.S))
    assert "<th class='l'>State</th>" in found["who"]
    assert "<th class='l'>Country</th>" not in found["who"]
    assert "BRL" in page.split("</header>")[0]
    oot = a["guarantee"]["out_of_time"]
    tone = PROOF_TONES[proof_verdict(oot)]
    box = found["guarantee"].split("</div>")[0]
    assert f"<div class='answer {tone}'>" in box
    assert a["guarantee"]["text"].startswith(
        "The proof holds" if tone == "ok" else "The proof does not hold")
    each = wording.amount(oot["insiders"]["revenue_per_customer"])
    share = wording.share(oot["insiders"]["share_of_next_revenue"])
    assert f"spent {each} BRL each" in html.unescape(box)
    assert f"brought {share} of all revenue" in html.unescape(box)
    row = next(r for r in found["guarantee"].split("<tr>")
               if r.startswith("<td class='l'>Insiders</td>"))
    assert f"<td class=''>{each}</td>" in row and f"<td class=''>{share}</td>" in row
    assert not re.search(r"spent 1 each|brought 0%", a["guarantee"]["text"])
    if oot["overlap_with_top_spenders"] < 1:  # the analysts' comparison rounds like the table
        top = wording.share(oot["top_spenders"]["share_of_next_revenue"])
        assert f"top past spenders brought {top}:" in a["guarantee"]["analysts"]
        assert f"<td class=''>{top}</td>" in found["guarantee"]
    # what does not apply, in words (not JSON paths); persona descriptions in BRL and hours
    satisfaction = html.unescape(found["satisfaction"])
    assert "<b>Returns</b>" in satisfaction and "guarantee.insiders_vs_rest" not in satisfaction
    for s in a["marketing_actions"]["segments"]:
        assert " BRL " in s["description"], s["description"]
        assert not re.search(r"\b0\.\d+ days", s["description"]), s["description"]


@pytest.mark.realdata
def test_real_report_in_reais_by_state(real_run: Path) -> None:
    check_report_in_reais_by_state(real_run)


@pytest.mark.realdata
def test_real_run_default_as_of_is_after_the_last_delivered_purchase(real_run: Path) -> None:
    extract = json.loads((real_run / "work" / "extract.json").read_text())
    assert extract["default_as_of"] == "2018-08-30"
    assert _answers(real_run)["as_of"] == extract["default_as_of"], (
        "the Olist source's default_as_of should use extract.json's default_as_of when "
        "present: later "
        "Olist orders (2018-09/10) are all cancelled or undelivered")


@pytest.mark.realdata
def test_real_row_accounting_per_table_and_overall(real_run: Path) -> None:
    extract = json.loads((real_run / "work" / "extract.json").read_text())
    for name, acc in extract["tables"].items():
        assert acc["rows_in"] == FILE_ROWS[name], name
        assert acc["rows_in"] == acc["rows_kept"] + sum(acc["set_aside"].values()), name
    assert extract["tables"]["orders"]["set_aside"] == {"order_not_delivered": 2_963}
    quality = _answers(real_run)["data_quality"]
    assert quality["rows_in"] == quality["rows_kept"] + sum(quality["set_aside"].values())
    quarantine = pd.read_csv(real_run / "quarantine.csv.gz", dtype=str, keep_default_na=False)
    assert quarantine["reason"].value_counts().to_dict() == quality["set_aside"]


@pytest.mark.realdata
def test_real_undelivered_orders_are_in_the_quarantine(real_run: Path, olist_dir: Path) -> None:
    orders = pd.read_csv(olist_dir / "olist_orders_dataset.csv.gz", dtype=str,
                         usecols=["order_id", "order_status"])
    undelivered = set(orders.loc[orders["order_status"] != "delivered", "order_id"])
    quarantine = pd.read_csv(real_run / "quarantine.csv.gz", dtype=str, keep_default_na=False)
    aside = quarantine.loc[quarantine["reason"] == "order_not_delivered", "invoice"]
    assert set(aside.str.removeprefix(reading.INVOICE_PREFIX)) == undelivered


@pytest.mark.realdata
def test_real_person_is_customer_unique_id(real_run: Path, olist_dir: Path) -> None:
    answers = _answers(real_run)
    start, end = pd.Timestamp(answers["period"]["start"]), pd.Timestamp(answers["period"]["end"])
    orders = pd.read_csv(olist_dir / "olist_orders_dataset.csv.gz", dtype=str)
    customers = pd.read_csv(olist_dir / "olist_customers_dataset.csv.gz", dtype=str)
    items = pd.read_csv(olist_dir / "olist_order_items_dataset.csv.gz", dtype=str,
                        usecols=["order_id"])
    bought = pd.to_datetime(orders["order_purchase_timestamp"])
    delivered = orders[(orders["order_status"] == "delivered") & (bought >= start)
                       & (bought < end) & orders["order_id"].isin(items["order_id"])]
    people = set(delivered.merge(customers, on="customer_id")["customer_unique_id"])
    table = pd.read_parquet(real_run / "customers.parquet")
    assert len(table) == len(people) == answers["how_many"]["active_customers"]
    assert set(table["customer_id"]) == people
    assert len(people) < len(delivered)  # several orders, one person


@pytest.mark.realdata
def test_real_segments_separate_orders_and_satisfaction(real_run: Path) -> None:
    segment = json.loads((real_run / "work" / "segment.json").read_text())
    profiles = pd.DataFrame(segment["profiles"])
    assert segment["model_features"] == olist.MODEL_FEATURES
    assert profiles["persona"].is_unique
    assert profiles["description"].str.len().gt(40).all()
    assert profiles["action"].str.len().gt(40).all()
    # frequency does not collapse: some segment is made of repeat buyers
    assert profiles["mean_frequency"].max() >= 1.5
    # and satisfaction separates segments
    assert profiles["review_score_mean"].max() - profiles["review_score_mean"].min() > 1.5
    table = pd.read_parquet(real_run / "customers.parquet")
    assert table["frequency"].nunique() > 1
    for column in olist.EXPERIENCE_FEATURES:
        assert table[column].notna().all(), column


# --------------------------------------------------------------------------- experience cards

CARDS = load_definition(EXPERIENCE)


def _query_all(url: str) -> dict[str, list]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {card.file: run_card_sql(conn, card.sql) for card in CARDS.cards}
    finally:
        engine.dispose()


def test_experience_definition_is_complete() -> None:
    files = {p.relative_to(EXPERIENCE).as_posix() for p in (EXPERIENCE / "cards").glob("*.sql")}
    assert files == {card.file for card in CARDS.cards}
    assert CARDS.name == "Customer experience (Olist)"
    for card in CARDS.cards:
        assert "{{" not in card.sql and not card.sql.rstrip().endswith(";"), card.file
    relative = [c for c in CARDS.cards if c.file != "cards/02_top_sellers.sql"]
    assert all("latest order" in c.description for c in relative)


@pytest.fixture(scope="module")
def synced_sqlite(real_run: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('olist-store') / 'insiders.sqlite'}"
    counts = olist_sql.sync_experience(RunFolder(real_run), url)
    assert counts == {"olist_orders": 99_441, "olist_order_items": 112_650,
                      "olist_sellers": 3_095, "olist_reviews": 99_224}
    return url


def _check_cards(results: dict) -> None:
    for card in CARDS.cards:
        frame = results[card.file]
        assert len(frame) >= 1, f"{card.file} returned no rows"
    late = results["cards/01_recent_late_orders.sql"]
    assert (late["Days late"] >= 3).all() and (late["Status"] != "canceled").all()
    assert (results["cards/02_top_sellers.sql"]["Revenue (BRL)"] > 100_000).all()
    new = results["cards/03_new_sellers.sql"]
    assert (new["Products sold"] > 30).all() and (new["Days on the platform"] < 90).all()
    zips = results["cards/04_worst_zip_codes.sql"]
    assert len(zips) == 5 and (zips["Reviews"] > 30).all()
    assert zips["Average review score"].is_monotonic_increasing


def _rows(frame: pd.DataFrame) -> list[list]:
    """Values comparable across engines: dates as ISO text, floats rounded, NaN as None."""
    def normal(value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        if isinstance(value, float | np.floating):
            return round(float(value), 6)
        if hasattr(value, "isoformat"):
            return value.isoformat()[:10]
        return value.item() if hasattr(value, "item") else value

    return [[normal(v) for v in row] for row in frame.itertuples(index=False)]


@pytest.mark.realdata
def test_experience_cards_on_sqlite(synced_sqlite: str) -> None:
    _check_cards(_query_all(synced_sqlite))


@pytest.mark.realdata
@pytest.mark.postgres
def test_experience_cards_on_postgres_agree_with_sqlite(real_run: Path, synced_sqlite: str,
                                                         pg_url: str) -> None:
    url = postgres_schema_url(pg_url, "olist_experience_test")
    try:
        olist_sql.sync_experience(RunFolder(real_run), url)
        olist_sql.sync_experience(RunFolder(real_run), url)  # replacing, not appending
        on_pg = _query_all(url)
        _check_cards(on_pg)
        on_sqlite = _query_all(synced_sqlite)
        for card in CARDS.cards:
            a, b = on_sqlite[card.file], on_pg[card.file]
            assert list(a.columns) == list(b.columns), card.file
            assert _rows(a) == _rows(b), card.file
    finally:
        engine = sa.create_engine(pg_url)
        with engine.begin() as conn:
            conn.execute(sa.text('DROP SCHEMA IF EXISTS "olist_experience_test" CASCADE'))
        engine.dispose()


@pytest.mark.realdata
def test_experience_dashboard_renders_and_provisions(synced_sqlite: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The second definition folder goes through the same renderers as the main one."""
    from fake_metabase import FakeMetabase

    by_file = _query_all(synced_sqlite)
    page = render_page(CARDS, {card.name: by_file[card.file] for card in CARDS.cards})
    assert all(card.name in page for card in CARDS.cards)
    path = tmp_path / "both.sqlite"
    shutil.copyfile(synced_sqlite.removeprefix("sqlite:///"), path)
    build_synthetic_store(f"sqlite:///{path}")  # the main dashboard's tables, same store
    with FakeMetabase() as fake:
        common = {"email": "admin@example.com", "password": "fake-Olist-2018-admin",
                  "database": {"engine": "sqlite", "path": str(path)}, "poll_interval": 0.01}
        main = provision(fake.url, **common)
        experience = provision(fake.url, definition_dir=EXPERIENCE, **common)
        again = provision(fake.url, **common)
        # the CLI's way: `INSIDERS_METABASE_DEFINITIONS=metabase/experience insiders metabase
        # provision` (provision_from_env) finds the experience dashboard and changes nothing
        for name, value in {"INSIDERS_METABASE_DEFINITIONS": str(EXPERIENCE),
                            "INSIDERS_METABASE_USER": common["email"],
                            "INSIDERS_METABASE_PASSWORD": common["password"],
                            "INSIDERS_METABASE_DB_ENGINE": "sqlite",
                            "INSIDERS_METABASE_DB_PATH": str(path)}.items():
            monkeypatch.setenv(name, value)
        from_env = provision_from_env(fake.url)
        assert fake.violations == []
    assert from_env.dashboard_id == experience.dashboard_id and not from_env.changed
    assert experience.dashboard_id != main.dashboard_id
    assert [i.kind for i in experience.created] == ["card"] * len(CARDS.cards) + ["dashboard"]
    assert not again.changed  # the two dashboards share the collection without interfering
