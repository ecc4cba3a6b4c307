"""Olist's satisfaction and delivery features: what customers lived through, as known then.

Reviews and deliveries come from the experience tables the reader kept
(`work/source/orders.parquet`, `reviews.parquet`). Every figure is computed as of
a date from what was known before it, because the stability curve asks for past
cuts: nothing may leak from later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...models.features import period_start
from . import EXPERIENCE_FEATURES  # noqa: F401 - the columns add_experience_features adds

if TYPE_CHECKING:
    from ...catalog import RunFolder

LOW_SCORE = 2  # reviews of 1 or 2 stars are "unhappy"

EXPERIENCE_DESCRIPTIONS = {
    "review_score_mean": "mean review score (1-5) of the period's purchases, latest review per "
                         "order known on the as-of date; customers without a review get the "
                         "period's mean",
    "low_review_share": "share of reviewed purchases rated 1 or 2 stars (no review: the "
                        "period's share)",
    "review_count": "purchases with a review known on the as-of date",
    "late_share": "share of purchases delivered after the estimated date (or still undelivered "
                  "past it on the as-of date); none known yet: 0",
    "avg_days_late": "average days after the estimated date per purchase (0 when on time)",
}
@dataclass
class _Purchases:
    """Delivered orders as arrays (customer codes, dates) and their reviews, sorted by time."""

    customers: pd.Index  # customer_unique_id of each code
    customer_code: np.ndarray
    purchase_at: np.ndarray
    delivered_at: np.ndarray
    estimated_at: np.ndarray
    review_order: np.ndarray  # position of the reviewed order in the arrays above
    review_score: np.ndarray
    review_created_at: np.ndarray  # ascending


def _purchases(folder: RunFolder) -> _Purchases:
    """The run's purchases and reviews, read once per run folder (the stability loop reuses it)."""
    return folder.cached("olist_purchases", lambda: _read_purchases(folder))


def _read_purchases(folder: RunFolder) -> _Purchases:
    orders = folder.read_source_table("orders", columns=[
        "order_id", "customer_unique_id", "is_purchase", "purchase_at", "delivered_at",
        "estimated_at"])
    orders = orders[orders["is_purchase"]].reset_index(drop=True)
    reviews = folder.read_source_table("reviews",
                                       columns=["order_id", "review_score", "created_at"])
    reviews = reviews.dropna(subset=["review_score", "created_at"])
    position = pd.Index(orders["order_id"]).get_indexer(reviews["order_id"])
    reviews = reviews.assign(position=position)[position >= 0]
    reviews = reviews.sort_values("created_at", kind="stable")
    codes, customers = pd.factorize(orders["customer_unique_id"])
    return _Purchases(
        customers=pd.Index(customers),
        customer_code=codes,
        purchase_at=orders["purchase_at"].to_numpy("datetime64[us]"),
        delivered_at=orders["delivered_at"].to_numpy("datetime64[us]"),
        estimated_at=orders["estimated_at"].to_numpy("datetime64[us]"),
        review_order=reviews["position"].to_numpy(np.int64),
        review_score=reviews["review_score"].to_numpy(dtype=float, na_value=np.nan),
        review_created_at=reviews["created_at"].to_numpy("datetime64[us]"),
    )


def order_facts(folder: RunFolder, as_of: pd.Timestamp, start: pd.Timestamp
                ) -> pd.DataFrame:
    """Per purchase in [start, as_of): customer code, score, late and days late as known then.

    A review counts once created before `as_of` (the latest per order). A delivery is
    judged once it happened before `as_of`, or as late once its estimated date passed
    without it (days late counted to `as_of`); otherwise late is unknown (NaN).
    """
    p = _purchases(folder)
    as_of64 = as_of.to_datetime64()
    start64 = start.to_datetime64()
    score = np.full(len(p.customer_code), np.nan)
    known = p.review_created_at < as_of64
    score[p.review_order[known]] = p.review_score[known]  # ascending: the latest one wins
    day = np.timedelta64(1, "D")
    estimated = p.estimated_at.astype("datetime64[D]")
    delivered = p.delivered_at < as_of64
    days = np.where(delivered, (p.delivered_at.astype("datetime64[D]") - estimated) / day,
                    (np.datetime64(as_of.date(), "D") - estimated) / day)
    judged = (delivered | (p.estimated_at < as_of64)) & ~np.isnat(p.estimated_at)
    late = np.where(judged, (days > 0).astype(float), np.nan)
    bought = (p.purchase_at >= start64) & (p.purchase_at < as_of64)
    return pd.DataFrame({
        "customer_code": p.customer_code[bought],
        "score": score[bought],
        "late": late[bought],
        "days_late": np.where(judged, np.clip(days, 0, None), np.nan)[bought],
        "delivered": delivered[bought],
    })


def add_experience_features(folder: RunFolder, table: pd.DataFrame, as_of: pd.Timestamp,
                            lookback_months: int) -> pd.DataFrame:
    """Satisfaction and delivery features per customer, from what was known before `as_of`.

    The stability analysis calls this for past cuts, so nothing may leak from later: see
    `order_facts`. Customers without a known review get the period's mean score and share
    of 1-2 star reviews (neutral: neither flattered nor blamed) and review_count 0;
    customers without a judged delivery get late_share and avg_days_late 0.
    """
    facts = order_facts(folder, as_of, period_start(as_of, lookback_months))
    n = len(_purchases(folder).customers)
    codes = facts["customer_code"].to_numpy()
    score = facts["score"].to_numpy()
    rated = ~np.isnan(score)
    judged = ~np.isnan(facts["late"].to_numpy())
    review_count = np.bincount(codes[rated], minlength=n)
    score_sum = np.bincount(codes[rated], weights=score[rated], minlength=n)
    low_sum = np.bincount(codes[rated], weights=(score[rated] <= LOW_SCORE), minlength=n)
    judged_count = np.bincount(codes[judged], minlength=n)
    late_sum = np.bincount(codes[judged], weights=facts["late"].to_numpy()[judged], minlength=n)
    days_sum = np.bincount(codes[judged], weights=facts["days_late"].to_numpy()[judged],
                           minlength=n)
    mean_score = float(score[rated].mean()) if rated.any() else 0.0
    mean_low = float((score[rated] <= LOW_SCORE).mean()) if rated.any() else 0.0
    where = _purchases(folder).customers.get_indexer(table["customer_id"].astype("str"))
    found = where >= 0
    at = np.where(found, where, 0)
    reviews = np.where(found, review_count[at], 0)
    deliveries = np.where(found, judged_count[at], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = table.copy()
        out["review_score_mean"] = np.where(reviews > 0, score_sum[at] / reviews, mean_score)
        out["low_review_share"] = np.where(reviews > 0, low_sum[at] / reviews, mean_low)
        out["review_count"] = reviews.astype("int64")
        out["late_share"] = np.where(deliveries > 0, late_sum[at] / deliveries, 0.0)
        out["avg_days_late"] = np.where(deliveries > 0, days_sum[at] / deliveries, 0.0)
    return out




def _reviewed_mean(frame: pd.DataFrame, column: str) -> float | None:
    """Mean over customers with at least one review (filled values would flatter no one)."""
    rated = frame.loc[frame["review_count"] > 0, column]
    return round(float(rated.mean()), 4) if len(rated) else None


def satisfaction_figures(folder: RunFolder, as_of: pd.Timestamp, start: pd.Timestamp,
                         customers: pd.DataFrame) -> dict:
    """Order-level satisfaction and delivery facts for the period, and per group of customers."""
    facts = order_facts(folder, as_of, start)
    score = facts["score"]
    late = facts["late"]
    days = facts["days_late"]
    low = (score <= LOW_SCORE).where(score.notna())
    both = late.notna() & low.notna()

    def share(mask: pd.Series) -> float | None:
        return round(float(mask.mean()), 4) if mask.notna().any() else None

    active = customers[customers["has_purchase"]]
    groups = {"insiders": active[active["is_insider"]], "rest": active[~active["is_insider"]]}
    per_group = {
        name: {"customers": int(len(g)),
               "review_score_mean": _reviewed_mean(g, "review_score_mean"),
               "low_review_share": _reviewed_mean(g, "low_review_share"),
               "late_share": round(float(g["late_share"].mean()), 4) if len(g) else None,
               "repeat_share": round(float((g["frequency"] >= 2).mean()), 4) if len(g) else None}
        for name, g in groups.items()
    }
    by_persona = []
    for persona, g in active.groupby("persona", sort=False):
        by_persona.append({"persona": str(persona), "customers": int(len(g)),
                           "review_score_mean": _reviewed_mean(g, "review_score_mean"),
                           "low_review_share": _reviewed_mean(g, "low_review_share"),
                           "late_share": round(float(g["late_share"].mean()), 4),
                           "avg_days_late": round(float(g["avg_days_late"].mean()), 2)})
    by_persona.sort(key=lambda x: -x["customers"])
    return {
        "purchases": int(len(facts)),
        "reviewed_share": share(score.notna()),
        "review_score_mean": round(float(score.mean()), 4) if score.notna().any() else None,
        "low_review_share": share(low),
        "late_share": share(late),
        "avg_days_late_when_late": (round(float(days[late == 1].mean()), 2)
                                    if (late == 1).any() else None),
        "low_review_share_when_late": share(low[both & (late == 1)]),
        "low_review_share_when_on_time": share(low[both & (late == 0)]),
        "repeat_share": round(float((active["frequency"] >= 2).mean()), 4) if len(active)
        else None,
        "insiders": per_group["insiders"],
        "rest": per_group["rest"],
        "by_persona": by_persona,
    }


