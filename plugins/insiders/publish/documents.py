"""MongoDB documents of a run: `build()` makes them from a finished run folder.

The stores that keep them live in `insiders.stores` (a MongoDB server, or the embedded
SQLite store by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from ..catalog import RunFolder


# --------------------------------------------------------------------------- building documents

FEATURE_KEYS = ("recency_days", "frequency", "monetary", "avg_ticket", "basket_size",
                "basket_variety", "avg_days_between", "purchases_per_month", "tenure_days",
                "return_rate", "revenue_90d")


# the per-customer predictions a customer document carries (models.clv, forecast stage)
PREDICTION_KEYS = ("historic_value", "p_alive", "churn_risk", "churn_band", "expected_purchases",
                   "expected_order_value", "predicted_clv_12m", "avg_days_between_orders",
                   "value_score", "expected_next_order")


def _prediction(value: object) -> object:
    """A prediction as a document value: dates as YYYY-MM-DD, bands as text, numbers as such."""
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else str(value.date())
    if isinstance(value, str):
        return value
    return _num(value)


def _num(value: object) -> float | int | None:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, (bool,)):
        return value
    if hasattr(value, "item"):
        value = value.item()
    return value


def build(folder: RunFolder, run_id: str, source: str | None = None) -> tuple[dict, dict]:
    """The run document and the per-collection documents, from a finished run folder."""
    from ..stages import REPORTED

    answers = folder.read_json("answers")
    stages = folder.stages(REPORTED)
    customers = folder.read("customers")
    ins = stages["insiders"]
    seg = stages["segment"]
    fc = stages["forecast"]
    stab = folder.stage("stability") if folder.has_stage("stability") else {}

    extra_features = [c for c in seg.get("model_features", []) if c not in FEATURE_KEYS
                      and c in customers]
    customer_docs = []
    for row in customers.to_dict(orient="records"):
        features = {k: _num(row.get(k)) for k in (*FEATURE_KEYS, *extra_features)}
        customer_docs.append({
            "customer_id": str(row["customer_id"]),
            "country": None if row.get("country") is None else str(row["country"]),
            "segment": int(row["segment"]),
            "persona": str(row["persona"]),
            "is_insider": bool(row["is_insider"]),
            "expected_value": float(_num(row["expected_value"]) or 0.0),
            "value_rank": int(row["value_rank"]),
            "membership": str(row["membership"]),
            "features": features,
            "predictions": {k: _prediction(row.get(k)) for k in PREDICTION_KEYS if k in row},
        })

    members_by_segment = customers[customers["is_insider"]].groupby("segment").size()
    value_by_segment = customers.groupby("segment")["expected_value"].mean()
    segment_docs = []
    for p in seg["profiles"]:
        segment_docs.append({
            "segment": int(p["segment"]), "persona": p["persona"],
            "description": p.get("description"), "action": p.get("action"),
            "customers": int(p["customers"]), "share": float(p["share"]),
            "insiders": int(members_by_segment.get(int(p["segment"]), 0)),
            "revenue": float(p["revenue"]), "revenue_share": _num(p.get("revenue_share")),
            "profile": {**{k: _num(v) for k, v in p.items()
                           if k not in ("segment", "persona", "persona_base", "description",
                                        "action", "customers", "share", "revenue",
                                        "revenue_share")},
                        "mean_expected_value": _num(value_by_segment.get(int(p["segment"])))},
        })

    membership_docs = [
        {"customer_id": str(r["customer_id"]), "status": str(r["membership"]),
         "reason": str(r["membership_reason"]) or None,
         "expected_value": _num(r["expected_value"])}
        for r in customers[["customer_id", "membership", "membership_reason",
                            "expected_value"]].to_dict(orient="records")
    ]
    known = set(customers["customer_id"].astype("str"))
    for gone in sorted(set(ins.get("previous_member_ids", [])) - known):
        membership_docs.append({"customer_id": gone, "status": "left",
                                "reason": "no purchase in the analysed period",
                                "expected_value": 0.0})

    forecast_docs = [{"month": h["month"], "kind": "actual", "revenue": h["revenue"],
                      "lower": None, "upper": None} for h in fc.get("history", [])]
    forecast_docs += [{"month": m["month"], "kind": "forecast", "revenue": m["revenue"],
                       "lower": m.get("lower"), "upper": m.get("upper")} for m in fc["months"]]
    back = fc.get("backtest") or {}
    # the latest origin of the rolling backtest: its months, what the group then spent, our
    # forecast and the naive mean-of-3-months rule (one row per month and kind)
    origins = back.get("origins", []) if back.get("available") else []
    latest = max((m["origin"] for m in origins), default=None)
    for m in (m for m in origins if m["origin"] == latest):
        forecast_docs += [
            {"month": m["month"], "kind": "backtest_actual", "revenue": _num(m["actual"]),
             "lower": None, "upper": None},
            {"month": m["month"], "kind": "backtest_forecast", "revenue": _num(m["forecast"]),
             "lower": _num(m.get("lower")), "upper": _num(m.get("upper"))},
            {"month": m["month"], "kind": "backtest_naive",
             "revenue": _num(m.get("naive_mean_3m")), "lower": None, "upper": None},
        ]
    stability_docs = [{"months_since_fit": int(p["months_since_fit"]), "ari": _num(p["ari"]),
                       "threshold": float(stab["threshold"])}
                      for p in stab.get("ari_by_month", [])]

    campaign_docs = campaign_documents(folder)

    flows = dict(ins["membership"])
    flows["left"] = sum(1 for d in membership_docs if d["status"] == "left")
    flows["members"] = int(customers["is_insider"].sum())
    quality = stages["quality"]
    run = {
        "run_id": run_id,
        "as_of": answers["as_of"],
        "period_start": answers["period"]["start"],
        "source": source or stages["extract"].get("source"),
        "kind": stages["extract"]["kind"],
        "timings": {name: stages[name].get("seconds") for name in stages},
        "data_quality": {"rows_in": quality["rows_in"], "rows_kept": quality["rows_kept"],
                         "set_aside": quality["set_aside"], "notes": quality.get("notes", [])},
        "model": {"chosen": "{algorithm} k={k}".format(**seg["chosen"]),
                  "algorithm": seg["chosen"]["algorithm"], "k": seg["chosen"]["k"],
                  "why": seg["why"], "candidates": seg["candidates"],
                  "value_model": ins["value_model"], "value_contest": ins["value_contest"]},
        "membership": flows,
        "summary": {
            "customers": answers["how_many"]["active_customers"],
            "insiders": answers["how_many"]["count"],
            "insiders_share": answers["how_many"]["share_of_customers"],
            "revenue": answers["revenue_share"]["total_revenue"],
            "insiders_revenue": answers["revenue_share"]["insiders_revenue"],
            "insiders_revenue_share": answers["revenue_share"]["value"],
            "forecast_next": answers["expected_revenue"]["total"],
            "n_segments": len(seg["profiles"]),
            "recommended_refresh_months": stab.get("recommended_refresh_months"),
        },
        "answers": answers,
    }
    documents = {"customers": customer_docs, "segments": segment_docs,
                 "membership": membership_docs, "forecasts": forecast_docs,
                 "stability": stability_docs, "campaigns": campaign_docs}
    return run, documents


def campaign_documents(folder: RunFolder) -> list[dict]:
    """The month's campaign lists (campaigns.csv, written by the report stage) as documents:
    one per customer, so the dashboard and the SQL store read the very rows marketing gets.
    A run folder from before the lists existed has none."""
    if not folder.exists("campaigns"):
        return []
    lists = pd.read_csv(folder.path_of("campaigns"), dtype={"customer_id": "str"},
                        keep_default_na=False, na_values=[""])
    return [
        {"customer_id": str(r["customer_id"]), "list": str(r["list"]),
         "reason": str(r["reason"]), "expected_value": _num(r["expected_value"]),
         "churn_risk": _num(r["churn_risk"]),
         "churn_band": None if _num(r["churn_band"]) is None else str(r["churn_band"]),
         "value_rank": int(r["value_rank"])}
        for r in lists.to_dict(orient="records")
    ]
