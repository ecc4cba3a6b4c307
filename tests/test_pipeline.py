"""The whole flow: `pipeline.run` and `insiders run`, on the demo data and on the real file.

The runs are expensive (seconds each), so each is made once per module and the
command-line runs go in parallel: the demo file through the API and through the
command (the same input twice, for determinism), the demo file with `--as-of`,
the command without `--input` (the package's own demo data), and the two runs on
the real file when it is present. Every check compares the outputs with each other
or with the input read directly, never with figures copied from an earlier run.

Each run gets one OpenMP/BLAS thread: they run side by side on a 2-core machine, where
scikit-learn's spinning worker threads would otherwise fight (ten times slower). The
thread count changes no result.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli
from insiders import pipeline, quality
from insiders import stages as stage_list
from insiders.catalog import RunFolder
from insiders.config import Settings
from insiders.models import features as feats
from insiders.publish import answers as answers_mod
from insiders.publish.answers import QUESTIONS
from threadpoolctl import threadpool_limits

ANSWER_KEYS = list(QUESTIONS)
DEMO_AS_OF = "2011-10-01"
REAL_AS_OF = "2011-09-01"
REAL_ROWS = 541_909  # the UCI Online Retail file (../shared/data/README.md)

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_RUNS: dict[str, Path] = {}


def run_demo_pipeline(demo_file: Path, root: Path) -> Path:
    """The demo file through `pipeline.run` in this process, once per session (shared with
    test_report.py, which renders its report again with hostile values)."""
    if "api" not in _RUNS:
        out = root / "api"
        with threadpool_limits(limits=1):
            pipeline.run(Settings(home=root / "home"), demo_file, None, out)
        _RUNS["api"] = out
    return _RUNS["api"]


def _cli_runs(jobs: dict[str, tuple[str, ...]], env: dict, also=None) -> dict:
    """Run `insiders` commands in parallel (and `also()` here meanwhile); fail on any error."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(run_cli, *args, env=env) for name, args in jobs.items()}
        if also is not None:
            also()
        done = {name: f.result() for name, f in futures.items()}
    for name, proc in done.items():
        assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def demo(demo_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pipeline")
    home = root / "home"  # an empty INSIDERS_HOME: the default demo is generated there
    jobs = {
        "cli": ("run", "--quiet", "--input", str(demo_file), "--out", str(root / "cli")),
        "as_of": ("run", "--quiet", "--input", str(demo_file), "--as-of", DEMO_AS_OF,
                  "--out", str(root / "as_of")),
        "default": ("run", "--quiet", "--out", str(root / "default")),
    }
    procs = _cli_runs(jobs, {"INSIDERS_HOME": str(home), **ONE_THREAD},
                      also=lambda: run_demo_pipeline(demo_file, root))
    return {"api": _RUNS["api"], "procs": procs, "home": home,
            **{name: root / name for name in jobs}}


@pytest.fixture(scope="module")
def real(real_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("real")
    jobs = {
        "full": ("run", "--quiet", "--input", str(real_file), "--out", str(root / "full")),
        "as_of": ("run", "--quiet", "--input", str(real_file), "--as-of", REAL_AS_OF,
                  "--out", str(root / "as_of")),
    }
    _cli_runs(jobs, {"INSIDERS_HOME": str(root / "home"), **ONE_THREAD})
    return {name: root / name for name in jobs}


def answers(run: Path) -> dict:
    return json.loads((run / "answers.json").read_text())


def read_raw(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype="str", keep_default_na=False)


# --------------------------------------------------------------------------- shared checks


def check_answers_contract(run: Path) -> dict:
    """The nine answers with their text and the contract fields analysts rely on."""
    a = answers(run)
    for key in ANSWER_KEYS:
        assert isinstance(a[key]["text"], str) and len(a[key]["text"]) > 20, key
    for key in ("as_of", "data_quality", "model", "stability"):
        assert a[key], key

    who, how = a["who"], a["how_many"]
    assert all(isinstance(c, str) for c in who["customer_ids"])
    assert len(who["customer_ids"]) == len(set(who["customer_ids"])) == how["count"] > 0
    assert 0 < how["share_of_customers"] <= 1
    assert how["share_of_customers"] == pytest.approx(how["count"] / how["active_customers"],
                                                      abs=1e-4)
    assert 0 < a["revenue_share"]["value"] <= 1

    er = a["expected_revenue"]
    assert len(er["months"]) == 3
    for m in er["months"]:
        assert set(m) == {"month", "revenue", "lower", "upper"}
        pd.Timestamp(m["month"])
        if m["lower"] is not None:
            assert m["lower"] <= m["revenue"] <= m["upper"]
    assert er["months"][0]["month"] == a["as_of"]  # the first period starts on the as-of day
    assert "available" in er["backtest"] and er["backtest"]["text"]
    # one expected revenue: the headline is the months and the Insiders' own figures
    assert er["total"] == pytest.approx(sum(m["revenue"] for m in er["months"]), abs=0.05)
    assert er["total"] == pytest.approx(er["sum_of_insiders_expected_value"], abs=0.05)
    members = pd.read_csv(run / "insiders.csv")
    assert er["total"] == pytest.approx(members["expected_value"].sum(), abs=0.01 * len(members))
    # the brief's insights and this month's to-do
    assert len(a["hypotheses"]) >= 3
    for h in a["hypotheses"]:
        assert isinstance(h["verdict"], bool) and h["statement"] and h["text"] and h["figures"]
    lists = pd.read_csv(run / "campaigns.csv", dtype={"customer_id": "str"})
    assert lists["customer_id"].is_unique
    assert a["campaigns"]["counts"] == {k: int((lists["list"] == k).sum())
                                        for k in ("welcome", "at_risk", "win_back",
                                                  "next_in_line")}
    assert set(lists.loc[lists["list"] == "welcome", "customer_id"]) <= set(who["customer_ids"])
    cv = a["customer_value"]
    assert sum(cv["churn_mix_insiders"].values()) == how["count"]
    assert set(members["churn_band"]) <= {"Low", "Medium", "High"}
    assert members["churn_risk"].between(0, 1).all()

    oot = a["guarantee"]["out_of_time"]
    assert "available" in oot and oot["text"]

    q = a["data_quality"]
    assert q["rows_kept"] + sum(q["set_aside"].values()) == q["rows_in"]
    assert set(q["set_aside"]) <= set(quality.REASONS)

    model = a["model"]
    assert len(model["candidates"]) == 3 * 6  # three algorithms, k = 3..8
    for c in model["candidates"]:
        for metric in ("silhouette", "davies_bouldin", "calinski_harabasz"):
            assert isinstance(c[metric], float) and math.isfinite(c[metric])
    chosen = [c for c in model["candidates"] if c["chosen"]]
    assert len(chosen) == 1
    assert {"algorithm": chosen[0]["algorithm"], "k": chosen[0]["k"]} == model["chosen"]
    from insiders.models.segmentation import algorithm_name

    assert f"{algorithm_name(chosen[0]['algorithm'])} with k={chosen[0]['k']}" in model["why"]

    st = a["stability"]
    assert st["threshold"] == 0.8
    assert isinstance(st["recommended_refresh_months"], int)
    assert all(-1 <= p["ari"] <= 1 for p in st["ari_by_month"])
    return a


def check_files(run: Path) -> None:
    """insiders.csv, customers.parquet and quarantine.csv.gz agree with answers.json."""
    a = answers(run)
    members = pd.read_csv(run / "insiders.csv", dtype={"customer_id": "str"})
    assert members["customer_id"].tolist() == a["who"]["customer_ids"]
    for column in ("customer_id", "segment", "expected_value", "monetary", "frequency",
                   "recency_days", "membership_reason"):
        assert column in members, column
    assert members["value_rank"].is_monotonic_increasing

    customers = pd.read_parquet(run / "customers.parquet")
    assert customers["customer_id"].is_unique
    for column in [*feats.FEATURES, "segment", "persona", "is_insider", "expected_value",
                   "value_rank", "membership"]:
        assert column in customers, column
    insiders = customers[customers["is_insider"]].sort_values("value_rank")
    assert insiders["customer_id"].tolist() == a["who"]["customer_ids"]
    active = customers[customers["has_purchase"]]
    assert len(active) == a["how_many"]["active_customers"]
    assert (active["segment"] >= 0).all() and (customers.loc[~customers["has_purchase"],
                                                             "segment"] == -1).all()
    # the figures in insiders.csv are those of customers.parquet (2 decimals)
    merged = members.merge(customers, on="customer_id", suffixes=("", "_all"))
    for column in ("monetary", "expected_value", "frequency", "segment"):
        assert (merged[column] - merged[f"{column}_all"]).abs().max() <= 0.006, column
    # revenue share: the Insiders' net spend over everyone's, as customers.parquet has it
    assert a["revenue_share"]["value"] == pytest.approx(
        insiders["monetary"].sum() / customers["monetary"].sum(), abs=1e-4)

    aside = pd.read_csv(run / "quarantine.csv.gz", dtype="str", keep_default_na=False)
    q = a["data_quality"]
    assert len(aside) == sum(q["set_aside"].values())
    assert aside["reason"].value_counts().to_dict() == q["set_aside"]


def check_size_bounds(a: dict) -> None:
    n, active = a["how_many"]["count"], a["how_many"]["active_customers"]
    assert math.ceil(0.05 * active) <= n <= math.floor(0.20 * active)
    assert 0.05 <= a["how_many"]["share_of_customers"] <= 0.20


# --------------------------------------------------------------------------- demo data


def test_answers_and_contract_fields(demo: dict) -> None:
    a = check_answers_contract(demo["api"])
    assert a["expected_revenue"]["method"].startswith("bottom-up")
    assert a["guarantee"]["out_of_time"]["available"] is True
    assert a["stability"]["available"] is True


def _sentences(node: object, path: str = "") -> list[tuple[str, str]]:
    """Every text of the answers, with where it sits."""
    if isinstance(node, dict):
        return [t for k, v in node.items() for t in _sentences(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [t for i, v in enumerate(node) for t in _sentences(v, f"{path}[{i}]")]
    return [(path, node)] if isinstance(node, str) and " " in node else []


MONEY_AFTER = re.compile(r"\b(?:spent|spend adds up to|corrected to|the Insiders spent) "
                         r"(-?\d[\d,]*(?:\.\d+)?)(?: ([A-Z]{3}))?")


def check_amounts_name_their_currency(a: dict) -> None:
    """An amount a reader meets in a sentence says its currency: '1.45 each' beside
    '1.45 BRL each' in the next box reads as two different figures."""
    currency = a["currency"]
    bare = [(where, m.group(0)) for where, text in _sentences(a)
            for m in MONEY_AFTER.finditer(text) if m.group(2) != currency]
    assert not bare, bare


def check_segment_shares_print_alike(a: dict) -> None:
    """A segment's share reads the same in its table cell and in its description: a share
    kept rounded to 4 decimals (833 of 4,261 as 0.1955) printed 19.6% beside 19.5%."""
    from insiders import wording

    segments = a["marketing_actions"]["segments"]
    total = sum(s["customers"] for s in segments)
    for s in segments:
        exact = wording.share(s["customers"] / total)
        assert wording.share(s["share"]) == exact, (s["persona"], s["share"], exact)
        assert f"customers ({exact})" in s["description"], (exact, s["description"])


def test_amounts_in_sentences_name_their_currency(demo: dict) -> None:
    a = answers(demo["api"])
    said = [text for _, text in _sentences(a)]
    # the sentences the check reads are there: the out-of-time proof and the forecast's
    assert any("Insiders spent" in t for t in said) and any("adds up to" in t for t in said)
    check_amounts_name_their_currency(a)
    check_segment_shares_print_alike(a)


def test_files_agree_with_the_answers(demo: dict) -> None:
    check_files(demo["api"])


def test_group_size_within_bounds(demo: dict) -> None:
    check_size_bounds(answers(demo["api"]))


def test_rows_are_accounted_for_against_the_input(demo: dict, demo_file: Path) -> None:
    raw = read_raw(demo_file)
    q = answers(demo["api"])["data_quality"]
    assert q["rows_in"] == len(raw)
    # lines without a customer id, read directly: every one of them is set aside
    assert q["set_aside"]["missing_customer_id"] == (raw["CustomerID"] == "").sum()


def test_customers_are_those_with_a_line_in_the_period(demo: dict) -> None:
    a = answers(demo["api"])
    tx = pd.read_parquet(demo["api"] / "work/transactions.parquet")
    start, end = pd.Timestamp(a["period"]["start"]), pd.Timestamp(a["as_of"])
    assert start == end - pd.DateOffset(months=12)
    in_period = tx[(tx["invoice_date"] >= start) & (tx["invoice_date"] < end)]
    customers = pd.read_parquet(demo["api"] / "customers.parquet")
    assert set(customers["customer_id"]) == set(in_period["customer_id"].astype("str"))
    buyers = in_period[(in_period["quantity"] > 0) & ~in_period["is_cancellation"]]
    assert a["how_many"]["active_customers"] == buyers["customer_id"].nunique()


def test_default_as_of_is_the_day_after_the_last_line(demo: dict, demo_file: Path) -> None:
    raw = read_raw(demo_file)
    last = pd.to_datetime(raw["InvoiceDate"]).max()
    a = answers(demo["api"])
    assert pd.Timestamp(a["as_of"]) == last.normalize() + pd.Timedelta(days=1)
    assert a["data_quality"]["set_aside"].get("after_as_of", 0) == 0  # nothing cut
    tx = pd.read_parquet(demo["api"] / "work/transactions.parquet")
    assert tx["invoice_date"].max() == last  # the last line is used


def test_as_of_cuts_the_data(demo: dict, demo_file: Path) -> None:
    run = demo["as_of"]
    a = check_answers_contract(run)
    check_files(run)
    check_size_bounds(a)
    assert a["as_of"] == DEMO_AS_OF
    assert a["period"]["start"] == "2010-10-01"
    tx = pd.read_parquet(run / "work/transactions.parquet")
    assert tx["invoice_date"].max() < pd.Timestamp(DEMO_AS_OF)
    # every line of the file dated on or after the as-of date is set aside as after_as_of
    raw = read_raw(demo_file)
    later = (pd.to_datetime(raw["InvoiceDate"]) >= pd.Timestamp(DEMO_AS_OF)).sum()
    assert later > 0 and a["data_quality"]["set_aside"]["after_as_of"] == later
    assert a["expected_revenue"]["months"][0]["month"] == DEMO_AS_OF
    oot = a["guarantee"]["out_of_time"]
    assert oot["chosen_on"] == "2011-07-01" and oot["measured_until"] == DEMO_AS_OF
    # the figures differ from the full run's: the cut really changes what is known
    assert a["how_many"]["active_customers"] != answers(demo["api"])["how_many"][
        "active_customers"]


def test_same_input_twice_gives_identical_results(demo: dict) -> None:
    """The API run in this process and the command in another give the same answers."""
    assert answers(demo["cli"]) == answers(demo["api"])
    assert (demo["cli"] / "insiders.csv").read_bytes() == (
        demo["api"] / "insiders.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(demo["cli"] / "customers.parquet"),
                                  pd.read_parquet(demo["api"] / "customers.parquet"))


def test_cli_lists_what_it_wrote(demo: dict) -> None:
    out = demo["procs"]["cli"].stdout
    assert out.startswith("as of 2011-12-10: done in ")
    for name in ("answers.json", "insiders.csv", "customers.parquet", "quarantine.csv.gz",
                 "report.html"):
        assert str(demo["cli"] / name) in out
        assert (demo["cli"] / name).stat().st_size > 0


def test_without_input_runs_on_the_package_demo(demo: dict) -> None:
    run = demo["default"]
    demos = list((demo["home"] / "demo").glob("*.csv.gz"))
    assert len(demos) == 1  # generated in the empty INSIDERS_HOME on first use
    a = check_answers_contract(run)
    check_files(run)
    check_size_bounds(a)
    assert a["data_quality"]["source"] == str(demos[0])
    with gzip.open(demos[0], "rt", encoding="utf-8", newline="") as fh:
        rows = sum(1 for _ in csv.reader(fh)) - 1
    assert a["data_quality"]["rows_in"] == rows > 250_000  # read in more than one block


def test_naive_forecast_answer_says_what_it_is(demo: dict) -> None:
    """Too little history for Prophet: the answer must say what the figure is instead."""
    stages = RunFolder(demo["api"]).stages(stage_list.REPORTED)
    customers = pd.read_parquet(demo["api"] / "customers.parquet")
    rows = [{"month": m["month"], "revenue": 100.0, "lower": None, "upper": None}
            for m in stages["forecast"]["months"]]
    stages["forecast"] = {**stages["forecast"], "months": rows, "total": 300.0,
                          "total_interval": [None, None],
                          "text": "There is no earlier month yet to check the model against.",
                          "backtest": {"available": False, "text": "Not enough history."}}
    a = answers_mod.build(pd.Timestamp(answers(demo["api"])["as_of"]), stages, customers)
    text = a["expected_revenue"]["text"]
    assert text.startswith("About 300 over the next 3 months")  # 3 x 100
    assert "80% interval" not in text and "not enough history yet" in text
    assert "no earlier month" in a["expected_revenue"]["analysts"]  # what the figure is
    assert "Checked on" not in text  # no check to report


def test_forecast_answer_says_how_far_off_it_was_before(demo: dict) -> None:
    """Marketing reads how far to trust the figure, in the plain answer: the backtest's own
    3-month error beside the best simple rule's, as the analysts' table has them."""
    a = answers(demo["api"])
    back = RunFolder(demo["api"]).stages(stage_list.REPORTED)["forecast"]["backtest"]
    summary = back["summary"]
    assert back["available"], "the demo has the history for a backtest"
    naive = {k: summary[f"total_mape_{k}"] for k in ("naive_last_month", "naive_mean_3m",
                                                      "naive_last_year")
             if summary.get(f"total_mape_{k}") is not None}
    best = min(naive, key=naive.get)
    label = {"naive_last_month": "last month repeated",
             "naive_mean_3m": "the mean of the last 3 months",
             "naive_last_year": "the same months last year"}[best]
    assert (f"Checked on {summary['origins']} earlier months, such a forecast was off by "
            f"{summary['total_mape_forecast']:,.0%} on average ({label} was off by "
            f"{naive[best]:,.0%}).") in a["expected_revenue"]["text"]


def test_demo_lines_fall_in_trading_hours(demo_file: Path) -> None:
    dates = pd.to_datetime(read_raw(demo_file)["InvoiceDate"])
    outside = dates[(dates.dt.hour < 8) | (dates.dt.hour >= 18)]
    assert outside.empty, outside.value_counts().head()


# --------------------------------------------------------------------------- the real file


@pytest.mark.realdata
def test_real_file_end_to_end(real: dict, real_file: Path) -> None:
    run = real["full"]
    a = check_answers_contract(run)
    check_files(run)
    check_size_bounds(a)
    q = a["data_quality"]
    assert q["rows_in"] == REAL_ROWS
    assert q["rows_kept"] + sum(q["set_aside"].values()) == REAL_ROWS
    raw = read_raw(real_file)
    assert len(raw) == REAL_ROWS
    assert q["set_aside"]["missing_customer_id"] == (raw["CustomerID"] == "").sum()
    assert pd.Timestamp(a["as_of"]) == pd.to_datetime(raw["InvoiceDate"]).max().normalize() + \
        pd.Timedelta(days=1)
    # every answer is filled with figures, not only text
    assert a["who"]["top"] and a["characteristics"]["by_persona"]
    assert a["entry_conditions"]["rules"] and a["exit_conditions"]["exit_line"] > 0
    assert a["expected_revenue"]["method"].startswith("bottom-up")
    assert a["expected_revenue"]["backtest"]["available"] is True
    assert a["guarantee"]["out_of_time"]["available"] is True
    assert len(a["marketing_actions"]["segments"]) == a["model"]["chosen"]["k"]
    check_amounts_name_their_currency(a)
    check_segment_shares_print_alike(a)


@pytest.mark.realdata
def test_real_file_as_of_has_an_out_of_time_guarantee(real: dict, real_file: Path) -> None:
    run = real["as_of"]
    a = check_answers_contract(run)
    check_files(run)
    check_size_bounds(a)
    assert a["as_of"] == REAL_AS_OF
    tx = pd.read_parquet(run / "work/transactions.parquet", columns=["invoice_date"])
    assert tx["invoice_date"].max() < pd.Timestamp(REAL_AS_OF)
    raw = read_raw(real_file)
    later = (pd.to_datetime(raw["InvoiceDate"]) >= pd.Timestamp(REAL_AS_OF)).sum()
    assert a["data_quality"]["set_aside"]["after_as_of"] == later
    oot = a["guarantee"]["out_of_time"]
    assert oot["available"] is True
    assert (oot["chosen_on"], oot["measured_until"]) == ("2011-06-01", REAL_AS_OF)
    g, r = oot["insiders"], oot["rest"]
    assert g["customers"] == oot["group_size"] > 0 and r["customers"] > g["customers"]
    for figures in (g, r, oot["top_spenders"]):
        assert all(v is not None for v in figures.values())
    assert g["revenue"] + r["revenue"] <= oot["next_revenue_total"] + 0.01
    # the plain box says what the group spent, in pounds; the model's comparison with the
    # yardsticks is for analysts
    assert (f"spent {g['revenue_per_customer']:,.0f} GBP each over the next "
            f"{oot['months']} months") in a["guarantee"]["text"]
    assert oot["text"].partition(" of all revenue. ")[2] in a["guarantee"]["analysts"]


def test_csv_floats_have_no_negative_zero() -> None:
    """What insiders.csv and campaigns.csv show: rounded, "-0.00" never beside "0.00" (a
    sum of -1e-17 in one engine's order is 0 in another's)."""
    from insiders.catalog import csv_floats

    frame = pd.DataFrame({"return_rate": [-1e-17, -0.0, -0.004, -0.006, 1.234567],
                          "customer_id": list("abcde"), "n": [1, 2, 3, 4, 5]})
    text = csv_floats(frame, 2).to_csv(index=False, float_format="%.2f")
    assert [line.split(",")[0] for line in text.splitlines()[1:]] == [
        "0.00", "0.00", "0.00", "-0.01", "1.23"]
    assert csv_floats(frame, 2)["n"].tolist() == [1, 2, 3, 4, 5]
