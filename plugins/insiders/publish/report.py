"""The report for marketing: one self-contained HTML file, in the order of the nine questions.

Works offline (plotly.js is inlined once, see `insiders.dashboards.htmlkit`), escapes
every value that comes from the data (customer ids, personas, descriptions) and says
plainly when a question does not apply or a check came out badly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from insiders.dashboards.htmlkit import (
    BASE_CSS,
    Figures,
    esc,
    label,
    log_ticks,
    month_labels,
    section,
    table,
)

from .. import wording
from . import forecast_view, insights, proof_view

PALETTE = ["#2f5d8a", "#e07b39", "#4f9d69", "#c44e52", "#8172b3", "#937860", "#da8bc3",
           "#8c8c8c", "#ccb974", "#64b5cd"]
INSIDER = "#c9a227"
REST = "#9aa5b1"
FONT = "Inter, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"

CSS = BASE_CSS + """
body{margin:0;font-family:FONT_FAMILY;color:#1f2933;background:#f4f6f8;
line-height:1.5}header{background:linear-gradient(120deg,#1d3557,#2f5d8a);color:#fff;
padding:36px 0 28px}main,.wrap{max-width:1180px;margin:0 auto;padding:0 28px}
h1{margin:0 0 6px;font-size:30px;letter-spacing:-.5px}header p{margin:0;opacity:.85}
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:14px;margin-top:22px}
.kpi{background:rgba(255,255,255,.12);border-radius:10px;padding:14px 16px}
.kpi b{display:block;font-size:26px}.kpi span{font-size:13px;opacity:.85}
section{background:#fff;border-radius:12px;margin:22px 0;padding:22px 26px;
box-shadow:0 1px 3px rgba(15,23,42,.08)}section h2{margin:0 0 4px;font-size:21px}
section h2 .n{display:inline-block;width:30px;height:30px;border-radius:50%;background:#1d3557;
color:#fff;text-align:center;font-size:15px;line-height:30px;margin-right:10px}
.answer{font-size:16px;margin:10px 0 14px;padding:12px 16px;background:#f0f5fa;
border-left:4px solid #2f5d8a;border-radius:4px}.muted{color:#616e7c;font-size:13px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:18px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:6px 8px;
border-bottom:1px solid #e4e7eb;text-align:right}th{background:#f5f7fa;font-weight:600}
td:first-child,th:first-child{text-align:left}td.l,th.l{text-align:left}td.nw{white-space:nowrap}
td:not(.l):not(:first-child){white-space:nowrap}
.hyp{border-left:4px solid #9aa5b1;padding:8px 14px;margin:10px 0;background:#f8fafc}
.hyp.yes{border-color:#4f9d69}.hyp.no{border-color:#c44e52}.hyp p{margin:4px 0 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}
.card{border:1px solid #e4e7eb;border-radius:10px;padding:14px 16px}
.card h3{margin:0 0 6px;font-size:16px}.tag{display:inline-block;padding:1px 8px;
border-radius:10px;font-size:12px;color:#fff;margin-left:6px}
.warn{background:#fff4e5;border-left-color:#e07b39}.ok{background:#eaf6ee;
border-left-color:#4f9d69}.bad{background:#fdecec;border-left-color:#c44e52}
details.analysts{margin:14px 0 0;padding:8px 14px;background:#f8fafc;border-radius:6px;
font-size:13px;color:#3e4c59}details.analysts summary{cursor:pointer;font-weight:600}
ul.rules li{margin:4px 0}footer{color:#616e7c;font-size:12px;
padding:10px 0 40px}nav{font-size:13px;margin-top:12px}nav a{color:#cfe0f1;
margin-right:12px;text-decoration:none}
""".replace("FONT_FAMILY", FONT)


def _money(x) -> str:
    """An amount in a table cell (the column header names the currency)."""
    return "n/a" if x is None or pd.isna(x) else wording.whole(x)


def _pct(x, digits: int | None = None) -> str:
    return wording.share(x, digits)


def _cur(a: dict) -> str:
    """' (GBP)' for a column header or an axis title; '' when the currency is unknown."""
    return f" ({a['currency']})" if a.get("currency") else ""


class _Figures:
    """Render plotly figures with the report's look; only the first one carries plotly.js."""

    def __init__(self) -> None:
        self.figures = Figures(prefix="report-fig")

    def __call__(self, fig: go.Figure, height: int = 360) -> str:
        # the report's defaults; a chart's own margin or legend placement wins
        own_margin = {k: v for k, v in fig.layout.margin.to_plotly_json().items()
                      if v is not None}
        legend = {"orientation": "h", "y": -0.18, **fig.layout.legend.to_plotly_json()}
        fig.update_layout(height=height,
                          margin={"l": 50, "r": 20, "t": 40, "b": 40, **own_margin},
                          font={"family": FONT, "size": 12}, paper_bgcolor="white",
                          plot_bgcolor="white", legend=legend)
        fig.update_xaxes(gridcolor="#eef1f4")
        fig.update_yaxes(gridcolor="#eef1f4")
        return self.figures.html(fig, height=f"{height}px")


def render(answers: dict, customers: pd.DataFrame, cohorts: pd.DataFrame | None = None,
           membership_history: pd.DataFrame | None = None, title: str = "Insiders program",
           cohort_value: pd.DataFrame | None = None, campaigns: pd.DataFrame | None = None,
           ) -> str:
    """The whole report as one HTML string."""
    fig = _Figures()
    personas = [s["persona"] for s in answers["marketing_actions"]["segments"]]
    colors = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(personas)}
    parts = [
        _who(answers, customers),
        _how_many(answers, customers, fig),
        _characteristics(answers, colors, fig),
        _revenue_share(answers, fig),
        forecast_view.section_for(answers, fig, (PALETTE[0], INSIDER, REST)),
        _entry(answers),
        _exit(answers, membership_history, fig),
        proof_view.section_for(answers, fig, (PALETTE[0], INSIDER, REST)),
        _actions(answers, colors),
        insights.campaigns(answers, campaigns),
        insights.hypotheses(answers),
        insights.satisfaction(answers, fig, PALETTE[2], PALETTE[3]),
        insights.cohorts(cohorts, fig, cohort_value, answers["as_of"],
                         answers.get("currency", ""),
                         answers.get("period", {}).get("first_line")),
        _stability(answers, fig),
        _quality(answers, fig),
        _model(answers, fig),
    ]
    hm = answers["how_many"]
    er = answers["expected_revenue"]
    kpis = [
        (f"{hm['count']:,}", "Insiders"),
        (_pct(hm["share_of_customers"]), "of active customers"),
        (_pct(answers["revenue_share"]["value"]), "of net revenue"),
        (wording.money(er["total"], answers.get("currency", "")),
         f"expected in the next {len(er['months'])} months"),
    ]
    kpi_html = "".join(f"<div class='kpi'><b>{esc(v)}</b><span>{esc(t)}</span></div>"
                       for v, t in kpis)
    nav = "".join(f"<a href='#{a}'>{esc(t)}</a>" for a, t in [
        ("who", "Who"), ("how_many", "How many"), ("characteristics", "Profile"),
        ("revenue_share", "Revenue"), ("expected_revenue", "Forecast"), ("entry", "Entry"),
        ("exit", "Exit"), ("guarantee", "Proof"), ("actions", "Actions"),
        ("campaigns", "This month"), ("hypotheses", "Insights"), ("cohorts", "Cohorts"),
        ("quality", "Data quality"), ("model", "Model")]
        + ([("stability", "Refresh")] if (answers.get("stability") or {}).get("ari_by_month")
           else [])
        + ([("satisfaction", "Satisfaction")] if answers.get("satisfaction") else []))
    period = answers.get("period", {})
    through = answers.get("data_through") or period.get("data_through") or answers["as_of"]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{esc(title)} - {esc(answers['as_of'])}</title><style>{CSS}</style></head><body>"
        f"<header><div class='wrap'><h1>{esc(title)}</h1>"
        f"<p>Who our best customers are, why, and what they will spend. As of "
        f"{esc(answers['as_of'])}, data through {esc(through)} (analysed period "
        f"{esc(period.get('start'))} to {esc(through)}"
        + (f"; lines only from {esc(period['data_from'])}" if period.get("data_from") else "")
        + f").</p><div class='kpis'>{kpi_html}</div>"
        f"<nav>{nav}</nav>"
        f"</div></header><main>{''.join(p for p in parts if p)}</main>"
        "<footer class='wrap'>Generated by Insiders. "
        # a source without returns (Olist sets cancelled orders aside) nets nothing
        + ("Figures count purchases only: this source records no returns"
           if "characteristics.return_rate" in (answers.get("not_applicable") or {})
           else "Figures are net of returns and cancellations")
        + f"; money in {esc(answers.get('currency') or 'the currency of the data')}."
        "</footer></body></html>"
    )


def write(path: Path | str, answers: dict, customers: pd.DataFrame,
          cohorts: pd.DataFrame | None = None, membership_history: pd.DataFrame | None = None,
          title: str = "Insiders program", cohort_value: pd.DataFrame | None = None,
          campaigns: pd.DataFrame | None = None) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(answers, customers, cohorts, membership_history, title,
                          cohort_value, campaigns), encoding="utf-8")
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- sections


def _who(a: dict, customers: pd.DataFrame) -> str:
    members = customers[customers["is_insider"]].sort_values("value_rank").head(20)
    cur, region = _cur(a), a.get("region_label", "Country")
    frame = pd.DataFrame({
        "Rank": members["value_rank"].astype(int),
        "Customer": members["customer_id"].astype(str),
        "Persona": members["persona"],
        region: members["country"],
        f"Net spend{cur}": members["monetary"].map(_money),
        "Purchases": members["frequency"].astype(int),
        # whole days, halves away from zero as the dashboard's Metabase column shows them
        "Last purchase (days)": members["recency_days"].map(wording.nearest),
        f"Expected next 3 months{cur}": members["expected_value"].map(_money),
        f"Predicted 12 months{cur}": members["predicted_clv_12m"].map(_money),
        "Churn risk": [f"{band} ({_risk(risk)})" for band, risk in
                       zip(members["churn_band"], members["churn_risk"].astype(float),
                           strict=True)],
        "Next order by": members["expected_next_order"].map(
            lambda d: "-" if pd.isna(d) else str(pd.Timestamp(d).date())),
    })
    value = a.get("customer_value", {})
    body = (table(frame, left=("Customer", "Persona", region, "Churn risk"),
                  whole=(region, "Churn risk"))
            + f"<p class='muted'>The top {len(members):,} of "
              f"{int(customers['is_insider'].sum()):,}. The complete list, with the figures that "
              "justify each membership, is in insiders.csv. "
            + esc(value.get("text", "")) + " Churn risk is the chance of no purchase in the "
              "next 90 days; 'next order by' the date by which the next order has an even "
              "chance.</p>")
    return section(1, "who", "Who are the Insiders?", a["who"]["text"], body,
                   details=a["who"].get("analysts", ""))


def _how_many(a: dict, customers: pd.DataFrame, fig: _Figures) -> str:
    active = customers[customers["has_purchase"]].sort_values("value_rank")
    ev = active["expected_value"].clip(lower=0).to_numpy()
    total = ev.sum() or 1.0
    share_c = (pd.RangeIndex(1, len(ev) + 1) / max(len(ev), 1)).to_numpy()
    cum = ev.cumsum() / total
    n = a["how_many"]["count"]
    f = go.Figure()
    f.add_trace(go.Scatter(x=share_c * 100, y=cum * 100, mode="lines", name="expected revenue",
                           line={"color": PALETTE[0], "width": 3}))
    f.add_vline(x=100 * n / max(len(ev), 1), line={"color": INSIDER, "dash": "dash"},
                annotation_text=f"Insiders: top {n:,}", annotation_position="bottom right")
    shares = a.get("revenue_share", {})
    past, next_ = shares.get("value"), shares.get("expected_share_next")
    note = ""
    if past is not None and next_ is not None:
        # the size rule counts the period's revenue, the line the next months' expected
        # revenue: say which figure is which, or the 50% of the rule reads against the line
        f.add_trace(go.Scatter(
            x=[100 * n / max(len(ev), 1)], y=[100 * next_], mode="markers",
            name="the Insiders", marker={"color": INSIDER, "size": 10},
            hovertemplate=f"the {n:,} Insiders: %{{y:.1f}}% of expected revenue"
                          "<extra></extra>"))
        note = (f"<p class='muted'>Customers are ranked best first, as the group is chosen. "
                f"{_size_words(n, past, customers)} The chart's line is what customers "
                f"are expected to spend next: of that, the Insiders bring {_pct(next_)} "
                "(the gold point on the line).</p>")
    f.update_layout(title="Share of next months' expected revenue by top share of customers",
                    xaxis_title="% of active customers (best first)",
                    yaxis_title="% of expected revenue", showlegend=False)
    body = fig(f, 340) + note
    return section(2, "how_many", "How many customers are in the group?",
                    a["how_many"]["text"], body)


def _risk(p: float) -> str:
    """A chance to the percent that never claims certainty the model does not have:
    0.2% reads '<1%', 99.7% '>99%' (a column of 'Low (0%)' reads as 'will surely buy')."""
    if 0 < p < 0.005:
        return "<1%"
    if 0.995 <= p < 1:
        return ">99%"
    return f"{p:,.0%}"


def _size_words(n: int, past: float, customers: pd.DataFrame) -> str:
    """The size is weighed on the top past spenders; the members are ranked on value and
    pass over the probably gone, so they may bring less than those spenders: say so, or the
    rule's '50% of revenue' reads against the members' 44%."""
    said = (f"The size is counted on the period's revenue: the {n:,} Insiders brought "
            f"{_pct(past)} of it.")
    total = float(customers["monetary"].sum())
    if not n or total <= 0:
        return said
    top = float(customers["monetary"].nlargest(n).sum()) / total
    if round(top, 3) <= round(past, 3):
        return said
    return (f"The size is counted on the period's revenue: the top {n:,} spenders brought "
            f"{_pct(top)} of it; the {n:,} Insiders, ranked on what they are expected to "
            "spend next and without customers who have probably stopped buying, brought "
            f"{_pct(past)}.")


def _characteristics(a: dict, colors: dict, fig: _Figures) -> str:
    c = a["characteristics"]["insiders_vs_rest"]
    keys = [k for k in ("monetary", "frequency", "avg_ticket", "basket_size", "recency_days")
            if k in c and c[k]["insiders_median"] is not None]
    ratios = [(c[k]["label"], c[k]["ratio"]) for k in keys if c[k]["ratio"]]
    values = [r for _, r in ratios]
    # bars grow from 1 (= the same as the rest): right for more, left for less, on a log
    # axis whose ticks read 0.3, 1, 3, 10, 30, 100, 1k (no minor labels)
    ticks, tick_text = log_ticks(values)
    f1 = go.Figure(go.Bar(
        y=[label(name, 28) for name, _ in ratios], x=[r - 1 for r in values], base=1,
        orientation="h", marker_color=[INSIDER if r >= 1 else REST for r in values],
        text=[_times(r) for r in values], textposition="outside", cliponaxis=False,
        customdata=values, hovertemplate="%{y}: %{customdata:.2f} times<extra></extra>"))
    f1.add_vline(x=1, line={"color": "#616e7c", "dash": "dot"})
    span = [np.log10(min(values + [1.0]) / 2.5), np.log10(max(values + [1.0]) * 4)]
    f1.update_layout(title="Insiders compared with the rest (ratio of averages)",
                     xaxis={"type": "log", "title": "times the rest's average (1 = the same)",
                            "tickvals": ticks, "ticktext": tick_text, "range": span,
                            "minor": {"showgrid": False, "ticks": ""}},
                     yaxis={"autorange": "reversed"}, margin={"l": 190})
    segs = a["marketing_actions"]["segments"]
    f2 = go.Figure()
    names = [s["persona"] for s in segs]
    ticks = [label(n, 12 if len(names) > 5 else 14) for n in names]
    f2.add_trace(go.Bar(x=ticks, y=[100 * s["share"] for s in segs], name="% of customers",
                        marker_color=[colors[p] for p in names], opacity=0.55))
    f2.add_trace(go.Bar(x=ticks, y=[100 * s["revenue_share"] for s in segs],
                        name="% of net revenue", marker_color=[colors[p] for p in names]))
    # the legend sits above the plot: wrapped persona names below it would run into it
    f2.update_layout(barmode="group", title="Segments: size and value (%)",
                     legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
                     margin={"t": 80})
    prof = pd.DataFrame([{
        "Persona": s["persona"], "Customers": f"{s['customers']:,}",
        "Share": _pct(s["share"]), "Revenue share": _pct(s["revenue_share"]),
        "Insiders": f"{s['insiders']:,}", "Who they are": s["description"]} for s in segs])
    body = (f"<div class='grid2'><div>{fig(f1, 360)}</div><div>{fig(f2, 360)}</div></div>"
            + "<h3>Segment profiles</h3>" + table(prof, left=("Persona", "Who they are")))
    return section(3, "characteristics", "What are they like?", a["characteristics"]["text"],
                   body)


def _times(r: float) -> str:
    """A ratio on a bar: '57x', '2.3x' (never 'x57.0146')."""
    return f"{r:,.0f}x" if r >= 10 else f"{r:.1f}x"


def _revenue_share(a: dict, fig: _Figures) -> str:
    r = a["revenue_share"]
    f = go.Figure(go.Pie(labels=["Insiders", "Everyone else"],
                         values=[max(r["insiders_revenue"], 0),
                                 max(r["total_revenue"] - r["insiders_revenue"], 0)],
                         hole=0.55, marker={"colors": [INSIDER, REST]}, sort=False))
    f.update_layout(title="Net revenue in the period")
    hm = a["how_many"]
    body = (f"<div class='grid2'><div>{fig(f, 320)}</div><div><p>The Insiders are "
            f"<b>{_pct(hm['share_of_customers'])}</b> of active customers and bring "
            f"<b>{_pct(r['value'])}</b> of net revenue. They are expected to bring "
            f"<b>{_pct(r['expected_share_next'])}</b> of the next months' revenue of today's "
            "customers.</p></div></div>")
    return section(4, "revenue_share", "What share of revenue do they bring?", r["text"], body)


def _entry(a: dict) -> str:
    e = a["entry_conditions"]
    rules = "".join(f"<li>{esc(r)}</li>" for r in e["rules"])
    body = (f"<p>In everyday terms (a decision tree that reproduces the membership):</p>"
            f"<ul class='rules'>{rules or '<li>no simple rule found</li>'}</ul>"
            f"<p class='muted'>These rules match the real membership for "
            f"{_pct(e['agreement'])} of active customers; the membership itself follows "
            "the line above.</p>")
    method = e.get("value_method_label") or e["value_method"].replace("_", " ")
    details = (e.get("analysts", "") + " The ranking uses " + method + ". "
               + a["model"]["value_method_why"])
    return section(6, "entry", "What does it take to join?", e["text"], body,
                   details=details.strip())


def _exit(a: dict, history: pd.DataFrame | None, fig: _Figures) -> str:
    x = a["exit_conditions"]
    body = ""
    if history is not None and not history.empty:
        # one category per monthly run (a month axis, not days): the bars and the line's
        # points share the category centres. Members and flows share one scale from 0 (no
        # second axis), so 53 -> 55 -> 53 reads as the small change it is
        months = month_labels(history["run_id"])
        f = go.Figure()
        f.add_trace(go.Bar(x=months, y=history["entered"], name="entered",
                           marker_color=PALETTE[2], text=[f"+{int(v):,}" for v in
                                                          history["entered"]],
                           textposition="inside", insidetextanchor="start"))
        f.add_trace(go.Bar(x=months, y=-history["left"], name="left",
                           marker_color=PALETTE[3], text=[f"-{int(v):,}" if v else "" for v in
                                                          history["left"]],
                           textposition="inside", insidetextanchor="start"))
        f.add_trace(go.Scatter(x=months, y=history["members"], name="members",
                               mode="lines+markers+text", line={"color": INSIDER, "width": 3},
                               text=[f"{int(v):,}" for v in history["members"]],
                               textposition="top center"))
        top = float(max(history["members"].max(), history["entered"].max(), 1)) * 1.2
        bottom = -float(max(history["left"].max(), 0)) * 1.3
        f.update_layout(barmode="relative",
                        title="Membership flows per month (members and flows on one scale)",
                        xaxis={"type": "category", "title": "monthly run"},
                        yaxis={"title": "customers",
                               "range": [bottom, top], "zeroline": True})
        body += fig(f, 340)
    # the month's flows in words as well: the chart alone left "how many left this month?"
    # to reading bar heights
    m = x["membership"]
    note = ("This run had no earlier membership to compare with: everyone in the group "
            "entered now. Monthly runs (the Airflow DAG) track who entered, stayed and left."
            if not x["previous_members"] else
            f"Against the previous run: {m['entered']:,} entered, {m['stayed']:,} stayed, "
            f"{m['left']:,} left.")
    body += f"<p>{esc(note)}</p>"
    return section(7, "exit", "When does a member leave?", x["text"], body)


def _actions(a: dict, colors: dict) -> str:
    m = a["marketing_actions"]
    cards = []
    for s in m["segments"]:
        color = colors.get(s["persona"], PALETTE[0])
        cards.append(
            f"<div class='card' style='border-top:4px solid {color}'><h3>{esc(s['persona'])}"
            f"<span class='tag' style='background:{color}'>{_pct(s['share'])}</span></h3>"
            f"<p class='muted'>{esc(s['description'])}</p><p><b>Action:</b> "
            f"{esc(s['action'])}</p></div>")
    body = (f"<div class='cards'>{''.join(cards)}</div><p><b>For the Insiders:</b> "
            f"{esc(m['insiders_action'])}</p>")
    return section(9, "actions", "What should marketing do?", m["text"], body)


def _stability(a: dict, fig: _Figures) -> str:
    s = a.get("stability")
    if not s or not s.get("ari_by_month"):
        return ""
    f = go.Figure()
    f.add_trace(go.Scatter(x=[p["months_since_fit"] for p in s["ari_by_month"]],
                           y=[p["ari"] for p in s["ari_by_month"]], mode="lines+markers",
                           name="ARI", line={"color": PALETTE[0], "width": 3}))
    f.add_hline(y=s["threshold"], line={"color": PALETTE[3], "dash": "dash"},
                annotation_text=f"threshold {s['threshold']}")
    f.update_layout(title="Segment stability: initial model vs re-fitted model",
                    xaxis_title="months since the fit", yaxis_title="adjusted Rand index",
                    yaxis_range=[0, 1.05])
    months = s.get("recommended_refresh_months")
    plain = (f"Refresh the segments every {'month' if months == 1 else f'{months} months'}: "
             "after that, a model fitted afresh sorts the customers noticeably differently."
             if months else "The segments stay stable over the months measured.")
    return section("", "stability", "How often to refresh the segmentation", plain,
                   fig(f, 320), details=s["text"] + " The adjusted Rand index (ARI) measures "
                   "how alike two segmentations of the same customers are (1 = the same).")


def _reason_row(code: str, description: str | None) -> str:
    """The table's row opens with the chart's label for the reason, then says what it means,
    so a reader matches each bar to its row."""
    short = wording.reason(code)
    if not description:
        return short
    if description.startswith(short):  # 'no customer id: the line ...': one way for all rows
        rest = description[len(short):].lstrip(" :;,—-")
        return f"{short} — {rest}" if rest else short
    return f"{short} — {description}"


def _quality(a: dict, fig: _Figures) -> str:
    q = a["data_quality"]
    reasons = q["set_aside"]
    f = go.Figure(go.Bar(x=list(reasons.values()),
                         y=[label(wording.reason(k), 24) for k in reasons],
                         orientation="h", marker_color=PALETTE[1],
                         text=[f"{v:,}" for v in reasons.values()], textposition="auto"))
    f.update_layout(title="Rows set aside, by reason", yaxis={"autorange": "reversed"})
    rows = [{"": "rows read", "rows": f"{q['rows_in']:,}"},
            {"": "rows kept", "rows": f"{q['rows_kept']:,}"}]
    rows += [{"": f"set aside: {_reason_row(k, q['reasons'].get(k))}", "rows": f"{v:,}"}
             for k, v in reasons.items()]
    notes = "".join(f"<li>{esc(n)}</li>" for n in q.get("notes", []))
    total_aside = sum(reasons.values())
    text = (f"{q['rows_in']:,} rows read: {q['rows_kept']:,} kept and {total_aside:,} set aside "
            f"with a reason ({q.get('set_aside_where', 'see quarantine.csv.gz')}); nothing "
            "was dropped silently. "
            + q.get("policy", "Returns and cancellations are kept and netted."))
    body = (f"<div class='grid2'><div>{fig(f, 60 + 34 * max(len(reasons), 2))}</div><div>"
            f"{table(pd.DataFrame(rows))}<ul class='muted'>{notes}</ul></div></div>")
    if q.get("tables"):  # sources made of several tables (Olist): their own accounting
        per = pd.DataFrame([{"Table": t, "Rows in": f"{v['rows_in']:,}",
                             "Kept": f"{v['rows_kept']:,}",
                             "Set aside": ", ".join(f"{wording.reason(k)} {n:,}" for k, n in
                                                    v["set_aside"].items()) or "-"}
                            for t, v in q["tables"].items()])
        body += "<h3>Per source table</h3>" + table(per, left=("Table", "Set aside"))
    return (f"<section id='quality'><h2>Data quality</h2><div class='answer'>{esc(text)}</div>"
            f"{body}</section>")


def _model(a: dict, fig: _Figures) -> str:
    from ..models.segmentation import algorithm_name

    m = a["model"]
    cands = pd.DataFrame(m["candidates"])
    f = go.Figure()
    for i, (algo, group) in enumerate(cands.groupby("algorithm", sort=False)):
        f.add_trace(go.Scatter(x=group["k"], y=group["silhouette"], mode="lines+markers",
                               name=algorithm_name(algo), line={"color": PALETTE[i]}))
    chosen = cands[cands["chosen"]]
    f.add_trace(go.Scatter(x=chosen["k"], y=chosen["silhouette"], mode="markers",
                           name="chosen", marker={"size": 16, "symbol": "star",
                                                  "color": INSIDER}))
    f.update_layout(title="Clustering candidates: silhouette by number of segments",
                    xaxis_title="segments (k)", yaxis_title="silhouette (higher is better)")
    cand_table = cands.rename(columns={"algorithm": "Algorithm", "k": "k",
                                  "silhouette": "Silhouette", "davies_bouldin": "Davies-Bouldin",
                                  "calinski_harabasz": "Calinski-Harabasz",
                                  "min_segment_share": "Smallest segment", "useful": "Useful",
                                  "chosen": "Chosen", "note": "Note"})
    cand_table["Algorithm"] = cand_table["Algorithm"].map(algorithm_name)
    cand_table["Smallest segment"] = cand_table["Smallest segment"].map(lambda v: f"{v:,.1%}")
    cand_table["Useful"] = cand_table["Useful"].map({True: "yes", False: "no"})
    cand_table["Chosen"] = cand_table["Chosen"].map({True: "yes", False: ""})
    vm = m["value_model"]
    body = (f"<div class='grid2'><div>{fig(f, 340)}</div><div>"
            f"<p class='muted'>Features: {esc(', '.join(m['features']))} (log-transformed, "
            f"standardised).</p>"
            + (f"<p class='muted'>Value model: {esc(vm['note'])}</p>" if vm.get("note") else "")
            + "</div></div>"
            + table(cand_table, left=("Algorithm", "Note")))
    chosen_ = m["chosen"]
    plain = (f"The customers are split into {chosen_['k']} segments "
             f"({algorithm_name(chosen_['algorithm'])}): of the {len(cands)} ways tried, the "
             + ("one that separates them best among those marketing can use (no tiny segments, "
                "distinct profiles)." if cands["useful"].any() else
                "one that separates them best. None meets every rule for segments marketing can "
                "use (no tiny segments, distinct profiles): the notes under 'For analysts' say "
                "what this one misses."))
    return section("", "model", "Model comparison", plain, "", details=m["why"],
                   details_body=body)
