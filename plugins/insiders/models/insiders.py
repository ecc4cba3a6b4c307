"""Insiders: the group's size, who is in, the entry and exit lines, in plain words.

Value. Customers are ranked by the value method the rolling-origin replay chose
(`models.valuation`: past spend unless a challenger - BG/NBD x Gamma-Gamma, a
learned model on stacked cut-offs, rank blends - beat it beyond noise), so
the program is never worse than the spreadsheet answer, "the top spenders".

Size rule. The group is the smallest set of top customers that brings
`value_coverage` (50%) of the period's net revenue, kept between `min_share`
(5%) and `max_share` (20%) of the customers with a purchase in the period -
the same rule the replay sized every method's group with.

Hysteresis. A newcomer enters at the entry line (the value of the last customer
inside the size rule); a member leaves only below the exit line, the value at
`exit_factor` (1.5x) the group size, capped at `max_share`, or when the purchase
model says they are probably gone (P(alive) < 0.5) however much they spent. A
member near the line does not flip out and back in from one month to the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from .. import wording
from ..config import SelectionRules, Windows

# features marketing can read in a rule ("spent at least ... in the last 12 months")
RULE_FEATURES = {
    "monetary": ("net spend in the last {period}", "money"),
    "revenue_90d": ("net spend in the last 90 days", "money"),
    "frequency": ("purchases in the last {period}", "count"),
    "recency_days": ("days since the last purchase", "days"),
    "avg_ticket": ("average order value", "money"),
    "tenure_days": ("days since the first purchase", "days"),
    "purchases_per_month": ("purchases per month", "rate"),
}

@dataclass
class Selection:
    size: int
    entry_line: float
    exit_line: float
    exit_rank: int
    active: int
    coverage: float  # share of the size basis (the period's revenue) the group brings
    rule: str


def group_size(expected: np.ndarray, rules: SelectionRules = SelectionRules()
               ) -> tuple[int, str]:
    """Smallest top group that brings `value_coverage` of the revenue, within the share bounds.

    `expected` is what the size is weighed on: the period's net spend per active customer in
    the pipeline and the replay (the same rule for every value method).
    """
    value_coverage, min_share, max_share = rules.value_coverage, rules.min_share, rules.max_share
    n = len(expected)
    if n == 0:
        return 0, "no active customers"
    ordered = np.sort(expected)[::-1]
    total = ordered.sum()
    cum = np.cumsum(ordered) / total if total > 0 else np.linspace(1 / n, 1, n)
    natural = int(np.searchsorted(cum, value_coverage) + 1)
    low, high = max(1, math.ceil(min_share * n)), max(1, math.floor(max_share * n))
    size = int(min(max(natural, low), high))
    if natural < low:
        rule = (f"the top {natural:,} spenders already bring {value_coverage:,.0%} of the "
                f"period's revenue; raised to the {min_share:,.0%} floor ({low})")
    elif natural > high:
        rule = (f"{value_coverage:,.0%} of the period's revenue would need the top {natural:,} "
                f"spenders; capped at {max_share:,.0%} ({high})")
    else:
        rule = (f"as many as the top spenders who together bring {value_coverage:,.0%} of the "
                f"period's revenue: {size:,} of {n:,} active customers")
    return size, rule


def select(
    customers: pd.DataFrame, previous_members: set[str] | None = None,
    rules: SelectionRules = SelectionRules(), value: str = "expected_value",
    size_by: str | None = None, gone: np.ndarray | None = None,
    value_label: str = "expected spend",
) -> tuple[pd.DataFrame, Selection]:
    """Rank by `value`, size, apply entry/exit lines. `customers` needs `value`,
    `has_purchase` and `monetary`; `size_by` (default: `value`) is what the size rule
    weighs; `gone` marks customers the purchase model believes have left (they leave,
    and do not enter). Adds `value_rank`, `is_insider`, `membership`, `membership_reason`.
    """
    out = customers.copy()
    active = out["has_purchase"].to_numpy()
    ev = out[value].to_numpy(dtype=float)
    gone = np.zeros(len(out), dtype=bool) if gone is None else np.asarray(gone, dtype=bool)
    # rank active customers by value, those the model believes gone after the others (they
    # cannot enter, so the group keeps its size); ties by past spend, then id: stable
    order = np.lexsort((out["customer_id"].to_numpy(), -out["monetary"].to_numpy(), -ev,
                        gone, ~active))
    rank = np.empty(len(out), dtype=np.int64)
    rank[order] = np.arange(1, len(out) + 1)
    rank = np.where(active, rank, 0)
    out["value_rank"] = rank
    n_active = int(active.sum())
    basis = ev if size_by is None else np.clip(out[size_by].to_numpy(dtype=float), 0, None)
    size, rule = group_size(basis[active], rules)
    exit_rank = int(min(math.ceil(rules.exit_factor * size),
                        math.floor(rules.max_share * n_active)))
    exit_rank = max(exit_rank, size)
    eligible = active & ~gone
    by_rank = np.sort(ev[eligible if eligible.any() else active])[::-1]
    size = min(size, len(by_rank))
    exit_rank = min(exit_rank, len(by_rank))
    entry_line = float(by_rank[size - 1]) if size else float("inf")
    exit_line = float(by_rank[exit_rank - 1]) if exit_rank else float("inf")

    in_entry = active & (rank >= 1) & (rank <= size) & ~gone
    in_exit = active & (rank >= 1) & (rank <= exit_rank)
    prev = np.zeros(len(out), dtype=bool)
    if previous_members:
        prev = out["customer_id"].astype("str").isin(previous_members).to_numpy()
    stayed = prev & in_exit & ~gone
    left = prev & ~stayed
    entered = ~prev & in_entry
    is_insider = stayed | entered
    status = np.select([entered, stayed, left], ["entered", "stayed", "left"], "outside")
    reasons = np.full(len(out), "", dtype=object)
    if len(out):
        evs = np.array([_amount(v) for v in ev], dtype=object)
        reasons[entered] = (f"{value_label} " + evs[entered]
                            + f" >= entry line {_amount(entry_line)}")
        reasons[stayed] = f"{value_label} " + evs[stayed] + f" >= exit line {_amount(exit_line)}"
        reasons[left] = np.where(
            gone[left], "probably gone: no purchase the model expects any more",
            np.where(active[left], f"{value_label} " + evs[left]
                     + f" < exit line {_amount(exit_line)}",
                     "no purchase in the analysed period"))
        outside = status == "outside"
        reasons[outside] = np.where(active[outside], f"{value_label} " + evs[outside]
                                    + f" < entry line {_amount(entry_line)}",
                                    "no purchase in the period")
        reasons[outside & gone & active] = "probably gone: no purchase the model expects any more"
    out["is_insider"] = is_insider
    out["membership"] = status
    out["membership_reason"] = reasons
    coverage = float(basis[is_insider].sum() / basis[active].sum()) if basis[active].sum() > 0 \
        else 0.0
    return out, Selection(size=size, entry_line=entry_line, exit_line=exit_line,
                          exit_rank=exit_rank, active=n_active, coverage=coverage, rule=rule)


NO_SEGMENT = "No purchase in the period"  # the persona of a customer no segment holds


def calibrated(selection: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Each customer's expected spend and 12-month CLV, the purchase model's scaled by the
    forecast's calibration `factor`, in the selection's order."""
    return pd.DataFrame({
        "customer_id": selection["customer_id"],
        "expected_value": selection["expected_spend_model"] * factor,
        "predicted_clv_12m": selection["predicted_clv_12m_model"] * factor,
    })


def customers_table(selection: pd.DataFrame, segments: pd.DataFrame,
                    expected: pd.DataFrame) -> pd.DataFrame:
    """Every customer of the period as marketing reads them: the selection, each customer's
    segment and persona (-1 and `NO_SEGMENT` without one) and the calibrated values.

    Assembled at the end because selecting needs no segment: the Insiders are chosen, and
    their revenue forecast, beside the segmentation (`stages.insiders.needs`)."""
    if not selection["customer_id"].astype("str").equals(expected["customer_id"]
                                                         .astype("str")):
        raise RuntimeError("the expected values do not list the selection's customers in the "
                           "same order: re-run the forecast stage")
    out = selection.merge(segments, on="customer_id", how="left")
    out["segment"] = out["segment"].fillna(-1).astype("int64")
    out["persona"] = out["persona"].fillna(NO_SEGMENT).astype("str")
    for column in ("expected_value", "predicted_clv_12m"):
        out[column] = expected[column].to_numpy()
    return out


def _amount(value: float) -> str:
    """A value in a reason: money to the unit, small amounts and scores (0..1) to cents."""
    whole = abs(value) >= 100 or not np.isfinite(value) or float(value).is_integer()
    if not np.isfinite(value):
        return f"{value:,.0f}"
    return wording.whole(value) if whole else f"{value:,.2f}"


# --------------------------------------------------------------------------- conditions


@dataclass
class Conditions:
    entry_text: str
    exit_text: str
    rules: list[str]
    agreement: float
    precision: float
    recall: float
    tree_depth: int


def _fmt(feature: str, value: float, currency: str = "", digits: int | None = None) -> str:
    """A rule's figure; `digits` (from `_digits`) when the default would not tell the
    figures either side of a split apart."""
    kind = RULE_FEATURES[feature][1]
    if digits is None:
        digits = _base_digits(kind, value)
    if kind == "money":
        text = wording.whole(value) if digits == 0 else f"{value:,.{digits}f}"
        return f"{text} {currency}".strip()
    if kind == "days":
        return f"{value:.{digits}f} days"
    return f"{value:,.{digits}f}"


def _base_digits(kind: str, value: float) -> int:
    if kind == "money":
        return 0 if abs(value) >= 100 else 2
    return 1 if kind == "rate" else 0


def _digits(feature: str, at_most: float, at_least: float) -> int:
    """Decimals that tell a split's two figures apart ("at most 109.90" / "at least
    110.10", not 110 both times), from the feature's usual ones up to four."""
    kind = RULE_FEATURES[feature][1]
    base = _base_digits(kind, min(abs(at_most), abs(at_least)))
    if kind == "days":  # a day is the unit marketing counts in: "50 days or less"
        return base
    # money goes from units to cents, never to tenths
    steps = [base, *[d for d in ((2, 3, 4) if kind == "money" else range(1, 5)) if d > base]]
    for digits in steps:
        if _fmt(feature, at_most, "", digits) != _fmt(feature, at_least, "", digits):
            return digits
    return base


def _clause(feature: str, op: str, value: float, period: str, currency: str = "",
            digits: int | None = None) -> str:
    """One bound of a rule in words. `value` is a customer's own figure (`_snap`): `>=` reads
    "at least" it, `<=` "at most"; so a rule never names a figure no customer has, and a
    split at the entry line reads the entry line's figure."""
    label = RULE_FEATURES[feature][0].format(period=period)
    if feature == "recency_days":
        days = _fmt(feature, value, "", digits).removesuffix(" days")
        return (f"last purchase within {days} days" if op == "<=" else
                f"last purchase at least {days} days ago")
    if feature == "tenure_days":
        days = _fmt(feature, value, "", digits).removesuffix(" days")
        return (f"a customer for at least {days} days" if op == ">=" else
                f"a customer for {days} days or less")
    if feature == "frequency":
        n = _fmt(feature, value, "", digits)
        return f"at least {n} {label}" if op == ">=" else f"at most {n} {label}"
    word = "at least" if op == ">=" else "at most"
    return f"{label} {word} {_fmt(feature, value, currency, digits)}"


# how a value method's figure reads in a sentence ({h}: the horizon, {p}: the period)
VALUE_WORDS = {
    "past_spend": "net spend over the last {p}",
    "bgnbd": "expected net spend over the next {h} months",
    "learned": "expected net spend over the next {h} months (learned model)",
    "blend": "value score (the average of their percentile by past spend and by expected "
             "spend, 0 to 1)",
    "blend_learned": "value score (the average of their percentile by past spend and by the "
                     "learned model's expected spend, 0 to 1)",
}


def value_words(method: str, windows: Windows) -> str:
    return VALUE_WORDS.get(method, "value").format(h=windows.horizon_months,
                                                   p=f"{windows.lookback_months} months")


def derive_conditions(
    customers: pd.DataFrame, selection: Selection, windows: Windows, seed: int,
    max_depth: int = 3, method: str = "bgnbd", currency: str = "",
) -> Conditions:
    """Plain-language rules that reproduce membership, from a shallow decision tree.

    The entry and exit lines are drawn on the value method's own figure (`method`);
    the tree then restates membership with figures marketing already knows (spend,
    purchases, recency), and its agreement is reported so nobody mistakes the summary
    for the rule itself. `currency` (GBP, BRL) follows every amount in the texts.
    """
    active = customers[customers["has_purchase"]]
    period = f"{windows.lookback_months} months"
    figure = value_words(method, windows)
    money = not method.startswith("blend")

    def line(v: float) -> str:
        if not money:
            return f"{v:.3f}"
        text = wording.whole(v) if abs(v) >= 100 or float(v).is_integer() else f"{v:,.2f}"
        return f"{text} {currency}".strip()

    entry = (f"A customer enters the Insiders when their {figure} is at least "
             f"{line(selection.entry_line)} - today the top {selection.size:,} of "
             f"{selection.active:,} active customers "
             f"({wording.share(selection.size / max(selection.active, 1))}).")
    exit_ = (f"A member leaves when their {figure} falls below {line(selection.exit_line)} "
             f"(the top {selection.exit_rank:,}, "
             f"{wording.share(selection.exit_rank / max(selection.active, 1))} of active "
             "customers), when "
             "the purchase model says they have probably stopped buying (a chance below 50% "
             "that they are still a customer), or when they have no purchase in the last "
             f"{period}. The gap between the entry and the exit line keeps members from "
             "flipping out and back in from one month to the next.")
    names = list(RULE_FEATURES)
    x = active[names].fillna(active[names].median()).to_numpy(dtype=float)
    y = active["is_insider"].to_numpy(dtype=bool)
    if y.all() or not y.any():
        return Conditions(entry, exit_, [], 1.0, 1.0, 1.0, 0)
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=max(5, len(y) // 200),
                                  random_state=seed).fit(x, y)
    pred = tree.predict(x)
    agreement = float((pred == y).mean())
    precision = float((pred & y).sum() / max(pred.sum(), 1))
    recall = float((pred & y).sum() / max(y.sum(), 1))
    rules = _tree_rules(tree, names, x, period, currency)
    return Conditions(entry, exit_, rules, round(agreement, 4), round(precision, 4),
                      round(recall, 4), int(tree.get_depth()))


def _tree_rules(tree: DecisionTreeClassifier, names: list[str], x: np.ndarray, period: str,
                currency: str = "") -> list[str]:
    """One rule per Insider branch; a subtree whose leaves all say Insider is one branch.
    `x` is what the tree was fitted on: each split is read as the customers' own figures
    on either side of it (`_snap`)."""
    t = tree.tree_

    def is_leaf(node: int) -> bool:  # sklearn's documented tree structure: leaves have no child
        return t.children_left[node] == t.children_right[node]

    def positive(node: int) -> bool:
        if is_leaf(node):
            return bool(np.argmax(t.value[node][0]) == 1)
        return positive(t.children_left[node]) and positive(t.children_right[node])

    rules: list[tuple[float, str]] = []

    def walk(node: int, path: list[tuple[str, str, float, int]]) -> None:
        if positive(node):
            text = " and ".join(_clause(f, op, value, period, currency, digits)
                                for f, op, value, digits in _merge(path))
            rules.append((float(t.n_node_samples[node]), text or "every active customer"))
            return
        if is_leaf(node):
            return
        column = int(t.feature[node])
        name = names[column]
        at_most, at_least = _snap(x[:, column], float(t.threshold[node]))
        digits = _digits(name, at_most, at_least)
        walk(t.children_left[node], [*path, (name, "<=", at_most, digits)])
        walk(t.children_right[node], [*path, (name, ">=", at_least, digits)])

    walk(0, [])
    return [text for _, text in sorted(rules, reverse=True)]


def _snap(values: np.ndarray, threshold: float) -> tuple[float, float]:
    """A split's threshold (a midpoint no customer need have) as the largest figure on its
    left and the smallest on its right, compared as scikit-learn's tree compares (float32):
    "at most" / "at least" those select exactly the customers the split does."""
    right = values.astype(np.float32).astype(np.float64) > threshold  # as its C code compares
    left_values, right_values = values[~right], values[right]
    at_most = float(left_values.max()) if len(left_values) else threshold
    at_least = float(right_values.min()) if len(right_values) else threshold
    return at_most, at_least


def _merge(path: list[tuple]) -> list[tuple]:
    """Keep only the tightest bound per feature and direction (with what else its split
    carries, such as its decimals)."""
    best: dict[tuple[str, str], tuple] = {}
    for step in path:
        feature, op, value = step[:3]
        key = (feature, op)
        if key not in best or (value > best[key][2] if op == ">=" else value < best[key][2]):
            best[key] = step
    return list(best.values())
