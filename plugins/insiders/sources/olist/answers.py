"""Olist's amendments to the answers: satisfaction, what does not apply, and question 5.

Deep-merged into the nine answers by `publish.answers.build`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ... import wording
from ...publish.answers import proof
from . import Olist
from .experience import EXPERIENCE_DESCRIPTIONS, satisfaction_figures

if TYPE_CHECKING:
    from ...catalog import RunFolder

CURRENCY = Olist.currency
NO_RETURNS = ("Olist records no returns (a cancelled order is not a purchase, not a return), "
              "so return figures are 0 by construction and say nothing about these customers.")


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def extra_answers(folder: RunFolder, stages: dict, customers: pd.DataFrame) -> dict:
    """Olist's additions to answers.json: a satisfaction answer and what does not apply."""
    as_of = pd.Timestamp(stages["quality"]["as_of"])
    start = pd.Timestamp(stages["features"]["period_start"])
    fig = satisfaction_figures(folder, as_of, start, customers)
    ins, rest = fig["insiders"], fig["rest"]
    when_late = fig["low_review_share_when_late"]
    on_time = fig["low_review_share_when_on_time"]
    verdict = ("Late deliveries drive the bad reviews"
               if when_late is not None and on_time is not None and when_late >= 2 * on_time
               else "Late deliveries do not explain the bad reviews on their own")
    text = (
        f"Customers rated {wording.share(fig['reviewed_share'])} of the period's "
        f"{fig['purchases']:,} purchases, {_fmt(fig['review_score_mean'], '.2f')}/5 on average, "
        f"with {wording.share(fig['low_review_share'])} at 1-2 stars. {verdict}: "
        f"{wording.share(fig['low_review_share_when_late'])} of late purchases got "
        f"1-2 stars against {wording.share(fig['low_review_share_when_on_time'])} of those on "
        f"time ({wording.share(fig['late_share'])} of deliveries were late). The Insiders rate "
        f"us {_fmt(ins['review_score_mean'], '.2f')}/5 against "
        f"{_fmt(rest['review_score_mean'], '.2f')} for the rest, and "
        f"{wording.share(ins['late_share'])} of their deliveries were late against "
        f"{wording.share(rest['late_share'])}."
    )
    vs = stages["evaluate"]["insiders_vs_rest"]
    m, f = vs["monetary"], vs["frequency"]
    personas_count = customers.loc[customers["is_insider"], "persona"].value_counts()
    top = personas_count.index[0] if len(personas_count) else "n/a"
    characteristics = (
        f"The typical Insider spent {wording.money(m['insiders_median'], CURRENCY)} in the "
        f"period against {wording.money(m['rest_median'], CURRENCY)} for other customers and "
        "placed "
        f"{_fmt(f['insiders_mean'], '.2f')} orders on average against "
        f"{_fmt(f['rest_mean'], '.2f')} ({wording.share(fig['repeat_share'])} of customers "
        f"ordered more than once). They rated their purchases "
        f"{_fmt(ins['review_score_mean'], '.1f')}/5 against "
        f"{_fmt(rest['review_score_mean'], '.1f')}. Most are {top}. Returns do not apply: "
        "Olist records none."
    )
    not_applicable = {
        "characteristics.return_rate": NO_RETURNS,
        "guarantee.insiders_vs_rest.return_rate": NO_RETURNS,
        "characteristics.top_countries": ("Olist customers all live in Brazil: the 'country' "
                                          "of the figures is the customer's state."),
    }
    answers = {
        "satisfaction": {"text": text, **fig,
                         "feature_descriptions": EXPERIENCE_DESCRIPTIONS},
        "characteristics": {
            "text": characteristics,
            "not_applicable": ["return_rate"],
            "not_applicable_text": NO_RETURNS,
            "top_countries_are": "Brazilian states",
        },
        "guarantee": {"not_applicable": ["return_rate"], "not_applicable_text": NO_RETURNS},
        "not_applicable": not_applicable,
        "data_quality": {"policy": (
            "Only delivered orders are purchases: cancelled and undelivered ones are set aside "
            "as not delivered (reason order_not_delivered in the quarantine; per-table "
            "accounting in work/extract.json)."),
            "tables": stages["extract"].get("tables", {})},
        "marketing_actions": {"insiders_action": (
            "Recognition over discounts, and a flawless next order: free shipping with a "
            "guaranteed delivery date, priority customer care and a personal apology when a "
            f"delivery is late ({wording.share(ins['late_share'])} of theirs were); the goal is a "
            f"second purchase ({wording.share(ins['repeat_share'])} of them have made one).")},
        "questions": {"satisfaction": "How satisfied are the customers, and what upsets them?"},
        "source": {"kind": "olist", "person": "customer_unique_id",
                   "purchase": "a delivered order (order_status = delivered)",
                   "currency": CURRENCY, "tables": stages["extract"].get("tables", {})},
    }
    n_members = int(customers["is_insider"].sum())
    _merge_future(answers, stages, n_members, fig["repeat_share"])
    return answers


def _merge_future(answers: dict, stages: dict, n_members: int, repeat_share: float | None
                  ) -> None:
    """Say plainly what the Insiders' past spend does and does not promise on a marketplace.

    The expected revenue (question 5) is the members' BG/NBD x Gamma-Gamma expected spend,
    which values one-time buyers by how likely such buyers are to come back - the same
    figure as everywhere else, so nothing is overridden here. The guarantee gets one
    sentence on what past spend means where almost nobody buys twice.
    """
    oot = stages["evaluate"]["out_of_time"]
    repeat = wording.share(repeat_share)
    answers["expected_revenue"] = {"marketplace_note": (
        f"Only {repeat} of Olist customers ordered more than once, so the figure is small: it "
        "is what these one-time buyers are expected to come back and spend, not their past "
        "spend repeated.")}
    if not oot.get("available"):
        return
    said = proof(stages["evaluate"]["insiders_vs_rest"], oot, CURRENCY)
    answers["guarantee"]["text"] = (
        f"{said['text']} On a marketplace where {repeat} of customers order more than once, "
        "today's spend is past spend, not a promise: the program's job here is to turn the "
        "Insiders into repeat buyers, and the satisfaction figures say where to start.")
