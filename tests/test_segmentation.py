"""Segmentation: the candidates, the documented choice rule, segment order and personas.

The rule is tested on hand-made `Candidate` objects whose metrics and segment
sizes are chosen so the expected winner follows from the rule by hand; the
fitting on a synthetic customer base of four clear groups.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from insiders.config import SegmentationRules
from insiders.models import segmentation as sg
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.preprocessing import StandardScaler

pytestmark = pytest.mark.usefixtures("one_thread")


def customer_base(seed: int = 0) -> pd.DataFrame:
    """300 customers in four groups a shop would recognise (champions, regulars, lapsed, new)."""
    rng = np.random.default_rng(seed)
    groups = [  # n, recency, frequency, monetary, ticket, return rate, tenure
        (30, (2, 20), (15, 30), (5_000, 20_000), (300, 800), (0.0, 0.02), (400, 700)),
        (90, (20, 60), (4, 10), (800, 2_500), (150, 300), (0.0, 0.04), (200, 700)),
        (100, (200, 360), (1, 1), (50, 300), (50, 300), (0.0, 0.0), (200, 700)),
        (80, (5, 40), (1, 2), (100, 400), (80, 250), (0.0, 0.0), (5, 60)),
    ]
    parts = []
    for n, rec, freq, mon, ticket, rr, ten in groups:
        parts.append(pd.DataFrame({
            "recency_days": rng.uniform(*rec, n).round(),
            "frequency": rng.integers(freq[0], freq[1] + 1, n),
            "monetary": rng.uniform(*mon, n).round(2),
            "avg_ticket": rng.uniform(*ticket, n).round(2),
            "return_rate": rng.uniform(*rr, n),
            "tenure_days": rng.uniform(*ten, n).round(),
        }))
    frame = pd.concat(parts, ignore_index=True)
    frame["avg_days_between"] = np.where(frame["frequency"] > 1, 300 / frame["frequency"],
                                         np.nan)
    frame.insert(0, "customer_id", [str(12346 + i) for i in range(len(frame))])
    return frame


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return customer_base()


@pytest.fixture(scope="module")
def result(base: pd.DataFrame) -> sg.Segmentation:
    return sg.segment(base, SegmentationRules(k_min=3, k_max=5, cluster_sample=2000), seed=7)


# --------------------------------------------------------------------------- fitted models


def test_every_algorithm_and_k_is_a_candidate(result: sg.Segmentation) -> None:
    got = sorted((c.algorithm, c.k) for c in result.candidates)
    assert got == sorted((a, k) for a in ("kmeans", "gmm", "agglomerative") for k in (3, 4, 5))
    for c in result.candidates:
        assert -1 <= c.silhouette <= 1 and c.davies_bouldin > 0 and c.calinski_harabasz > 0
        assert c.note  # every candidate says why it is (not) useful
    assert sum(c.chosen for c in result.candidates) == 1
    assert result.chosen.chosen and sg.algorithm_name(result.chosen.algorithm) in result.why


def test_metrics_match_sklearn_on_the_labels(base: pd.DataFrame,
                                            result: sg.Segmentation) -> None:
    """With the sample as large as the base, KMeans/GMM metrics are those of their labels."""
    scaled = StandardScaler().fit_transform(sg.model_matrix(base))
    for c in result.candidates:
        if c.algorithm == "agglomerative":  # scored on the tree's cut, labelled by centroid
            continue
        assert c.silhouette == pytest.approx(silhouette_score(scaled, c.labels), abs=1e-9)
        assert c.davies_bouldin == pytest.approx(davies_bouldin_score(scaled, c.labels))
        assert c.calinski_harabasz == pytest.approx(calinski_harabasz_score(scaled, c.labels))
        shares = np.bincount(c.labels, minlength=c.k) / len(base)
        assert c.min_segment_share == pytest.approx(shares.min())


def test_the_silhouette_is_sklearns_to_the_last_bit(base: pd.DataFrame) -> None:
    """`sg.silhouette` replaces scikit-learn's per-sample loop: the same float, bit for bit,
    on the base's distances cut by every algorithm, and on random labels with clusters of
    one (which score 0), labels that are not 0..k-1, and distances on other scales."""
    from sklearn.metrics import pairwise_distances

    scaled = StandardScaler().fit_transform(sg.model_matrix(base))
    distances = pairwise_distances(scaled)
    rng = np.random.default_rng(3)
    cases = [(distances, c.labels) for c in sg.candidates(
        base, None, SegmentationRules(k_min=2, k_max=8, cluster_sample=2000), seed=7)]
    for _ in range(60):
        n = int(rng.integers(3, 300))
        points = rng.normal(size=(n, int(rng.integers(1, 6)))) * rng.lognormal()
        k = int(rng.integers(2, n))  # up to n - 1 clusters: many of one customer
        labels = rng.integers(0, k, n) * 3 - 7
        if len(np.unique(labels)) >= 2:
            cases.append((pairwise_distances(points), labels))
    assert len(cases) > 60
    singles = 0
    for d, labels in cases:
        want = silhouette_score(d, labels, metric="precomputed")
        assert np.float64(sg.silhouette(d, labels)).tobytes() == np.float64(want).tobytes()
        singles += int((np.bincount(np.unique(labels, return_inverse=True)[1]) == 1).any())
    assert singles > 10
    with pytest.raises(ValueError, match="Number of labels is 1"):
        sg.silhouette(distances[:5, :5], np.zeros(5, dtype=int))


def test_the_four_planted_groups_are_found(result: sg.Segmentation) -> None:
    """The base was built from four groups (30, 90, 100, 80 customers in that order)."""
    group = np.repeat([0, 1, 2, 3], [30, 90, 100, 80])
    table = pd.crosstab(group, result.labels)
    assert result.chosen.k == 4
    assert ((table > 0).sum(axis=1) == 1).all()  # each group lies in one segment...
    assert ((table > 0).sum(axis=0) == 1).all()  # ...and each segment holds one group
    assert table.loc[0, 0] == 30  # the champions are segment 0


def test_same_seed_same_result(base: pd.DataFrame, result: sg.Segmentation) -> None:
    again = sg.segment(base, SegmentationRules(k_min=3, k_max=5, cluster_sample=2000), seed=7)
    assert [c.as_dict() for c in again.candidates] == [c.as_dict() for c in result.candidates]
    np.testing.assert_array_equal(again.labels, result.labels)
    pd.testing.assert_frame_equal(again.profiles, result.profiles)


def test_segment_zero_is_the_most_valuable(base: pd.DataFrame,
                                           result: sg.Segmentation) -> None:
    value = np.log1p(base["monetary"].clip(lower=0))  # what the segments are ordered by
    means = value.groupby(result.labels).mean()
    assert means.index.tolist() == list(range(result.chosen.k))
    assert means.is_monotonic_decreasing
    for c in result.candidates:  # every candidate, not only the chosen one
        means = value.groupby(c.labels).mean()
        assert means.idxmax() == 0


def test_profiles_have_unique_personas_descriptions_and_actions(
        base: pd.DataFrame, result: sg.Segmentation) -> None:
    prof = result.profiles
    assert prof["segment"].tolist() == list(range(result.chosen.k))
    assert prof["customers"].sum() == len(base)
    assert prof["persona"].is_unique
    for column in ("persona", "description", "action"):
        assert prof[column].str.len().gt(10 if column != "persona" else 3).all(), column
    # the description quotes the segment's own size
    for row in prof.itertuples():
        assert row.description.startswith(f"{row.customers:,} customers")


def test_segmenter_labels_customers_it_is_given(base: pd.DataFrame,
                                                result: sg.Segmentation) -> None:
    np.testing.assert_array_equal(result.segmenter.predict(base), result.labels)
    # the same customers in another order get the same segments
    order = np.random.default_rng(1).permutation(len(base))
    shuffled = base.iloc[order].reset_index(drop=True)
    np.testing.assert_array_equal(result.segmenter.predict(shuffled), result.labels[order])


def test_too_few_customers_is_an_error(base: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="too few to segment"):
        sg.segment(base.head(14), SegmentationRules(k_min=3, k_max=4), seed=7)


def test_a_small_base_gets_at_most_one_segment_per_five_customers(base: pd.DataFrame) -> None:
    """22 customers: k runs 3-4 (22 // 5), not up to k_max = 8 (segments of two or three)."""
    small = sg.segment(base.sample(22, random_state=1).reset_index(drop=True),
                       SegmentationRules(k_min=3, k_max=8), seed=7)
    assert sorted({c.k for c in small.candidates}) == [3, 4]
    assert small.chosen.k <= 4


# --------------------------------------------------------------------------- the choice rule


FEATURES_100 = pd.DataFrame({
    "customer_id": [str(i) for i in range(100)],
    # customer 0 spends most; the last 50 are alike, so segments made only of them cannot be
    # told apart by any key figure
    "monetary": np.r_[np.linspace(1000, 110, 50), np.full(50, 100.0)],
    "recency_days": 30.0, "frequency": 3, "avg_ticket": 50.0, "return_rate": 0.0,
    "tenure_days": 300.0, "avg_days_between": 40.0,
})


def _unique_names(prof: pd.DataFrame) -> pd.DataFrame:
    return prof.assign(persona_base=[f"S{s}" for s in prof["segment"]])


def _names_clash_at_five(prof: pd.DataFrame) -> pd.DataFrame:
    """Distinct names, except for the 5-segment candidate whose last two collide."""
    names = [f"S{s}" for s in prof["segment"]]
    if len(prof) == 5:
        names[-1] = names[-2]
    return prof.assign(persona_base=names)


def cand(algorithm: str, k: int, sizes: list[int], s: float, db: float, ch: float
         ) -> sg.Candidate:
    """A candidate whose segment i holds sizes[i] of the 100 customers, best first."""
    assert len(sizes) == k and sum(sizes) == 100
    labels = np.repeat(np.arange(k), sizes)
    return sg.Candidate(algorithm, k, s, db, ch, min(sizes) / 100, labels=labels)


def test_rule_usefulness_then_mean_rank() -> None:
    small = cand("kmeans", 4, [10, 40, 49, 1], 0.9, 0.1, 1000)  # a 1% segment
    broad = cand("gmm", 3, [30, 35, 35], 0.8, 0.2, 900)  # top segment is 30%
    clash = cand("agglomerative", 5, [10, 20, 20, 25, 25], 0.85, 0.15, 950)  # same persona
    ok1 = cand("kmeans", 3, [25, 35, 40], 0.5, 0.9, 120)  # top segment exactly 25%: allowed
    ok2 = cand("agglomerative", 4, [20, 30, 25, 25], 0.6, 1.5, 50)
    ok3 = cand("gmm", 6, [10, 18, 18, 18, 18, 18], 0.4, 1.0, 100)
    cands = [small, broad, clash, ok1, ok2, ok3]
    best, why = sg.choose(cands, FEATURES_100, min_segment_share=0.02, max_top_share=0.25,
                          persona_fn=_names_clash_at_five)
    assert [c.useful for c in cands] == [False, False, False, True, True, True]
    assert "smallest segment 1.0% < 2%" in small.note
    assert "top segment is 30%" in broad.note
    assert clash.note == ("two segments cannot be told apart (same persona, no key figure 1.5x "
                          "apart)")
    assert ok1.note == "useful"
    # ranks among the useful ones (silhouette up, Davies-Bouldin down, Calinski-Harabasz up):
    #   ok1: 2, 1, 1 -> 1.33   ok2: 1, 3, 3 -> 2.33   ok3: 3, 2, 2 -> 2.33
    # the unfit ones have better metrics but do not compete
    assert best is ok1 and ok1.chosen
    assert sum(c.chosen for c in cands) == 1
    assert "k-means with k=3" in why and "among the 3 of 6 candidates" in why


def test_same_persona_but_far_apart_is_useful_and_named_by_the_difference() -> None:
    """Two 'S' segments whose spend differs 5x are different targets: useful, and named so."""
    far = cand("kmeans", 3, [25, 25, 50], 0.5, 0.9, 120)  # segments 0 and 1 differ ~2-5x
    def same_name_for_first_two(prof: pd.DataFrame) -> pd.DataFrame:
        names = ["S", "S"] + [f"S{s}" for s in prof["segment"][2:]]
        out = prof.assign(persona_base=names)
        out["persona"] = sg.unique_names(out)
        return out

    best, _ = sg.choose([far], FEATURES_100, persona_fn=same_name_for_first_two)
    assert far.useful and best is far
    named = same_name_for_first_two(sg.profile(FEATURES_100, far.labels))
    assert list(named["persona"][:2]) == ["S (higher spend)", "S (lower spend)"]


def test_rule_ties_go_to_fewer_segments_then_the_simpler_model() -> None:
    def same(algorithm: str, k: int) -> sg.Candidate:
        sizes = {3: [20, 40, 40], 4: [20, 30, 25, 25]}[k]
        return cand(algorithm, k, sizes, 0.5, 1.0, 100)

    cases = [
        ([same("kmeans", 4), same("kmeans", 3)], ("kmeans", 3)),
        ([same("gmm", 3), same("agglomerative", 3), same("kmeans", 3)], ("kmeans", 3)),
        ([same("gmm", 3), same("agglomerative", 3)], ("agglomerative", 3)),
        ([same("agglomerative", 4), same("gmm", 3)], ("gmm", 3)),  # fewer segments first
    ]
    for cands, expected in cases:
        best, _ = sg.choose(cands, FEATURES_100, persona_fn=_unique_names)
        assert (best.algorithm, best.k) == expected


def test_rule_without_a_useful_candidate_keeps_the_best_ranked_and_says_so() -> None:
    a = cand("kmeans", 3, [50, 25, 25], 0.3, 1.2, 80)
    b = cand("gmm", 3, [40, 59, 1], 0.4, 1.0, 90)
    best, why = sg.choose([a, b], FEATURES_100, persona_fn=_unique_names)
    assert not a.useful and not b.useful
    assert best is b  # ranks 1, 1, 1 against 2, 2, 2
    assert "among the 0 of 2" not in why  # read as contradicting the choice
    assert "best mean rank (silhouette 0.40, Davies-Bouldin 1.00, Calinski-Harabasz 90) of all " \
        "2 candidates" in why
    assert "None met the usefulness test" in why


def test_a_share_that_breaks_a_limit_never_prints_as_the_limit() -> None:
    """743 of 2,967 customers in the top segment is over 25%: "25% (> 25%)" read as a bug."""
    n = 2967
    sizes = [743, 1056, 460, 658, 50]
    labels = np.repeat(np.arange(5), sizes)
    c = sg.Candidate("kmeans", 5, 0.3, 1.0, 100, 50 / n, labels=labels)
    features = pd.DataFrame({"customer_id": [str(i) for i in range(n)],
                             "monetary": np.linspace(1000, 1, n), "recency_days": 30.0,
                             "frequency": 3, "avg_ticket": 50.0, "return_rate": 0.0,
                             "tenure_days": 300.0, "avg_days_between": 40.0})
    sg.choose([c], features, persona_fn=_unique_names)
    assert "top segment is 25.04% of customers (> 25%)" in c.note
    assert "smallest segment 1.7% < 2%" in c.note


def test_rule_uses_the_real_personas() -> None:
    """Two segments with the same figures get the same persona: not useful."""
    features = FEATURES_100.copy()
    features.loc[:19, ["frequency", "recency_days"]] = [12, 5]  # segment 0: the best
    features.loc[20:, "monetary"] = 100.0  # everyone else alike
    c = cand("kmeans", 3, [20, 40, 40], 0.5, 1.0, 100)  # segments 1 and 2 look alike
    sg.choose([c], features)
    assert c.note == ("two segments cannot be told apart (same persona, no key figure 1.5x "
                      "apart)")


def test_no_candidate_is_an_error() -> None:
    with pytest.raises(ValueError, match="no clustering candidate"):
        sg.choose([], FEATURES_100)


# --------------------------------------------------------------------------- personas


def test_personas_follow_from_the_figures() -> None:
    prof = pd.DataFrame({
        "segment": [0, 1, 2, 3],
        "customers": [10, 20, 40, 30],
        "share": [0.1, 0.2, 0.4, 0.3],
        "revenue_share": [0.6, 0.2, 0.1, 0.1],
        "monetary": [5000.0, 2000, 300, 200],
        "avg_ticket": [400.0, 300, 150, 100],
        "recency_days": [10.0, 200, 20, 60],
        "frequency": [12.0, 3, 1, 2],
        "tenure_days": [400.0, 500, 30, 300],
        "return_rate": [0.01, 0.02, 0.0, 0.3],
    })
    out = sg.personas(prof)
    # 0: the top value, frequent (>= 4), recent                  -> Champions
    # 1: not in the top third by value (4 // 3 = 1), last bought 200 days ago, 3 purchases
    #                                                            -> Drifting occasionals
    # 2: a customer for 30 days who bought 20 days ago           -> Promising newcomers
    # 3: returns 30% of value; the base returns (0.1+0.4+0+9)/100 = 9.5%, and
    #    30% >= max(8%, 2.5 x 9.5%)                               -> Frequent returners
    assert out["persona"].tolist() == ["Champions", "Drifting occasionals",
                                       "Promising newcomers", "Frequent returners"]
    assert out["description"].iloc[0].startswith("10 customers (10.0%) bringing 60.0% of revenue")
    assert "Insiders core" in out["action"].iloc[0]


def test_repeated_persona_names_are_told_apart() -> None:
    prof = pd.DataFrame({
        "segment": [0, 1, 2], "customers": [20, 40, 40], "share": [0.2, 0.4, 0.4],
        "revenue_share": [0.6, 0.25, 0.15], "monetary": [5000.0, 300, 200],
        "avg_ticket": [300.0, 100, 100], "recency_days": [10.0, 60, 70],
        "frequency": [10.0, 2, 2], "tenure_days": [400.0, 300, 300],
        "return_rate": [0.0, 0.0, 0.0],
    })
    out = sg.personas(prof)
    assert out["persona_base"].tolist() == ["Champions", "Occasional shoppers",
                                            "Occasional shoppers"]
    # told apart by what differs most between them: spend (301/201 = 1.50x) more than
    # recency (71/61 = 1.16x); frequency, order value and tenure are equal
    assert out["persona"].tolist() == ["Champions", "Occasional shoppers (higher spend)",
                                       "Occasional shoppers (lower spend)"]
