"""Figures in words (insiders.wording), the one significance rule, and the proof's verdict.

These are the rules every sentence and table of the report goes through, so a figure
reads the same in the proof box and in the table beside it.
"""

from __future__ import annotations

import pytest
from insiders import wording
from insiders.config import Settings
from insiders.models.significance import significant
from insiders.publish.answers import proof, proof_verdict
from insiders.sources import get_source


@pytest.mark.parametrize(("value", "text"), [
    (0.98, "0.98"), (1.45, "1.45"), (99.5, "99.50"), (100, "100"), (7208, "7,208"),
    (1634842.4, "1,634,842"), (None, "n/a"), (float("nan"), "n/a")])
def test_amounts_keep_cents_when_small(value, text) -> None:
    assert wording.amount(value) == text


@pytest.mark.parametrize("raw", [1634842.5003, 1634842.4996, 1634842.5, 2500.125, -1234.5,
                                 99.996, 0.125])
def test_a_figure_reads_alike_unrounded_and_stored_to_the_cent(raw: float) -> None:
    """A sentence is written from a stage's float and a page from answers.json's cents: the
    same whole figure either way (halves of a unit round away from zero, not to even)."""
    assert wording.amount(raw) == wording.amount(round(raw, 2))


def test_whole_units_round_halves_away_from_zero() -> None:
    assert wording.whole(1634842.5) == "1,634,843"
    assert wording.whole(-1634842.5) == "-1,634,843"
    assert wording.whole(1634842.49) == "1,634,842"
    assert wording.whole(-0.4) == "0"
    assert wording.whole(float("nan")) == "n/a"  # a replay's missing level is no crash


def test_nearest_unit_rounds_halves_away_without_the_cents_step() -> None:
    """Days in a table: 0.5 reads 1 and 2.5 reads 3 (Metabase's 0 decimals), and 3.4958 is 3
    (whole() would round to 3.50 first and read 4, a day more than the dashboard shows)."""
    assert [wording.nearest(x) for x in (0.5, 2.5, 3.4958, 1.495139, -0.5, 0.4)] == \
        ["1", "3", "3", "1", "-1", "0"]
    assert wording.nearest(float("nan")) == "n/a" and wording.nearest(1234.5) == "1,235"


def test_large_shares_carry_thousands_separators() -> None:
    """Olist's naive rule missed by 14,943%: the backtest table read '14943.0%'."""
    assert wording.share(149.43, 1) == "14,943.0%"
    assert wording.share(149.43) == "14,943.0%"
    assert wording.share(0.154) == "15.4%"


def test_a_share_beside_its_limit_takes_the_decimals_to_differ() -> None:
    assert wording.share_beside(743 / 2967, 0.25) == "25.04%"
    assert wording.share_beside(0.30, 0.25) == "30%"
    assert wording.share_beside(0.5004, 0.5) == "50.04%"
    assert wording.share_beside(0.017, 0.02, 1) == "1.7%"
    assert wording.share_beside(0.0199999, 0.02, 1) == "just under 2.000%"
    assert wording.share_beside(0.2500001, 0.25) == "just over 25.000%"


def test_money_carries_its_currency() -> None:
    assert wording.money(0.98, "BRL") == "0.98 BRL"
    assert wording.money(7208, "GBP") == "7,208 GBP"
    assert wording.money(None, "GBP") == "n/a"


@pytest.mark.parametrize(("value", "text"), [
    (0.5, "50.0%"), (0.154, "15.4%"), (0.0397, "4.0%"), (0.0056, "0.56%"),
    (0.004, "0.40%"), (0.00035, "0.035%"), (0.0, "0%"),
    # a net of zero summed in floats (1e-17) is 0%, as the files store it; a real but
    # tiny share is bounded, never "0.0000%"
    (1e-17, "0%"), (-1e-17, "0%"), (2e-7, "<0.0001%"), (-2e-7, ">-0.0001%")])
def test_small_shares_never_read_as_zero(value, text) -> None:
    assert wording.share(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (1.0, "100.0%"), (11142 / 11145, "99.97%"), (0.9994, "99.9%"), (0.99999, "over 99.99%"),
    (1.2, "120.0%")])
def test_near_whole_shares_never_read_as_the_whole(value, text) -> None:
    """'11,142 at high risk (100.0%)' read as every Insider when 3 were not."""
    assert wording.share(value) == text


@pytest.mark.parametrize(("days", "text"), [
    (0.502, "12 hours"), (0.01, "under an hour"), (1.0, "a day"), (3.46, "3.5 days"),
    (45.2, "45 days")])
def test_durations_in_words(days, text) -> None:
    assert wording.duration_days(days) == text


def test_ratios_and_codes_in_words() -> None:
    assert wording.times(57.0146) == "57 times"
    assert wording.times(2.34) == "2.3 times"
    assert wording.times(1.01) == "about the same"
    assert wording.reason("missing_customer_id") == "no customer id"
    assert wording.reason("some_new_code") == "some new code"
    assert wording.p_value(3e-146) == "p < 0.001"
    assert wording.p_value(0.2345) == "p = 0.23"


def test_significance_follows_the_p_value_the_level_and_the_direction() -> None:
    assert significant(0.01, 0.05)
    assert not significant(0.05, 0.05)  # the level itself is not below the level
    assert significant(0.07, 0.1)
    assert not significant(0.01, 0.05, direction=False)
    assert not significant(None) and not significant(float("nan"))


def test_currency_is_the_adapters_or_the_retailers() -> None:
    retail, olist = get_source("online_retail"), get_source("olist")
    assert retail.currency_of(Settings()) == "GBP"
    assert retail.currency_of(Settings(currency="eur")) == "EUR"
    assert olist.currency_of(Settings(currency="EUR")) == "BRL"  # Olist's data is in reais
    assert (retail.region_label, olist.region_label) == ("Country", "State")


def test_the_currency_setting_is_read_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("INSIDERS_CURRENCY", "USD")
    assert get_source("online_retail").currency_of(Settings.from_env()) == "USD"


def _oot(ins: float, rest: float, p: float) -> dict:
    return {"available": True, "chosen_on": "2018-05-30", "months": 3,
            "insiders": {"customers": 10071, "revenue_per_customer": ins,
                         "share_of_next_revenue": 0.004},
            "rest": {"customers": 62000, "revenue_per_customer": rest},
            "insiders_vs_rest": {"p_value": p, "alpha": 0.05}, "text": ""}


VS_REST = {"monetary": {"ratio": 4.4, "difference": 312.0, "ci95": [305.0, 320.0],
                        "p_value": 1e-90, "alpha": 0.05}}


def test_the_proof_holds_only_when_significant_and_the_right_way() -> None:
    """The issue's Olist box: 0.98 vs 0.77 BRL, not significant, was green and read
    'spent 1 each ... brought 0%'. Now it says the proof does not hold, with cents."""
    weak = proof(VS_REST, _oot(0.98, 0.77, 0.31), "BRL")
    assert weak["verdict"] == "not_significant" and weak["tone"] == "warn"
    assert weak["text"].startswith("The proof does not hold yet")
    assert "0.98 BRL each" in weak["text"] and "0.77 BRL for the rest" in weak["text"]
    assert "0.40% of all revenue" in weak["text"] and " 0%" not in weak["text"]
    strong = proof(VS_REST, _oot(1.45, 0.68, 1e-5), "BRL")
    assert (strong["verdict"], strong["tone"], strong["holds"]) == ("holds", "ok", True)
    worse = proof(VS_REST, _oot(0.5, 0.9, 1e-5), "BRL")
    assert (worse["verdict"], worse["tone"]) == ("wrong_direction", "bad")
    assert worse["text"].startswith("The proof does not hold:")
    # the same p-value at a looser stated level holds: the level decides, nothing else
    loose = _oot(0.98, 0.77, 0.08)
    loose["insiders_vs_rest"]["alpha"] = 0.1
    assert proof_verdict(loose) == "holds"
    assert proof_verdict({"available": False, "text": "too little history"}) == "untested"


def test_the_plain_proof_leaves_the_statistics_to_analysts() -> None:
    said = proof(VS_REST, _oot(1.45, 0.68, 1e-5), "BRL")
    for jargon in ("p=", "p <", "CI", "Mann-Whitney", "interval"):
        assert jargon not in said["text"]
    assert "Mann-Whitney p < 0.001: significant at the 5% level" in said["analysts"]
