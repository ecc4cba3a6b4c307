"""Evaluation: is the Insiders group really better, and would it have been chosen well?

Two kinds of proof, reported as they come out, good or bad:
- today: Insiders against the rest per key figure, with bootstrap 95%
  confidence intervals of the difference in means and a Mann-Whitney U test
  (no normality assumption: spend is heavily skewed);
- out of time: choose the group as of `as_of - horizon` with the same method
  (trained only on what was known then), then measure what it actually spent
  in the following months against the rest and against the naive alternative,
  the same number of top past spenders.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from .. import wording
from ..config import SelectionRules, Windows
from . import features as feats
from . import guarantee, valuation
from . import insiders as ins
from .significance import ALPHA, significant
from .text import customer_keys, is_in

KEY_FIGURES = {
    "monetary": "net revenue per customer in the period",
    "frequency": "purchases per customer in the period",
    "avg_ticket": "average order value",
    "recency_days": "days since the last purchase",
    "revenue_90d": "net revenue in the last 90 days",
    "return_rate": "share of value returned",
    "basket_size": "units per order",
}


def bootstrap_mean_diff(
    a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, batch: int = 100
) -> tuple[float, float, float]:
    """Difference of means a - b and its 95% percentile interval (batched: bounded memory)."""
    return bootstrap_mean_diffs([(a, b)], n_boot, seed, batch)[0]


def bootstrap_mean_diffs(
    pairs: list[tuple[np.ndarray, np.ndarray]], n_boot: int, seed: int, batch: int = 100
) -> list[tuple[float, float, float]]:
    """`bootstrap_mean_diff` of every (a, b) pair, drawing the resamples once per pair size.

    Each pair's resamples come from a generator seeded with `seed`, so pairs of the same
    sizes (the key figures of one group against the rest) get the same draws: drawn once
    and used for all of them, each result is the one `bootstrap_mean_diff` gives alone.
    On Olist (90,000 customers, 1,000 replicates, eight figures) the draws were most of
    the evaluate stage.
    """
    cleaned = []
    for a, b in pairs:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        cleaned.append((a[np.isfinite(a)], b[np.isfinite(b)]))
    out: list[tuple[float, float, float]] = [(float("nan"),) * 3] * len(cleaned)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, (a, b) in enumerate(cleaned):
        if len(a) and len(b):
            by_size.setdefault((len(a), len(b)), []).append(i)
    for (n_a, n_b), members in by_size.items():
        rng = np.random.default_rng(seed)
        diffs: dict[int, list[np.ndarray]] = {i: [] for i in members}
        for start in range(0, n_boot, batch):
            size = min(batch, n_boot - start)
            pick_a = rng.integers(0, n_a, (size, n_a))
            pick_b = rng.integers(0, n_b, (size, n_b))
            for i in members:
                a, b = cleaned[i]
                diffs[i].append(a[pick_a].mean(axis=1) - b[pick_b].mean(axis=1))
        for i in members:
            a, b = cleaned[i]
            lo, hi = np.percentile(np.concatenate(diffs[i]), [2.5, 97.5])
            out[i] = (float(a.mean() - b.mean()), float(lo), float(hi))
    return out


def _split(values: np.ndarray, in_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The group's and the rest's finite values."""
    values = np.asarray(values, dtype=float)
    g, r = values[in_group], values[~in_group]
    return g[np.isfinite(g)], r[np.isfinite(r)]


def compare(values: np.ndarray, in_group: np.ndarray, n_boot: int, seed: int,
            boot: tuple[float, float, float] | None = None) -> dict:
    """Group vs rest on one figure: means, medians, bootstrap CI, Mann-Whitney p-value.

    `boot`: the bootstrap's (difference, low, high) when already drawn
    (`bootstrap_mean_diffs` for several figures at once)."""
    g, r = _split(values, in_group)
    diff, lo, hi = boot if boot is not None else bootstrap_mean_diff(g, r, n_boot, seed)
    p = float("nan")
    if len(g) and len(r) and not (np.all(g == g[0]) and np.all(r == g[0])):
        p = float(mannwhitneyu(g, r, alternative="two-sided").pvalue)
    return {
        "insiders_mean": _r(g.mean()) if len(g) else None,
        "rest_mean": _r(r.mean()) if len(r) else None,
        "insiders_median": _r(np.median(g)) if len(g) else None,
        "rest_median": _r(np.median(r)) if len(r) else None,
        "difference": _r(diff),
        "ci95": [_r(lo), _r(hi)],
        "ratio": _r(g.mean() / r.mean()) if len(r) and r.mean() else None,
        "p_value": p,
        "alpha": ALPHA,
        "significant": significant(p, ALPHA),
    }


def money(x: float | None, currency: str = "") -> str:
    """An amount in a sentence: whole units, or cents when it is small (1.45 BRL, not 1)."""
    return wording.money(x, currency)


def _r(x: float) -> float | None:
    # 8 decimals, not 4: a mean share kept at 4 decimals printed unlike the unrounded one
    return None if x is None or not np.isfinite(x) else round(float(x), 8)


def insiders_vs_rest(customers: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """Key figures for Insiders against the other active customers."""
    active = customers[customers["has_purchase"]]
    flag = active["is_insider"].to_numpy(dtype=bool)
    values = {name: active[name].to_numpy() for name in KEY_FIGURES}
    boots = bootstrap_mean_diffs([_split(v, flag) for v in values.values()], n_boot, seed)
    return {name: {"label": label, **compare(values[name], flag, n_boot, seed, boot)}
            for (name, label), boot in zip(KEY_FIGURES.items(), boots, strict=True)}


def out_of_time(
    days: pd.DataFrame, fits: valuation.FitCache, as_of: pd.Timestamp, method: str,
    windows: Windows, rules: SelectionRules, n_boot: int, seed: int, currency: str = "",
) -> dict:
    """Choose the group `horizon` months ago as the pipeline would have (the same value
    method, only what was known then), then see what it spent - against the rest, the
    same number of top past spenders, and the BG/NBD and RFM yardsticks.

    `days` and `fits` are the value models' per-day activity and fit cache
    (`models.clv.activity`, `models.valuation.FitCache`).
    """
    horizon_months, lookback_months = windows.horizon_months, windows.lookback_months
    cut = valuation.months_before(as_of, horizon_months)
    if not len(days) or valuation.first_day(days) > cut - pd.Timedelta(days=28):
        return {"available": False,
                "text": (f"Not enough history for an out-of-time check: it needs data from "
                         f"before {cut.date()} to choose a group and the {horizon_months} "
                         "months after it to measure it.")}
    methods = tuple(dict.fromkeys((method, *guarantee.YARDSTICKS)))
    sc = valuation.value_scores(fits, cut, horizon_months, methods, seed)
    if method not in sc.scores:
        method = "past_spend"  # the champion could not be fitted then: what the program used
    chosen = sc.features
    past = sc.scores["past_spend"] if len(chosen) else np.zeros(0)
    n, rule = ins.group_size(np.clip(past, 0, None), rules)
    future = valuation.future_spend(days, cut, horizon_months)
    spent = future.reindex(chosen["customer_id"]).fillna(0.0).to_numpy()
    in_group = valuation.top_mask(sc.scores[method], n, past) if len(chosen) else \
        np.zeros(0, dtype=bool)
    in_top = valuation.top_mask(past, n, past) if len(chosen) else np.zeros(0, dtype=bool)
    total_next = float(future.sum())  # includes customers who were new after the cut
    yardsticks = guarantee.compare_groups(
        spent, {m: valuation.top_mask(sc.scores[m], n, past) for m in methods}, method,
        total_next, n_boot, seed) if n and total_next else []

    def figures(mask: np.ndarray) -> dict:
        rev = spent[mask]
        return {
            "customers": int(mask.sum()),
            "revenue": round(float(rev.sum()), 2),
            "revenue_per_customer": round(float(rev.mean()), 2) if len(rev) else None,
            "share_of_next_revenue": wording.stored(rev.sum() / total_next) if total_next else
            None,
            "bought_again": wording.stored((rev > 0).mean()) if len(rev) else None,
        }

    # who really were the top-n spenders afterwards, among customers known at the cut
    actual_top = np.zeros(len(chosen), dtype=bool)
    actual_top[np.argsort(-spent, kind="stable")[:n]] = True
    vs_rest = compare(spent, in_group, n_boot, seed)
    diff, lo, hi = _paired_group_diff(spent, in_group, in_top, n_boot, seed)
    result = {
        "available": True,
        "chosen_on": str(cut.date()),
        "measured_until": str(as_of.date()),
        "months": horizon_months,
        "group_size": n,
        "method": method,
        "method_label": valuation.LABELS.get(method, method),
        "lookback_months": lookback_months,
        "insiders": figures(in_group),
        "rest": figures(~in_group),
        "top_spenders": figures(in_top),
        # the shares above add up to less than 100%: the rest of the next months' revenue
        # came from customers the cut could not rank (new, or back after the lookback)
        "not_ranked": _unranked(future, chosen["customer_id"], total_next),
        "overlap_with_top_spenders": wording.stored((in_group & in_top).sum() / max(n, 1)),
        "precision_vs_actual_top": {
            "insiders": wording.stored((in_group & actual_top).sum() / max(n, 1)),
            "top_spenders": wording.stored((in_top & actual_top).sum() / max(n, 1)),
        },
        "insiders_vs_rest": vs_rest,
        "insiders_vs_top_spenders": {
            "difference_per_customer": _r(diff), "ci95": [_r(lo), _r(hi)],
        },
        "next_revenue_total": round(total_next, 2),
        "selection_rule": rule,
        "yardsticks": yardsticks,
        "member_ids": chosen.loc[in_group, "customer_id"].astype("str").tolist(),
    }
    g, t, r = result["insiders"], result["top_spenders"], result["rest"]
    if not n or not (~in_group).any():
        # nobody (or everybody) had a purchase in the year before the cut: no group to measure
        rest = int((~in_group).sum())
        who = ("no customer had a purchase" if not n and not rest else
               f"{n:,} Insiders and {rest:,} other customers had a purchase")
        result["text"] = (f"Chosen on {cut.date()}, {who} in the {lookback_months} months "
                          "before: the out-of-time check needs both groups, so it cannot be "
                          "made.")
        result["available"] = False  # readers (answers, report) then show only the text
        return result
    if not total_next:
        result["text"] = (f"Chosen on {cut.date()}, the {n:,} Insiders - like every other customer "
                          f"- bought nothing in the {horizon_months} months that followed, so "
                          "the check cannot tell them apart.")
        return result
    text = (f"Chosen on {cut.date()}, the {n:,} Insiders spent "
            f"{money(g['revenue_per_customer'], currency)} "
            f"each over the next {horizon_months} months against "
            f"{money(r['revenue_per_customer'], currency)} for the rest, and brought "
            f"{wording.share(g['share_of_next_revenue'])} of all revenue.")
    if result["overlap_with_top_spenders"] >= 1.0:
        text += (" The group was the top past spenders themselves (past spend ranked the "
                 "customers), so that alternative is the same group.")
    else:
        better = "more" if diff > 0 else "less"
        sure = ("a difference the bootstrap interval confirms" if np.sign(lo) == np.sign(hi)
                else "but the bootstrap interval includes zero: statistically a tie")
        text += (f" The same number of top past spenders brought "
                 f"{wording.share(t['share_of_next_revenue'])}: the Insiders spent "
                 f"{money(abs(diff), currency)} "
                 f"{better} per customer, {sure}.")
    others = [y for y in yardsticks if y["method"] not in (method, "past_spend")]
    if others:
        text += " Chosen the same day by " + "; by ".join(
            f"{valuation.LABELS.get(y['method'], y['method'])}, the same number brought "
            f"{wording.share(y['capture'])}" for y in others) + "."
    result["text"] = text
    return result


def _unranked(future: pd.Series, known: pd.Series, total_next: float) -> dict:
    """What customers without a purchase in the lookback before the cut spent afterwards."""
    rev = future[~is_in(future.index.astype("str"), known.astype("str"))]
    return {"customers": int(len(rev)), "revenue": round(float(rev.sum()), 2),
            "revenue_per_customer": round(float(rev.mean()), 2) if len(rev) else None,
            "share_of_next_revenue": wording.stored(rev.sum() / total_next) if total_next
            else None}


def _paired_group_diff(
    spent: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, batch: int = 100
) -> tuple[float, float, float]:
    """Mean spend of group a minus group b, resampling customers (the groups overlap)."""
    point = float(spent[a].mean() - spent[b].mean()) if a.any() and b.any() else float("nan")
    rng = np.random.default_rng(seed)
    n = len(spent)
    out = []
    for start in range(0, n_boot, batch):
        size = min(batch, n_boot - start)
        idx = rng.integers(0, n, (size, n))
        s, ma, mb = spent[idx], a[idx], b[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append((s * ma).sum(1) / ma.sum(1) - (s * mb).sum(1) / mb.sum(1))
    d = np.concatenate(out)
    d = d[np.isfinite(d)]
    if not len(d):
        return point, float("nan"), float("nan")
    lo, hi = np.percentile(d, [2.5, 97.5])
    return point, float(lo), float(hi)


def cohorts(transactions, as_of: pd.Timestamp, lookback_months: int) -> pd.DataFrame:
    """Share of each first-purchase-month cohort that bought again k months later.

    Rows: cohort month (first purchase ever falls in the analysed period);
    columns: `customers` then months since the first purchase (0..); values:
    share of the cohort that bought in that month. `transactions`: the kept lines or an
    engine's `Lines`, which counts the customers per cohort and month itself.
    """
    if isinstance(transactions, pd.DataFrame):
        counts = cohort_counts(transactions, as_of, lookback_months)
    else:
        counts = transactions.cohort_activity(as_of, lookback_months)
    if counts.empty:
        return pd.DataFrame()
    counts = counts.astype({"cohort": np.int64, "offset": np.int64, "n": np.int64})
    active = counts.set_index(["cohort", "offset"])["n"].sort_index().unstack(fill_value=0)
    # every month since the first purchase has a column, even one where nobody bought
    active = active.reindex(columns=range(int(active.columns.max()) + 1), fill_value=0)
    sizes = active[0]
    table = active.div(sizes, axis=0).round(4)
    # months a cohort has not lived through yet are unknown, not 0%
    # (the last month with data is the as-of's when the run starts inside it, else the one
    # before: as of 2011-12-01, December has not begun)
    final = as_of - pd.Timedelta(days=1)
    last = final.year * 12 + final.month - 1
    for cohort in table.index:
        table.loc[cohort, [c for c in table.columns if cohort + c > last]] = np.nan
    table.columns = [int(c) for c in table.columns]
    table.insert(0, "customers", sizes)
    table.index = [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in table.index]
    table.index.name = "cohort"
    return table


def cohort_counts(transactions: pd.DataFrame, as_of: pd.Timestamp, lookback_months: int
                  ) -> pd.DataFrame:
    """(cohort month, months since, customers who bought then) for the customers whose
    first purchase before `as_of` falls in the analysed period (`Lines.cohort_activity`)."""
    start = feats.period_start(as_of, lookback_months)
    buys = transactions[(transactions["quantity"] > 0) & ~transactions["is_cancellation"]
                        & (transactions["invoice_date"] < as_of)]
    empty = pd.DataFrame({"cohort": [], "offset": [], "n": []}, dtype=np.int64)
    if buys.empty:
        return empty
    dates = buys["invoice_date"].dt
    # customers as integer keys: only grouped on (text per line cost more than the rest)
    frame = pd.DataFrame({"customer_id": customer_keys(buys["customer_id"]),
                          "month": (dates.year * 12 + dates.month - 1).to_numpy()})
    frame = frame[frame["customer_id"] >= 0].drop_duplicates()
    frame["cohort"] = frame.groupby("customer_id")["month"].transform("min")
    frame = frame[frame["cohort"] >= start.year * 12 + start.month - 1]
    if frame.empty:
        return empty
    frame["offset"] = frame["month"] - frame["cohort"]
    return frame.groupby(["cohort", "offset"]).size().rename("n").reset_index()
