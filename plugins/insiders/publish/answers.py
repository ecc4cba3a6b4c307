"""The nine answers for marketing, each a short text plus the figures behind it.

Contract (answers.json): top-level keys `who`, `how_many`, `characteristics`,
`revenue_share`, `expected_revenue`, `entry_conditions`, `exit_conditions`,
`guarantee`, `marketing_actions`, plus `currency` (first: GBP, BRL, ...), `as_of`,
`data_through`, `period`, `data_quality` and `model`. Every answer has a `text` of one or
two plain sentences a marketer can repeat (no p-values, intervals or model jargon; every
amount with its currency) and, where there are any, the tests and intervals behind it in
`analysts`. The figures themselves stay in the structured fields.
"""

from __future__ import annotations

import pandas as pd

from .. import wording
from ..models.features import DESCRIPTIONS
from ..models.significance import significant

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


def _ranking_words(ins: dict) -> str:
    """What ranks the customers and why, in marketing's words: "ranked by past spend"
    beside "expected to bring the most" read as a contradiction without the reason."""
    label = ins["value_model"]["label"]
    contest = ins.get("value_contest", {})
    if contest.get("winner", ins["value_model"]["method"]) != "past_spend":
        return f"{label}, which picked bigger spenders than past spend did at earlier months"
    tested = [m for m in contest.get("methods") or [] if m.get("method") not in
              ("past_spend", "rfm")]
    if not tested:  # too few replay origins, or no challenger could be fitted
        return f"{label} (no model could be tested against it on this data yet)"
    return f"{label}, which at earlier months picked the next big spenders as well as any model"


def build(
    as_of: pd.Timestamp, stages: dict[str, dict], customers: pd.DataFrame,
    extra: dict | None = None, currency: str = "", region_label: str = "Country",
) -> dict:
    """Assemble answers.json from the stages' outputs and the final customer table.

    `currency` (the source adapter's, `Source.currency_of`) follows every amount in the
    texts and heads the file; `region_label` names what the customers' region column holds
    (Olist: the Brazilian state)."""

    def _money(x: float | None) -> str:
        return wording.money(x, currency)

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
    # the as-of is the day of the run (lines before it count); the data may end earlier
    data_through = feat.get("data_through") or str((as_of - pd.Timedelta(days=1)).date())
    period = {"start": feat["period_start"], "end": str(as_of.date()),
              "data_through": data_through, "first_line": feat.get("data_from")}
    if feat.get("data_from") and feat["data_from"] > feat["period_start"]:
        # a shorter extract than the period: "the last 12 months" hold fewer months of data
        period["data_from"] = feat["data_from"]

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
         "share": wording.stored(p["share"]), "revenue_share": wording.stored(p["revenue_share"]),
         "description": p["description"], "action": p["action"],
         "insiders": int(by_persona.get(p["persona"], 0))}
        for p in profiles
    ]
    flows = ins["membership"]
    interval = fc.get("total_interval")
    has_interval = bool(interval) and interval[0] is not None
    answers = {
        "currency": currency,
        "as_of": str(as_of.date()),
        "data_through": data_through,
        "region_label": region_label,
        "period": period,
        "questions": QUESTIONS,
        "who": {
            "text": (f"{n:,} customers: the ones expected to bring the most, ranked by "
                     f"{_ranking_words(ins)}. Customer "
                     f"{top['customer_id'].iloc[0] if n else 'n/a'} tops the list; the full "
                     "list is in insiders.csv."),
            "analysts": ("The ranking is the value method that picked the best spenders when "
                         "replayed at earlier months (past spend unless a challenger beat it "
                         "beyond noise). " + ins["value_contest"].get("why", "")).strip(),
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
            "text": (f"{n:,} customers, {wording.share(share)} of the {n_active:,} who bought "
                     f"in the period. How the size is set: {sel['rule']}."
                     + _kept_text(members, sel)
                     + (f" {gone:,} customers whose spend would have put them in were passed "
                        "over because they have probably stopped buying." if gone else "")),
            "count": n,
            "share_of_customers": wording.stored(share),
            "active_customers": n_active,
            "rule": sel["rule"],
            "size_by_rule": int(sel.get("size") or 0),
            "bounds": {"min_share": None, "max_share": None},
        },
        "characteristics": {
            "text": (f"The typical Insider spent {_money(m['insiders_median'])} in the period "
                     f"against {_money(m['rest_median'])} for other customers, bought "
                     f"{wording.count(f['insiders_median'])} times against "
                     f"{wording.count(f['rest_median'])}, and last bought "
                     f"{wording.count(r['insiders_median'])} days ago against "
                     f"{wording.count(r['rest_median'])}. Most are "
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
            "text": (f"The Insiders brought {wording.share(rev_share)} of net revenue in the "
                     f"period ({_money(ins_rev)} of {_money(total_rev)}) while being "
                     f"{wording.share(share)} of customers."),
            "value": wording.stored(rev_share),
            "insiders_revenue": round(ins_rev, 2),
            "total_revenue": round(total_rev, 2),
            "expected_share_next": wording.stored(float(members["expected_value"].sum())
                                           / max(float(active["expected_value"].sum()), 1e-9)),
        },
        "expected_revenue": {
            "text": (f"About {_money(fc_total)} over the next {len(fc_months)} months from "
                     f"today's {n:,} Insiders"
                     + (f", most likely between {_money(interval[0])} and "
                        f"{_money(interval[1])}." if has_interval else
                        ". There is not enough history yet to give a likely range.")
                     + (f" {back['plain']}" if back and back.get("plain") else "")),
            "analysts": (("80% interval of the total: "
                          f"{_money(interval[0])} to {_money(interval[1])}. "
                          if has_interval else "") + fc.get("text", "") + " "
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
        "customer_value": _customer_value(customers, members, currency,
                                          int(ins["value_model"].get("probably_gone", 0))),
        "hypotheses": ev.get("hypotheses", []),
        "entry_conditions": {
            "text": cond["entry_text"],
            "analysts": (f"The everyday rules are a decision tree that restates membership: "
                         f"they agree with it for {wording.share(cond['agreement'])} of "
                         f"active customers (precision {wording.share(cond['precision'], 0)}, "
                         f"recall {wording.share(cond['recall'], 0)})."),
            "entry_line": round(float(sel["entry_line"]), 2),
            "value_method": ins["value_model"]["method"],
            "value_method_label": ins["value_model"]["label"],
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
            **proof(vs_rest, oot, currency),
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
            "set_aside_where": q.get("set_aside_where", "see quarantine.csv.gz"),
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


def _kept_text(members: pd.DataFrame, sel: dict) -> str:
    """Why a monthly group can be larger than the size rule: earlier members between the
    exit and the entry line stay (the gap that stops members flipping in and out)."""
    size = int(sel.get("size") or 0)
    kept = int((members["value_rank"] > size).sum()) if size else 0
    if not kept:
        return ""
    return (f" Today's group is {len(members):,}: {len(members) - kept:,} at or above the "
            f"entry line plus {kept:,} earlier member{'s' if kept != 1 else ''} kept because "
            "they are still above the exit line.")


def _customer_value(customers: pd.DataFrame, members: pd.DataFrame, currency: str = "",
                    probably_gone: int = 0) -> dict:
    """The per-customer predictions, summed up: churn-risk mix and predicted value."""
    active = customers[customers["has_purchase"]]

    def mix(frame: pd.DataFrame) -> dict:
        counts = frame["churn_band"].value_counts()
        return {b: int(counts.get(b, 0)) for b in BANDS}

    ins_mix, all_mix = mix(members), mix(active)
    high = ins_mix["High"] / max(len(members), 1)
    return {
        "text": (f"{ins_mix['Low']:,} of the {len(members):,} Insiders "
                 f"{'is' if ins_mix['Low'] == 1 else 'are'} at low risk of not "
                 f"buying in the next 90 days, {ins_mix['Medium']:,} at medium and "
                 f"{ins_mix['High']:,} at high risk ({wording.share(high)}); together they are "
                 "expected to spend "
                 f"{wording.money(float(members['predicted_clv_12m'].sum()), currency)} over "
                 "the next "
                 "12 months."),
        "churn_mix_insiders": ins_mix,
        "churn_mix_active": all_mix,
        "predicted_clv_12m_insiders": round(float(members["predicted_clv_12m"].sum()), 2),
        "predicted_clv_12m_active": round(float(active["predicted_clv_12m"].sum()), 2),
        # the insiders stage's count (clv.probably_gone): none where the model cannot tell
        "probably_gone_active": probably_gone,
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


PROOF_TONES = {"holds": "ok", "not_significant": "warn", "wrong_direction": "bad",
               "untested": "warn"}


def _test_words(test: dict) -> str:
    """A two-group test for analysts: the p-value against its level, and the verdict."""
    alpha = float(test.get("alpha") or 0.05)
    word = "significant" if significant(test.get("p_value"), alpha) else "not significant"
    return f"Mann-Whitney {wording.p_value(test.get('p_value'))}: {word} at the {alpha:,.0%} level"


def proof_verdict(oot: dict) -> str:
    """holds / not_significant / wrong_direction / untested, from the out-of-time figures
    alone: significant at their stated level and Insiders spending more, or not."""
    test = oot.get("insiders_vs_rest") if oot.get("available") else None
    if not test:
        return "untested"
    more = ((oot["insiders"]["revenue_per_customer"] or 0)
            > (oot["rest"]["revenue_per_customer"] or 0))
    if significant(test.get("p_value"), float(test.get("alpha") or 0.05), more):
        return "holds"
    return "not_significant" if more else "wrong_direction"


def proof(vs_rest: dict, oot: dict, currency: str = "") -> dict:
    """Question 8 in plain words, and whether the proof holds.

    The proof is the out-of-time check: the group chosen `months` ago, as the program would
    have chosen it then, against everyone else over the months after. It *holds* when that
    difference is significant at the stated level and goes the right way (Insiders spend
    more); without the check (too little history) today's comparison decides. `verdict`
    (holds, not_significant, wrong_direction, untested) and `tone` (ok, warn, bad) follow
    from that alone, so the report's colour and words cannot disagree with the figures.
    """
    m = vs_rest["monetary"]
    lo, hi = m["ci95"]
    today = (f"Today's Insiders spend {wording.times(m['ratio'])} as much per customer as the "
             "rest." if m["ratio"] else "There are not enough customers to compare today.")
    analysts = (f"Today, net spend per customer, Insiders minus the rest: "
                f"{wording.money(m['difference'], currency)} (95% interval "
                f"{wording.money(lo, currency)} to {wording.money(hi, currency)}); "
                f"{_test_words(m)}.")
    verdict = proof_verdict(oot)
    if verdict != "untested":
        test = oot["insiders_vs_rest"]
        g, r = oot["insiders"], oot["rest"]
        spent = (f"the {g['customers']:,} Insiders chosen on {oot['chosen_on']} spent "
                 f"{wording.money(g['revenue_per_customer'], currency)} each over the next "
                 f"{oot['months']} months, against "
                 f"{wording.money(r['revenue_per_customer'], currency)} for the rest, and "
                 f"brought {wording.share(g['share_of_next_revenue'])} of all revenue")
        head = {"holds": "The proof holds: ",
                "not_significant": "The proof does not hold yet: ",
                "wrong_direction": "The proof does not hold: "}[verdict]
        tail = {"holds": ".",
                "not_significant": (", a difference too small to tell apart from chance."),
                "wrong_direction": ": the group chosen earlier did worse than the rest."
                }[verdict]
        text = f"{head}{spent}{tail} {today}"
        # the model's sentence repeats the spend the plain text gives; keep what follows it
        rest_of = oot.get("text", "").partition(" of all revenue. ")[2]
        analysts += (f" Out of time (chosen on {oot['chosen_on']}, measured over the next "
                     f"{oot['months']} months): {_test_words(test)}. {rest_of}")
    else:
        text = (f"{today} There is not enough history yet to check a group chosen earlier "
                "against what it spent afterwards, so the proof is not made yet.")
        analysts += " " + oot.get("text", "")
    return {"text": text, "analysts": analysts.strip(), "verdict": verdict,
            "holds": verdict == "holds", "tone": PROOF_TONES[verdict]}
