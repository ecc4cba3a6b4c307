"""Insiders: group size, entry/exit lines, the plain-language conditions, the value model.

The selection is checked on 100 customers whose expected values are 100, 99,
..., 1 (customer c001 expects 100, c100 expects 1), so every line and rank
follows by hand; the value model on a small synthetic shop where a huge order
after the as-of date must stay invisible.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from insiders import wording
from insiders.config import SelectionRules, Windows
from insiders.models import insiders as ins

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- group size


def test_group_size_skewed_is_raised_to_the_floor() -> None:
    # one whale holds 1000 of 1099: one customer already brings 50%, the floor is 5% of 100
    size, rule = ins.group_size(np.array([1000.0] + [1.0] * 99))
    assert size == 5
    assert "raised to the 5% floor (5)" in rule


def test_group_size_flat_is_capped() -> None:
    # everyone expects the same: 50% needs 50 customers, the cap is 20% of 100
    size, rule = ins.group_size(np.ones(100))
    assert size == 20
    assert "would need the top 50 spenders; capped at 20% (20)" in rule


def test_group_size_natural_inside_the_bounds() -> None:
    # 10 customers of 10 and 90 of 1: 9 bring 90/190 = 47%, 10 bring 100/190 = 53%
    size, rule = ins.group_size(np.array([10.0] * 10 + [1.0] * 90))
    assert size == 10
    assert "as many as the top spenders who together bring 50%" in rule


def test_group_size_edge_cases() -> None:
    assert ins.group_size(np.array([]))[0] == 0
    assert ins.group_size(np.zeros(40))[0] == 8  # nobody expected to spend: the 20% cap


@pytest.mark.parametrize("n", [20, 57, 300, 4_261])
@pytest.mark.parametrize("sigma", [0.0, 0.5, 1.5, 3.0])
def test_group_size_stays_within_the_bounds(n: int, sigma: float) -> None:
    """From flat (sigma 0) to extremely skewed spend, the group is 5%..20% of customers."""
    values = np.random.default_rng(n).lognormal(5, sigma, n)
    size, _ = ins.group_size(values, SelectionRules(0.5, 0.05, 0.20))
    assert math.ceil(0.05 * n) <= size <= math.floor(0.20 * n)


# --------------------------------------------------------------------------- selection


def ladder(n: int = 100) -> pd.DataFrame:
    """c001 expects n, c002 n-1, ... cNNN 1; everyone bought in the period."""
    return pd.DataFrame({
        "customer_id": [f"c{i:03d}" for i in range(1, n + 1)],
        "expected_value": np.arange(n, 0, -1, dtype=float),
        "monetary": np.arange(n, 0, -1, dtype=float) * 4,
        "has_purchase": True,
    })


def test_lines_and_ranks_on_the_ladder() -> None:
    # value_coverage 0.18: the top 9 bring (100+...+92)/5050 = 17.1%, the top 10 18.9%,
    # so 10 enter; the exit rank is 1.5 x 10 = 15 (below the 20% cap of 20)
    out, sel = ins.select(ladder(), None, SelectionRules(value_coverage=0.18))
    assert (sel.size, sel.exit_rank, sel.active) == (10, 15, 100)
    assert (sel.entry_line, sel.exit_line) == (91, 86)  # values of ranks 10 and 15
    assert out["value_rank"].tolist() == list(range(1, 101))
    assert out["is_insider"].sum() == 10 and out["is_insider"].iloc[:10].all()
    assert set(out["membership"]) == {"entered", "outside"}
    assert sel.coverage == pytest.approx(955 / 5050)


def test_hysteresis() -> None:
    frame = pd.concat([ladder(), pd.DataFrame({
        "customer_id": ["c999"], "expected_value": [0.0], "monetary": [-20.0],
        "has_purchase": [False]})], ignore_index=True)
    previous = {"c003", "c012", "c015", "c018", "c999"}
    out, sel = ins.select(frame, previous, SelectionRules(value_coverage=0.18))
    status = dict(zip(out["customer_id"], out["membership"], strict=True))
    insider = dict(zip(out["customer_id"], out["is_insider"], strict=True))
    assert (sel.entry_line, sel.exit_line) == (91, 86)
    assert status["c003"] == "stayed"  # above the entry line
    assert status["c012"] == "stayed" and insider["c012"]  # between the lines (89)
    assert status["c015"] == "stayed" and insider["c015"]  # exactly on the exit line (86)
    assert status["c018"] == "left" and not insider["c018"]  # below it (83)
    assert status["c999"] == "left" and not insider["c999"]  # no purchase in the period
    assert status["c013"] == "outside" and not insider["c013"]  # a newcomer at 88 waits
    assert status["c010"] == "entered"  # on the entry line
    assert status["c011"] == "outside"
    # 9 entered (ranks 1-10 but c003) + 3 stayed
    assert out["is_insider"].sum() == 12
    assert out.loc[out["is_insider"], "value_rank"].max() <= math.floor(0.20 * 100)
    reasons = dict(zip(out["customer_id"], out["membership_reason"], strict=True))
    assert reasons["c012"] == "expected spend 89 >= exit line 86"
    assert reasons["c018"] == "expected spend 83 < exit line 86"
    assert reasons["c013"] == "expected spend 88 < entry line 91"
    assert reasons["c999"] == "no purchase in the analysed period"
    assert out.loc[out["customer_id"] == "c999", "value_rank"].item() == 0


def test_exit_line_never_goes_below_the_top_max_share() -> None:
    # natural size 20 (the cap): the exit rank 1.5 x 20 = 30 is capped at 20 as well
    out, sel = ins.select(ladder(), previous_members={"c021", "c025"})
    assert (sel.size, sel.exit_rank) == (20, 20)
    assert not out.loc[out["customer_id"].isin(["c021", "c025"]), "is_insider"].any()


@pytest.mark.parametrize("seed", range(5))
def test_members_are_always_within_the_top_max_share(seed: int) -> None:
    """Whatever the previous members, the group is between 5% and 20% and all in the top 20%."""
    rng = np.random.default_rng(seed)
    n = 500
    frame = pd.DataFrame({
        "customer_id": [f"{12346 + i}" for i in range(n)],
        "expected_value": rng.lognormal(4, 1.2 + seed / 4, n).round(2),
        "monetary": rng.lognormal(5, 1, n),
        "has_purchase": True,
    })
    previous = set(frame["customer_id"].sample(200, random_state=seed))
    out, sel = ins.select(frame, previous)
    members = out[out["is_insider"]]
    assert math.ceil(0.05 * n) <= len(members) <= math.floor(0.20 * n)
    assert members["value_rank"].max() <= math.floor(0.20 * n)
    # everyone above the entry line is in; every previous member above the exit line stayed
    assert out.loc[out["value_rank"] <= sel.size, "is_insider"].all()
    kept = out["customer_id"].isin(previous) & (out["value_rank"] <= sel.exit_rank)
    assert (out.loc[kept, "membership"] == "stayed").all()


# --------------------------------------------------------------------------- conditions


def test_conditions_in_plain_language_with_honest_agreement() -> None:
    """Ten Insiders: nine big spenders and one small spender the value model likes.

    A tree (leaves of at least 5 customers) cannot isolate the one, so the best rule
    is "net spend at least 750" (the midpoint between 500, the largest spend outside,
    and 1000, the smallest among the nine): right for 99 of 100 customers, every
    predicted Insider is one (precision 1), 9 of the 10 are found (recall 0.9).
    """
    n = 100
    monetary = np.concatenate([np.linspace(1000, 1900, 9), [50.0],
                               np.linspace(100, 500, 90)])
    expected = np.concatenate([np.arange(109, 100, -1), [100.0], np.ones(90)])
    frame = pd.DataFrame({
        "customer_id": [f"{12346 + i}" for i in range(n)], "expected_value": expected,
        "monetary": monetary, "has_purchase": True,
        # the other rule features carry no information
        "revenue_90d": 10.0, "frequency": 3, "recency_days": 20.0, "avg_ticket": 30.0,
        "tenure_days": 300.0, "purchases_per_month": 0.5,
    })
    # value_coverage 0.9: the top 10 bring 1045/1135 = 92%, the top 9 83%
    chosen, sel = ins.select(frame, None, SelectionRules(value_coverage=0.9))
    assert sel.size == 10 and chosen["is_insider"].iloc[:10].all()
    cond = ins.derive_conditions(chosen, sel, Windows(), seed=42)
    # the split (a midpoint, 750) reads as the smallest figure past it: a member's own 1,000
    assert cond.rules == ["net spend in the last 12 months at least 1,000"]
    assert (cond.agreement, cond.precision, cond.recall) == (0.99, 1.0, 0.9)
    # the same figures, computed directly from the rule
    pred = chosen["monetary"] >= 1000
    truth = chosen["is_insider"]
    assert (pred == truth).mean() == cond.agreement
    assert (pred & truth).sum() / pred.sum() == cond.precision
    assert (pred & truth).sum() / truth.sum() == cond.recall
    assert cond.entry_text.startswith(
        "A customer enters the Insiders when their expected net spend over the next 3 months "
        "is at least 100 - today the top 10 of 100 active customers (10.0%).")
    # rank 15 is one of the 90 customers expecting 1
    assert "falls below 1 (the top 15, 15.0% of active customers)" in cond.exit_text


def test_conditions_read_as_sentences() -> None:
    """Recency and purchase counts become words, not feature names and symbols."""
    assert ins._clause("recency_days", "<=", 30.0, "12 months") == (
        "last purchase within 30 days")
    assert ins._clause("recency_days", ">=", 31.0, "12 months") == (
        "last purchase at least 31 days ago")
    assert ins._clause("frequency", ">=", 5.0, "12 months") == (
        "at least 5 purchases in the last 12 months")
    assert ins._clause("revenue_90d", ">=", 1234.4, "12 months") == (
        "net spend in the last 90 days at least 1,234")
    # two bounds on one feature along a branch keep the tighter
    assert ins._merge([("monetary", ">=", 500.0), ("monetary", ">=", 750.0),
                       ("frequency", "<=", 9.0), ("frequency", "<=", 4.0)]) == [
        ("monetary", ">=", 750.0), ("frequency", "<=", 4.0)]


def test_a_split_reads_as_the_customers_figures_either_side() -> None:
    """A tree splits between two customers' figures (11.5 days, 2.5 purchases); the rule
    names the figures that select the same customers: within 11 days, at least 12 days
    ago; at most 2, at least 3. Compared as the tree does, in float32."""
    days = np.array([3.0, 11.0, 12.0, 40.0])
    assert ins._snap(days, 11.5) == (11.0, 12.0)
    assert ins._snap(np.array([1.0, 2.0, 3.0, 7.0]), 2.5) == (2.0, 3.0)
    # a figure float32 rounds onto the threshold goes left, as in scikit-learn's tree
    near = np.float64(np.float32(0.1))
    assert ins._snap(np.array([0.0, 0.1, 1.0]), float(near))[0] == pytest.approx(0.1)


def test_figures_either_side_of_a_split_read_apart() -> None:
    """109.90 and 110.10 both round to 110: a branch "at most 110" beside one "at least
    110" would not say where 110 goes, so the split gets the decimals that tell them apart."""
    assert ins._digits("revenue_90d", 109.9, 110.1) == 2
    assert ins._clause("revenue_90d", "<=", 109.9, "12 months", "BRL", 2) == (
        "net spend in the last 90 days at most 109.90 BRL")
    assert ins._digits("monetary", 5204.3, 5222.1) == 0  # whole units already differ
    assert ins._digits("purchases_per_month", 0.52, 0.54) == 2
    assert ins._digits("frequency", 2.0, 3.0) == 0
    assert ins._digits("tenure_days", 50.26, 50.4) == 0  # days stay whole


def test_a_rule_on_the_value_figure_names_the_entry_line() -> None:
    """When membership is past spend itself, the tree's rule and the entry line give one
    figure: the smallest member's spend."""
    n = 200
    rng = np.random.default_rng(3)
    monetary = np.round(rng.lognormal(6, 1, n), 2)
    frame = pd.DataFrame({
        "customer_id": [f"c{i:03d}" for i in range(n)], "expected_value": monetary,
        "monetary": monetary, "has_purchase": True,
        "revenue_90d": rng.uniform(0, 10, n), "frequency": rng.integers(1, 9, n),
        "recency_days": rng.integers(0, 300, n).astype(float),
        "avg_ticket": rng.uniform(10, 50, n), "tenure_days": 400.0,
        "purchases_per_month": rng.uniform(0, 2, n)})
    chosen, sel = ins.select(frame, None, SelectionRules(value_coverage=0.5),
                             value="monetary")
    cond = ins.derive_conditions(chosen, sel, Windows(), seed=42, method="past_spend")
    entry = wording.whole(sel.entry_line)
    assert f"is at least {entry} -" in cond.entry_text
    assert cond.rules == [f"net spend in the last 12 months at least {entry}"]
    assert cond.agreement == 1.0


def test_conditions_when_everyone_or_no_one_is_in() -> None:
    frame = ladder(20).assign(revenue_90d=1.0, frequency=1, recency_days=1.0, avg_ticket=1.0,
                              tenure_days=1.0, purchases_per_month=1.0)
    chosen, sel = ins.select(frame)
    chosen["is_insider"] = False
    cond = ins.derive_conditions(chosen, sel, Windows(), seed=42)
    assert cond.rules == [] and cond.tree_depth == 0


# --------------------------------------------------------------------------- probably gone


def test_a_member_who_is_probably_gone_leaves_however_much_they_spent() -> None:
    """The purchase model's verdict overrides past spend: c002 (value 99, far above both
    lines) is flagged gone, so the member leaves and a gone newcomer (c004) never enters;
    the group keeps its size with the next customers, so the lines move down to 89 and 84
    (the 10th and 15th value among those not gone)."""
    frame = ladder()
    gone = frame["customer_id"].isin(["c002", "c004"]).to_numpy()
    out, sel = ins.select(frame, {"c002", "c003"}, SelectionRules(value_coverage=0.18),
                          gone=gone, value_label="net spend")
    status = dict(zip(out["customer_id"], out["membership"], strict=True))
    reasons = dict(zip(out["customer_id"], out["membership_reason"], strict=True))
    assert status["c002"] == "left" and reasons["c002"].startswith("probably gone")
    assert status["c003"] == "stayed"
    assert status["c004"] == "outside" and reasons["c004"].startswith("probably gone")
    assert reasons["c001"] == "net spend 100 >= entry line 89"
    assert (sel.entry_line, sel.exit_line) == (89, 84)
    assert out["is_insider"].sum() == sel.size == 10  # c003 stayed, nine entered
    assert out.loc[out["customer_id"] == "c002", "value_rank"].item() > 90  # ranked last


def test_conditions_speak_the_value_method_s_language() -> None:
    frame = ladder()
    frame["revenue_90d"], frame["frequency"], frame["recency_days"] = 1.0, 2, 10.0
    frame["avg_ticket"], frame["tenure_days"], frame["purchases_per_month"] = 5.0, 100.0, 0.2
    chosen, sel = ins.select(frame, None, SelectionRules(value_coverage=0.18))
    past = ins.derive_conditions(chosen, sel, Windows(), seed=1, method="past_spend")
    assert past.entry_text.startswith("A customer enters the Insiders when their net spend "
                                      "over the last 12 months is at least 91")
    blend = ins.derive_conditions(chosen, sel, Windows(), seed=1, method="blend")
    assert "value score (the average of their percentile" in blend.entry_text
    assert "probably stopped buying" in blend.exit_text


# --------------------------------------------------------------------------- customers table


def test_the_customers_table_joins_segments_and_calibrated_values_in_the_selection_order(
) -> None:
    """Selecting reads no segment (it runs beside the segmentation); the report's table joins
    each customer's segment (-1 and the no-purchase persona without one) and the forecast's
    calibrated values, row for row, and refuses values listed in another order."""
    selection = pd.DataFrame({
        "customer_id": pd.array(["c2", "c1", "c3"], dtype="str"),
        "is_insider": [True, False, False],
        "expected_spend_model": [300.0, 20.0, 0.0],
        "predicted_clv_12m_model": [900.0, 50.0, 0.0],
    })
    segments = pd.DataFrame({"customer_id": pd.array(["c1", "c2"], dtype="str"),
                             "segment": [1, 0], "persona": ["Regulars", "Champions"]})
    expected = ins.calibrated(selection, 0.5)
    assert expected["expected_value"].tolist() == [150.0, 10.0, 0.0]
    table = ins.customers_table(selection, segments, expected)
    assert table["customer_id"].tolist() == ["c2", "c1", "c3"]
    assert table["segment"].tolist() == [0, 1, -1]
    assert table["persona"].tolist() == ["Champions", "Regulars", ins.NO_SEGMENT]
    assert table["predicted_clv_12m"].tolist() == [450.0, 25.0, 0.0]
    assert list(table.columns[-4:]) == ["segment", "persona", "expected_value",
                                        "predicted_clv_12m"]
    with pytest.raises(RuntimeError, match="same order"):
        ins.customers_table(selection, segments, expected.iloc[[1, 0, 2]])
