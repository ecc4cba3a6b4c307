"""Report sections on what to do and what the data says: this month's campaign lists, the
brief's hypotheses, the cohorts (retention and lifetime value) and, for sources with
reviews, satisfaction."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go

from insiders.dashboards.htmlkit import Figures, esc
from insiders.dashboards.htmlkit import section as _section
from insiders.dashboards.htmlkit import table as _table

from .. import wording

_pct = wording.share

PARTIAL_GREY = [[0, "#d9dde2"], [1, "#d9dde2"]]
# light-to-medium scales: the cells' dark text stays readable on the strongest colour
BLUES = [[0, "#f7fbff"], [1, "#4a90c8"]]
GREENS = [[0, "#f7fcf5"], [1, "#52b060"]]


def partial_month(as_of: str | pd.Timestamp | None) -> tuple[str, int, int] | None:
    """(YYYY-MM, days covered, days in the month) of the as-of's month when the run's data
    window ends inside it (as of 2011-12-10: lines up to 9 December, 9 of 31 days)."""
    if as_of is None:
        return None
    day = pd.Timestamp(as_of)
    if day.day == 1:
        return None
    return day.strftime("%Y-%m"), day.day - 1, int(day.days_in_month)


def _split_partial(z, flags) -> tuple[list, list]:
    """The matrix twice: full months only (the colour scale), and the partial cells only."""
    full = [[None if p or v != v else v for v, p in zip(row, prow, strict=True)]
            for row, prow in zip(z, flags, strict=True)]
    part = [[1 if p and v == v else None for v, p in zip(row, prow, strict=True)]
            for row, prow in zip(z, flags, strict=True)]
    return full, part


def _heatmap(z, flags, x, y, text, colorscale, zmax, colorbar: str, partial_label: str
             ) -> go.Figure:
    """A cohort heatmap whose partial-month cells are grey, starred and out of the colour
    scale, so a month that is not over does not read as customers leaving."""
    full, part = _split_partial(z, flags)
    fig = go.Figure(go.Heatmap(z=full, x=x, y=y, colorscale=colorscale, zmin=0, zmax=zmax,
                               text=text, texttemplate="%{text}", colorbar={"title": colorbar},
                               textfont={"color": "#1f2933"}, hoverongaps=False))
    if any(v is not None for row in part for v in row):
        fig.add_trace(go.Heatmap(z=part, x=x, y=y, colorscale=PARTIAL_GREY, showscale=False,
                                 text=text, texttemplate="%{text}", hoverongaps=False,
                                 name=partial_label, hovertemplate=partial_label
                                 + ": %{text}<extra></extra>"))
    return fig


def cohorts(cohorts: pd.DataFrame | None, fig: Figures,
            value: pd.DataFrame | None = None, as_of: str | None = None,
            currency: str = "", first_line: str | None = None) -> str:
    """Retention and lifetime value per first-purchase month, with the as-of's partial
    month marked (grey cells with a star and a note in the title), not left out: the
    figure so far is shown, and said to be partial."""
    if cohorts is None or cohorts.empty:
        return ""
    part = partial_month(as_of)
    partial_label = (f"partial: {part[1]} of {part[2]} days" if part else "")
    months = [c for c in cohorts.columns if c != "customers"]
    z = cohorts[months].to_numpy(dtype=float) * 100
    labels = [f"{idx} ({int(n):,})" for idx, n in zip(cohorts.index, cohorts["customers"],
                                                     strict=True)]
    # the cell of cohort c at k months since is the calendar month c + k
    flags = [[bool(part) and (pd.Period(str(idx), freq="M") + int(m)).strftime("%Y-%m")
              == part[0] for m in months] for idx in cohorts.index]
    text = [[("" if v != v else f"{v:.0f}%" + ("*" if p else "")) for v, p in
             zip(row, prow, strict=True)] for row, prow in zip(z, flags, strict=True)]
    title = "Retention: % of each first-purchase month buying again"
    if part:
        title += f"<br><sub>grey * cells: {part[0]} is partial ({part[1]} of {part[2]} days)</sub>"
    f = _heatmap(z, flags, [str(m) for m in months], labels, text, BLUES, 60, "% active",
                 partial_label)
    f.update_layout(title=title, xaxis_title="months since first purchase",
                    yaxis={"autorange": "reversed"}, margin={"t": 60})
    body = fig(f, 80 + 26 * len(labels))
    note = ""
    if value is not None and len(value):
        wide = value.pivot(index="cohort", columns="months_since_first",
                           values="value_per_customer").sort_index()
        partial = value.pivot(index="cohort", columns="months_since_first",
                              values="partial").reindex_like(wide).fillna(False)
        zv = wide.to_numpy(dtype=float)
        pv = partial.to_numpy(dtype=bool)
        text = [[("" if v != v else wording.whole(v) + ("*" if p else "")) for v, p in
                 zip(row, prow, strict=True)] for row, prow in zip(zv, pv, strict=True)]
        vtitle = "Lifetime value: cumulative net revenue per customer" + (
            f" ({currency})" if currency else "")
        if part and pv.any():
            vtitle += (f"<br><sub>grey * cells: {part[0]} is partial ({part[1]} of "
                       f"{part[2]} days)</sub>")
        # rows labelled as the retention map's, "2011-01 (416)": the note's "size in
        # brackets" holds for both maps
        sizes = value.groupby("cohort")["customers"].max().reindex(wide.index)
        vlabels = [f"{idx} ({int(n):,})" if n == n else str(idx)
                   for idx, n in zip(wide.index, sizes, strict=True)]
        g = _heatmap(zv.tolist(), pv.tolist(), [str(c) for c in wide.columns],
                     vlabels, text, GREENS, None, "per customer", partial_label)
        g.update_layout(title=vtitle, xaxis_title="months since first purchase",
                        yaxis={"autorange": "reversed", "type": "category"}, margin={"t": 60})
        body += fig(g, 80 + 26 * len(wide))
    if part:
        note = (f" Grey cells marked * are {part[0]}, a partial month (data for {part[1]} of "
                f"its {part[2]} days): read them as a month not over yet, not as customers "
                "leaving.")
    # the data cannot tell a first purchase from the first one it holds: when the first
    # row is the month the data begins (`first_line`), it gathers every customer already
    # buying before; a later first row (Olist's history is longer than the period) does not
    first = ""
    if first_line and str(first_line)[:7] >= str(cohorts.index[0]):  # "YYYY-MM" compare
        first = (f" The first row, {cohorts.index[0]}, is the first month in the data: it "
                 "also holds the customers who bought before the data begins, so its size and "
                 "retention are not those of newcomers.")
    return (f"<section id='cohorts'><h2>Cohorts: retention and lifetime value</h2>"
            f"<p class='muted'>Each row is the customers whose first purchase in the data fell "
            f"in that month (size in brackets).{esc(first)}{esc(note)}</p>{body}</section>")


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


def _word(h: dict) -> str:
    from ..models.significance import verdict_word

    return verdict_word(bool(h["verdict"]), (h.get("test") or {}).get("direction_as_stated"))


def _after_statement(h: dict) -> str:
    """The figures and the test, without repeating the verdict and the statement."""
    text = str(h.get("text", ""))
    head = f"{_word(h)}: {h['statement']}"
    return text[len(head):].strip() if text.startswith(head) else text


def hypotheses(a: dict) -> str:
    items = a.get("hypotheses") or []
    if not items:
        return ""
    cards = "".join(
        f"<div class='hyp {'yes' if h['verdict'] else 'no'}'><b>"
        f"{_word(h)}: {esc(h['statement'])}</b>"
        f"<p>{esc(_after_statement(h))}</p></div>" for h in items)
    words = [_word(h) for h in items]
    true, false, unshown = (words.count(w) for w in ("True", "False", "Not shown"))
    # the count follows the cards' own first words: an untestable belief ('Not shown') is
    # neither one that holds nor one the data refutes
    answer = (f"{len(items)} beliefs about our customers, tested on the data: {true} "
              f"{'holds' if true == 1 else 'hold'}, {false} "
              f"{'does' if false == 1 else 'do'} not"
              + (f", {unshown} cannot be shown either way" if unshown else "") + ".")
    tests = "".join(f"<li>{esc(h['statement'])} {esc(h.get('analysts') or '')}</li>"
                    for h in items)
    level = (items[0].get("test") or {}).get("alpha")
    details = ("Each belief is true only when its one-sided test is significant at the "
               f"{level:,.0%} level and the difference goes the stated way." if level else "")
    return _section("", "hypotheses", "Three things the data says", answer, cards,
                    details=details, details_body=f"<ul>{tests}</ul>")


NOT_APPLICABLE_WORDS = {"return_rate": "Returns", "top_countries": "Countries"}


def satisfaction(a: dict, fig: Callable[..., str], good: str, bad: str) -> str:
    """Sources with reviews and delivery dates (Olist): satisfaction, and what does not apply."""
    s = a.get("satisfaction")
    if not s:
        return ""
    rows = [{"Persona": p["persona"], "Customers": f"{p['customers']:,}",
             "Mean review (of 5)": "n/a" if p["review_score_mean"] is None
             else f"{p['review_score_mean']:.2f}",
             "1-2 star reviews": _pct(p["low_review_share"]),
             "Late deliveries": _pct(p["late_share"]),
             "Days late per order": wording.duration_days(p["avg_days_late"])}
            for p in s["by_persona"]]
    f = go.Figure(go.Bar(
        x=["Delivered on time", "Delivered late"],
        y=[100 * (s["low_review_share_when_on_time"] or 0),
           100 * (s["low_review_share_when_late"] or 0)],
        marker_color=[good, bad],
        text=[_pct(s["low_review_share_when_on_time"]), _pct(s["low_review_share_when_late"])],
        textposition="outside"))
    f.update_layout(title="Share of purchases rated 1-2 stars", yaxis_title="%")
    # one line per figure that does not apply, named in words (the keys are JSON paths)
    plain: dict[str, str] = {}
    for key, why in (a.get("not_applicable") or {}).items():
        plain.setdefault(NOT_APPLICABLE_WORDS.get(key.rsplit(".", 1)[-1],
                                                  key.rsplit(".", 1)[-1].replace("_", " ")),
                         why)
    na = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in plain.items())
    body = (f"<div class='grid2'><div>{fig(f, 320)}</div><div>"
            f"{_table(pd.DataFrame(rows), left=('Persona',))}</div></div>"
            + (f"<h3>What does not apply to this source</h3><ul class='muted'>{na}</ul>"
               if na else ""))
    return _section("10", "satisfaction", "How satisfied are they?", s["text"], body)
