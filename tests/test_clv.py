"""BG/NBD and Gamma-Gamma: the published CDNOW estimates, hand-checkable likelihoods,
parameter recovery on simulated customers, degeneracy, and the per-customer profile."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from insiders.models import clv
from model_data import CDNOW_SPEND, cdnow, pipeline_transactions


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, seed: int,
                   t_range: tuple[float, float] = (20.0, 60.0)):
    """x, t_x, T of customers that follow the BG/NBD story exactly (dropout after repeats)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n) if a > 0 else np.zeros(n)
    big_t = rng.uniform(*t_range, n)
    x, t_x, now = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        now[alive] += rng.exponential(1 / lam[alive])
        buys = alive & (now <= big_t)
        x[buys] += 1
        t_x[buys] = now[buys]
        alive = buys & (rng.random(n) >= p)
    return x, t_x, big_t


def simulate_purchases_by(n: int, r: float, alpha: float, a: float, b: float, t: float,
                          seed: int) -> np.ndarray:
    """Repeat purchases in (0, t] of newly acquired customers."""
    x, _, _ = simulate_bgnbd(n, r, alpha, a, b, seed, t_range=(t, t))
    return x


# --------------------------------------------------------------------------- CDNOW


def test_cdnow_reproduces_the_published_bgnbd_estimates() -> None:
    data = cdnow()
    assert len(data) == 2357 and float(data["T"].max()) == pytest.approx(38.86)
    model = clv.BetaGeoModel().fit(data["frequency"], data["recency"], data["T"])
    got = {k: round(v, 3) for k, v in model.params_.items()}
    assert got == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee
    assert model.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)
    assert not model.diagnostics_["degenerate"]
    # the paper's worked example: x = 2, t_x = 30.43, T = 38.86 -> 1.226 purchases in 39 weeks
    assert model.expected_purchases(39, [2], [30.43], [38.86])[0] == pytest.approx(1.226,
                                                                                   abs=5e-4)


def test_cdnow_reproduces_the_published_gamma_gamma_estimates() -> None:
    data = cdnow(CDNOW_SPEND)
    repeat = data[data["x"] > 0]
    assert len(repeat) == 946
    model = clv.GammaGammaModel().fit(repeat["x"], repeat["zbar"])
    p, q, gamma = (model.params_[k] for k in ("p", "q", "gamma"))
    assert (p, q, gamma) == (pytest.approx(6.25, abs=0.01), pytest.approx(3.74, abs=0.01),
                             pytest.approx(15.44, abs=0.02))  # Fader, Hardie & Lee, RFM and CLV


# --------------------------------------------------------------------------- by hand


def direct_bgnbd_ll(r, alpha, a, b, x, t_x, big_t) -> float:
    """Equation 6 of the paper, written out with math.lgamma and the Beta function."""
    def beta(u, v):
        return math.exp(math.lgamma(u) + math.lgamma(v) - math.lgamma(u + v))
    rate = math.exp(math.lgamma(r + x) - math.lgamma(r)) * alpha ** r
    first = beta(a, b + x) / beta(a, b) * rate / (alpha + big_t) ** (r + x)
    second = (beta(a + 1, b + x - 1) / beta(a, b) * rate / (alpha + t_x) ** (r + x)
              if x > 0 else 0.0)
    return math.log(first + second)


def fitted(params: dict) -> clv.BetaGeoModel:
    model = clv.BetaGeoModel()
    model.params_array_ = np.array([params[k] for k in ("r", "alpha", "a", "b")])
    model.params_ = params
    return model


def test_log_likelihood_matches_the_direct_formula() -> None:
    params = {"r": 0.5, "alpha": 4.0, "a": 0.8, "b": 2.5}
    model = fitted(params)
    customers = [(0, 0.0, 10.0), (1, 2.0, 10.0), (3, 7.5, 12.0), (12, 30.0, 31.0)]
    got = model.log_likelihood(*map(np.array, zip(*customers, strict=True)))
    want = [direct_bgnbd_ll(*params.values(), *c) for c in customers]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_alive_and_churn_by_hand_for_a_customer_without_repeat_purchases() -> None:
    model = fitted({"r": 0.5, "alpha": 4.0, "a": 0.8, "b": 2.5})
    # BG/NBD drops customers only after a repeat purchase: x = 0 is certainly alive
    assert model.p_alive([0], [0], [10])[0] == 1.0
    # then P(no purchase in 13 weeks) is the Gamma(r, alpha + T) Laplace transform
    assert model.p_no_purchase(13, [0], [0], [10])[0] == pytest.approx((14 / 27) ** 0.5)
    # a customer last seen long ago is less likely alive than one seen recently
    recent, old = model.p_alive([4, 4], [19, 3], [20, 20])
    assert 0 < old < recent < 1
    # P(alive) = 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))
    assert old == pytest.approx(1 / (1 + 0.8 / 5.5 * (24 / 7) ** 4.5))
    # at T = 0 the conditional expectation is the population curve
    assert model.expected_purchases(26, [0], [0], [0])[0] == pytest.approx(
        float(model.expected_purchases_new(26)))


def test_expected_purchases_match_a_simulation_of_the_model() -> None:
    params = {"r": 0.6, "alpha": 5.0, "a": 0.9, "b": 3.0}
    model = fitted(params)
    simulated = simulate_purchases_by(200_000, *params.values(), t=30.0, seed=1)
    se = simulated.std() / math.sqrt(len(simulated))
    assert abs(simulated.mean() - float(model.expected_purchases_new(30.0))) < 4 * se


def test_fit_recovers_the_parameters_of_simulated_customers() -> None:
    truth = {"r": 0.6, "alpha": 5.0, "a": 0.9, "b": 3.0}
    x, t_x, big_t = simulate_bgnbd(20_000, *truth.values(), seed=7)
    model = clv.BetaGeoModel().fit(x, t_x, big_t)
    for name, value in truth.items():
        assert model.params_[name] == pytest.approx(value, rel=0.2), name
    assert not model.diagnostics_["degenerate"]


def test_a_population_that_never_drops_out_is_flagged_degenerate() -> None:
    x, t_x, big_t = simulate_bgnbd(5_000, 0.8, 6.0, 0.0, 1.0, seed=3)
    model = clv.BetaGeoModel().fit(x, t_x, big_t)
    assert model.diagnostics_["degenerate"] is True
    assert model.diagnostics_["mean_dropout_per_purchase"] < clv.MIN_DROPOUT
    assert any("nobody ever leaves" in r for r in model.diagnostics_["reasons"])


def test_bad_input_is_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="t_x = 0 when x = 0"):
        clv.BetaGeoModel().fit([0, 1], [2.0, 1.0], [5.0, 5.0])
    with pytest.raises(ValueError, match="0 <= t_x <= T"):
        clv.BetaGeoModel().fit([1], [6.0], [5.0])


def test_gamma_gamma_matches_its_formula_and_shrinks_towards_the_population() -> None:
    rng = np.random.default_rng(5)
    p, q, gamma = 4.0, 3.0, 50.0
    nu = rng.gamma(q, 1 / gamma, 20_000)
    n = rng.integers(1, 8, 20_000)
    means = rng.gamma(p * n, 1 / nu) / n  # mean of n Gamma(p, nu) order values
    model = clv.GammaGammaModel().fit(n, means)
    assert model.params_["p"] == pytest.approx(p, rel=0.15)
    assert model.params_["q"] == pytest.approx(q, rel=0.15)
    assert model.params_["gamma"] == pytest.approx(gamma, rel=0.2)
    # the conditional mean is p (gamma + n m) / (p n + q - 1)
    pp, qq, gg = model.params_array_
    assert model.expected_value([3], [80.0])[0] == pytest.approx(pp * (gg + 240) / (3 * pp + qq
                                                                                    - 1))
    pop = model.population_mean()
    one, many = model.expected_value([1, 200], [1000.0, 1000.0])
    assert pop < one < many < 1000.0 and many == pytest.approx(1000.0, rel=0.01)


# --------------------------------------------------------------------------- the profile


def lines(rows: list[tuple]) -> pd.DataFrame:
    """Canonical transactions from (customer, date, quantity, unit_price) tuples."""
    frame = pd.DataFrame(rows, columns=["customer_id", "invoice_date", "quantity", "unit_price"])
    frame["invoice_date"] = pd.to_datetime(frame["invoice_date"])
    frame["invoice"] = [f"{i:06d}" for i in range(len(frame))]
    frame["stock_code"] = "A"
    frame["revenue"] = frame["quantity"] * frame["unit_price"]
    frame["is_return"] = frame["quantity"] < 0
    frame["is_cancellation"] = frame["is_return"]
    return frame


def small_shop() -> pd.DataFrame:
    rows = []
    # 40 regulars every 14 days, 40 who bought 3 times early and vanished, 40 one-timers
    for i in range(40):
        for k in range(20):
            rows.append((f"R{i}", pd.Timestamp("2011-01-03") + pd.Timedelta(days=14 * k + i % 5),
                         2 + i % 3, 10.0))
    for i in range(40):
        for k in range(3):
            rows.append((f"G{i}", pd.Timestamp("2011-01-05") + pd.Timedelta(days=10 * k), 1,
                         15.0))
    for i in range(40):
        rows.append((f"O{i}", pd.Timestamp("2011-02-01") + pd.Timedelta(days=4 * i), 3, 9.0))
    rows.append(("R0", pd.Timestamp("2011-05-02"), -2, 10.0))  # a return nets out
    return lines(rows)


def test_customer_predictions_give_the_crm_profile() -> None:
    tx = small_shop()
    table = clv.customer_predictions(tx, pd.Timestamp("2011-10-01"))
    assert len(table) == 120 and table["customer_id"].is_unique
    for col in ("historic_value", "expected_spend", "expected_purchases", "churn_risk",
                "churn_band", "avg_days_between_orders", "expected_next_order",
                "predicted_clv_12m", "p_alive"):
        assert col in table, col
    by = table.set_index("customer_id")
    # historic value nets returns: 20 purchases of 2 x 10, minus one return of 20
    assert by.loc["R0", "historic_value"] == pytest.approx(20 * 20 - 20)
    assert by.loc["R0", "avg_days_between_orders"] == pytest.approx(14.0)
    assert np.isnan(by.loc["O3", "avg_days_between_orders"])
    assert set(table["churn_band"]) <= {"Low", "Medium", "High"}
    regular, gone = by.loc["R5"], by.loc["G5"]
    assert regular["p_alive"] > gone["p_alive"]
    assert regular["churn_risk"] < gone["churn_risk"]
    assert regular["churn_band"] == "Low" and gone["churn_band"] == "High"
    assert regular["expected_spend"] > gone["expected_spend"] > 0
    assert regular["predicted_clv_12m"] > regular["expected_spend"]
    np.testing.assert_allclose(table["expected_spend"],
                               table["expected_purchases"] * table["expected_order_value"])
    # a regular's next order is due within weeks; nobody expects the gone customers back
    assert pd.Timestamp("2011-10-01") < regular["expected_next_order"] < pd.Timestamp(
        "2011-11-15")
    assert pd.isna(gone["expected_next_order"])
    assert "bgnbd" in table.attrs["diagnostics"]


def test_every_repeat_buyer_buying_twice_fits_without_numpy_warnings() -> None:
    """Olist up to 2018: the repeat buyers all had one repeat purchase, and the check of
    Gamma-Gamma's independence assumption printed numpy's "invalid value encountered in
    divide" to the user's terminal. No correlation without variation: no figure, no note."""
    rows = [(f"C{i}", pd.Timestamp("2011-01-03") + pd.Timedelta(days=i), 1, 10.0 + i % 7)
            for i in range(60)]
    rows += [(f"C{i}", pd.Timestamp("2011-05-03") + pd.Timedelta(days=i), 1, 12.0 + i % 5)
             for i in range(0, 60, 2)]
    tx = lines(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        table = clv.customer_predictions(tx, pd.Timestamp("2011-09-01"))
    assert len(table) == 60
    assert not any("correlation" in n for n in table.attrs["diagnostics"]["notes"])


def test_lines_on_or_after_the_as_of_are_not_used() -> None:
    tx = small_shop()
    later = lines([("R1", "2011-10-05", 500, 100.0)])
    both = pd.concat([tx, later], ignore_index=True)
    a = clv.customer_predictions(tx, pd.Timestamp("2011-10-01"))
    b = clv.customer_predictions(both, pd.Timestamp("2011-10-01"))
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_online_retail_degenerate_dropout_is_reported(real_file: Path, tmp_path: Path) -> None:
    tx, _ = pipeline_transactions(real_file, tmp_path)
    table = clv.customer_predictions(tx, pd.Timestamp("2011-09-01"))
    diag = table.attrs["diagnostics"]["bgnbd"]
    assert diag["degenerate"] is True and diag["mean_dropout_per_purchase"] < clv.MIN_DROPOUT
    assert any("nobody ever leaves" in n for n in table.attrs["diagnostics"]["notes"])
    # spend still ranks sensibly: the top decile by expected spend holds the big past spenders
    top = table.nlargest(len(table) // 10, "expected_spend")
    assert top["historic_value"].sum() > 0.5 * table["historic_value"].clip(lower=0).sum()


@pytest.mark.realdata
def test_olist_one_time_buyers_get_a_real_expected_figure(olist_dir: Path, tmp_path: Path
                                                          ) -> None:
    tx, as_of = pipeline_transactions(olist_dir, tmp_path, kind="olist")
    table = clv.customer_predictions(tx, as_of)
    once = table[table["purchases_to_date"] == 1]
    assert len(once) > 0.9 * len(table)  # the marketplace: almost everyone bought once
    assert (once["expected_spend"] > 0).all()
    # not past spend scaled up: a one-time buyer is expected to spend a small part of it
    assert once["expected_spend"].sum() < 0.1 * once["historic_value"].sum()
    # and the figure ranks: a recent first purchase is worth more than an old one
    recent = once["first_purchase"] >= as_of - pd.Timedelta(days=60)
    old = once["first_purchase"] < as_of - pd.Timedelta(days=300)
    assert once.loc[recent, "expected_purchases"].median() > once.loc[
        old, "expected_purchases"].median()
    assert not table.attrs["diagnostics"]["bgnbd"]["degenerate"]


def test_a_population_that_never_buys_again_cannot_be_fitted_and_says_so() -> None:
    """A day of data: nobody has a second purchase day. The optimiser's starting point is
    not an estimate: flagged, with P(alive) marked unusable."""
    x = np.zeros(50)
    model = clv.BetaGeoModel().fit(x, x, np.full(50, 1 / 7))
    d = model.diagnostics_
    assert d["repeat_customers"] == 0 and d["degenerate"] and not d["p_alive_usable"]
    assert any("no customer bought again" in r for r in d["reasons"])


def test_a_population_that_always_leaves_is_flagged_and_its_p_alive_not_used() -> None:
    x, t_x, big_t = simulate_bgnbd(5_000, 2.0, 1.0, 50.0, 0.01, seed=4)
    d = clv.BetaGeoModel().fit(x, t_x, big_t).diagnostics_
    assert d["mean_dropout_per_purchase"] > 1 - clv.MIN_DROPOUT
    assert d["degenerate"] and not d["p_alive_usable"]
    assert any("every customer leaves" in r for r in d["reasons"])
    # a population with real dropout keeps a usable P(alive)
    x, t_x, big_t = simulate_bgnbd(5_000, 0.8, 6.0, 1.2, 2.5, seed=3)
    assert clv.BetaGeoModel().fit(x, t_x, big_t).diagnostics_["p_alive_usable"]


def test_probably_gone_only_where_the_model_can_tell() -> None:
    """One rule for selection, the valuation table and answers.json (answers counted
    P(alive) < 0.5 even where the insiders stage said the model could not tell)."""
    p_alive = pd.Series([0.1, 0.49, 0.5, 0.9, np.nan])
    x, t_x, big_t = simulate_bgnbd(5_000, 0.8, 6.0, 1.2, 2.5, seed=3)
    usable = clv.BetaGeoModel().fit(x, t_x, big_t)
    assert clv.probably_gone(p_alive, usable).tolist() == [True, True, False, False, False]
    x = np.zeros(50)
    unusable = clv.BetaGeoModel().fit(x, x, np.full(50, 1 / 7))
    assert not clv.probably_gone(p_alive, unusable).any()


@pytest.mark.parametrize(("first", "as_of", "short"), [
    ("2011-12-09 08:00", "2011-12-10", True),  # one day
    ("2011-11-13", "2011-12-10", True),  # 27 days
    ("2011-11-12", "2011-12-10", False),  # 28 days: enough
    (None, "2011-12-10", False),  # no lines: another check's business
])
def test_history_shorter_than_the_minimum_is_named(first, as_of, short: bool) -> None:
    problem = clv.history_problem(None if first is None else pd.Timestamp(first),
                                  pd.Timestamp(as_of))
    assert (problem is not None) == short
    if short:
        assert f"at least {clv.MIN_HISTORY_DAYS} days" in problem
        assert str(pd.Timestamp(first).date()) in problem
