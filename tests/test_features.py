"""Features: every figure of a customer, worked out by hand on four customers.

as-of 2011-12-01, lookback 12 months: the period is [2010-12-01, 2011-12-01) and
"the last 90 days" starts on 2011-09-02. Dates are at midnight so day counts are
whole numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from insiders.models import features as feats

AS_OF = pd.Timestamp("2011-12-01")
A, B, C, D, E, F = "12346", "12347", "12348", "12349", "12350", "12351"

LINES = [
    # customer, invoice, date, code, qty, price, country
    # A: a first purchase long before the period (tenure only), two purchases in it, one
    # cancellation, and a huge order after the as-of date that nothing may see
    (A, "500001", "2010-06-01", "P1", 10, 1.0, "France"),
    (A, "500002", "2011-09-01", "P1", 4, 2.5, "United Kingdom"),  # invoice 40, 10 units
    (A, "500002", "2011-09-01", "P2", 6, 5.0, "United Kingdom"),
    (A, "500003", "2011-11-01", "P1", 8, 2.5, "France"),  # invoice 20, 8 units, 1 product
    (A, "C500004", "2011-11-11", "P2", -2, 5.0, "United Kingdom"),  # -10
    (A, "500009", "2011-12-05", "P1", 1000, 100.0, "United Kingdom"),  # after as-of
    # B: one purchase
    (B, "500005", "2011-11-21", "P3", 1, 100.0, "Germany"),
    # C: bought before the period, only a return in it
    (C, "500006", "2010-11-01", "P1", 1, 3.0, "United Kingdom"),
    (C, "C500007", "2011-02-01", "P1", -1, 3.0, "United Kingdom"),
    # D: three lines from Germany, one from France in the period; five French lines before it
    (D, "500010", "2011-03-01", "P1", 1, 2.0, "Germany"),
    (D, "500010", "2011-03-01", "P2", 1, 2.0, "Germany"),
    (D, "500010", "2011-03-01", "P3", 1, 2.0, "Germany"),
    (D, "500011", "2011-04-01", "P1", 2, 2.0, "France"),
    *[(D, "500012", "2009-12-01", f"Q{i}", 1, 1.0, "France") for i in range(5)],
    # E: only on or after the as-of date; F: only long before the period
    (E, "500013", "2011-12-01", "P1", 1, 5.0, "Spain"),
    (E, "500014", "2011-12-03", "P1", 1, 7.0, "Spain"),
    (F, "500015", "2010-05-01", "P1", 1, 9.0, "Spain"),
]


def transactions(lines=LINES) -> pd.DataFrame:
    frame = pd.DataFrame(lines, columns=["customer_id", "invoice", "invoice_date", "stock_code",
                                         "quantity", "unit_price", "country"])
    frame["invoice_date"] = pd.to_datetime(frame["invoice_date"])
    frame["revenue"] = frame["quantity"] * frame["unit_price"]
    frame["is_return"] = frame["quantity"] < 0
    frame["is_cancellation"] = frame["invoice"].str.startswith("C")
    for column in ("customer_id", "invoice", "stock_code", "country"):
        frame[column] = frame[column].astype("category")  # as tasks.read_transactions gives
    return frame


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return feats.customer_features(transactions(), AS_OF, 12).set_index("customer_id")


def test_one_row_per_customer_with_a_line_in_the_period(table: pd.DataFrame) -> None:
    # E only has lines on/after the as-of date, F only before the period
    assert table.index.tolist() == [A, B, C, D]
    assert list(table.columns) == ["country", *feats.FEATURES, "has_purchase"]
    assert table["has_purchase"].tolist() == [True, True, False, True]


def test_customer_with_two_purchases_and_a_cancellation(table: pd.DataFrame) -> None:
    a = table.loc[A]
    assert a["monetary"] == pytest.approx(40 + 20 - 10)  # net of the cancellation
    assert a["frequency"] == 2  # purchase invoices; the C-invoice is not a purchase
    assert a["recency_days"] == 30  # last purchase 2011-11-01
    assert a["avg_ticket"] == pytest.approx((40 + 20) / 2)  # gross purchase value per invoice
    assert a["basket_size"] == pytest.approx((10 + 8) / 2)
    assert a["basket_variety"] == pytest.approx((2 + 1) / 2)
    assert a["avg_days_between"] == pytest.approx(61)  # 2011-09-01 -> 2011-11-01, one gap
    assert a["tenure_days"] == 548  # first purchase ever 2010-06-01: 365 + 183 days
    # 2 purchases over the 91 days since its first purchase in the period
    assert a["purchases_per_month"] == pytest.approx(2 / (91 / 30.4375))
    assert a["return_rate"] == pytest.approx(10 / 60)  # returned / purchased value
    # last 90 days start 2011-09-02: the 2011-09-01 purchase is out; 20 - 10
    assert a["revenue_90d"] == pytest.approx(10)
    assert a["country"] == "United Kingdom"  # 3 of its 4 lines in the period


def test_single_purchase(table: pd.DataFrame) -> None:
    b = table.loc[B]
    assert (b["monetary"], b["frequency"], b["recency_days"]) == (100, 1, 10)
    assert (b["avg_ticket"], b["basket_size"], b["basket_variety"]) == (100, 1, 1)
    assert math.isnan(b["avg_days_between"])  # no gap to average
    assert b["tenure_days"] == 10
    assert b["purchases_per_month"] == 1.0  # a customer of 10 days counts as one month
    assert (b["return_rate"], b["revenue_90d"], b["country"]) == (0, 100, "Germany")


def test_customer_with_only_a_return_in_the_period(table: pd.DataFrame) -> None:
    c = table.loc[C]
    assert c["monetary"] == -3 and c["frequency"] == 0 and not c["has_purchase"]
    for name in ("recency_days", "avg_ticket", "basket_size", "avg_days_between"):
        assert math.isnan(c[name]), name  # nothing bought: no purchase figures
    assert c["tenure_days"] == 395  # first purchase 2010-11-01, before the period
    assert c["return_rate"] == 0 and c["revenue_90d"] == 0


def test_country_of_most_lines_in_the_period(table: pd.DataFrame) -> None:
    d = table.loc[D]
    # 3 German lines against 1 French in the period (the 5 French lines of 2009 do not count)
    assert d["country"] == "Germany"
    assert d["monetary"] == 10 and d["frequency"] == 2 and d["avg_ticket"] == 5
    assert d["basket_size"] == (3 + 2) / 2 and d["basket_variety"] == (3 + 1) / 2
    assert d["avg_days_between"] == 31 and d["recency_days"] == 244  # last on 2011-04-01
    assert d["tenure_days"] == 730  # 2009-12-01, two years before
    assert d["purchases_per_month"] == pytest.approx(2 / (275 / 30.4375))  # since 2011-03-01
    assert d["revenue_90d"] == 0


def test_nothing_after_the_as_of_date_is_used() -> None:
    """A's 100,000 order on 2011-12-05 changes nothing, nor do E's lines from 2011-12-01."""
    future_free = [line for line in LINES if pd.Timestamp(line[2]) < AS_OF]
    with_future = feats.customer_features(transactions(), AS_OF, 12)
    without = feats.customer_features(transactions(future_free), AS_OF, 12)
    pd.testing.assert_frame_equal(with_future, without)


def test_lookback_window() -> None:
    tx = transactions()
    # 3 months: [2011-09-01, 2011-12-01) still holds A's 2011-09-01 purchase (start included)
    three = feats.customer_features(tx, AS_OF, 3).set_index("customer_id")
    assert three.index.tolist() == [A, B]
    assert three.loc[A, "frequency"] == 2
    # 2 months: [2011-10-01, 2011-12-01): A has one purchase and the cancellation left
    two = feats.customer_features(tx, AS_OF, 2).set_index("customer_id")
    assert two.loc[A, "frequency"] == 1
    assert two.loc[A, "monetary"] == pytest.approx(20 - 10)
    assert two.loc[A, "tenure_days"] == 548  # tenure still looks at the whole history
    assert two.loc[A, "country"] == "France"  # 1 French line, 1 UK line: ties go by name
    assert feats.period_start(AS_OF, 12) == pd.Timestamp("2010-12-01")


def test_an_earlier_as_of_sees_an_earlier_customer() -> None:
    # period [2010-03-15, 2011-03-15): A has only its 2010-06-01 purchase, F its 2010-05-01
    early = feats.customer_features(transactions(), pd.Timestamp("2011-03-15"), 12)
    early = early.set_index("customer_id")
    assert early.index.tolist() == [A, C, D, F]
    assert early.loc[A, "recency_days"] == 287  # 2010-06-01 -> 2011-03-15
    assert early.loc[C, "monetary"] == 0  # bought 3, returned 3
    assert early.loc[D, "frequency"] == 1  # the April purchase is still in the future


def test_future_revenue_window() -> None:
    tx = transactions()
    # [2011-12-01, 2012-01-01): A's 1000 x 100 and E's 5 + 7
    got = feats.future_revenue(tx, AS_OF, 1)
    assert got[got != 0].to_dict() == {A: 100_000.0, E: 12.0}
    # [2011-11-01, 2011-12-01): A 20 - 10, B 100
    got = feats.future_revenue(tx, pd.Timestamp("2011-11-01"), 1)
    assert got[got != 0].to_dict() == {A: 10.0, B: 100.0}


def test_results_are_copies() -> None:
    tx = transactions()
    first = feats.customer_features(tx, AS_OF, 12)
    first["monetary"] = np.nan
    again = feats.customer_features(tx, AS_OF, 12)
    assert again["monetary"].notna().all()


def test_no_line_in_the_period_gives_an_empty_table() -> None:
    empty = feats.customer_features(transactions(), pd.Timestamp("2009-01-01"), 12)
    assert empty.empty
    assert list(empty.columns) == ["customer_id", "country", *feats.FEATURES, "has_purchase"]


def _many_customers(n: int, date: str, returns: bool) -> pd.DataFrame:
    """n customers with one 2.00 purchase each on `date` (and optionally a 1.00 return)."""
    lines = [(f"{12346 + i}", f"{500000 + i}", date, "P1", 1, 2.0, "United Kingdom")
             for i in range(n)]
    if returns:
        lines.append(("12346", "C600000", date, "P1", -1, 1.0, "United Kingdom"))
    return transactions(lines)


def test_many_customers_with_returns_and_recent_lines() -> None:
    """The control for the two cases below: 200 categorical ids work when nothing is empty."""
    table = feats.customer_features(_many_customers(200, "2011-11-01", True), AS_OF, 12)
    assert len(table) == 200 and table["revenue_90d"].sum() == pytest.approx(400 - 1)


def test_period_without_any_return() -> None:
    table = feats.customer_features(_many_customers(200, "2011-11-01", False), AS_OF, 12)
    assert len(table) == 200 and (table["return_rate"] == 0).all()


def test_period_without_a_line_in_the_last_90_days() -> None:
    table = feats.customer_features(_many_customers(200, "2011-06-01", True), AS_OF, 12)
    assert len(table) == 200 and (table["revenue_90d"] == 0).all()


# --------------------------------------------------------------------------- the coded path

def _bits(table: pd.DataFrame) -> dict[str, object]:
    """Every column to compare exactly: floats by their bits (0.0 against -0.0, NaN's
    places), the rest by value, and the dtypes."""
    out: dict[str, object] = {"dtypes": [str(d) for d in table.dtypes]}
    for column in table.columns:
        values = table[column].to_numpy()
        out[column] = (values.view("int64").tobytes() if values.dtype.kind == "f"
                       else [str(v) for v in values])
    return out


def _month_cuts(tx: pd.DataFrame, months: int) -> list[pd.Timestamp]:
    end = tx["invoice_date"].max().normalize() + pd.Timedelta(days=1)
    return [end - pd.DateOffset(months=m) for m in range(months)]


@pytest.fixture(scope="module")
def real_transactions(real_file, tmp_path_factory) -> pd.DataFrame:
    from model_data import pipeline_transactions

    tx, _ = pipeline_transactions(real_file, tmp_path_factory.mktemp("features") / "run")
    return tx


def test_coded_features_equal_the_reference_to_the_bit_on_the_real_file(
        real_transactions: pd.DataFrame) -> None:
    """The value replay's and the stability curve's cuts, month by month over two years, a
    12- and a 3-month lookback: the coded arrays give the lines' own figures exactly."""
    tx = real_transactions
    coded = feats._coded(tx)
    assert coded is not None  # the real file has no invoice over two days
    for as_of in _month_cuts(tx, 24):
        for lookback in (12, 3):
            start = feats.period_start(as_of, lookback)
            reference = feats._customer_features(tx, as_of, lookback)
            assert _bits(feats._assemble(coded.pieces(as_of, start), as_of, start)) == _bits(
                reference), (as_of, lookback)


def test_coded_features_equal_the_reference_on_text_ids_and_the_demo(demo_file, tmp_path
                                                                     ) -> None:
    """Ids and countries as plain text (not categoricals) code in sorted order, as a
    group-by sorts them: the main country's tie-break stays the reference's."""
    from model_data import pipeline_transactions

    tx, _ = pipeline_transactions(demo_file, tmp_path / "run")
    text = tx.assign(customer_id=tx["customer_id"].astype("str"),
                     country=tx["country"].astype("str"))
    for frame in (tx, text):
        for as_of in _month_cuts(frame, 6):
            assert _bits(feats.customer_features(frame, as_of, 12)) == _bits(
                feats._customer_features(frame, as_of, 12))


def test_an_invoice_over_two_days_or_a_cut_at_a_time_of_day_uses_the_lines() -> None:
    """A window from midnight to midnight cannot split an invoice of one day; one over two
    days, or a cut at noon, could: then the features come from the lines themselves."""
    spanning = transactions([*LINES, (B, "500005", "2011-11-22", "P4", 1, 50.0, "Germany")])
    assert feats._coded(spanning) is None
    table = feats.customer_features(spanning, pd.Timestamp("2011-11-22"), 12).set_index(
        "customer_id")
    assert table.loc[B, "monetary"] == 100.0  # the line of the 22nd is not seen yet
    tx = transactions()
    assert feats._coded(tx) is not None
    noon = pd.Timestamp("2011-11-21 12:00")
    assert not feats._Coded.answers(noon, feats.period_start(noon, 12))
    assert _bits(feats.customer_features(tx, noon, 12)) == _bits(
        feats._customer_features(tx, noon, 12))
