"""Evaluation: bootstrap intervals, group comparisons, the out-of-time check and cohorts.

The statistics are checked on samples whose true answer is known; the
out-of-time figures against a direct recomputation from the demo shop's
transactions; cohorts on a frame built by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import default_as_of, run_stage
from insiders import stages
from insiders.catalog import RunFolder
from insiders.config import SelectionRules, Windows
from insiders.models import clv, valuation
from insiders.models import evaluation as ev

W, R = Windows(), SelectionRules()

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- statistics


def test_bootstrap_interval_holds_the_true_difference_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(10, 2, 400), rng.normal(7, 2, 400)  # true difference 3
    diff, lo, hi = ev.bootstrap_mean_diff(a, b, n_boot=1000, seed=5)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert lo < 3 < hi and lo < diff < hi
    # standard error sqrt(4/400 + 4/400) = 0.141: a 95% interval about 2 x 1.96 x 0.141 wide
    assert hi - lo == pytest.approx(0.554, abs=0.1)
    assert ev.bootstrap_mean_diff(a, b, n_boot=1000, seed=5) == (diff, lo, hi)
    assert ev.bootstrap_mean_diff(a, b, n_boot=1000, seed=6)[1:] != (lo, hi)


def test_bootstrap_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(60):
        a, b = rng.lognormal(3, 1, 300), rng.lognormal(2.5, 1, 300)  # skewed, like spend
        _, lo, hi = ev.bootstrap_mean_diff(a, b, n_boot=400, seed=i)
        hits += lo < math.exp(3.5) - math.exp(3.0) < hi  # e^(mu + 1/2) - e^(2.5 + 1/2)
    assert hits >= 51  # 95% of 60 is 57; 51 leaves room for the bootstrap's own error


def test_bootstrap_ignores_missing_values_and_empty_groups() -> None:
    diff, _, _ = ev.bootstrap_mean_diff(np.array([1.0, np.nan, 3.0]), np.array([1.0]), 100, 1)
    assert diff == 1.0  # mean(1, 3) - 1
    assert all(math.isnan(x) for x in ev.bootstrap_mean_diff(np.array([]), np.array([1.0]), 100, 1))


def test_compare_on_a_hand_made_sample() -> None:
    values = np.array([10.0, 20, 30, 1, 2, 3, 4])
    group = np.array([True, True, True, False, False, False, False])
    out = ev.compare(values, group, n_boot=500, seed=1)
    assert (out["insiders_mean"], out["rest_mean"]) == (20, 2.5)
    assert (out["insiders_median"], out["rest_median"]) == (20, 2.5)
    assert out["difference"] == 17.5 and out["ratio"] == 8.0
    # every insider beats every other customer: the exact two-sided Mann-Whitney p-value is
    # 2 / C(7, 3) = 2/35; above 0.05, so not significant despite the clear gap
    assert out["p_value"] == pytest.approx(2 / 35)
    assert out["ci95"][0] > 0 and not out["significant"]
    # the same pattern on more customers is significant
    big = ev.compare(np.concatenate([values[:3]] * 4 + [values[3:]] * 4),
                     np.concatenate([group[:3]] * 4 + [group[3:]] * 4), n_boot=500, seed=1)
    assert big["p_value"] < 0.05 and big["significant"]


def test_insiders_vs_rest_uses_active_customers_only() -> None:
    customers = pd.DataFrame({
        "has_purchase": [True, True, True, True, True, False],
        "is_insider": [True, True, False, False, False, False],
        "monetary": [100.0, 200, 10, 20, 30, 1_000_000],  # the inactive one would dominate
        "frequency": [10, 20, 1, 2, 3, 0],
        **{k: 1.0 for k in ("avg_ticket", "recency_days", "revenue_90d", "return_rate",
                            "basket_size")},
    })
    out = ev.insiders_vs_rest(customers, n_boot=200, seed=42)
    assert list(out) == list(ev.KEY_FIGURES)
    assert (out["monetary"]["insiders_mean"], out["monetary"]["rest_mean"]) == (150, 20)
    assert out["monetary"]["ratio"] == 7.5
    assert out["frequency"]["difference"] == 15 - 2
    assert out["monetary"]["label"] == ev.KEY_FIGURES["monetary"]


# --------------------------------------------------------------------------- out of time


@pytest.fixture(scope="module")
def demo_tx(demo_file: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    run = tmp_path_factory.mktemp("evaluation")
    run_stage(stages.extract, run, demo_file)
    run_stage(stages.quality, run, as_of=default_as_of(run))
    return RunFolder(run).transactions()


def out_of_time(tx: pd.DataFrame, as_of: pd.Timestamp, n_boot: int = 500,
                method: str = "past_spend") -> dict:
    """The check as the evaluate stage runs it: the value models' per-day activity first."""
    days = clv.activity(tx[tx["invoice_date"] < as_of])
    return ev.out_of_time(days, valuation.FitCache(days, 12), as_of, method, W, R, n_boot, 42)


@pytest.fixture(scope="module")
def oot(demo_tx: pd.DataFrame) -> dict:
    return out_of_time(demo_tx, pd.Timestamp("2011-12-10"))


def test_out_of_time_figures_add_up(demo_tx: pd.DataFrame, oot: dict) -> None:
    cut, end = pd.Timestamp("2011-09-10"), pd.Timestamp("2011-12-10")
    assert oot["available"] and oot["chosen_on"] == "2011-09-10"
    assert oot["measured_until"] == "2011-12-10" and oot["months"] == 3
    tx = demo_tx.assign(customer_id=demo_tx["customer_id"].astype("str"))
    # customers known at the cut: a purchase in the 12 months before it
    period = tx[(tx["invoice_date"] >= cut - pd.DateOffset(months=12))
                & (tx["invoice_date"] < cut)]
    known = set(period.loc[(period["quantity"] > 0) & ~period["is_cancellation"], "customer_id"])
    after = tx[(tx["invoice_date"] >= cut) & (tx["invoice_date"] < end)]
    spent = after.groupby("customer_id")["revenue"].sum()
    g, r, t = oot["insiders"], oot["rest"], oot["top_spenders"]
    assert g["customers"] + r["customers"] == len(known)
    assert g["revenue"] + r["revenue"] == pytest.approx(spent.reindex(sorted(known)).sum(),
                                                        abs=0.02)
    # the total includes customers who arrived after the cut
    assert oot["next_revenue_total"] == pytest.approx(after["revenue"].sum(), abs=0.01)
    assert oot["next_revenue_total"] > g["revenue"] + r["revenue"]
    # ... and names them, so the shares shown add up to the whole
    u = oot["not_ranked"]
    newcomers = spent[~spent.index.isin(known)]
    assert u["customers"] == len(newcomers) > 0
    assert u["revenue"] == pytest.approx(newcomers.sum(), abs=0.02)
    assert g["revenue"] + r["revenue"] + u["revenue"] == pytest.approx(
        oot["next_revenue_total"], abs=0.03)
    assert (g["share_of_next_revenue"] + r["share_of_next_revenue"]
            + u["share_of_next_revenue"]) == pytest.approx(1, abs=3e-4)
    for x in (g, r, t):
        assert x["revenue_per_customer"] == pytest.approx(x["revenue"] / x["customers"],
                                                          abs=0.01)
        assert x["share_of_next_revenue"] == pytest.approx(
            x["revenue"] / oot["next_revenue_total"], abs=1e-4)
    n = oot["group_size"]
    assert g["customers"] == t["customers"] == n
    assert math.ceil(0.05 * len(known)) <= n <= math.floor(0.20 * len(known))
    assert oot["insiders_vs_rest"]["insiders_mean"] == pytest.approx(g["revenue_per_customer"],
                                                                     abs=0.01)
    # the alternative: the n biggest net spenders of the 12 months before the cut
    past = period.groupby("customer_id")["revenue"].sum().reindex(sorted(known))
    top = past.reset_index().sort_values(["revenue", "customer_id"],
                                         ascending=[False, True]).head(n)["customer_id"]
    assert t["revenue"] == pytest.approx(spent.reindex(top).fillna(0).sum(), abs=0.02)
    assert f"the {n} Insiders spent" in oot["text"]
    assert len(oot["member_ids"]) == n and set(oot["member_ids"]) <= known


def test_out_of_time_members_are_chosen_on_what_was_known_then(demo_tx: pd.DataFrame,
                                                               oot: dict) -> None:
    """Changing the months after the cut changes what is measured, never who was chosen."""
    after = demo_tx["invoice_date"] >= pd.Timestamp("2011-09-10")
    doubled = demo_tx.copy()
    doubled.loc[after, "revenue"] *= 2
    again = out_of_time(doubled, pd.Timestamp("2011-12-10"))
    assert again["member_ids"] == oot["member_ids"]
    assert again["insiders"]["revenue"] == pytest.approx(2 * oot["insiders"]["revenue"])
    assert again["next_revenue_total"] == pytest.approx(2 * oot["next_revenue_total"])


def test_out_of_time_when_nothing_was_bought_after_the_cut(demo_tx: pd.DataFrame) -> None:
    before_cut = demo_tx[demo_tx["invoice_date"] < pd.Timestamp("2011-09-10")]
    out = out_of_time(before_cut.reset_index(drop=True), pd.Timestamp("2011-12-10"), 200)
    assert out["insiders"]["revenue"] == 0 and out["text"]


def test_out_of_time_is_deterministic(demo_tx: pd.DataFrame, oot: dict) -> None:
    assert out_of_time(demo_tx, pd.Timestamp("2011-12-10")) == oot


def test_out_of_time_says_so_when_history_is_too_short(demo_tx: pd.DataFrame) -> None:
    # only lines from 2011-08-20: the cut 2011-09-10 has 21 days of history before it
    recent = demo_tx[demo_tx["invoice_date"] >= pd.Timestamp("2011-08-20")]
    out = out_of_time(recent.reset_index(drop=True), pd.Timestamp("2011-12-10"), 200)
    assert out["available"] is False
    assert out["text"].startswith("Not enough history for an out-of-time check")
    assert "2011-09-10" in out["text"]


# --------------------------------------------------------------------------- cohorts


def _lines(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "invoice_date", "quantity"])
    frame["invoice_date"] = pd.to_datetime(frame["invoice_date"])
    frame["is_cancellation"] = frame["quantity"] < 0
    return frame


def test_cohorts_on_a_hand_built_frame() -> None:
    tx = _lines([
        ("A", "2011-01-05", 1), ("A", "2011-02-10", 1), ("A", "2011-02-20", 1),  # Jan: 0, 1
        ("A", "2011-03-01", 1),  # and 2
        ("B", "2011-01-20", 1),  # Jan: 0
        ("C", "2011-02-03", 1), ("C", "2011-03-15", 1),  # Feb: 0, 1
        ("D", "2010-06-01", 1), ("D", "2011-01-10", 1),  # first purchase before the period
        ("E", "2011-01-07", -1), ("E", "2011-03-01", 1),  # a return is not a first purchase
        ("F", "2011-12-01", 1),  # on the as-of date: not known yet
        ("G", "2011-02-14", 1), ("G", "2011-12-01", 1),  # Feb: 0 (the later one not known)
    ])
    got = ev.cohorts(tx, pd.Timestamp("2011-12-01"), 12)
    expected = pd.DataFrame(
        {"customers": [2, 2, 1],
         0: [1.0, 1.0, 1.0],
         1: [0.5, 0.5, 0.0],  # A of {A, B}; C of {C, G}
         2: [0.5, 0.0, 0.0]},  # A
        index=pd.Index(["2011-01", "2011-02", "2011-03"], name="cohort"))
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_cohort_months_are_contiguous() -> None:
    tx = _lines([("A", "2011-01-05", 1), ("A", "2011-02-10", 1), ("A", "2011-04-01", 1),
                 ("B", "2011-01-20", 1)])
    got = ev.cohorts(tx, pd.Timestamp("2011-12-01"), 12)
    assert list(got.columns) == ["customers", 0, 1, 2, 3]
    assert got.loc["2011-01", 2] == 0.0


def test_cohorts_without_purchases_are_empty() -> None:
    assert ev.cohorts(_lines([("A", "2011-01-05", -1)]), pd.Timestamp("2011-12-01"), 12).empty


def test_a_month_that_has_not_begun_is_unknown_not_zero() -> None:
    # as of 2011-04-01 the data ends on 31 March: April is not a month with 0% buying again
    tx = _lines([("A", "2011-02-05", 1), ("B", "2011-03-20", 1), ("A", "2011-03-02", 1)])
    got = ev.cohorts(tx, pd.Timestamp("2011-04-01"), 12)
    assert got.loc["2011-02", 1] == 1.0
    assert np.isnan(got.loc["2011-03", 1])  # March's cohort has lived through no April
    # a run inside a month keeps that month: it is partial, and marked so in the report
    inside = ev.cohorts(tx, pd.Timestamp("2011-03-10"), 12)
    assert inside.loc["2011-02", 1] == 1.0
