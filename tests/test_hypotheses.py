"""Business hypotheses: verdicts that follow from the p-value and the direction, always.

Small frames whose figures can be worked out by hand, then the real file (`realdata`).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from insiders.models import hypotheses as hyp

AS_OF = pd.Timestamp("2011-12-10")


def _tx(lines: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    """(customer, date, quantity, unit price) -> the transactions layout."""
    frame = pd.DataFrame(lines, columns=["customer_id", "invoice_date", "quantity", "unit_price"])
    frame["invoice_date"] = pd.to_datetime(frame["invoice_date"], format="ISO8601")
    frame["revenue"] = frame["quantity"] * frame["unit_price"]
    frame["is_return"] = frame["quantity"] < 0
    frame["is_cancellation"] = frame["is_return"]
    frame["invoice"] = [("C" if q < 0 else "") + str(536365 + i)
                        for i, q in enumerate(frame["quantity"])]
    frame["customer_id"] = frame["customer_id"].astype("category")
    return frame


def _customers(insiders: list[str], rest: list[str]) -> pd.DataFrame:
    ids = insiders + rest
    return pd.DataFrame({"customer_id": ids, "is_insider": [c in insiders for c in ids],
                         "has_purchase": True})


INS = [f"I{i}" for i in range(6)]
REST = [f"R{i}" for i in range(6)]


def _check_verdict_rule(result: dict) -> None:
    test = result["test"]
    if test["p_value"] is None:
        assert result["verdict"] is False and result["text"].startswith("Not shown")
        return
    expected = test["p_value"] < test["alpha"] and test["direction_as_stated"]
    assert result["verdict"] is bool(expected)
    word = "True" if expected else (
        "False" if not test["direction_as_stated"] else "Not shown")
    assert result["text"].startswith(f"{word}: ")


def test_insiders_who_return_nothing_return_less() -> None:
    # Insiders buy 10 x 1.00 and return nothing; the rest buy 10 x 1.00 and return 5 of them
    lines = [(c, "2011-06-01", 10, 1.0) for c in INS + REST]
    lines += [(c, "2011-06-08", -5, 1.0) for c in REST]
    result = hyp.insiders_return_less(_tx(lines), pd.Series(
        [True] * 6 + [False] * 6, index=INS + REST))
    f = result["figures"]
    assert (f["insiders_mean_return_share"], f["rest_mean_return_share"]) == (0.0, 0.5)
    assert (f["insiders_with_a_return"], f["rest_with_a_return"]) == (0.0, 1.0)
    assert f["prob_insider_higher"] == 0.0  # every Insider below every other customer
    # U = 0 with all 6 x 6 pairs below: the exact one-sided p is 1 / C(12, 6) = 1/924 ...
    # scipy uses the normal approximation with ties here; it is well below 0.05 either way
    assert result["test"]["p_value"] < 0.01
    assert result["verdict"] is True
    _check_verdict_rule(result)


def test_insiders_who_return_more_make_the_hypothesis_false() -> None:
    lines = [(c, "2011-06-01", 10, 1.0) for c in INS + REST]
    lines += [(c, "2011-06-08", -2 - int(c[1]), 1.0) for c in INS]  # 20% .. 70% returned
    result = hyp.insiders_return_less(_tx(lines), pd.Series(
        [True] * 6 + [False] * 6, index=INS + REST))
    assert result["figures"]["insiders_mean_return_share"] == pytest.approx(0.45)
    assert result["test"]["direction_as_stated"] is False
    assert result["verdict"] is False and "goes the other way" in result["analysts"]
    _check_verdict_rule(result)


def test_returns_per_customer_and_all_together_disagreeing_is_explained() -> None:
    """Every Insider returns 2 of 10 (20%); five other customers return nothing and one
    large buyer returns 500 of 1,000: per customer the Insiders return more (the verdict),
    all together less (12 of 60 against 500 of 1,050). The text says why both hold."""
    lines = [(c, "2011-06-01", 10, 1.0) for c in INS + REST[:5]]
    lines += [(c, "2011-06-08", -2, 1.0) for c in INS]
    lines += [(REST[5], "2011-06-01", 1000, 1.0), (REST[5], "2011-06-08", -500, 1.0)]
    result = hyp.insiders_return_less(_tx(lines), pd.Series(
        [True] * 6 + [False] * 6, index=INS + REST))
    f = result["figures"]
    assert f["insiders_mean_return_share"] == pytest.approx(0.2)
    assert f["rest_mean_return_share"] == pytest.approx(0.5 / 6, abs=1e-4)
    assert f["insiders_value_returned"] == pytest.approx(0.2)
    assert f["rest_value_returned"] == pytest.approx(500 / 1050, abs=1e-4)
    assert result["verdict"] is False
    assert "point different ways: the verdict compares customers one by one" in result["text"]
    _check_verdict_rule(result)


def test_agreeing_return_measures_need_no_explanation() -> None:
    lines = [(c, "2011-06-01", 10, 1.0) for c in INS + REST]
    lines += [(c, "2011-06-08", -5, 1.0) for c in REST]
    result = hyp.insiders_return_less(_tx(lines), pd.Series(
        [True] * 6 + [False] * 6, index=INS + REST))
    assert "different ways" not in result["text"]


def test_autumn_concentration() -> None:
    # Insiders buy only in October, the rest only in March: shares 1.0 and 0.0
    lines = [(c, "2011-10-03", 1, 5.0) for c in INS] + [(c, "2011-03-03", 1, 5.0) for c in REST]
    flags = pd.Series([True] * 6 + [False] * 6, index=INS + REST)
    start = AS_OF - pd.DateOffset(months=12)
    result = hyp.insiders_spend_more_in_autumn(_tx(lines), flags, start, AS_OF)
    f = result["figures"]
    assert (f["insiders_mean_autumn_share"], f["rest_mean_autumn_share"]) == (1.0, 0.0)
    assert f["autumn_days_in_period"] == 30 + 31 + 30
    assert result["verdict"] is True
    _check_verdict_rule(result)
    # a period without autumn days cannot test it: false, and said so
    spring = hyp.insiders_spend_more_in_autumn(_tx(lines), flags, pd.Timestamp("2011-01-01"),
                                               pd.Timestamp("2011-06-01"))
    assert spring["verdict"] is False and spring["test"]["p_value"] is None
    assert "no day of September to November" in spring["text"]


def test_early_repeaters() -> None:
    """10 new customers come back within 30 days (8 become Insiders), 10 do not (none do).

    Fisher's exact one-sided p: P(X >= 8), X ~ Hypergeometric(20 customers, 8 Insiders,
    10 repeaters) = C(8,8) C(12,2) / C(20,10) = 66 / 184,756.
    """
    rep = [f"A{i}" for i in range(10)]
    one = [f"B{i}" for i in range(10)]
    lines = [("OLD", "2010-12-01", 1, 1.0)]  # the data begin here
    lines += [(c, "2011-03-01", 1, 1.0) for c in rep + one]
    lines += [(c, "2011-03-20", 1, 1.0) for c in rep]  # 19 days later
    lines += [(c, "2011-06-01", 1, 1.0) for c in one]  # 92 days later: not within 30
    # bought again on the first day only: not a return visit
    lines += [("B0", "2011-03-01 15:00", 1, 1.0)]
    insiders = rep[:8]
    flags = pd.Series([c in insiders for c in rep + one + ["OLD"]], index=rep + one + ["OLD"])
    result = hyp.early_repeaters_become_insiders(_tx(lines), flags, AS_OF)
    f = result["figures"]
    assert (f["customers"], f["repeaters"], f["repeaters_insiders"]) == (20, 10, 8)
    assert (f["others"], f["others_insiders"]) == (10, 0)
    assert f["repeaters_insider_rate"] == 0.8 and f["others_insider_rate"] == 0.0
    assert result["test"]["p_value"] == pytest.approx(66 / math.comb(20, 10))
    assert result["verdict"] is True
    assert "80.0% of the 10 new customers" in result["text"]
    _check_verdict_rule(result)


def test_early_repeaters_leave_out_customers_from_before_the_data() -> None:
    """A customer first seen in the data's first 30 days was a customer before it began."""
    lines = [("OLD", "2010-12-01", 1, 1.0), ("OLD", "2010-12-05", 1, 1.0)]
    lines += [(f"N{i}", "2011-05-01", 1, 1.0) for i in range(12)]
    flags = pd.Series(True, index=["OLD"] + [f"N{i}" for i in range(12)])
    result = hyp.early_repeaters_become_insiders(_tx(lines), flags, AS_OF)
    assert result["figures"]["customers"] == 12  # OLD is left out
    assert result["figures"]["repeaters"] == 0
    assert result["verdict"] is False and result["test"]["p_value"] is None  # nobody came back


def test_evaluate_hypotheses_on_a_small_run() -> None:
    lines = [(c, "2011-10-03", 10, 1.0) for c in INS] + [(c, "2011-03-03", 10, 1.0)
                                                         for c in REST]
    lines += [(c, "2011-03-10", -5, 1.0) for c in REST]
    results = hyp.evaluate_hypotheses(_tx(lines), _customers(INS, REST), AS_OF)
    assert [r["id"] for r in results] == ["insiders_return_less",
                                          "insiders_spend_more_in_autumn",
                                          "early_repeaters_become_insiders"]
    for r in results:
        assert set(r) >= {"statement", "verdict", "figures", "test", "text"}
        _check_verdict_rule(r)
        json.dumps(r, allow_nan=False)  # JSON-ready, no NaN


# --------------------------------------------------------------------------- the real file


@pytest.fixture(scope="module")
def real_run(real_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hyp") / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDERS_")}
    env["INSIDERS_HOME"] = str(out.parent / "home")
    command = [str(Path(sys.executable).with_name("insiders")), "run", "--input",
               str(real_file), "--as-of", "2011-12-10", "--out", str(out), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.realdata
def test_hypotheses_on_the_real_file(real_run: Path) -> None:
    tx = pd.read_parquet(real_run / "work" / "transactions.parquet")
    customers = pd.read_parquet(real_run / "customers.parquet")
    results = hyp.evaluate_hypotheses(tx, customers, AS_OF)
    for r in results:
        _check_verdict_rule(r)
        assert r["test"]["p_value"] is not None, r["text"]  # the real file tests all three
        print(r["text"])
    returns = results[0]["figures"]
    # recomputed independently: Insiders' returned value over their bought value
    period = tx[(tx["invoice_date"] >= AS_OF - pd.DateOffset(months=12))
                & (tx["invoice_date"] < AS_OF)]
    members = set(customers.loc[customers["is_insider"], "customer_id"].astype("str"))
    mine = period[period["customer_id"].astype("str").isin(members)]
    bought = mine.loc[mine["quantity"] > 0, "revenue"].sum()
    back = -mine.loc[mine["quantity"] < 0, "revenue"].sum()
    assert returns["insiders_value_returned"] == pytest.approx(back / bought, abs=1e-4)
    assert returns["insiders_customers"] == len(members)
    early = results[2]["figures"]
    assert early["repeaters"] + early["others"] == early["customers"] > 1000
