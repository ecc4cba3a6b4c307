"""The guarantee: out of time, is the chosen group better than the obvious alternatives?

Choose the group `horizon` months before the as-of with the method the
product uses, only from what was known then, and measure what it then spent
against groups of the same size chosen by the alternatives a sceptic would
propose: the top past spenders, the BG/NBD x Gamma-Gamma model, and an RFM
score (quintiles of recency, frequency and spend, summed). Each difference in
capture (share of the following months' revenue) comes with a bootstrap 95%
interval, customers resampled (Poisson weights, see `valuation`), so a tie is
called a tie.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import DEFAULT_BOOTSTRAP, DEFAULT_SEED, SelectionRules, Windows
from . import clv
from .insiders import group_size
from .valuation import (
    LABELS,
    FitCache,
    future_spend,
    months_before,
    poisson_ratio,
    top_mask,
    value_scores,
)

YARDSTICKS = ("past_spend", "bgnbd", "rfm")

# the defaults of config.py's parameter groups
HORIZON = Windows.horizon_months
LOOKBACK = Windows.lookback_months
SEED = DEFAULT_SEED
N_BOOT = DEFAULT_BOOTSTRAP
RULES = SelectionRules()


def compare_groups(spent: np.ndarray, groups: dict[str, np.ndarray], chosen: str,
                   total_next: float, n_boot: int = N_BOOT, seed: int = SEED) -> list[dict]:
    """Capture of each group and the chosen group's capture minus it, with a 95% interval."""
    rng = np.random.default_rng(seed)
    base = groups[chosen]
    base_sum = float(spent[base].sum())
    rows = []
    for name, mask in groups.items():
        captured = float(spent[mask].sum())
        reps = poisson_ratio(spent, base, mask, n_boot, rng)  # chosen / other
        reps = reps[np.isfinite(reps)]
        lo, hi = np.percentile(reps, [2.5, 97.5]) if len(reps) else (np.nan, np.nan)
        rows.append({
            "method": name, "customers": int(mask.sum()), "captured": round(captured, 2),
            "capture": captured / total_next if total_next else np.nan,
            "capture_known": captured / float(spent.sum()) if spent.sum() > 0 else np.nan,
            "overlap_with_chosen": float((mask & base).sum() / max(base.sum(), 1)),
            "chosen_minus_this": (base_sum - captured) / total_next if total_next else np.nan,
            # capture difference interval: (ratio - 1) x this group's capture
            "ci95": (float((lo - 1) * captured / total_next), float((hi - 1) * captured
                                                                    / total_next))
            if total_next and captured else (np.nan, np.nan),
        })
    return rows


def guarantee(days: pd.DataFrame, as_of: pd.Timestamp, method: str, horizon_months: int = HORIZON,
              lookback_months: int = LOOKBACK, rules: SelectionRules = RULES,
              n_boot: int = N_BOOT, seed: int = SEED,
              fits: FitCache | None = None) -> dict:
    """The chosen method's group at `as_of - horizon` against the yardsticks, same size."""
    cut = months_before(as_of, horizon_months)
    fits = fits or FitCache(days, lookback_months)
    if int(days["day"].min()) >= int(np.datetime64(cut.date(), "D").astype(np.int64)) - 28:
        return {"available": False, "text": f"Not enough history before {cut.date()} to choose "
                "a group and measure it out of time."}
    methods = tuple(dict.fromkeys((method, *YARDSTICKS)))
    sc = value_scores(fits, cut, horizon_months, methods, seed)
    if method not in sc.scores:
        return {"available": False, "text": f"{LABELS[method]} is not available on "
                f"{cut.date()}: {'; '.join(sc.notes)}"}
    past = sc.scores["past_spend"]
    size, rule = group_size(np.clip(past, 0, None), rules)
    future = future_spend(days, cut, horizon_months)
    spent = future.reindex(sc.features["customer_id"]).fillna(0.0).to_numpy()
    groups = {m: top_mask(sc.scores[m], size, past) for m in methods}
    total = float(future.sum())
    rows = compare_groups(spent, groups, method, total, n_boot, seed)
    others = [r for r in rows if r["method"] != method]
    parts = []
    for r in others:
        lo, hi = r["ci95"]
        verdict = ("better beyond noise" if lo > 0 else "worse beyond noise" if hi < 0
                   else "a tie within noise")
        if r["overlap_with_chosen"] >= 1:
            verdict = "the same group"
        parts.append(f"{LABELS[r['method']]} {r['capture']:,.1%} ({verdict}: "
                     f"{r['chosen_minus_this']:+.1%}, 95% interval {lo:+.1%} to {hi:+.1%})")
    chosen = next(r for r in rows if r["method"] == method)
    text = (f"Chosen on {cut.date()} by {LABELS[method]}, the {size:,} customers brought "
            f"{chosen['capture']:,.1%} of all revenue in the next {horizon_months} months; the "
            f"same number chosen by " + "; by ".join(parts) + ".")
    return {"available": True, "chosen_on": str(cut.date()), "measured_until":
            str(pd.Timestamp(as_of).date()), "method": method, "group_size": int(size),
            "size_rule": rule, "next_revenue_total": round(total, 2), "groups": rows,
            "notes": sc.notes, "text": text}


def guarantee_from_transactions(transactions: pd.DataFrame, as_of: pd.Timestamp, method: str,
                                **kwargs: object) -> dict:
    """`guarantee` on the canonical transactions frame (lines before `as_of`)."""
    as_of = pd.Timestamp(as_of)
    days = clv.activity(transactions[transactions["invoice_date"] < as_of])
    return guarantee(days, as_of, method, **kwargs)
