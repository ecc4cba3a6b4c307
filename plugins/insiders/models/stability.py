"""Stability: how long does a segmentation stay true, and so how often must it be refreshed?

The segmentation is fitted at a start date. For each following month the same
method (algorithm and k) is re-fitted on the data up to that month, and the
customers' segments under the initial model and under the re-fitted one are
compared with the adjusted Rand index (1 = the same grouping, 0 = chance).
The recommended refresh interval is the last month before the ARI first falls
below the threshold (default 0.8): past it, the old segments no longer
describe the customers well enough to run campaigns on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from ..config import StabilityRules
from . import features as feats
from . import segmentation


def ari_curve(
    transactions: pd.DataFrame, as_of: pd.Timestamp, algorithm: str, k: int,
    rules: StabilityRules, lookback_months: int, columns: list[str] | None, sample_size: int,
    seed: int, feature_fn=None, transforms: dict[str, str] | None = None,
) -> dict:
    """ARI between the initial and the re-fitted segmentation for each month since the fit.

    `feature_fn(cut)` gives the customer features as of a cut (default: the transaction
    features); a source with more than transactions passes its own.
    """
    months, threshold = rules.months, rules.threshold
    if months <= 0:
        return {"available": False, "ari_by_month": [], "threshold": threshold,
                "recommended_refresh_months": None,
                "text": "Stability was not measured (stability months set to 0)."}
    feature_fn = feature_fn or (lambda cut: feats.customer_features(transactions, cut,
                                                                      lookback_months))
    start = as_of - pd.DateOffset(months=months)
    first = feats.first_date(transactions, as_of)
    if pd.isna(first) or start <= first + pd.Timedelta(days=28):
        return {"available": False, "ari_by_month": [], "threshold": threshold,
                "recommended_refresh_months": None,
                "text": (f"Not enough history to measure stability: the initial fit on "
                         f"{start.date()} needs at least a month of data before it.")}
    base = _active(feature_fn(start))
    initial, _, _ = segmentation.fit_segmenter(algorithm, k, base, columns, sample_size, seed,
                                               transforms)
    curve = []
    for m in range(1, months + 1):
        cut = start + pd.DateOffset(months=m)
        now = _active(feature_fn(cut))
        refit, _, _ = segmentation.fit_segmenter(algorithm, k, now, columns, sample_size, seed,
                                                 transforms)
        ari = adjusted_rand_score(initial.predict(now), refit.predict(now))
        curve.append({"months_since_fit": m, "ari": round(float(ari), 4),
                      "as_of": str(cut.date()), "customers": int(len(now))})
    recommended = 0
    for point in curve:
        if point["ari"] < threshold:
            break
        recommended = point["months_since_fit"]
    if recommended == 0:
        advice = (f"the ARI falls below {threshold} after one month: refresh the segmentation "
                  "every month")
        recommended_out = 1
    elif recommended == months:
        advice = (f"the ARI stays above {threshold} for all {months} months measured: refresh "
                  f"at least every {months} months")
        recommended_out = months
    else:
        months_text = "1 month" if recommended == 1 else f"{recommended} months"
        every = "every month" if recommended == 1 else f"every {recommended} months"
        advice = (f"the ARI stays above {threshold} for {months_text} and then falls below: "
                  f"refresh {every}")
        recommended_out = recommended
    return {
        "available": True,
        "fitted_on": str(start.date()),
        "algorithm": algorithm,
        "k": k,
        "threshold": threshold,
        "ari_by_month": curve,
        "recommended_refresh_months": recommended_out,
        "text": (f"Fitted on {start.date()} ({segmentation.algorithm_name(algorithm)}, "
                 f"k={k}) and re-fitted monthly: "
                 f"{advice}."),
        "min_ari": round(float(np.min([p["ari"] for p in curve])), 4),
    }


def _active(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["has_purchase"]].reset_index(drop=True)
