"""The brief's "top 3 data insights": business hypotheses tested on the data, true or false.

Each hypothesis is said in plain words and tested with a stated test at a stated
level. Its verdict follows from the figures, always the same way: true when the
one-sided p-value is below `alpha` *and* the effect goes the stated way, false
otherwise, including when the data cannot test it (the text then says why). The text
opens with `verdict_word`: "True", "False" (it goes the other way) or "Not shown"
(the stated way but not significant, or untestable).
A verdict is never chosen to make the product look good: "Insiders return less"
may well come out false, and is reported so.

Input: the kept transactions (invoice, quantity, invoice_date, customer_id,
revenue, is_cancellation, ...) and the customers frame of the run (customer_id,
is_insider, has_purchase, ...). Output: a list of
`{id, statement, verdict, text, figures, test}` dicts, JSON-ready.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact, mannwhitneyu

from .significance import ALPHA, significant, verdict_word
from .text import as_text, is_in

MIN_GROUP = 5  # fewer customers than this on either side: not tested
AUTUMN = (9, 10, 11)  # September to November: the build-up to Christmas in gift retail
REPEAT_DAYS = 30


def evaluate_hypotheses(
    transactions, customers: pd.DataFrame, as_of: pd.Timestamp,
    lookback_months: int = 12, alpha: float = ALPHA,
) -> list[dict]:
    """The three hypotheses on one run's data, each with its verdict at level `alpha`.

    `transactions`: the kept lines, or an engine's `Lines` (engine/aggregates.py), which
    hands back only per-customer sums and purchase days, summed in the lines' order."""
    as_of = pd.Timestamp(as_of)
    start = as_of - pd.DateOffset(months=lookback_months)
    flags = _insider_flags(customers)
    if isinstance(transactions, pd.DataFrame):
        tx = transactions[transactions["invoice_date"] < as_of]
        period = tx[tx["invoice_date"] >= start]
        bought, returned = _bought_returned(period)
        total, autumn = _autumn_totals(period)
        orders = purchase_days(tx)
    else:  # one row per customer (and per customer and day) from the engine
        sums = transactions.hypothesis_sums(start, as_of, AUTUMN)
        bought, returned = sums["bought"], sums["returned"]
        total = sums["total"].dropna()
        autumn = sums["autumn"].reindex(total.index).fillna(0.0)
        orders = transactions.purchase_days(as_of)
    return [
        _return_less(bought, returned, flags, alpha),
        _autumn_share(total, autumn, flags, start, as_of, alpha),
        _early_repeaters(orders, flags, as_of, alpha),
    ]


# --------------------------------------------------------------------------- the hypotheses


def insiders_return_less(period: pd.DataFrame, flags: pd.Series, alpha: float = ALPHA) -> dict:
    """Per customer, the share of the value bought in the period that came back."""
    return _return_less(*_bought_returned(period), flags, alpha)


def _return_less(bought: pd.Series, returned: pd.Series, flags: pd.Series, alpha: float
                 ) -> dict:
    statement = "Insiders return less of what they buy than the other customers."
    share = (returned / bought).where(bought > 0).clip(0, 1).dropna()
    x, y = _split(share, flags)
    figures = {
        "insiders_customers": len(x), "rest_customers": len(y),
        "insiders_mean_return_share": _r(x.mean()), "rest_mean_return_share": _r(y.mean()),
        "insiders_with_a_return": _r((x > 0).mean()), "rest_with_a_return": _r((y > 0).mean()),
        "insiders_value_returned": _r(_ratio(returned, bought, x.index)),
        "rest_value_returned": _r(_ratio(returned, bought, y.index)),
    }

    def describe(f: dict) -> str:
        text = (f"Insiders sent back {_pct(f['insiders_mean_return_share'])} of what they "
                f"bought on average ({_pct(f['insiders_with_a_return'])} returned something), "
                f"the rest {_pct(f['rest_mean_return_share'])} "
                f"({_pct(f['rest_with_a_return'])}); all together, Insiders' returns were "
                f"{_pct(f['insiders_value_returned'])} of the value they bought, the rest's "
                f"{_pct(f['rest_value_returned'])}.")
        if _disagree((f["insiders_mean_return_share"], f["rest_mean_return_share"]),
                     (f["insiders_value_returned"], f["rest_value_returned"])):
            text += (" The two measures point different ways: the verdict compares customers "
                     "one by one; the all-together figure weighs each customer by what they "
                     "bought, so the returns of a few large buyers move it.")
        return text

    return _mann_whitney("insiders_return_less", statement, x, y, "less", figures, describe,
                         alpha, "share of the value bought in the period that was returned, "
                                "per customer")


def insiders_spend_more_in_autumn(period: pd.DataFrame, flags: pd.Series, start: pd.Timestamp,
                                  as_of: pd.Timestamp, alpha: float = ALPHA) -> dict:
    """Per customer, the share of the period's purchases made in September-November."""
    return _autumn_share(*_autumn_totals(period), flags, start, as_of, alpha)


def _autumn_totals(period: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per customer with a purchase: the period's purchases, and those in the autumn."""
    buys = period[(period["quantity"] > 0) & ~period["is_cancellation"].astype(bool)]
    month = buys["invoice_date"].dt.month
    total = buys.groupby(_ids(buys), observed=True)["revenue"].sum()
    autumn = buys[month.isin(AUTUMN).to_numpy()]
    autumn_total = autumn.groupby(_ids(autumn), observed=True)["revenue"].sum()
    return total, autumn_total.reindex(total.index, fill_value=0.0)


def _autumn_share(total: pd.Series, autumn_total: pd.Series, flags: pd.Series,
                  start: pd.Timestamp, as_of: pd.Timestamp, alpha: float) -> dict:
    statement = ("Insiders' spend is more concentrated in the autumn peak (September to "
                 "November) than the other customers'.")
    autumn_days = _autumn_days(start, as_of)
    share = (autumn_total / total).where(total > 0).dropna()
    x, y = _split(share, flags)
    figures = {
        "autumn_days_in_period": autumn_days,
        "insiders_customers": len(x), "rest_customers": len(y),
        "insiders_mean_autumn_share": _r(x.mean()), "rest_mean_autumn_share": _r(y.mean()),
        "insiders_revenue_in_autumn": _r(_ratio(autumn_total, total, x.index)),
        "rest_revenue_in_autumn": _r(_ratio(autumn_total, total, y.index)),
    }
    if autumn_days == 0:
        return _untested("insiders_spend_more_in_autumn", statement, figures,
                         "the analysed period holds no day of September to November", alpha,
                         "Mann-Whitney U")

    def describe(f: dict) -> str:
        return (f"On average {_pct(f['insiders_mean_autumn_share'])} of an Insider's "
                f"purchases fell in September-November, against "
                f"{_pct(f['rest_mean_autumn_share'])} for the rest (the period holds "
                f"{f['autumn_days_in_period']} autumn days).")

    return _mann_whitney("insiders_spend_more_in_autumn", statement, x, y, "greater", figures,
                         describe, alpha, "share of the period's purchases made in September "
                                          "to November, per customer")


def early_repeaters_become_insiders(tx: pd.DataFrame, flags: pd.Series, as_of: pd.Timestamp,
                                    alpha: float = ALPHA) -> dict:
    """Customers whose second order comes within 30 days of the first, and who is an Insider.

    Only customers first seen after the data's first month count (earlier ones were
    customers before the data began: their first order in the data is not their first),
    and only those first seen at least 30 days before the as-of (the window is complete).
    """
    return _early_repeaters(purchase_days(tx), flags, as_of, alpha)


def purchase_days(tx: pd.DataFrame) -> pd.DataFrame:
    """(customer_id, day) once for each day a customer bought (`Lines.purchase_days`)."""
    buys = tx[(tx["quantity"] > 0) & ~tx["is_cancellation"].astype(bool)]
    orders = pd.DataFrame({"customer_id": _ids(buys).to_numpy(),
                           "day": buys["invoice_date"].dt.normalize().to_numpy()})
    return orders.drop_duplicates()


def _early_repeaters(orders: pd.DataFrame, flags: pd.Series, as_of: pd.Timestamp,
                     alpha: float) -> dict:
    statement = (f"Customers who buy again within {REPEAT_DAYS} days of their first order "
                 "become Insiders more often than those who do not.")
    figures: dict = {"window_days": REPEAT_DAYS}
    if orders.empty:
        return _untested("early_repeaters_become_insiders", statement, figures,
                         "there is no purchase", alpha, "Fisher's exact test")
    first = orders.groupby("customer_id")["day"].min()
    data_start = orders["day"].min()
    eligible = first[(first >= data_start + pd.Timedelta(days=REPEAT_DAYS))
                     & (first <= pd.Timestamp(as_of) - pd.Timedelta(days=REPEAT_DAYS))]
    eligible = eligible[is_in(eligible.index, flags.index)]
    later = orders.merge(first.rename("first"), left_on="customer_id", right_index=True)
    gap = (later["day"] - later["first"]).dt.days
    came_back = set(later.loc[(gap >= 1) & (gap <= REPEAT_DAYS), "customer_id"])
    repeat = is_in(eligible.index, came_back)
    insider = flags.reindex(eligible.index).to_numpy(dtype=bool)
    table = [[int((repeat & insider).sum()), int((repeat & ~insider).sum())],
             [int((~repeat & insider).sum()), int((~repeat & ~insider).sum())]]
    n_rep, n_other = int(repeat.sum()), int((~repeat).sum())
    rate_rep = table[0][0] / n_rep if n_rep else None
    rate_other = table[1][0] / n_other if n_other else None
    figures.update({
        "customers": len(eligible), "first_seen_from": str((data_start + pd.Timedelta(
            days=REPEAT_DAYS)).date()),
        "repeaters": n_rep, "repeaters_insiders": table[0][0],
        "others": n_other, "others_insiders": table[1][0],
        "repeaters_insider_rate": _r(rate_rep), "others_insider_rate": _r(rate_other),
    })
    test = {"name": "Fisher's exact test", "alternative": "greater", "alpha": alpha,
            "on": "2x2 table: came back within the window or not, Insider or not"}
    if n_rep < MIN_GROUP or n_other < MIN_GROUP or not (table[0][0] + table[1][0]):
        return _untested("early_repeaters_become_insiders", statement, figures,
                         f"{n_rep} customers came back within {REPEAT_DAYS} days and "
                         f"{n_other} did not; each side needs {MIN_GROUP} and some Insiders",
                         alpha, test["name"])
    odds, p = fisher_exact(table, alternative="greater")
    direction = rate_rep > rate_other
    verdict = significant(p, alpha, direction)
    figures["odds_ratio"] = _r(odds)
    text = (f"{verdict_word(verdict, bool(direction))}: {statement} {_pct(rate_rep)} of the "
            f"{n_rep:,} new customers who ordered again within {REPEAT_DAYS} days are "
            "Insiders, against "
            f"{_pct(rate_other)} of the {n_other:,} who did not. Buying often is part of "
            "what makes an Insider, so this says how early the signal shows, not that it "
            "causes membership.")
    return {"id": "early_repeaters_become_insiders", "statement": statement,
            "verdict": verdict, "text": text, "figures": figures,
            "analysts": _p_sentence(test["name"], p, alpha, direction),
            "test": {**test, "statistic": _r(odds), "p_value": float(p),
                     "direction_as_stated": bool(direction)}}


# --------------------------------------------------------------------------- helpers


def _insider_flags(customers: pd.DataFrame) -> pd.Series:
    """is_insider by customer id (text), among customers with a purchase in the period."""
    frame = customers
    if "has_purchase" in frame:
        frame = frame[frame["has_purchase"].astype(bool)]
    return pd.Series(frame["is_insider"].astype(bool).to_numpy(),
                     index=as_text(frame["customer_id"]).to_numpy())


def _ids(frame: pd.DataFrame) -> pd.Series:
    return as_text(frame["customer_id"])


def _bought_returned(period: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    ids = _ids(period)
    revenue = period["revenue"].astype(float)
    positive = period["quantity"].to_numpy() > 0
    bought = revenue.where(positive, 0.0).groupby(ids).sum()
    returned = (-revenue).where(~positive, 0.0).groupby(ids).sum()
    return bought, returned


def _split(values: pd.Series, flags: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values of Insiders and of the rest (customers absent from `flags` are left out)."""
    values = values[is_in(values.index, flags.index)]
    insider = flags.reindex(values.index).to_numpy(dtype=bool)
    return values[insider], values[~insider]


def _ratio(num: pd.Series, den: pd.Series, index: pd.Index) -> float:
    total = float(den.reindex(index).sum())
    return float(num.reindex(index).sum()) / total if total else float("nan")


def _autumn_days(start: pd.Timestamp, as_of: pd.Timestamp) -> int:
    days = pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(as_of), freq="D",
                         inclusive="left")
    return int(days.month.isin(AUTUMN).sum())


def _mann_whitney(key: str, statement: str, x: pd.Series, y: pd.Series, alternative: str,
                  figures: dict, describe: Callable[[dict], str], alpha: float, on: str
                  ) -> dict:
    name = "Mann-Whitney U"
    if len(x) < MIN_GROUP or len(y) < MIN_GROUP:
        return _untested(key, statement, figures, f"{len(x)} Insiders and {len(y)} other "
                         f"customers have the figure; each side needs {MIN_GROUP}", alpha, name)
    if np.ptp(np.concatenate([x.to_numpy(), y.to_numpy()])) == 0:
        return _untested(key, statement, figures, "every customer has the same value", alpha,
                         name)
    u, p = mannwhitneyu(x.to_numpy(), y.to_numpy(), alternative=alternative)
    # P(an Insider's value > another customer's), ties half: 0.5 = no difference
    higher = float(u) / (len(x) * len(y))
    direction = higher < 0.5 if alternative == "less" else higher > 0.5
    verdict = significant(p, alpha, direction)
    figures = {**figures, "prob_insider_higher": _r(higher)}
    text = f"{verdict_word(verdict, bool(direction))}: {statement} {describe(figures)}"
    return {"id": key, "statement": statement, "verdict": verdict, "text": text,
            "analysts": _p_sentence(name, p, alpha, direction),
            "figures": figures,
            "test": {"name": name, "alternative": alternative, "alpha": alpha, "on": on,
                     "statistic": float(u), "p_value": float(p),
                     "direction_as_stated": bool(direction)}}


def _untested(key: str, statement: str, figures: dict, why: str, alpha: float, name: str
              ) -> dict:
    return {"id": key, "statement": statement, "verdict": False,
            "text": f"Not shown: {statement} It cannot be tested on this data: {why}.",
            "figures": figures,
            "test": {"name": name, "alpha": alpha, "p_value": None, "statistic": None,
                     "direction_as_stated": None, "not_tested": why}}


def _p_sentence(name: str, p: float, alpha: float, direction: bool) -> str:
    compare = "<" if p < alpha else ">="
    tail = "" if direction else "; the difference goes the other way"
    return f"{name}, one-sided: p = {p:.2g} {compare} {alpha:g}{tail}."


def _disagree(per_customer: tuple, pooled: tuple) -> bool:
    """Whether two (insiders, rest) comparisons of the same measure go opposite ways."""
    values = [*per_customer, *pooled]
    if any(v is None or not np.isfinite(v) for v in values):
        return False
    return np.sign(per_customer[0] - per_customer[1]) * np.sign(pooled[0] - pooled[1]) < 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:,.1%}"


def _r(x: float | None) -> float | None:
    # 8 decimals, not 4: a mean share kept at 4 decimals printed unlike the unrounded one
    return None if x is None or not np.isfinite(x) else round(float(x), 8)
