"""Report question 8, "what proves they are better": the out-of-time check, and the tests of
today's Insiders against the rest.

Why its own module: the proof is where an analyst looks for a contradiction. Its table puts
a rank test (Mann-Whitney, on every customer) beside an interval of the difference in means;
the two can point different ways on the same figure (returns on the real file: significant,
yet the interval of the means holds 0), so the page says why under the table. The box's
colour is the out-of-time verdict (`answers.proof_verdict`), computed from the figures shown.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from insiders.dashboards.htmlkit import Figures, esc, section, table

from .. import wording
from ..models.significance import ALPHA, significant
from . import answers


def _pct(x, digits: int | None = None) -> str:
    return wording.share(x, digits)


def _cur(a: dict) -> str:
    return f" ({a['currency']})" if a.get("currency") else ""


def test_and_interval_notes(figures: dict) -> list[str]:
    """Why a row reads 'significant' beside an interval that holds 0, or the reverse: the
    test ranks every customer (it sees the typical customer), the interval is of the
    difference in means (a few large values move it). Without a note the two columns of
    one row read as a contradiction."""
    notes = []
    for k, v in figures.items():
        lo, hi = v.get("ci95") or (None, None)
        if lo is None or hi is None or v.get("p_value") is None:
            continue
        test_says = significant(v["p_value"], v.get("alpha", ALPHA))
        interval_says = not lo <= 0 <= hi
        if test_says == interval_says:
            continue

        def fmt(x, rate=k == "return_rate"):
            return _pct(x) if rate else wording.amount(x)

        medians = (f" (medians {fmt(v['insiders_median'])} against {fmt(v['rest_median'])})"
                   if v.get("insiders_median") is not None
                   and v.get("rest_median") is not None else "")
        if test_says:
            notes.append(f"{v['label'].capitalize()}: significant, yet the interval of the "
                         "difference in means holds 0. The test compares customers one by one "
                         f"and the typical Insider differs{medians}; the means are close, and "
                         "a few large values make their difference uncertain.")
        else:
            notes.append(f"{v['label'].capitalize()}: the interval of the difference in means "
                         "leaves out 0, yet the test finds no significant difference: a few "
                         f"customers' large values move the means, the typical ones differ "
                         f"little{medians}.")
    return notes


def section_for(a: dict, fig: Figures, colors: tuple[str, str, str]) -> str:
    """Question 8. The box's colour and its first words are the proof's verdict
    (`answers.proof`): green only when the out-of-time difference is significant at the
    stated level and goes the right way. Tables and box use the same rounding (wording)."""
    top_color, insider_color, rest_color = colors
    g = a["guarantee"]
    cur = a.get("currency", "")
    rows = []
    # a figure the source cannot have (Olist records no returns) is left out of the table,
    # with why: a row "0% | 0% | 0% [0%, 0%] | n/a | no" reads as a finding
    missing = [k for k in g.get("not_applicable") or [] if k in g["insiders_vs_rest"]]
    for k, v in g["insiders_vs_rest"].items():
        if k in missing:
            continue
        lo, hi = v["ci95"]
        rate = k == "return_rate"

        def fmt(x, rate=rate):
            return _pct(x) if rate else wording.amount(x)

        rows.append({"Figure": v["label"], "Insiders (mean)": fmt(v["insiders_mean"]),
                     "Rest (mean)": fmt(v["rest_mean"]),
                     "Difference [95% interval]": (f"{fmt(v['difference'])} [{fmt(lo)}, "
                                                   f"{fmt(hi)}]"
                                                   if v["difference"] is not None else "n/a"),
                     "p-value": wording.p_value(v["p_value"]),
                     "Significant": "yes" if significant(v["p_value"], v.get("alpha", ALPHA))
                     else "no"})
    stats = ("<h4>Today: Insiders against the rest (Mann-Whitney, two-sided, level "
             f"{ALPHA:,.0%}; money in {esc(cur or 'the data currency')})</h4>"
             + table(pd.DataFrame(rows), left=("Figure",))
             + "".join(f"<p class='muted'>{esc(n)}</p>"
                       for n in test_and_interval_notes(g["insiders_vs_rest"]))
             + "".join(f"<p class='muted'>{esc(g['insiders_vs_rest'][k]['label'].capitalize())}"
                       f" is not in the table: {esc(g.get('not_applicable_text', ''))}</p>"
                       for k in missing))
    o = g["out_of_time"]
    body = ""
    if o.get("available"):
        per = [o["insiders"]["revenue_per_customer"], o["top_spenders"]["revenue_per_customer"],
               o["rest"]["revenue_per_customer"]]
        f = go.Figure(go.Bar(
            x=["Insiders", f"Top {o['group_size']:,}<br>past spenders", "Rest"], y=per,
            marker_color=[insider_color, top_color, rest_color],
            text=[wording.money(v, cur) for v in per], textposition="outside",
            cliponaxis=False))
        f.update_layout(title=f"Spend per customer, {o['months']} months after {o['chosen_on']}",
                        yaxis={"title": f"net spend per customer{_cur(a)}",
                               "rangemode": "tozero"})
        share = pd.DataFrame([
            {"Group": "Insiders", **_oot_row(o["insiders"], cur)},
            {"Group": "Top past spenders", **_oot_row(o["top_spenders"], cur)},
            {"Group": "Rest", **_oot_row(o["rest"], cur)}])
        body += (f"<h3>Chosen {o['months']} months ago: what they spent afterwards</h3>"
                 f"<div class='grid2'><div>{fig(f, 340)}</div><div>"
                 f"{table(share, left=('Group',))}{_unranked_note(o, cur)}</div></div>")
    else:
        body += f"<p class='muted'>{esc(o.get('text'))}</p>"
    contest = g.get("value_contest", {})
    details_text = " ".join(t for t in (g.get("analysts", ""), contest.get("why", "")) if t)
    # the colour follows the figures shown (never a flag stored beside them)
    tone = answers.PROOF_TONES[answers.proof_verdict(o)]
    return section(8, "guarantee", "What proves they are better?", g["text"], body, tone,
                   details=details_text, details_body=stats)


def _unranked_note(o: dict, currency: str) -> str:
    """Why the Insiders' and the rest's shares do not add up to 100%."""
    u = o.get("not_ranked")
    if not u or not u.get("customers"):
        return ""
    ranked = o["insiders"]["customers"] + o["rest"]["customers"]
    return (f"<p class='muted'>Insiders and the rest are the {ranked:,} customers with a "
            f"purchase in the {o.get('lookback_months', 12)} months before {o['chosen_on']}, "
            "the ones the choice could rank. The other "
            f"{_pct(u['share_of_next_revenue'])} of the next months' revenue "
            f"({wording.money(u['revenue'], currency)}) came from "
            f"{wording.counted(u['customers'], 'customer')} without one: new, or back after "
            "a longer pause.</p>")


def _oot_row(x: dict, currency: str = "") -> dict:
    return {"Customers": f"{x['customers']:,}",
            "Spend per customer" + (f" ({currency})" if currency else ""):
            wording.amount(x["revenue_per_customer"]),
            "Share of next revenue": _pct(x["share_of_next_revenue"]),
            "Bought again": _pct(x["bought_again"])}
