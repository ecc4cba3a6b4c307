"""Segmentation: compare clustering models, pick one by a documented rule, name the segments.

Candidates are KMeans, GaussianMixture and Agglomerative (Ward) for k in
[k_min, k_max], on log-transformed, standardised RFM-style features. They are
fitted on a seeded sample (Agglomerative is quadratic in memory) and every
customer is then assigned to the nearest segment, so the cost does not grow
with the number of customers.

The choice rule (`choose`), in order:
1. useful to the business: every segment holds at least `min_segment_share` of
   the customers (a campaign for 0.5% of the base is not worth running), none
   holds more than half of them (a segment of "almost everyone" tells marketing
   nothing), the most valuable segment holds at most `max_top_share` of them (a "best
   customers" segment that is a third of the base is not a target), and
   marketing can tell every segment apart: two segments that get the same
   persona must differ by at least 1.5x in a key figure (spend, purchases,
   order value, recency, tenure), which then qualifies their names;
2. among useful candidates, the best mean rank over the three internal
   metrics: silhouette (higher is better), Davies-Bouldin (lower) and
   Calinski-Harabasz (higher);
3. ties go to fewer segments, then to the simpler model (KMeans, Agglomerative,
   GaussianMixture).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import KMeans
from sklearn.metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    pairwise_distances,
)
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from .. import wording
from ..config import SegmentationRules

MIN_PER_SEGMENT = 5  # customers a segment on average: fewer is not a segment to market to
ALGORITHMS = ("kmeans", "agglomerative", "gmm")
# what a reader sees for each algorithm's code (the codes stay in files and SQL)
ALGORITHM_NAMES = {"kmeans": "k-means", "agglomerative": "agglomerative (Ward)",
                   "gmm": "Gaussian mixture"}


def algorithm_name(code: str) -> str:
    """The algorithm as a sentence names it ('k-means' for 'kmeans')."""
    return ALGORITHM_NAMES.get(code, code)
MODEL_FEATURES = ["recency_days", "frequency", "monetary", "avg_ticket", "return_rate",
                  "tenure_days"]


# how each feature is transformed before scaling: money, counts and days are skewed
TRANSFORMS = {
    "recency_days": "log", "frequency": "log", "monetary": "log", "avg_ticket": "log",
    "tenure_days": "log", "basket_size": "log", "basket_variety": "log",
    "avg_days_between": "log", "purchases_per_month": "log", "revenue_90d": "log",
    "return_rate": "sqrt",
}
# a source that adds features says how to transform them (Source.feature_transforms)


def model_matrix(features: pd.DataFrame, columns: list[str] | None = None,
                 transforms: dict[str, str] | None = None) -> np.ndarray:
    """Log-transform the skewed money and count features so a few whales do not decide all.

    `transforms` maps a feature to "log", "sqrt" (shares) or "raw"; default `TRANSFORMS`.
    """
    columns = columns or MODEL_FEATURES
    transforms = TRANSFORMS if transforms is None else transforms
    out = []
    for name in columns:
        values = features[name].to_numpy(dtype=float, na_value=np.nan)
        how = transforms.get(name, "raw")
        with np.errstate(invalid="ignore"):
            if how == "log":
                values = np.log1p(np.clip(values, 0, None))
            elif how == "sqrt":
                values = np.sqrt(np.clip(values, 0, 1))
        missing = np.isnan(values)
        if missing.any():
            values = np.where(missing, np.nanmedian(values) if (~missing).any() else 0.0, values)
        out.append(values)
    return np.column_stack(out)


@dataclass
class Segmenter:
    """A fitted segmentation that can label customers it has never seen (same ids, same order).

    Segment ids are ordered by value when fitted (0 = highest mean net spend)
    and keep that meaning when applied to later data.
    """

    algorithm: str
    k: int
    columns: list[str]
    scaler: StandardScaler
    model: KMeans | GaussianMixture | None = None
    centroids: np.ndarray | None = None
    mapping: np.ndarray | None = None
    transforms: dict[str, str] = field(default_factory=lambda: dict(TRANSFORMS))

    def _raw_labels(self, scaled: np.ndarray) -> np.ndarray:
        if self.model is not None:
            return self.model.predict(scaled)
        distances = ((scaled[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return distances.argmin(axis=1)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self.predict_matrix(model_matrix(features, self.columns, self.transforms))

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        labels = self._raw_labels(self.scaler.transform(matrix))
        return labels if self.mapping is None else self.mapping[labels]


def fit_segmenter(algorithm: str, k: int, features: pd.DataFrame,
                  columns: list[str] | None, sample_size: int, seed: int,
                  transforms: dict[str, str] | None = None,
                  tree: np.ndarray | None = None, sample_idx: np.ndarray | None = None,
                  matrix: np.ndarray | None = None,
                  ) -> tuple[Segmenter, np.ndarray, np.ndarray]:
    """Fit on a seeded sample; returns the segmenter, the sample's labels and the sample index."""
    columns = columns or MODEL_FEATURES
    transforms = dict(TRANSFORMS if transforms is None else transforms)
    matrix = model_matrix(features, columns, transforms) if matrix is None else matrix
    scaler = StandardScaler().fit(matrix)
    scaled = scaler.transform(matrix)
    if sample_idx is None:
        sample_idx = _sample(len(scaled), sample_size, seed)
    sample = scaled[sample_idx]
    seg = Segmenter(algorithm=algorithm, k=k, columns=list(columns), scaler=scaler,
                    transforms=transforms)
    if algorithm == "kmeans":
        seg.model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(sample)
        sample_labels = seg.model.labels_
    elif algorithm == "gmm":
        seg.model = GaussianMixture(n_components=k, covariance_type="full", random_state=seed,
                                    reg_covar=1e-4).fit(sample)
        sample_labels = seg.model.predict(sample)
    else:
        # Ward's tree, cut at k: the same result as AgglomerativeClustering(linkage="ward")
        tree = linkage(sample, method="ward") if tree is None else tree
        sample_labels = fcluster(tree, t=k, criterion="maxclust") - 1
        seg.centroids = np.vstack([sample[sample_labels == c].mean(axis=0)
                                   for c in range(sample_labels.max() + 1)])
    labels = seg._raw_labels(scaled)
    value = np.log1p(features["monetary"].clip(lower=0).to_numpy(dtype=float))
    seg.mapping = _value_order(labels, value)
    return seg, sample_labels, sample_idx


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def _value_order(labels: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Raw label -> segment id ordered by mean value (0 = most valuable)."""
    k = int(labels.max()) + 1 if len(labels) else 0
    means = np.array([value[labels == c].mean() if (labels == c).any() else -np.inf
                      for c in range(k)])
    mapping = np.empty(k, dtype=int)
    mapping[np.argsort(-means, kind="stable")] = np.arange(k)
    return mapping


def silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """scikit-learn's `silhouette_score(distances, labels, metric="precomputed")`, to the
    last bit, in one pass. scikit-learn sums each sample's distances per cluster with one
    `np.bincount` per sample (a Python loop over the 2,000 sampled customers: ~25 ms a
    candidate, 18 candidates on the real file); one bincount over the whole matrix, each
    sample's clusters as bins of their own, adds the same numbers in the same order
    (~15 ms; `tests/test_segmentation.py` compares the bits)."""
    codes = np.unique(labels, return_inverse=True)[1].ravel()
    n = len(codes)
    freqs = np.bincount(codes)
    k = len(freqs)
    if not 1 < k < n:
        raise ValueError(f"Number of labels is {k}. Valid values are 2 to n_samples - 1 "
                         "(inclusive)")
    bins = (np.arange(n) * k)[:, None] + codes[None, :]
    sums = np.bincount(bins.ravel(), weights=np.ascontiguousarray(distances, float).ravel(),
                       minlength=n * k).reshape(n, k)
    rows = np.arange(n)
    intra = sums[rows, codes]
    sums[rows, codes] = np.inf
    sums /= freqs
    inter = sums.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        intra /= (freqs - 1).take(codes, mode="clip")
        samples = (inter - intra) / np.maximum(intra, inter)
    return float(np.mean(np.nan_to_num(samples)))  # NaN: a cluster of one, which scores 0


@dataclass
class Candidate:
    algorithm: str
    k: int
    silhouette: float
    davies_bouldin: float
    calinski_harabasz: float
    min_segment_share: float
    useful: bool = False
    chosen: bool = False
    note: str = ""
    labels: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0, dtype=int))
    segmenter: Segmenter | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {
            "algorithm": self.algorithm,
            "k": self.k,
            "silhouette": round(self.silhouette, 4),
            "davies_bouldin": round(self.davies_bouldin, 4),
            "calinski_harabasz": round(self.calinski_harabasz, 1),
            "min_segment_share": round(self.min_segment_share, 4),
            "useful": self.useful,
            "chosen": self.chosen,
            "note": self.note,
        }


def candidates(
    features: pd.DataFrame, columns: list[str] | None, rules: SegmentationRules, seed: int,
    transforms: dict[str, str] | None = None,
) -> list[Candidate]:
    """Fit every candidate and score it on the same seeded sample."""
    columns = columns or MODEL_FEATURES
    k_min, k_max, sample_size = rules.k_min, rules.k_max, rules.cluster_sample
    matrix = model_matrix(features, columns, transforms)
    scaled = StandardScaler().fit_transform(matrix)
    idx = _sample(len(scaled), sample_size, seed)
    sample = scaled[idx]
    # the metrics share one distance matrix; Ward's tree is built once and cut at each k
    distances = pairwise_distances(sample)
    tree = linkage(sample, method="ward")
    n = len(scaled)
    out: list[Candidate] = []
    # five customers a segment on average, the rule `segment` refuses fewer by: 15 customers
    # were split into 8 segments of about two
    top = min(k_max, len(sample) - 1, max(k_min, n // MIN_PER_SEGMENT))
    for algorithm in ALGORITHMS:
        for k in range(k_min, top + 1):
            seg, sample_labels, _ = fit_segmenter(algorithm, k, features, columns, sample_size,
                                                  seed, transforms, tree=tree, sample_idx=idx,
                                                  matrix=matrix)
            if len(np.unique(sample_labels)) < 2:
                continue
            labels = seg.predict_matrix(matrix)
            shares = np.bincount(labels, minlength=k) / n
            out.append(
                Candidate(
                    algorithm=algorithm,
                    k=k,
                    silhouette=silhouette(distances, sample_labels),
                    davies_bouldin=float(davies_bouldin_score(sample, sample_labels)),
                    calinski_harabasz=float(calinski_harabasz_score(sample, sample_labels)),
                    min_segment_share=float(shares.min()),
                    labels=labels,
                    segmenter=seg,
                )
            )
    return out


def choose(cands: list[Candidate], features: pd.DataFrame, min_segment_share: float = 0.02,
           max_top_share: float = 0.25, persona_fn=None, extra: list[str] | None = None,
           max_segment_share: float = 0.5) -> tuple[Candidate, str]:
    """Apply the documented rule; marks `useful`/`chosen` and returns the winner and why."""
    if not cands:
        raise ValueError("no clustering candidate could be fitted")
    for c in cands:
        problems = []
        if c.min_segment_share < min_segment_share:
            problems.append(f"smallest segment "
                            f"{wording.share_beside(c.min_segment_share, min_segment_share, 1)} < "
                            f"{min_segment_share:,.0%} of customers")
        largest = float(np.bincount(c.labels).max() / len(c.labels))
        if largest > max_segment_share:
            problems.append(f"one segment holds {wording.share_beside(largest, max_segment_share)}"
                            " of customers (> "
                            f"{max_segment_share:,.0%}): it tells marketing nothing")
        top_share = float(np.mean(c.labels == 0))  # segment 0 is the most valuable
        if top_share > max_top_share:
            problems.append(f"top segment is {wording.share_beside(top_share, max_top_share)} "
                            "of customers (> "
                            f"{max_top_share:,.0%}): too broad to target")
        named = (persona_fn or personas)(profile(features, c.labels, extra))
        if indistinct_pairs(named):
            problems.append("two segments cannot be told apart (same persona, no key figure "
                            f"{DISTINCT_RATIO}x apart)")
        c.useful = not problems
        c.note = "; ".join(problems) if problems else "useful"
    pool = [c for c in cands if c.useful] or cands
    frame = pd.DataFrame([{"s": c.silhouette, "db": c.davies_bouldin, "ch": c.calinski_harabasz}
                          for c in pool])
    rank = (frame["s"].rank(ascending=False) + frame["db"].rank(ascending=True)
            + frame["ch"].rank(ascending=False)) / 3
    order = sorted(range(len(pool)), key=lambda i: (rank[i], pool[i].k,
                                                     ALGORITHMS.index(pool[i].algorithm)))
    best = pool[order[0]]
    best.chosen = True
    useful_n = sum(c.useful for c in cands)
    test = (f"every segment at least {min_segment_share:,.0%} and at most "
            f"{max_segment_share:,.0%} of customers, the most valuable one at most "
            f"{max_top_share:,.0%}, segments marketing can tell apart")
    scores = (f"silhouette {best.silhouette:.2f}, Davies-Bouldin {best.davies_bouldin:.2f}, "
              f"Calinski-Harabasz {best.calinski_harabasz:.0f}")
    if useful_n:
        why = (f"{algorithm_name(best.algorithm)} with k={best.k}: best mean rank ({scores}) "
               f"among the {useful_n} of {len(cands)} candidates that are useful to marketing "
               f"({test}).")
    else:  # "among the 0 of 18 that are useful" read as a contradiction of the choice
        why = (f"{algorithm_name(best.algorithm)} with k={best.k}: best mean rank ({scores}) "
               f"of all {len(cands)} candidates. None met the usefulness test ({test}), so "
               "the best-ranked one overall was kept; its note in the candidate table says what "
               "it misses.")
    return best, why


# --------------------------------------------------------------------------- profiles & personas


def profile(features: pd.DataFrame, labels: np.ndarray, extra: list[str] | None = None
            ) -> pd.DataFrame:
    """Per segment: size, value and the typical (median) customer."""
    frame = features.assign(segment=labels)
    total_rev = frame["monetary"].sum()
    grouped = frame.groupby("segment")
    out = pd.DataFrame({
        "customers": grouped.size(),
        "revenue": grouped["monetary"].sum(),
        "recency_days": grouped["recency_days"].median(),
        "frequency": grouped["frequency"].median(),
        "monetary": grouped["monetary"].median(),
        "avg_ticket": grouped["avg_ticket"].median(),
        "return_rate": grouped["return_rate"].mean(),
        "tenure_days": grouped["tenure_days"].median(),
        "avg_days_between": grouped["avg_days_between"].median(),
        "mean_recency_days": grouped["recency_days"].mean(),
        "mean_frequency": grouped["frequency"].mean(),
        "mean_monetary": grouped["monetary"].mean(),
        "mean_avg_ticket": grouped["avg_ticket"].mean(),
    })
    # source-specific features (Olist: satisfaction, delivery) are profiled by their mean
    known = {"recency_days", "frequency", "monetary", "avg_ticket", "return_rate", "tenure_days",
             "avg_days_between", "customer_id", "country", "has_purchase", "segment"}
    for column in extra or []:
        if column not in known and column in frame:
            out[column] = grouped[column].mean()
    out["share"] = out["customers"] / len(frame)
    out["revenue_share"] = out["revenue"] / total_rev if total_rev else 0.0
    return out.reset_index()


def personas(prof: pd.DataFrame, currency: str = "") -> pd.DataFrame:
    """A persona, a description and an action per segment, from its figures.

    Traits compare each segment's typical customer to the other segments: the
    most valuable, the most recent, the most frequent... so names stay
    meaningful whatever the scale of the shop.
    """
    p = prof.copy()
    rank_value = p["monetary"].rank(ascending=False, method="first")
    rank_recent = p["recency_days"].rank(ascending=True, method="first")
    n = len(p)
    overall_rr = float((p["return_rate"] * p["customers"]).sum() / max(p["customers"].sum(), 1))
    names, descs, actions = [], [], []
    for i, row in p.iterrows():
        top_value = rank_value[i] == 1
        high_value = rank_value[i] <= max(1, n // 3)
        recent = row["recency_days"] <= 45 or rank_recent[i] <= max(1, n // 3)
        lapsed = row["recency_days"] >= 150
        frequent = row["frequency"] >= 4
        single = row["frequency"] <= 1
        new = row["tenure_days"] <= 100 and recent
        returner = row["return_rate"] >= max(0.08, 2.5 * overall_rr)
        if returner:
            name = "Frequent returners"
            action = ("Review the products they send back and their descriptions; offer fit and "
                      "usage advice rather than discounts; do not reward with loyalty perks.")
        elif top_value and frequent and not lapsed:
            name = "Champions"
            action = ("Insiders core: early access to new collections, a named account contact, "
                      "thank-you gifts at the November peak; no discounts needed.")
        elif high_value and lapsed:
            name = "Big spenders slipping away"
            action = ("Win-back within two weeks: a personal call or email with an offer on "
                      "their usual products; ask why they stopped.")
        elif high_value and frequent:
            name = "Loyal regulars"
            action = ("Volume tiers and cross-selling to grow the basket; invite the best of them "
                      "to the Insiders program.")
        elif high_value and single:
            name = "Big one-off buyers"
            action = ("Follow up the first large order within a month: reorder reminder, "
                      "wholesale terms, a second-order incentive.")
        elif new:
            name = "Promising newcomers"
            action = ("Onboarding series and a second-purchase incentive within 30 days of the "
                      "first order.")
        elif lapsed and single:
            name = "Lapsed one-timers"
            action = ("Low-cost reactivation email only; exclude from paid campaigns if there is "
                      "no response.")
        elif lapsed:
            name = "Drifting occasionals"
            action = ("Seasonal reminder before the autumn peak with best-sellers from their "
                      "past orders.")
        elif high_value:
            name = "Solid spenders"
            action = "Keep in the regular newsletter; test upsell bundles on their categories."
        else:
            name = "Occasional shoppers"
            action = ("Seasonal campaigns ahead of the November peak; free-shipping thresholds "
                      "to raise the ticket.")
        names.append(name)
        descs.append(
            f"{int(row['customers']):,} customers ({wording.share(row['share'])}) bringing "
            f"{wording.share(row['revenue_share'])} of revenue; the typical one last bought "
            f"{row['recency_days']:.0f} days ago, "
            f"{wording.counted(int(round(row['frequency'])), 'purchase')} in the "
            f"period, spent {wording.money(row['monetary'], currency)} with a ticket of "
            f"{wording.money(row['avg_ticket'], currency)}; returns "
            f"{wording.share(row['return_rate'])} of value."
        )
        actions.append(action)
    p["persona_base"] = names
    p["persona"] = unique_names(p)
    p["description"] = descs
    p["action"] = actions
    return p


# key figures marketing can tell segments apart by, and how to say which side a segment is on
TRAITS = {
    "monetary": ("higher spend", "lower spend"),
    "frequency": ("more frequent", "less frequent"),
    "avg_ticket": ("bigger orders", "smaller orders"),
    "recency_days": ("less recent", "more recent"),
    "tenure_days": ("longer-standing", "newer"),
}
DISTINCT_RATIO = 1.5  # a key figure 1.5x apart is a difference a campaign can use


def _trait_ratios(p: pd.DataFrame, rows: list[int]) -> dict[str, float]:
    """For segments sharing a persona: how far apart their typical values are, per trait."""
    out = {}
    for trait in TRAITS:
        if trait not in p:
            continue
        # numpy, not a pandas Series: called for every pair of every candidate (~40 times)
        values = np.clip(p.loc[rows, trait].to_numpy(dtype=float), 0, None) + 1.0  # days of 0
        if not np.isnan(values).any():
            out[trait] = float(values.max() / values.min())
    return out


def indistinct_pairs(p: pd.DataFrame) -> list[tuple[str, str]]:
    """Segments with the same persona and no key figure 1.5x apart: marketing cannot tell
    them apart, so a segmentation that has them is not useful."""
    pairs = []
    for name, group in p.groupby("persona_base"):
        rows = list(group.index)
        for i, a in enumerate(rows):
            for b in rows[i + 1:]:
                ratios = _trait_ratios(p, [a, b])
                if not ratios or max(ratios.values()) < DISTINCT_RATIO:
                    pairs.append((str(name), str(name)))
    return pairs


def unique_names(p: pd.DataFrame) -> list[str]:
    """Name segments that share a persona by what sets them apart (their most different trait):
    'Occasional shoppers (bigger orders)' and 'Occasional shoppers (smaller orders)'."""
    out = list(p["persona_base"])
    for _, group in p.groupby("persona_base"):
        if len(group) < 2:
            continue
        rows = list(group.index)
        ratios = _trait_ratios(p, rows)
        trait = max(ratios, key=ratios.get) if ratios else "monetary"
        high, low = TRAITS[trait]
        order = p.loc[rows, trait].astype(float).rank(ascending=False, method="first")
        for row in rows:
            rank = int(order[row])
            if rank == 1:
                qualifier = high
            elif rank == len(rows):
                qualifier = low
            else:
                qualifier = f"{high.split()[0]} {high.split()[-1]}, tier {rank}"
            out[p.index.get_loc(row)] = f"{p.loc[row, 'persona_base']} ({qualifier})"
    return out


@dataclass
class Segmentation:
    segmenter: Segmenter
    labels: np.ndarray
    profiles: pd.DataFrame  # one row per segment, with persona, description, action
    candidates: list[Candidate]
    chosen: Candidate
    why: str


def segment(
    features: pd.DataFrame, rules: SegmentationRules, seed: int,
    model_features: list[str] | None = None, persona_fn=None,
    transforms: dict[str, str] | None = None,
) -> Segmentation:
    """Segment the customers who purchased in the period (`features` holds only those).

    `persona_fn(profile) -> profile + persona_base, persona, description, action` lets a
    source with more than transactions (Olist) name segments by what it knows.
    """
    k_min = rules.k_min
    if len(features) < k_min * MIN_PER_SEGMENT:
        raise ValueError(f"only {wording.counted(len(features), 'customer')} with a purchase in "
                         "the period: too "
                         f"few to segment (at least {k_min * MIN_PER_SEGMENT} are needed); use "
                         "a larger file or a longer period")
    cands = candidates(features, model_features, rules, seed, transforms)
    persona_fn = persona_fn or personas
    best, why = choose(cands, features, rules.min_segment_share, persona_fn=persona_fn,
                       extra=model_features)
    profiles = persona_fn(profile(features, best.labels, model_features))
    return Segmentation(segmenter=best.segmenter, labels=best.labels, profiles=profiles,
                        candidates=cands, chosen=best, why=why)
