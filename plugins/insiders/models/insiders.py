"""Insiders: the most valuable customers, valued on what they will spend next.

Value. A loyalty program pays off on what members spend *after* they join, so
customers are ranked by their expected net revenue over the next `horizon`
months. Two estimators compete:
- `learned`: a gradient-boosted Poisson regression that learns from the
  history itself - features as of `as_of - horizon` against what each customer
  actually spent in the following `horizon` months - applied to today's
  features (it can see momentum, lapsing, new big accounts);
- `past_spend`: net spend in the period, scaled to the horizon (the classic
  "top spenders" rule).
Champion/challenger: both are replayed one horizon earlier (trained only on
what was known then) and the one whose group captured more of the following
months' revenue values today's customers. The out-of-time check in
`evaluation` then reports how the chosen method did against the rest and
against simply taking the top past spenders.

Size rule. The group is the smallest set of top-ranked customers expected to
bring `value_coverage` (50%) of next months' revenue, kept between `min_share`
(5%) and `max_share` (20%) of the customers with a purchase in the period.

Hysteresis. A newcomer enters at the entry line (the value of the last customer
inside the size rule); a member leaves only below the exit line, the value at
`exit_factor` (1.5x) the group size, capped at `max_share`. Everyone in the
group is therefore within the top `max_share`, and a member near the line does
not flip out and back in from one month to the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.tree import DecisionTreeClassifier

from ..config import SelectionRules, Windows
from . import features as feats

VALUE_FEATURES = [
    "recency_days", "frequency", "monetary", "avg_ticket", "basket_size", "basket_variety",
    "avg_days_between", "purchases_per_month", "tenure_days", "return_rate", "revenue_90d",
]
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
MIN_TRAINING_CUSTOMERS = 100
METHOD_LABELS = {"learned": "the learned value model", "past_spend": "past spend"}


@dataclass
class ValueModel:
    """Expected next-`horizon` net revenue per customer."""

    method: str  # "learned" or "past_spend"
    horizon_months: int
    period_months: float  # length of the analysed period the features cover
    trained_at: str | None = None
    training_customers: int = 0
    spearman_in_sample: float | None = None
    note: str = ""
    model: HistGradientBoostingRegressor | None = field(default=None, repr=False)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        if self.model is None:
            return past_spend(features, self.horizon_months, self.period_months)
        x = features[VALUE_FEATURES].to_numpy(dtype=float)
        return np.clip(self.model.predict(x), 0, None)

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "horizon_months": self.horizon_months,
            "trained_at": self.trained_at,
            "training_customers": self.training_customers,
            "spearman_in_sample": self.spearman_in_sample,
            "note": self.note,
        }


def past_spend(features: pd.DataFrame, horizon_months: int, period_months: float
               ) -> np.ndarray:
    """Net spend in the period at the same pace over the horizon (ranks like top spenders)."""
    return (features["monetary"].clip(lower=0).to_numpy(dtype=float)
            * horizon_months / max(period_months, 1.0))


def period_months(transactions: pd.DataFrame, as_of: pd.Timestamp, lookback_months: int
                  ) -> float:
    """Months the analysed period really covers (less than the lookback early in the data)."""
    start = feats.period_start(as_of, lookback_months)
    first = feats.first_date(transactions, as_of)
    begin = max(start, first) if pd.notna(first) else as_of
    return max((as_of - begin).days / feats.DAYS_PER_MONTH, 0.0)


def past_spend_model(transactions: pd.DataFrame, as_of: pd.Timestamp, windows: Windows,
                     note: str = "") -> ValueModel:
    horizon_months = windows.horizon_months
    months = period_months(transactions, as_of, windows.lookback_months)
    return ValueModel(method="past_spend", horizon_months=horizon_months, period_months=months,
                      note=note or (f"net spend in the last {months:.1f} months, scaled to "
                                    f"{horizon_months} months"))


def fit_value_model(
    transactions: pd.DataFrame, as_of: pd.Timestamp, windows: Windows, seed: int,
    method: str = "learned",
) -> ValueModel:
    """The value model for `as_of`; `learned` trains on `as_of - horizon` (no look-ahead)."""
    horizon_months, lookback_months = windows.horizon_months, windows.lookback_months
    if method == "past_spend":
        return past_spend_model(transactions, as_of, windows)
    cut = as_of - pd.DateOffset(months=horizon_months)
    first = feats.first_date(transactions, as_of)
    history_days = (cut - first).days if pd.notna(first) else 0
    train = feats.customer_features(transactions, cut, lookback_months)
    train = train[train["has_purchase"]]
    if len(train) < MIN_TRAINING_CUSTOMERS or history_days < 28:
        return past_spend_model(
            transactions, as_of, windows,
            note=(f"only {max(history_days, 0)} days of history and {len(train)} customers "
                  f"before {cut.date()}: too little to learn from, so past spend is used"))
    target = feats.future_revenue(transactions, cut, horizon_months)
    y = target.reindex(train["customer_id"]).fillna(0.0).clip(lower=0).to_numpy()
    x = train[VALUE_FEATURES].to_numpy(dtype=float)
    model = HistGradientBoostingRegressor(
        loss="poisson", max_iter=100, learning_rate=0.1, max_leaf_nodes=15,
        min_samples_leaf=20, l2_regularization=1.0, early_stopping=False, random_state=seed,
    ).fit(x, y)
    rho = spearmanr(model.predict(x), y).statistic
    return ValueModel(
        method="learned", horizon_months=horizon_months,
        period_months=period_months(transactions, as_of, lookback_months),
        trained_at=str(cut.date()), training_customers=int(len(train)),
        spearman_in_sample=None if np.isnan(rho) else round(float(rho), 3),
        note=(f"gradient-boosted Poisson regression trained on {len(train):,} customers: "
              f"features as of {cut.date()} against their net revenue in the following "
              f"{horizon_months} months"),
        model=model,
    )


def compare_value_methods(
    transactions: pd.DataFrame, as_of: pd.Timestamp, windows: Windows, rules: SelectionRules,
    seed: int,
) -> dict:
    """Replay both estimators one horizon ago; the one whose group spent more next wins."""
    horizon_months, lookback_months = windows.horizon_months, windows.lookback_months
    cut = as_of - pd.DateOffset(months=horizon_months)
    past = feats.customer_features(transactions, cut, lookback_months)
    past = past[past["has_purchase"]].reset_index(drop=True)
    learned = fit_value_model(transactions, cut, windows, seed)
    if learned.method != "learned" or len(past) < MIN_TRAINING_CUSTOMERS:
        return {"winner": "past_spend", "replayed_on": str(cut.date()), "captured": {},
                "why": ("not enough history to replay the learned model one horizon ago, so "
                        "customers are valued on their past spend")}
    spent = feats.future_revenue(transactions, cut, horizon_months).reindex(
        past["customer_id"]).fillna(0.0).to_numpy()
    captured = {}
    size = None
    for method in ("learned", "past_spend"):
        model = learned if method == "learned" else past_spend_model(transactions, cut, windows)
        value = model.predict(past)
        if size is None:
            size, _ = group_size(value, rules)
        top = np.argsort(-value, kind="stable")[:size]
        captured[method] = round(float(spent[top].sum()), 2)
    winner = "learned" if captured["learned"] > captured["past_spend"] else "past_spend"
    loser = "past_spend" if winner == "learned" else "learned"
    return {
        "winner": winner,
        "replayed_on": str(cut.date()),
        "group_size": int(size),
        "captured": captured,
        "why": (f"Replayed on {cut.date()}, the {size:,} customers ranked by "
                f"{METHOD_LABELS[winner]} spent {captured[winner]:,.0f} over the next "
                f"{horizon_months} months against {captured[loser]:,.0f} for "
                f"{METHOD_LABELS[loser]}, so {METHOD_LABELS[winner]} values today's customers."),
    }


@dataclass
class Selection:
    size: int
    entry_line: float
    exit_line: float
    exit_rank: int
    active: int
    coverage: float  # share of expected revenue the group brings
    rule: str


def group_size(expected: np.ndarray, rules: SelectionRules = SelectionRules()
               ) -> tuple[int, str]:
    """Smallest top group expected to bring `value_coverage` of revenue, within the share bounds."""
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
        rule = (f"{natural:,} customers would already bring {value_coverage:.0%} of expected "
                f"revenue; raised to the {min_share:.0%} floor ({low})")
    elif natural > high:
        rule = (f"{value_coverage:.0%} of expected revenue would need {natural:,} customers; "
                f"capped at {max_share:.0%} ({high})")
    else:
        rule = (f"the smallest group expected to bring {value_coverage:.0%} of the next months' "
                f"revenue: {size:,} of {n:,} active customers")
    return size, rule


def select(
    customers: pd.DataFrame, previous_members: set[str] | None = None,
    rules: SelectionRules = SelectionRules(),
) -> tuple[pd.DataFrame, Selection]:
    """Rank, size, and apply entry/exit lines. `customers` needs `expected_value`, `has_purchase`.

    Adds `value_rank`, `is_insider`, `membership` and `membership_reason`.
    """
    out = customers.copy()
    active = out["has_purchase"].to_numpy()
    ev = out["expected_value"].to_numpy(dtype=float)
    # rank active customers by expected value; ties by past spend, then id, so it is stable
    order = np.lexsort((out["customer_id"].to_numpy(), -out["monetary"].to_numpy(), -ev,
                        ~active))
    rank = np.empty(len(out), dtype=np.int64)
    rank[order] = np.arange(1, len(out) + 1)
    rank = np.where(active, rank, 0)
    out["value_rank"] = rank
    n_active = int(active.sum())
    size, rule = group_size(ev[active], rules)
    exit_rank = int(min(math.ceil(rules.exit_factor * size),
                        math.floor(rules.max_share * n_active)))
    exit_rank = max(exit_rank, size)
    by_rank = np.sort(ev[active])[::-1]
    entry_line = float(by_rank[size - 1]) if size else float("inf")
    exit_line = float(by_rank[exit_rank - 1]) if exit_rank else float("inf")

    in_entry = active & (rank >= 1) & (rank <= size)
    in_exit = active & (rank >= 1) & (rank <= exit_rank)
    prev = np.zeros(len(out), dtype=bool)
    if previous_members:
        prev = out["customer_id"].astype("str").isin(previous_members).to_numpy()
    stayed = prev & in_exit
    left = prev & ~in_exit
    entered = ~prev & in_entry
    is_insider = stayed | entered
    status = np.select([entered, stayed, left], ["entered", "stayed", "left"], "outside")
    reasons = np.full(len(out), "", dtype=object)
    money = np.vectorize(lambda v: f"{v:,.0f}")
    if len(out):
        evs = money(ev)
        reasons[entered] = ("expected spend " + evs[entered]
                            + f" >= entry line {entry_line:,.0f}")
        reasons[stayed] = "expected spend " + evs[stayed] + f" >= exit line {exit_line:,.0f}"
        reasons[left] = np.where(
            active[left], "expected spend " + evs[left] + f" < exit line {exit_line:,.0f}",
            "no purchase in the last 12 months")
        outside = status == "outside"
        reasons[outside] = np.where(active[outside], "expected spend " + evs[outside]
                                    + f" < entry line {entry_line:,.0f}",
                                    "no purchase in the period")
    out["is_insider"] = is_insider
    out["membership"] = status
    out["membership_reason"] = reasons
    coverage = float(ev[is_insider].sum() / ev[active].sum()) if ev[active].sum() > 0 else 0.0
    return out, Selection(size=size, entry_line=entry_line, exit_line=exit_line,
                          exit_rank=exit_rank, active=n_active, coverage=coverage, rule=rule)


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


def _fmt(feature: str, value: float) -> str:
    kind = RULE_FEATURES[feature][1]
    if kind == "money":
        return f"{value:,.0f}"
    if kind == "days":
        return f"{value:.0f} days"
    if kind == "rate":
        return f"{value:.1f}"
    return f"{math.floor(value) + 1}" if value == math.floor(value) else f"{math.ceil(value)}"


def _clause(feature: str, op: str, threshold: float, period: str) -> str:
    label = RULE_FEATURES[feature][0].format(period=period)
    if feature == "recency_days":
        return (f"last purchase within {threshold:.0f} days" if op == "<=" else
                f"last purchase more than {threshold:.0f} days ago")
    if feature == "tenure_days":
        return (f"a customer for more than {threshold:.0f} days" if op == ">" else
                f"a customer for {threshold:.0f} days or less")
    if feature == "frequency":
        n = math.floor(threshold)
        return f"at least {n + 1} {label}" if op == ">" else f"at most {n} {label}"
    word = "at least" if op == ">" else "at most"
    return f"{label} {word} {_fmt(feature, threshold)}"


def derive_conditions(
    customers: pd.DataFrame, selection: Selection, windows: Windows, seed: int,
    max_depth: int = 3,
) -> Conditions:
    """Plain-language rules that reproduce membership, from a shallow decision tree.

    The tree explains the expected-value ranking with figures marketing already
    knows (spend, purchases, recency); its agreement with the real membership is
    reported so nobody mistakes the summary for the rule itself.
    """
    horizon_months = windows.horizon_months
    active = customers[customers["has_purchase"]]
    period = f"{windows.lookback_months} months"
    entry = (f"A customer enters the Insiders when their expected net spend over the next "
             f"{horizon_months} months is at least {selection.entry_line:,.0f} - today the top "
             f"{selection.size:,} of {selection.active:,} active customers "
             f"({selection.size / max(selection.active, 1):.1%}).")
    exit_ = (f"A member leaves only when their expected spend falls below "
             f"{selection.exit_line:,.0f} (the top {selection.exit_rank:,}, "
             f"{selection.exit_rank / max(selection.active, 1):.0%} of active customers), or "
             f"they have no purchase in the last {period}. The gap between the entry and the exit "
             "line keeps members from flipping out and back in from one month to the next.")
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
    rules = _tree_rules(tree, names, period)
    return Conditions(entry, exit_, rules, round(agreement, 4), round(precision, 4),
                      round(recall, 4), int(tree.get_depth()))


def _tree_rules(tree: DecisionTreeClassifier, names: list[str], period: str) -> list[str]:
    """One rule per Insider branch; a subtree whose leaves all say Insider is one branch."""
    t = tree.tree_

    def is_leaf(node: int) -> bool:  # sklearn's documented tree structure: leaves have no child
        return t.children_left[node] == t.children_right[node]

    def positive(node: int) -> bool:
        if is_leaf(node):
            return bool(np.argmax(t.value[node][0]) == 1)
        return positive(t.children_left[node]) and positive(t.children_right[node])

    rules: list[tuple[float, str]] = []

    def walk(node: int, path: list[tuple[str, str, float]]) -> None:
        if positive(node):
            text = " and ".join(_clause(f, op, thr, period) for f, op, thr in _merge(path))
            rules.append((float(t.n_node_samples[node]), text or "every active customer"))
            return
        if is_leaf(node):
            return
        name = names[t.feature[node]]
        walk(t.children_left[node], [*path, (name, "<=", float(t.threshold[node]))])
        walk(t.children_right[node], [*path, (name, ">", float(t.threshold[node]))])

    walk(0, [])
    return [text for _, text in sorted(rules, reverse=True)]


def _merge(path: list[tuple[str, str, float]]) -> list[tuple[str, str, float]]:
    """Keep only the tightest bound per feature and direction."""
    best: dict[tuple[str, str], float] = {}
    for feature, op, thr in path:
        key = (feature, op)
        if key not in best:
            best[key] = thr
        else:
            best[key] = max(best[key], thr) if op == ">" else min(best[key], thr)
    return [(f, op, thr) for (f, op), thr in best.items()]
