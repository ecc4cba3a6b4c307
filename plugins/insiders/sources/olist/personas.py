"""Olist's personas: segments named by satisfaction, delivery and repeat buying.

What the segmentation clusters on for Olist (`MODEL_FEATURES`) and how its
segments are named (`personas`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ... import wording
from ...models.segmentation import unique_names
from . import MODEL_FEATURES, Olist  # noqa: F401 - MODEL_FEATURES: for readers

HAPPY_SCORE = 4.5  # mean review at or above: delighted
UNHAPPY_SCORE = 3.5  # mean review at or below (or a third of reviews 1-2 stars): unhappy
UNHAPPY_LOW_SHARE = 0.3
LATE_SHARE = 0.3  # a segment whose deliveries were late this often is "let down"
REPEAT_ORDERS = 1.5  # mean orders per customer at or above: repeat buyers
BIG_SPEND_INDEX = 1.5  # revenue share / customer share at or above: big spenders
SMALL_SPEND_INDEX = 0.5  # at or below: small spenders
RECENT_DAYS = 90
DORMANT_DAYS = 240


def personas(profile: pd.DataFrame) -> pd.DataFrame:
    """Satisfaction- and delivery-aware personas: a name, a description and an action.

    A name is built from the segment's traits (mood, recency, who they are, delivery),
    each an explicit threshold above, so two segments with the same name really are
    the same kind of customer (segmentation.choose then rejects that candidate). Most
    customers buy once, so "repeat" is judged on the mean number of orders, not the
    median (which is 1 in nearly every segment).
    """
    p = profile.copy()
    n_total = max(float(p["customers"].sum()), 1.0)

    def col(name: str, default: float) -> pd.Series:
        return p[name].astype(float) if name in p else pd.Series(default, index=p.index)

    score = col("review_score_mean", 4.0)
    low = col("low_review_share", 0.0)
    late = col("late_share", 0.0)
    days_late = col("avg_days_late", 0.0)
    orders = col("mean_frequency", 1.0)
    share = p["customers"] / n_total
    spend_index = p["revenue_share"].astype(float) / share.where(share > 0)
    repeat = orders >= REPEAT_ORDERS
    big = spend_index >= BIG_SPEND_INDEX
    let_down = late >= LATE_SHARE
    unhappy = (score <= UNHAPPY_SCORE) | (low >= UNHAPPY_LOW_SHARE)
    delighted = (score >= HAPPY_SCORE) & ~unhappy
    recent = p["recency_days"] <= RECENT_DAYS
    dormant = p["recency_days"] >= DORMANT_DAYS

    small = spend_index <= SMALL_SPEND_INDEX
    who = np.select([repeat, big, small], ["repeat buyers", "big spenders", "small spenders"],
                    "one-time buyers")
    mood = np.select([let_down, unhappy, delighted], ["", "Unhappy", "Delighted"], "")
    when = np.select([recent, dormant], ["recent", "dormant"], "")
    tail = np.where(let_down, " let down by late deliveries", "")
    names = []
    for m, w, s, t in zip(mood, when, who, tail, strict=True):
        words = " ".join(x for x in (m, w, s) if x)
        names.append(words[:1].upper() + words[1:] + t)

    actions = np.select(
        [let_down & (repeat | big), let_down, unhappy & (repeat | big), unhappy,
         repeat & delighted, repeat, big & dormant, big, delighted & recent, delighted & dormant,
         recent, dormant, delighted & small],
        [
            "Call or e-mail within a week: apologise for the late delivery, give a voucher with "
            "a guaranteed delivery date on the next order, and send the late orders' sellers and "
            "carriers to operations; they are worth keeping.",
            "Apologise for the late delivery with a small voucher; hold promotions until "
            "operations has fixed the sellers and carriers involved.",
            "Customer care follow-up on their bad reviews (what went wrong, a goodwill coupon); "
            "keep them in Insiders only once the problem is solved.",
            "Ask what went wrong (one-question survey), answer every 1-2 star review; exclude "
            "them from paid look-alike audiences until they rate us again.",
            "Insiders core: early access, free shipping and referral rewards; they rate us "
            "highly, so ask them for reviews and referrals.",
            "Loyalty perks on their favourite categories and a satisfaction check after each "
            "order, to turn them into promoters.",
            "Win-back: a personal offer in the category of their big order before the next "
            "seasonal peak (Black Friday).",
            "Second-order campaign in their category within 30-60 days, free shipping on the "
            "next order; invite them to Insiders when they buy again.",
            "Onboarding: cross-sell related categories within 30 days and ask for a review or a "
            "referral while they are happy.",
            "Low-cost reactivation: best-sellers of the category they liked, before the "
            "seasonal peaks.",
            "Second-purchase incentive within 30 days (free-shipping threshold, related "
            "products).",
            "E-mail only, at the seasonal peaks; drop from paid campaigns if they do not react.",
            "They like us but spend little: bundles and a free-shipping threshold just above "
            "their usual ticket; ask them for a review or a referral.",
        ],
        "Regular newsletter; test a free-shipping threshold to raise the ticket.",
    )
    descriptions = []
    for i, r in enumerate(p.itertuples()):
        text = (f"{int(r.customers):,} customers ({wording.share(share.iloc[i])}) bringing "
                f"{wording.share(r.revenue_share)} of revenue; {orders.iloc[i]:.2f} orders per "
                f"customer, the typical one spent {wording.money(r.monetary, Olist.currency)} "
                "and last bought "
                f"{r.recency_days:.0f} days ago")
        if "review_score_mean" in p:
            text += f"; mean review {score.iloc[i]:.1f}/5"
        if "low_review_share" in p:
            text += f" with {low.iloc[i]:,.0%} of reviews at 1-2 stars"
        if "late_share" in p:
            text += f"; {late.iloc[i]:,.0%} of deliveries late"
        if "avg_days_late" in p and days_late.iloc[i] >= 0.05:
            text += (f" ({wording.duration_days(days_late.iloc[i])} late per order on "
                     "average)")
        descriptions.append(text + ".")
    p["persona_base"] = names
    p["persona"] = unique_names(p)
    p["description"] = descriptions
    p["action"] = list(actions)
    return p


