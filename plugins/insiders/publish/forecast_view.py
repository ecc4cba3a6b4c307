"""Report question 5, "what will they spend": the forecast chart, the backtest and the months.

Why its own module: the chart has to decide what "actual" to draw next to the forecast. A
group chosen for its past spend has, by construction, a strong past; where customers seldom
buy twice (a marketplace), that past says nothing about its next months, and drawing it beside
the forecast reads as a collapse. The backtest measures this on the data itself (what earlier
groups spent after being chosen against their spend before), so the chart follows the
measurement, never the source's name.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from insiders.dashboards.htmlkit import Figures, esc, month_labels, section, table

from .. import wording
from ..models import group_forecast as gf

# groups spent less than a third of their earlier monthly spend after being chosen: their
# past is not a yardstick for their next months
SELECTION_SHRINK = 1 / 3


def _money(x) -> str:
    return "n/a" if x is None or pd.isna(x) else wording.whole(x)


def _cur(a: dict) -> str:
    return f" ({a['currency']})" if a.get("currency") else ""


def after_selection_ratio(backtest: dict) -> float | None:
    """What earlier groups spent per month after being chosen, over what they spent per month
    in the 3 months before (the mean-of-3-months rule): ~1 for steady buyers, far below 1 where
    a group's past spend is what got it chosen. None without a backtest."""
    if not backtest.get("available") or not backtest.get("origins"):
        return None
    rows = pd.DataFrame(backtest["origins"])
    if "naive_mean_3m" not in rows or rows["naive_mean_3m"].sum() <= 0:
        return None
    return float(rows["actual"].sum() / rows["naive_mean_3m"].sum())


def _after_selection(backtest: dict) -> pd.DataFrame:
    """Per month, what the freshest earlier group spent in it (one row per month)."""
    rows = pd.DataFrame(backtest["origins"])
    # month keys follow each origin's day (2018-02-28, 2018-03-30): one point per calendar month
    rows["period"] = [pd.Period(str(m), freq="M") for m in rows["month"]]
    rows = rows.sort_values(["period", "origin"])
    return rows.groupby("period", sort=True).tail(1)[["month", "origin", "actual"]]


def section_for(a: dict, fig: Figures, colors: tuple[str, str, str]) -> str:
    """The forecast section. `colors`: (actual, Insiders/forecast, simple rule)."""
    actual_c, insider_c, rest_c = colors
    e = a["expected_revenue"]
    back = e.get("backtest") or {}
    cur = _cur(a)
    ratio = after_selection_ratio(back)
    past_misleads = ratio is not None and ratio < SELECTION_SHRINK
    f = go.Figure()
    hist = e.get("history") or []
    note = ""
    if past_misleads:
        after = _after_selection(back)
        f.add_trace(go.Scatter(x=list(after["month"]), y=list(after["actual"]),
                               mode="lines+markers", line={"color": actual_c},
                               name="actual: earlier groups, in the months after being chosen"))
        last = hist[-1] if hist else None
        note = ("<p class='muted'>Today's Insiders' own past is left out of this chart: they "
                "were chosen for it"
                + (f" ({_money(last['revenue'])}{cur and ' ' + a['currency']} in "
                   f"{month_labels([last['month']])[0]})" if last else "")
                + f". Groups chosen the same way earlier spent {wording.share(ratio, 1)} of "
                "their earlier monthly spend in the months after, so the line shows what "
                "those groups really spent after being chosen, the figure a forecast of the "
                "Insiders can be held to.</p>")
    elif hist:
        f.add_trace(go.Scatter(x=[h["month"] for h in hist], y=[h["revenue"] for h in hist],
                               mode="lines+markers", name="actual", line={"color": actual_c}))
    months = e["months"]
    xs = [m["month"] for m in months]
    if all(m.get("lower") is not None for m in months):
        f.add_trace(go.Scatter(x=xs + xs[::-1], y=[m["upper"] for m in months]
                               + [m["lower"] for m in months][::-1], fill="toself",
                               fillcolor="rgba(201,162,39,.25)", line={"width": 0},
                               mode="lines", name="80% interval", hoverinfo="skip"))
    f.add_trace(go.Scatter(x=xs, y=[m["revenue"] for m in months], mode="lines+markers",
                           name=f"forecast: {e['method']}",
                           line={"color": insider_c, "dash": "dash", "width": 3}))
    f.update_layout(title="Insiders' net revenue per month: actual and forecast",
                    yaxis={"title": f"net revenue{cur}", "rangemode": "tozero"})
    body = fig(f, 360) + note
    if back.get("available"):
        body += _backtest(a, back, fig, colors)
    else:
        body += f"<p class='muted'>{esc(back.get('text', 'No backtest.'))}</p>"
    months_table = pd.DataFrame([{"Month starting": m["month"],
                                  f"Expected{cur}": _money(m["revenue"]),
                                  f"Low (10%){cur}": _money(m.get("lower")),
                                  f"High (90%){cur}": _money(m.get("upper"))} for m in months])
    body += table(months_table)
    return section(5, "expected_revenue", "What will they spend in the coming months?",
                   e["text"], body, details=e.get("analysts", ""))


def _backtest(a: dict, back: dict, fig: Figures, colors: tuple[str, str, str]) -> str:
    actual_c, insider_c, rest_c = colors
    rows = pd.DataFrame(back["origins"])
    totals = rows.groupby("origin", sort=True).sum(numeric_only=True)
    f2 = go.Figure()
    bx = month_labels(list(totals.index))
    f2.add_trace(go.Bar(x=bx, y=totals["actual"], name="what the group spent",
                        marker_color=actual_c))
    f2.add_trace(go.Bar(x=bx, y=totals["forecast"], name="our forecast", marker_color=insider_c))
    caption = ""
    if "naive_mean_3m" in totals:
        scale = float(max(totals["actual"].max(), totals["forecast"].max()))
        naive_top = float(totals["naive_mean_3m"].max())
        if scale > 0 and naive_top > 5 * scale:
            # drawn, it would flatten the two bars that matter; the table keeps its error
            caption = (f"<p class='muted'>The simple rule (mean of the last 3 months) is left "
                       f"out of the chart: it was up to {naive_top / scale:,.0f} times what "
                       "the groups spent (its error is in the table).</p>")
        else:
            f2.add_trace(go.Bar(x=bx, y=totals["naive_mean_3m"],
                                name="simple rule (mean of the last 3 months)",
                                marker_color=rest_c))
    f2.update_layout(barmode="group", xaxis={"type": "category", "title": "forecast made on"},
                     yaxis={"title": f"next 3 months' net revenue{_cur(a)}",
                            "rangemode": "tozero"},
                     title="Checked at earlier months: forecast vs what happened")
    summ = back["summary"]
    names = [("forecast", "Our forecast"), ("naive_last_month", "Last month repeated"),
             ("naive_mean_3m", "Mean of the last 3 months"),
             ("naive_last_year", "Same months last year")]
    err = pd.DataFrame([
        {"Method": label, "Error on the 3-month total": wording.share(
            summ.get(f"total_mape_{k}"), 1),
         "Error per month": wording.share(summ.get(f"month_mape_{k}"), 1)}
        for k, label in names if summ.get(f"total_mape_{k}") is not None])
    cover = (gf.coverage_text(summ) if summ.get("months_with_interval") else
             "no interval yet (too few earlier errors)")
    return (f"<div class='grid2'><div>{fig(f2, 320)}{caption}</div><div><h3>Backtest errors"
            f"</h3>{table(err, left=('Method',))}<p class='muted'>{esc(cover)}.</p>"
            "</div></div>")
