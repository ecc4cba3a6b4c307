"""Value methods that compete on evidence: a rolling-origin replay picks the champion.

The contestants score every active customer (a purchase in the analysed
period) at a cut-off, using only what was known then:
- `past_spend`: net spend in the analysed period (the classic top spenders);
- `bgnbd`: BG/NBD x Gamma-Gamma expected net spend over the horizon (`clv`);
- `learned`: gradient-boosted Poisson regression trained on several STACKED
  earlier cut-offs (features at c, spend in [c, c + horizon) for c = cut -
  horizon, cut - horizon - 1 month, ...), so it has enough rows early in the
  data; its features include the BG/NBD outputs at each cut;
- `blend`: the mean of the percentile ranks of past spend and BG/NBD, and
  `blend_learned` the same with the learned model (rank blends do not care
  about each model's scale).

Rolling origin. Every month with enough history before it and a whole
horizon after it (up to `as_of`) is an origin: each method picks the same
number of customers (the size rule applied to past spend), and is scored on
what that group then spent. One replay can be luck; a champion has to win
across origins.

Champion rule: robust first, clever second. Past spend stays the champion
unless a challenger beats it beyond noise: its capture ratio to past spend,
averaged over the origins, has a bootstrap 95% interval above 1 (customers
resampled at every origin), and at no single origin is it worse beyond noise.
On Online Retail the top past spenders already capture most of what perfect
foresight would; on consumer data BG/NBD and rank blends can gain: the replay
decides per data set, and the result says why.

Bootstrap: a Poisson(1) bootstrap (each customer's weight drawn independently)
approximates the multinomial resampling of customers and only needs draws for
customers in one of the compared groups, so it stays cheap on 100k customers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import wording
from ..config import DEFAULT_SEED, SelectionRules, Windows
from . import clv
from .insiders import group_size

METHODS = ("past_spend", "bgnbd", "learned", "blend", "blend_learned")
# the monthly contest: the learned model and its blend never won on either data set (Online
# Retail, Olist) and cost ~70% of the replay (a boosted fit on stacked cut-offs at every
# origin), so they run only when asked (Settings.learned_challenger, bench/rolling_origin.py)
LEARNED = ("learned", "blend_learned")
DEFAULT_METHODS = tuple(m for m in METHODS if m not in LEARNED)
LABELS = {
    "past_spend": "past spend", "bgnbd": "BG/NBD x Gamma-Gamma",
    "learned": "the learned model (stacked cut-offs)", "blend": "past spend + BG/NBD rank blend",
    "blend_learned": "past spend + learned rank blend", "rfm": "RFM quintile score",
}
LEARNED_FEATURES = [
    "x", "t_x", "T", "recency", "purchases", "period_purchases", "past_spend", "spend_90d",
    "historic_value", "mean_value", "bg_purchases", "p_alive", "bg_spend", "order_value",
]
MIN_CUSTOMERS = 100
MIN_HISTORY_DAYS = 60  # before a training cut-off
MIN_ORIGIN_MONTHS = 3  # of data before a replay origin

# the defaults of config.py's parameter groups
HORIZON = Windows.horizon_months
LOOKBACK = Windows.lookback_months
SEED = DEFAULT_SEED
RULES = SelectionRules()


def contest_methods(learned: bool = False) -> tuple[str, ...]:
    """The methods of the monthly contest: every method, or all but the learned pair."""
    return METHODS if learned else DEFAULT_METHODS


def months_before(as_of: pd.Timestamp, k: int) -> pd.Timestamp:
    return pd.Timestamp(as_of) - pd.DateOffset(months=k)


def first_day(days: pd.DataFrame) -> pd.Timestamp:
    return pd.Timestamp(np.datetime64(int(days["day"].min()), "D"))


def future_spend(days: pd.DataFrame, start: pd.Timestamp, months: int) -> pd.Series:
    """Net revenue per customer in [start, start + months)."""
    lo = np.datetime64(pd.Timestamp(start).date(), "D").astype(np.int64)
    hi = np.datetime64((pd.Timestamp(start) + pd.DateOffset(months=months)).date(),
                       "D").astype(np.int64)
    window = days[(days["day"] >= lo) & (days["day"] < hi)]
    return window.groupby("customer_id")["net"].sum()


class FitCache:
    """ClvFits per cut-off for one replay: the same cut-offs recur as origins and training cuts.

    An explicit object the caller owns (no module state): created per call of
    `replay` or `value_scores`, dropped with it.
    """

    def __init__(self, days: pd.DataFrame, lookback_months: int) -> None:
        self.days = days
        self.lookback_months = lookback_months
        self._fits: dict[pd.Timestamp, clv.ClvFit] = {}
        self._features: dict[tuple[pd.Timestamp, int], pd.DataFrame] = {}

    def fit(self, cut: pd.Timestamp) -> clv.ClvFit:
        cut = pd.Timestamp(cut)
        if cut not in self._fits:
            self._fits[cut] = clv.fit_clv(self.days, cut, self.lookback_months)
        return self._fits[cut]

    def features(self, cut: pd.Timestamp, horizon_months: int) -> pd.DataFrame:
        """`value_features` of the fit at `cut`, once: the replay, today's values and the
        forecast's groups all score the same cut-offs (callers copy before changing it)."""
        key = (pd.Timestamp(cut), horizon_months)
        if key not in self._features:
            self._features[key] = value_features(self.fit(key[0]), horizon_months)
        return self._features[key]


def value_features(fit: clv.ClvFit, horizon_months: int) -> pd.DataFrame:
    """RFM figures plus the BG/NBD outputs for every customer of the fit's summary."""
    s = fit.summary
    h_days = clv.horizon_days(fit.as_of, horizon_months)
    x, t_x, big_t = fit.model_inputs()
    out = s[["customer_id", "active", "x", "t_x", "T", "purchases", "period_purchases",
             "past_spend", "spend_90d", "historic_value"]].copy()
    out["recency"] = s["T"] - s["t_x"]
    out["mean_value"] = s["historic_value"] / s["purchases"].clip(lower=1)
    out["bg_purchases"] = fit.expected_purchases(h_days)
    out["p_alive"] = fit.purchases.p_alive(x, t_x, big_t)
    out["order_value"] = fit.order_value()
    out["bg_spend"] = out["bg_purchases"] * out["order_value"]
    return out


class StackedValueModel:
    """Gradient-boosted Poisson regression on features at several earlier cut-offs, stacked."""

    def __init__(self, horizon_months: int = HORIZON, n_cuts: int = 6, max_rows: int = 20_000,
                 seed: int = SEED) -> None:
        self.horizon_months = horizon_months
        self.n_cuts = n_cuts
        self.max_rows = max_rows
        self.seed = seed

    def training_cuts(self, days: pd.DataFrame, cut: pd.Timestamp) -> list[pd.Timestamp]:
        """cut - horizon, one month before that, ...: every target is known at `cut`."""
        earliest = first_day(days) + pd.Timedelta(days=MIN_HISTORY_DAYS)
        cuts = [months_before(cut, self.horizon_months + k) for k in range(self.n_cuts)]
        return [c for c in cuts if c >= earliest]

    def fit(self, fits: FitCache, cut: pd.Timestamp) -> StackedValueModel:
        rows = []
        for c in self.training_cuts(fits.days, cut):
            frame = fits.features(c, self.horizon_months)
            frame = frame[frame["active"]]
            spent = future_spend(fits.days, c, self.horizon_months)
            frame["target"] = spent.reindex(frame["customer_id"]).fillna(0.0).clip(
                lower=0).to_numpy()
            rows.append(frame)
        data = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
        if len(data) < MIN_CUSTOMERS:
            raise ValueError(f"too few training rows ({len(data)}) before {cut.date()}")
        if len(data) > self.max_rows:
            data = data.sample(self.max_rows, random_state=self.seed)
        self.cuts_ = [str(c.date()) for c in self.training_cuts(fits.days, cut)]
        self.rows_ = int(len(data))
        # imported here: scikit-learn's boosting costs ~0.3 s to import and only the opt-in
        # learned challenger uses it
        from sklearn.ensemble import HistGradientBoostingRegressor

        self.model_ = HistGradientBoostingRegressor(
            loss="poisson", max_iter=100, learning_rate=0.1, max_leaf_nodes=15,
            min_samples_leaf=20, l2_regularization=1.0, early_stopping=False,
            random_state=self.seed,
        ).fit(data[LEARNED_FEATURES].to_numpy(float), data["target"].to_numpy(float))
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.clip(self.model_.predict(features[LEARNED_FEATURES].to_numpy(float)), 0, None)


def pct_rank(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).rank(pct=True, method="average").to_numpy()


def rfm_score(features: pd.DataFrame) -> np.ndarray:
    """Quintile R + F + M (each 1..5, 5 best): recency, purchases and spend in the period.

    Past spend breaks ties (a score from 3 to 15 ties thousands of customers).
    """
    def quintile(v: np.ndarray) -> np.ndarray:
        return np.ceil(pct_rank(v) * 5).clip(1, 5)

    score = (quintile(-features["recency"].to_numpy(float))
             + quintile(features["period_purchases"].to_numpy(float))
             + quintile(features["past_spend"].to_numpy(float)))
    return score + pct_rank(features["past_spend"].to_numpy(float)) * 1e-3


@dataclass
class Scores:
    """Every active customer at one cut-off with each method's score."""

    cut: pd.Timestamp
    features: pd.DataFrame  # active customers, value_features columns
    scores: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)


def value_scores(fits: FitCache, cut: pd.Timestamp, horizon_months: int = HORIZON,
                 methods: tuple[str, ...] = METHODS, seed: int = SEED) -> Scores:
    """Each method's score for the active customers at `cut` (only data before `cut`)."""
    cut = pd.Timestamp(cut)
    fit = fits.fit(cut)
    feats = fits.features(cut, horizon_months)
    feats = feats[feats["active"]].reset_index(drop=True)
    out: dict[str, np.ndarray] = {
        "past_spend": feats["past_spend"].to_numpy(float),
        "bgnbd": feats["bg_spend"].to_numpy(float),
        "rfm": rfm_score(feats),
    }
    notes = [f"{cut.date()}: {n}" for n in fit.notes]
    if "learned" in methods or "blend_learned" in methods:
        try:
            model = StackedValueModel(horizon_months, seed=seed).fit(fits, cut)
            out["learned"] = model.predict(feats)
        except ValueError as exc:
            notes.append(f"{cut.date()}: learned model not available ({exc})")
    out["blend"] = (pct_rank(out["past_spend"]) + pct_rank(out["bgnbd"])) / 2
    if "learned" in out:
        out["blend_learned"] = (pct_rank(out["past_spend"]) + pct_rank(out["learned"])) / 2
    return Scores(cut, feats, {k: v for k, v in out.items() if k in methods or k == "rfm"},
                  notes)


def top_mask(score: np.ndarray, size: int, tiebreak: np.ndarray) -> np.ndarray:
    """The `size` best scores; ties broken by past spend so groups are stable."""
    order = np.lexsort((-tiebreak, -score))
    mask = np.zeros(len(score), dtype=bool)
    mask[order[:size]] = True
    return mask


def poisson_ratio(spent: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of sum(spent[a]) / sum(spent[b]), Poisson(1) weights per customer."""
    union = (a | b) & (spent != 0)  # customers who spent nothing add to neither sum
    s, wa, wb = spent[union], a[union], b[union]
    weights = rng.poisson(1.0, size=(n_boot, len(s)))
    num = weights @ (s * wa)
    den = weights @ (s * wb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


@dataclass
class Origin:
    cut: pd.Timestamp
    size: int
    candidates: int
    total_next: float
    perfect: float  # what the true top-`size` candidates spent
    groups: dict[str, np.ndarray]  # method -> mask over candidates
    spent: np.ndarray  # per candidate, in [cut, cut + horizon)
    customer_ids: np.ndarray
    notes: list[str]
    boot: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def ratios(self, a: np.ndarray, b: np.ndarray, n_boot: int, rng: np.random.Generator
               ) -> np.ndarray:
        """Bootstrap replicates of spend(a) / spend(b). One set of Poisson weights per origin,
        drawn for the customers in any method's group who spent something (the others add
        nothing to either sum), serves every comparison: paired, and one draw per origin."""
        if self.boot is None or self.boot[1].shape[0] != n_boot:
            members = np.flatnonzero(np.logical_or.reduce(list(self.groups.values()))
                                     & (self.spent != 0))
            self.boot = (members, rng.poisson(1.0, size=(n_boot, len(members))).astype(float))
        members, weights = self.boot
        s = self.spent[members]
        with np.errstate(divide="ignore", invalid="ignore"):
            return (weights @ (s * a[members])) / (weights @ (s * b[members]))


def replay_origin(fits: FitCache, cut: pd.Timestamp, horizon_months: int, methods: tuple,
                  size_rule: SelectionRules, seed: int) -> Origin:
    sc = value_scores(fits, cut, horizon_months, methods, seed)
    past = sc.scores["past_spend"]
    size, _ = group_size(np.clip(past, 0, None), size_rule)
    future = future_spend(fits.days, cut, horizon_months)
    spent = future.reindex(sc.features["customer_id"]).fillna(0.0).to_numpy()
    groups = {m: top_mask(s, size, past) for m, s in sc.scores.items()}
    perfect = float(np.sort(spent)[::-1][:size].sum())
    return Origin(pd.Timestamp(cut), int(size), len(past), float(future.sum()), perfect,
                  groups, spent, sc.features["customer_id"].to_numpy(), sc.notes)


def origins_for(days: pd.DataFrame, as_of: pd.Timestamp, horizon_months: int,
                max_origins: int = 12) -> list[pd.Timestamp]:
    """Monthly origins whose whole horizon ends by `as_of`, newest first, with enough history."""
    start = first_day(days) + pd.DateOffset(months=MIN_ORIGIN_MONTHS)
    out = []
    k = horizon_months
    while len(out) < max_origins:
        cut = months_before(as_of, k)
        if cut < start:
            break
        out.append(cut)
        k += 1
    return out


def origin_table(origin: Origin, n_boot: int, rng: np.random.Generator) -> list[dict]:
    """Capture, lift, precision, ratio to past spend and perfect foresight, per method."""
    truth = top_mask(origin.spent, origin.size, origin.spent)
    base = origin.groups["past_spend"]
    known = float(origin.spent.sum())
    per_candidate = known / max(origin.candidates, 1)
    rows = []
    for method, mask in origin.groups.items():
        captured = float(origin.spent[mask].sum())
        reps = origin.ratios(mask, base, n_boot, rng)
        reps = reps[np.isfinite(reps)]
        past = float(origin.spent[base].sum())
        lo, hi = (np.percentile(reps, [2.5, 97.5]) if len(reps) else (np.nan, np.nan))
        rows.append({
            "origin": str(origin.cut.date()), "method": method, "size": origin.size,
            "candidates": origin.candidates, "captured": round(captured, 2),
            "capture": captured / origin.total_next if origin.total_next else np.nan,
            # of what the customers known at the origin spent (new customers excluded)
            "capture_known": captured / known if known > 0 else np.nan,
            "lift": (captured / origin.size) / per_candidate if per_candidate else np.nan,
            "precision": float((mask & truth).sum() / max(origin.size, 1)),
            "vs_perfect": captured / origin.perfect if origin.perfect else np.nan,
            "ratio_to_past": captured / past if past else np.nan,
            "ratio_ci95": (float(lo), float(hi)),
            "diff_capture_ci95": tuple(
                float((v - 1) * past / origin.total_next) if origin.total_next else np.nan
                for v in (lo, hi)),
        })
    return rows


@dataclass
class Replay:
    origins: list[Origin]
    table: pd.DataFrame  # one row per origin and method
    summary: pd.DataFrame  # one row per method
    champion: str
    why: str
    notes: list[str]
    seconds: float = 0.0


def replay(transactions: pd.DataFrame | None, as_of: pd.Timestamp, horizon_months: int = HORIZON,
           lookback_months: int = LOOKBACK, methods: tuple[str, ...] = METHODS,
           rules: SelectionRules = RULES,
           max_origins: int = 12, n_boot: int = 500, seed: int = SEED,
           days: pd.DataFrame | None = None, fits: FitCache | None = None) -> Replay:
    """Rolling-origin replay of every method and the champion it implies for `as_of`."""
    import time

    started = time.perf_counter()
    as_of = pd.Timestamp(as_of)
    if days is None:
        days = clv.activity(transactions[transactions["invoice_date"] < as_of])
    fits = fits or FitCache(days, lookback_months)
    rule = rules
    rng = np.random.default_rng(seed)
    origins, rows, notes = [], [], []
    for cut in origins_for(days, as_of, horizon_months, max_origins):
        origin = replay_origin(fits, cut, horizon_months, methods, rule, seed)
        if origin.candidates < MIN_CUSTOMERS or origin.total_next <= 0:
            notes.append(f"{cut.date()}: skipped ({origin.candidates} active customers, "
                         f"{origin.total_next:,.0f} revenue after)")
            continue
        origins.append(origin)
        notes += origin.notes
        rows += origin_table(origin, n_boot, rng)
    table = pd.DataFrame(rows)
    summary, champion, why = choose_champion(origins, n_boot, rng)
    return Replay(origins[::-1], table.iloc[::-1].reset_index(drop=True) if len(table) else table,
                  summary, champion, why, notes, time.perf_counter() - started)


def _mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def choose_champion(origins: list[Origin], n_boot: int, rng: np.random.Generator,
                    min_origins: int = 3) -> tuple[pd.DataFrame, str, str]:
    """Past spend unless a challenger's mean capture ratio is above 1 beyond noise."""
    if len(origins) < min_origins:
        have = ("No replay origin has a whole horizon after it yet" if not origins else
                f"Only {wording.counted(len(origins), 'replay origin')} "
                f"{'has' if len(origins) == 1 else 'have'} a whole horizon after "
                f"{'it' if len(origins) == 1 else 'them'}")
        return (pd.DataFrame(), "past_spend",
                f"{have} ({min_origins} are needed), so past spend values the customers until "
                "the evidence exists.")
    # RFM is a yardstick for the guarantee, not a contestant
    methods = sorted({m for o in origins for m in o.groups} - {"past_spend", "rfm"})
    rows = []
    for m in ["past_spend", *methods, "rfm"]:
        used = [o for o in origins if m in o.groups]
        if not used:
            continue
        logs, boots, worse = [], np.zeros(n_boot), 0
        for o in used:
            base, mask = o.groups["past_spend"], o.groups[m]
            past = o.spent[base].sum()
            logs.append(math.log(max(o.spent[mask].sum(), 1e-9) / max(past, 1e-9)))
            reps = o.ratios(mask, base, n_boot, rng)
            boots += np.log(np.clip(np.nan_to_num(reps, nan=1.0), 1e-9, None))
            finite = reps[np.isfinite(reps)]
            if len(finite) and np.percentile(finite, 97.5) < 1:
                worse += 1
        boots /= max(len(used), 1)
        lo, hi = np.exp(np.percentile(boots, [2.5, 97.5]))
        rows.append({
            "method": m, "origins": len(used),
            "mean_ratio_to_past": float(math.exp(np.mean(logs))) if logs else np.nan,
            "ratio_ci95": (float(lo), float(hi)),
            "min_ratio": float(math.exp(min(logs))) if logs else np.nan,
            "origins_worse_beyond_noise": worse,
            "mean_capture": float(np.mean([o.spent[o.groups[m]].sum() / o.total_next
                                           for o in used])),
            # origins where nobody spent afterwards have no perfect group to compare with
            "mean_vs_perfect": _mean_or_nan([o.spent[o.groups[m]].sum() / o.perfect
                                             for o in used if o.perfect]),
        })
    summary = pd.DataFrame(rows)
    contest = summary["method"].isin(METHODS) & (summary["method"] != "past_spend")
    eligible = summary[contest
                       & (summary["origins"] >= min_origins)
                       & (summary["ratio_ci95"].map(lambda ci: ci[0]) > 1)
                       & (summary["origins_worse_beyond_noise"] == 0)]
    best = summary[contest].sort_values(
        "mean_ratio_to_past", ascending=False).head(1)
    if eligible.empty:
        if best.empty:
            return summary, "past_spend", ("No challenger could be replayed, so past spend "
                                           "values the customers.")
        b = best.iloc[0]
        return summary, "past_spend", (
            f"Over {len(origins)} rolling origins no challenger beat past spend beyond noise: "
            f"the best, {LABELS[b['method']]}, captured {b['mean_ratio_to_past']:.3f}x what the "
            f"top past spenders did (95% interval {b['ratio_ci95'][0]:.3f}-"
            f"{b['ratio_ci95'][1]:.3f}), so past spend values the customers.")
    w = eligible.sort_values("mean_ratio_to_past", ascending=False).iloc[0]
    return summary, str(w["method"]), (
        f"Over {int(w['origins'])} rolling origins {LABELS[w['method']]} captured "
        f"{w['mean_ratio_to_past']:.3f}x what the top past spenders did (95% interval "
        f"{w['ratio_ci95'][0]:.3f}-{w['ratio_ci95'][1]:.3f}) and was never worse beyond noise "
        f"at any origin, so it values the customers.")


# --------------------------------------------------------------------------- today's values


def groups_by_origin(fits: FitCache, as_of: pd.Timestamp, method: str, months_back: int = 12,
                     horizon_months: int = HORIZON, rules: SelectionRules = RULES, seed: int = SEED
                     ) -> dict[pd.Timestamp, set[str]]:
    """The group `method` would have chosen at `as_of` and at each of the `months_back`
    months before it (the same size rule as the replay), for the forecast's calibration."""
    rule = rules
    start = first_day(fits.days) + pd.DateOffset(months=MIN_ORIGIN_MONTHS)
    out: dict[pd.Timestamp, set[str]] = {}
    for k in range(months_back + 1):
        cut = months_before(as_of, k)
        if cut < start:
            break
        methods = tuple(dict.fromkeys(("past_spend", method)))
        sc = value_scores(fits, cut, horizon_months, methods, seed)
        if method not in sc.scores:
            continue
        past = sc.scores["past_spend"]
        size, _ = group_size(np.clip(past, 0, None), rule)
        out[cut] = set(sc.features["customer_id"][top_mask(sc.scores[method], size, past)])
    return out



def value_customers(transactions: pd.DataFrame, as_of: pd.Timestamp, method: str,
                    horizon_months: int = HORIZON, lookback_months: int = LOOKBACK,
                    seed: int = SEED,
                    days: pd.DataFrame | None = None, fits: FitCache | None = None
                    ) -> pd.DataFrame:
    """What selection needs for every active customer at `as_of`: the champion's value score,
    the BG/NBD expected spend, churn risk and whether they are probably gone.

    `probably_gone` is P(alive) < 0.5: a member the purchase model believes has
    left should leave even when their past spend is high. (On Online Retail the
    BG/NBD dropout is degenerate, ~0, so nobody is flagged there: the result's
    notes say so.)
    """
    as_of = pd.Timestamp(as_of)
    if days is None:
        days = clv.activity(transactions[transactions["invoice_date"] < as_of])
    fits = fits or FitCache(days, lookback_months)
    sc = value_scores(fits, as_of, horizon_months, (method,) if method != "past_spend"
                      else ("past_spend",), seed)
    if method not in sc.scores:
        raise ValueError(f"method {method!r} is not available at {as_of.date()}: {sc.notes}")
    fit = fits.fit(as_of)
    pred = clv.predictions(fit, horizon_months).set_index("customer_id")
    out = sc.features[["customer_id", "past_spend"]].copy()
    out["value_score"] = sc.scores[method]
    order = np.lexsort((-out["past_spend"].to_numpy(), -out["value_score"].to_numpy()))
    rank = np.empty(len(out), dtype=np.int64)
    rank[order] = np.arange(1, len(out) + 1)
    out["value_rank"] = rank  # ties broken by past spend, as the replay's groups
    for col in ("expected_purchases", "expected_spend", "predicted_clv_12m", "p_alive",
                "churn_risk", "churn_band", "expected_next_order"):
        out[col] = pred[col].reindex(out["customer_id"]).to_numpy()
    out["probably_gone"] = clv.probably_gone(out["p_alive"], fit.purchases)
    out.attrs["method"] = method
    out.attrs["notes"] = sc.notes
    return out
