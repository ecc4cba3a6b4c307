"""Report sections on what to do and what the data says: this month's campaign lists, the
brief's hypotheses, and the cohorts (retention and lifetime value)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from insiders.dashboards.htmlkit import Figures, esc
from insiders.dashboards.htmlkit import section as _section
from insiders.dashboards.htmlkit import table as _table


def cohorts(cohorts: pd.DataFrame | None, fig: Figures,
             value: pd.DataFrame | None = None) -> str:
    if cohorts is None or cohorts.empty:
        return ""
    months = [c for c in cohorts.columns if c != "customers"]
    z = cohorts[months].to_numpy(dtype=float) * 100
    labels = [f"{idx} ({int(n):,})" for idx, n in zip(cohorts.index, cohorts["customers"],
                                                     strict=True)]
    f = go.Figure(go.Heatmap(z=z, x=[str(m) for m in months], y=labels, colorscale="Blues",
                             zmin=0, zmax=60, text=[[f"{v:.0f}%" if v == v else "" for v in row]
                                                    for row in z],
                             texttemplate="%{text}", colorbar={"title": "% active"}))
    f.update_layout(title="Retention: % of each first-purchase month buying again",
                    xaxis_title="months since first purchase", yaxis={"autorange": "reversed"})
    body = fig(f, 60 + 26 * len(labels))
    note = ""
    if value is not None and len(value):
        wide = value.pivot(index="cohort", columns="months_since_first",
                           values="value_per_customer").sort_index()
        partial = value.pivot(index="cohort", columns="months_since_first",
                              values="partial").reindex_like(wide).fillna(False)
        text = [[("" if v != v else f"{v:,.0f}" + ("*" if p else "")) for v, p in
                 zip(row, prow, strict=True)] for row, prow in
                zip(wide.to_numpy(dtype=float), partial.to_numpy(dtype=bool), strict=True)]
        g = go.Figure(go.Heatmap(z=wide.to_numpy(dtype=float),
                                 x=[str(c) for c in wide.columns], y=list(wide.index),
                                 colorscale="Greens", text=text, texttemplate="%{text}",
                                 colorbar={"title": "per customer"}))
        g.update_layout(title="Lifetime value: cumulative net revenue per customer",
                        xaxis_title="months since first purchase",
                        yaxis={"autorange": "reversed", "type": "category"})
        body += fig(g, 60 + 26 * len(wide))
        if partial.to_numpy().any():
            note = (" * the last month is not over yet (data up to the as-of date): read "
                    "its cells as partial, not as customers leaving.")
    return (f"<section id='cohorts'><h2>Cohorts: retention and lifetime value</h2>"
            f"<p class='muted'>Each row is the customers whose first purchase fell in that "
            f"month (size in brackets).{esc(note)}</p>{body}</section>")


def campaigns(a: dict, lists: pd.DataFrame | None) -> str:
    c = a.get("campaigns")
    if not c:
        return ""
    names = {"welcome": "Welcome", "at_risk": "At risk", "win_back": "Win back",
             "next_in_line": "Next in line"}
    rows = []
    for key, label_ in names.items():
        part = lists[lists["list"] == key] if lists is not None else pd.DataFrame()
        top = ", ".join(part["customer_id"].astype(str).head(5)) if len(part) else "-"
        rows.append({"List": label_, "Customers": f"{c['counts'].get(key, 0):,}",
                     "Most valuable first": top})
    body = (_table(pd.DataFrame(rows), left=("List", "Most valuable first"))
            + "<p class='muted'>Every name, with the reason and the figures, is in "
              "campaigns.csv.</p>")
    return _section("", "campaigns", "Who to contact this month", c["text"], body)


def _after_statement(h: dict) -> str:
    """The figures and the test, without repeating the verdict and the statement."""
    text = str(h.get("text", ""))
    head = f"{'True' if h['verdict'] else 'False'}: {h['statement']}"
    return text[len(head):].strip() if text.startswith(head) else text


def hypotheses(a: dict) -> str:
    items = a.get("hypotheses") or []
    if not items:
        return ""
    cards = "".join(
        f"<div class='hyp {'yes' if h['verdict'] else 'no'}'><b>"
        f"{'True' if h['verdict'] else 'False'}: {esc(h['statement'])}</b>"
        f"<p>{esc(_after_statement(h))}</p></div>" for h in items)
    true = sum(bool(h["verdict"]) for h in items)
    answer = (f"{len(items)} beliefs about our customers, tested on the data: {true} "
              f"{'holds' if true == 1 else 'hold'}, {len(items) - true} "
              f"{'does' if len(items) - true == 1 else 'do'} not.")
    return _section("", "hypotheses", "Three things the data says", answer, cards)
