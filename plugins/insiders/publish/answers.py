"""The nine answers for marketing, each a short text plus the figures behind it.

Contract (answers.json): top-level keys `who`, `how_many`, `characteristics`,
`revenue_share`, `expected_revenue`, `entry_conditions`, `exit_conditions`,
`guarantee`, `marketing_actions`, plus `as_of`, `period`, `data_quality` and
`model`. Every answer has a `text` of one or two plain sentences.
"""

from __future__ import annotations

import pandas as pd

from ..models.features import DESCRIPTIONS

QUESTIONS = {
    "who": "Who are the customers eligible for the Insiders program?",
    "how_many": "How many customers are in the group?",
    "characteristics": "What are the main characteristics of these customers?",
    "revenue_share": "What share of revenue comes from the Insiders?",
    "expected_revenue": "What revenue do we expect from the Insiders in the coming months?",
    "entry_conditions": "What must a customer do to join the Insiders?",
    "exit_conditions": "When does a member leave the Insiders?",
    "guarantee": "What proves the Insiders are better than the rest?",
    "marketing_actions": "What should marketing do for each group?",
}


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def build(
    as_of: pd.Timestamp, stages: dict[str, dict], customers: pd.DataFrame,
    extra: dict | None = None,
) -> dict:
    """Assemble answers.json from the stages' outputs and the final customer table."""
    q, seg, ins, ev, fc = (stages[k] for k in ("quality", "segment", "insiders", "evaluate",
                                               "forecast"))
    feat = stages["features"]
    members = customers[customers["is_insider"]].sort_values("value_rank")
    active = customers[customers["has_purchase"]]
    n, n_active = len(members), len(active)
    total_rev = float(customers["monetary"].sum())
    ins_rev = float(members["monetary"].sum())
    share = n / n_active if n_active else 0.0
    rev_share = ins_rev / total_rev if total_rev else 0.0
    sel, cond = ins["selection"], ins["conditions"]
    gone = int(ins["value_model"].get("probably_gone_in_top", 0))
    vs_rest = ev["insiders_vs_rest"]
    oot = ev["out_of_time"]
    period = {"start": feat["period_start"], "end": str(as_of.date())}

    top = members.head(10)
    by_persona = members["persona"].value_counts()
    countries = members["country"].value_counts().head(5)
    m = vs_rest["monetary"]
    f = vs_rest["frequency"]
    r = vs_rest["recency_days"]

    fc_months = fc["months"]
    fc_total = float(fc["total"])  # the Insiders' expected values, added up (forecast stage)
    back = fc["backtest"]

    profiles = seg["profiles"]
    actions = [
        {"segment": int(p["segment"]), "persona": p["persona"], "customers": int(p["customers"]),
         "share": round(float(p["share"]), 4), "revenue_share": round(float(p["revenue_share"]),
                                                                        4),
         "description": p["description"], "action": p["action"],
         "insiders": int(by_persona.get(p["persona"], 0))}
        for p in profiles
    ]
    flows = ins["membership"]
    answers = {
        "as_of": str(as_of.date()),
        "period": period,
        "questions": QUESTIONS,
        "who": {
            "text": (f"{n:,} customers, ranked by {ins['value_model']['label']} (of the value "
                     "methods replayed at earlier months, the one that picked the best "
                     "spenders, or past spend when none beat it clearly); the top of the list is "
                     f"customer {top['customer_id'].iloc[0] if n else 'n/a'}. The full list is "
                     "in insiders.csv."),
            "customer_ids": members["customer_id"].astype("str").tolist(),
            "top": [
                {"customer_id": str(c.customer_id), "persona": c.persona,
                 "country": c.country, "monetary": round(float(c.monetary), 2),
                 "frequency": int(c.frequency),
                 "expected_value": round(float(c.expected_value), 2)}
                for c in top.itertuples()
            ],
        },
        "how_many": {
            "text": (f"{n:,} customers, {share:.1%} of the {n_active:,} who bought in the period. "
                     f"Size rule: {sel['rule']}."
                     + (f" {gone:,} customers whose value would have put them in were passed "
                        "over: the purchase model says they have probably stopped buying."
                        if gone else "")),
            "count": n,
            "share_of_customers": round(share, 4),
            "active_customers": n_active,
            "rule": sel["rule"],
            "bounds": {"min_share": None, "max_share": None},
        },
        "characteristics": {
            "text": (f"The typical Insider spent {_money(m['insiders_median'])} in the period "
                     f"against {_money(m['rest_median'])} for other customers, bought "
                     f"{f['insiders_median']:.0f} times against {f['rest_median']:.0f}, and last "
                     f"bought {r['insiders_median']:.0f} days ago against "
                     f"{r['rest_median']:.0f}. Most are "
                     f"{by_persona.index[0] if len(by_persona) else 'n/a'}."),
            "insiders_vs_rest": {
                k: {"label": v["label"], "insiders_mean": v["insiders_mean"],
                    "rest_mean": v["rest_mean"], "insiders_median": v["insiders_median"],
                    "rest_median": v["rest_median"], "ratio": v["ratio"]}
                for k, v in vs_rest.items()
            },
            "by_persona": {str(k): int(v) for k, v in by_persona.items()},
            "top_countries": {str(k): int(v) for k, v in countries.items()},
            "feature_descriptions": DESCRIPTIONS,
        },
        "revenue_share": {
            "text": (f"The Insiders brought {rev_share:.0%} of net revenue in the period "
                     f"({_money(ins_rev)} of {_money(total_rev)}) while being {share:.1%} of "
                     "customers."),
            "value": round(rev_share, 4),
            "insiders_revenue": round(ins_rev, 2),
            "total_revenue": round(total_rev, 2),
            "expected_share_next": round(float(members["expected_value"].sum())
                                         / max(float(active["expected_value"].sum()), 1e-9), 4),
        },
        "expected_revenue": {
            "text": (f"About {_money(fc_total)} over the next {len(fc_months)} months: what "
                     f"today's {n:,} Insiders are each expected to spend, added up"
                     + (f" (80% interval {_money(fc['total_interval'][0])} to "
                        f"{_money(fc['total_interval'][1])})" if fc.get("total_interval")
                        and fc["total_interval"][0] is not None else "")
                     + ". " + fc.get("text", "") + " "
                     + (back.get("text", "") if back else "")).strip(),
            "months": fc_months,
            "total": round(fc_total, 2),
            "total_interval": fc.get("total_interval"),
            "sum_of_insiders_expected_value": round(float(members["expected_value"].sum()), 2),
            "method": fc["method"],
            "calibration_factor": fc.get("factor"),
            "model_total": fc.get("model_total"),
            "history": fc["history"],
            "backtest": back,
        },
        "customer_value": _customer_value(customers, members),
        "hypotheses": ev.get("hypotheses", []),
        "entry_conditions": {
            "text": cond["entry_text"],
            "entry_line": round(float(sel["entry_line"]), 2),
            "value_method": ins["value_model"]["method"],
            "rules": cond["rules"],
            "rules_text": ("In everyday terms, a customer is an Insider when: "
                           + "; or ".join(cond["rules"]) + ".") if cond["rules"] else "",
            "agreement": cond["agreement"],
            "precision": cond["precision"],
            "recall": cond["recall"],
        },
        "exit_conditions": {
            "text": cond["exit_text"],
            "exit_line": round(float(sel["exit_line"]), 2),
            "exit_rank": int(sel["exit_rank"]),
            "membership": flows,
            "previous_members": ins["previous_members"],
        },
        "guarantee": {
            "text": guarantee_text(vs_rest, oot),
            "insiders_vs_rest": vs_rest,
            "out_of_time": oot,
            "value_contest": ins["value_contest"],
        },
        "marketing_actions": {
            "text": ("Each segment gets an action that follows from its figures; the Insiders "
                     "get recognition and early access rather than discounts."),
            "segments": actions,
            "insiders_action": ("Recognition over discounts: early access to new collections, a "
                                "named contact, a thank-you before the November peak; watch "
                                "members close to the exit line and call them first."),
        },
        "data_quality": {
            **{k: q[k] for k in ("rows_in", "rows_kept", "set_aside", "reasons")},
            # what the reader noticed (encodings, ignored sheets, stray dates) and what quality did
            "notes": [*stages["extract"].get("notes", []), *q.get("notes", [])],
            "files": stages["extract"].get("files", {}),
            "source": stages["extract"].get("source"),
        },
        "model": {
            "chosen": seg["chosen"],
            "why": seg["why"],
            "candidates": seg["candidates"],
            "features": seg["model_features"],
            "value_model": ins["value_model"],
            "value_method_why": ins["value_contest"]["why"],
        },
    }
    if extra:
        _merge(answers, extra)
    return answers


BANDS = ("Low", "Medium", "High")


def _customer_value(customers: pd.DataFrame, members: pd.DataFrame) -> dict:
    """The per-customer predictions, summed up: churn-risk mix and predicted value."""
    active = customers[customers["has_purchase"]]

    def mix(frame: pd.DataFrame) -> dict:
        counts = frame["churn_band"].value_counts()
        return {b: int(counts.get(b, 0)) for b in BANDS}

    ins_mix, all_mix = mix(members), mix(active)
    high = ins_mix["High"] / max(len(members), 1)
    return {
        "text": (f"{ins_mix['Low']:,} of the {len(members):,} Insiders are at low risk of not "
                 f"buying in the next 90 days, {ins_mix['Medium']:,} at medium and "
                 f"{ins_mix['High']:,} at high risk ({high:.0%}); together they are expected "
                 f"to spend {_money(float(members['predicted_clv_12m'].sum()))} over the next "
                 "12 months."),
        "churn_mix_insiders": ins_mix,
        "churn_mix_active": all_mix,
        "predicted_clv_12m_insiders": round(float(members["predicted_clv_12m"].sum()), 2),
        "predicted_clv_12m_active": round(float(active["predicted_clv_12m"].sum()), 2),
        "probably_gone_active": int((active["p_alive"].astype(float) < 0.5).sum()),
        "fields": {"churn_risk": "probability of no purchase in the next 90 days",
                   "churn_band": "Low (< 1/3), Medium, High (>= 2/3)",
                   "expected_value": "expected net spend over the next months (calibrated)",
                   "predicted_clv_12m": "expected net spend over the next 12 months",
                   "expected_next_order": "the date by which the next order has a 50% chance",
                   "p_alive": "probability the customer is still buying"},
    }


def _merge(base: dict, extra: dict) -> None:
    """Deep-merge a source's additions (e.g. a `not_applicable` note inside an answer)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def guarantee_text(vs_rest: dict, oot: dict) -> str:
    m = vs_rest["monetary"]
    lo, hi = m["ci95"]
    text = (f"Insiders spend {m['ratio']:.1f}x the rest per customer (difference "
            f"{_money(m['difference'])}, 95% CI {_money(lo)} to {_money(hi)}, Mann-Whitney "
            f"p={m['p_value']:.1g}).") if m["ratio"] else "Not enough customers to compare."
    if oot.get("available"):
        text += " " + oot["text"]
    else:
        text += " " + oot.get("text", "")
    return text
