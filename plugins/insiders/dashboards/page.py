"""Render the Metabase dashboard's cards into one static HTML page.

The page runs the very SQL files that `insiders metabase provision` puts into Metabase,
against the SQL store, and lays the cards out on the same 24-column grid with the same
titles. So the dashboard can be checked (by a person, a test or a headless browser)
without running Metabase. The page is self-contained: plotly.js is inlined once (see
`htmlkit.py`), since no CDN may be reachable where it is opened. Every text from the
store or the definition is HTML-escaped: a persona or description is data, never markup.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import sqlalchemy as sa

from insiders.dashboards.htmlkit import BASE_CSS, Figures
from insiders.dashboards.htmlkit import esc as _esc
from insiders.dashboards.spec import (
    CURRENCY_SQL,
    CardSpec,
    DashboardSpec,
    DefinitionError,
    column_key,
    load_definition,
)
from insiders.errors import InsidersError
from insiders.wording import nearest, share, whole

ROW_PX = 52  # height of one grid row; Metabase's rows are about this tall
GAP_PX = 14
TABLE_ROW_LIMIT = 500
PALETTE = ["#509EE3", "#88BF4D", "#A989C5", "#EF8C8C", "#F9D45C", "#F2A86F", "#98D9D9",
           "#7172AD"]  # Metabase's default series colours, so both dashboards look alike
FONT = "Inter, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
DASHES = {"dashed": "dash", "dotted": "dot", "solid": "solid"}
# Metabase's `line.interpolate` (series setting; default "linear") as plotly line shapes
SHAPES = {"linear": "linear", "cardinal": "spline", "step-after": "hv"}
HIDDEN = {"#fff", "#ffffff", "white"}  # a white series is a spacer (a band's base): no legend


class DashboardError(InsidersError):
    """The static dashboard could not be built (one line, names the card at fault)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# --------------------------------------------------------------------------- data


def run_card_sql(conn: sa.Connection, sql: str) -> pd.DataFrame:
    """Run a card's SQL verbatim through the DBAPI cursor, as Metabase does.

    Going through SQLAlchemy's `text()` or pandas would treat `:name` or `%` in the SQL
    (e.g. an alias like "Share (%)") as bind parameters; the raw cursor does not.
    """
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall()
    finally:
        cursor.close()
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns)
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, Decimal)).any():
            frame[column] = frame[column].map(lambda v: float(v) if v is not None else None)
    return frame


def query_cards(sql_url: str, spec: DashboardSpec) -> dict[str, pd.DataFrame]:
    """Each card's result, keyed by card name; fails naming the first card that breaks."""
    try:
        engine = sa.create_engine(sql_url)
    except Exception as exc:  # bad URL or missing driver
        raise DashboardError(f"Cannot open the SQL store: {exc}") from None
    results: dict[str, pd.DataFrame] = {}
    try:
        with engine.connect() as conn:
            for card in spec.cards:
                try:
                    results[card.name] = run_card_sql(conn, card.sql)
                except Exception as exc:
                    conn.rollback()
                    message = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                    raise DashboardError(
                        f"Card {card.file} ({card.name!r}) fails on the SQL store: {message}"
                    ) from None
            latest = None
            try:
                latest = run_card_sql(conn, "SELECT MAX(run_id) FROM runs").iloc[0, 0]
            except Exception:
                conn.rollback()
            results["__latest_run__"] = pd.DataFrame({"run": [latest]})
            currency = None
            try:  # a store synced before runs had a currency has no such column
                found = run_card_sql(conn, CURRENCY_SQL)
                currency = found.iloc[0, 0] if len(found) else None
            except Exception:
                conn.rollback()
            results["__currency__"] = pd.DataFrame({
                "currency": [str(currency).strip().upper() if currency else None]})
    except sa.exc.OperationalError as exc:
        raise DashboardError(
            f"Cannot connect to the SQL store: {str(exc.orig).splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()
    return results


# --------------------------------------------------------------------------- formatting


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def format_value(value: Any, column: str = "") -> str:
    """A number or text as a marketer reads it: thousands separators, %, few decimals."""
    if _is_missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        return value.isoformat()[:10] if not getattr(value, "hour", 0) else str(value)[:16]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # numpy scalar
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if "%" in column:  # the report's rule: 15.4%, and 0.59% (not 0.6%) below 1%
            return share(value / 100)
        if "days" in column.lower() or "orders" in column.lower():
            return f"{value:,.1f}"  # averages of counts: one decimal is all they mean
        magnitude = abs(value)
        if magnitude >= 1000:
            return whole(value)
        if magnitude >= 100:
            return f"{value:,.1f}"
        if value == int(value):
            return f"{value:,.0f}"
        return f"{value:,.2f}" if magnitude >= 1 else f"{value:.3f}"
    return str(value)


# --------------------------------------------------------------------------- cards


def _card_height_px(card: CardSpec) -> int:
    return card.position.size_y * ROW_PX + (card.position.size_y - 1) * GAP_PX


def _render_scalar(card: CardSpec, frame: pd.DataFrame, currency: str | None = None) -> str:
    if frame.empty or not len(frame.columns):
        return '<div class="scalar"><div class="scalar-value">–</div></div>'
    column = str(frame.columns[0])
    value = format_value(frame.iloc[0, 0], column)
    if currency and column in card.money and not _is_missing(frame.iloc[0, 0]):
        value = f"{currency} {value}"  # Metabase's currency_style "code"
    return (
        '<div class="scalar">'
        f'<div class="scalar-value">{_esc(value)}</div>'
        f'<div class="scalar-label">{_esc(column)}</div>'
        "</div>"
    )


def _render_table(card: CardSpec, frame: pd.DataFrame, currency: str | None = None) -> str:
    if frame.empty:
        return '<div class="empty">No rows</div>'
    shown = frame.head(TABLE_ROW_LIMIT)
    classes = []
    for column in frame.columns:
        values = shown[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            classes.append("num")
        else:  # short labels (run keys, ids, countries) read better on one line
            longest = max((len(format_value(v)) for v in values), default=0)
            classes.append("txt short" if longest <= 22 else "txt")
    def heading(column: str) -> str:  # Metabase's currency_in_header: the code in the heading
        return f"{column} ({currency})" if currency and column in card.money else column

    head = "".join(
        f'<th class="{k}">{_esc(heading(str(c)))}</th>'
        for c, k in zip(frame.columns, classes, strict=True)
    )
    columns = card.visualization_settings.get("column_settings") or {}
    decimals = {c: columns.get(column_key(str(c)), {}).get("decimals") for c in frame.columns}

    def cell(value: Any, column: str) -> str:
        # Metabase's column setting `decimals` (0: 7.5 days shows as 8, halves away from zero
        # as its number formatting does); other columns by the page's own rules
        places = decimals.get(column)
        if hasattr(value, "item") and not isinstance(value, str):
            value = value.item()  # numpy scalar
        if places is not None and isinstance(value, int | float) and not _is_missing(value) \
                and not isinstance(value, bool):
            return nearest(value) if places == 0 else f"{value:,.{int(places)}f}"
        return format_value(value, column)

    body = []
    for row in shown.itertuples(index=False):
        cells = "".join(
            f'<td class="{k}">{_esc(cell(v, str(c)))}</td>'
            for v, c, k in zip(row, frame.columns, classes, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    note = ""
    if len(frame) > TABLE_ROW_LIMIT:
        note = (f'<div class="table-note">Showing the first {TABLE_ROW_LIMIT:,} of '
                f"{len(frame):,} rows</div>")
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div>{note}'
    )


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _axis_values(series: pd.Series) -> tuple[list, str]:
    """X values and the axis type: real dates on a date axis, everything else as categories.

    Run keys like "2011-03" would be read as dates by plotly; Metabase shows them as
    labels, and so does this page. Text is escaped because plotly renders labels as
    (a subset of) HTML.
    """
    values = series.tolist()
    present = [v for v in values if not _is_missing(v)]
    if present and all(
        isinstance(v, dt.date | pd.Timestamp) or (isinstance(v, str) and _ISO_DATE.match(v))
        for v in present
    ):
        return [v.isoformat() if isinstance(v, dt.date) else v for v in values], "date"
    return [_esc(format_value(v)) if isinstance(v, str) else v for v in values], "category"


def _month_ticks(values: pd.Series) -> dict:
    """Monthly data on a date axis: one labelled tick per month (or every few months), as
    Metabase shows a month unit, instead of plotly's day ticks (`Sep 1, Oct 1, Oct 31`)."""
    days = pd.to_datetime(pd.Series([v for v in values if not _is_missing(v)]), errors="coerce")
    if days.empty or days.isna().any() or not (days.dt.day == 1).all():
        return {}
    months = (days.max().year - days.min().year) * 12 + days.max().month - days.min().month + 1
    return {"dtick": f"M{max(1, math.ceil(months / 8))}", "tickformat": "%b %Y"}


def _series_display(card_display: str, index: int, opts: dict) -> str:
    """A series' display as Metabase decides it: its own setting, else a combo chart's first
    series is a line and the others bars (`getSeriesDefaultDisplay`), else the card's."""
    if opts.get("display"):
        return str(opts["display"])
    if card_display == "combo":
        return "line" if index == 0 else "bar"
    return {"row": "bar"}.get(card_display, card_display)


def _fill(color: str) -> str:
    """An area's fill: the series colour at Metabase's area opacity (about 0.3)."""
    if color.lower() in HIDDEN:
        return "rgba(255,255,255,0)"
    match = re.fullmatch(r"#([0-9a-fA-F]{6})", color)
    if not match:
        return color
    r, g, b = (int(match.group(1)[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},0.35)"


def _figure(card: CardSpec, frame: pd.DataFrame, currency: str | None = None) -> go.Figure:
    settings = card.visualization_settings
    columns = [str(c) for c in frame.columns]
    dims = [d for d in settings.get("graph.dimensions") or columns[:1] if d in columns]
    metrics = [m for m in settings.get("graph.metrics") or [] if m in columns]
    if not dims:
        dims = columns[:1]
    if not metrics:
        metrics = [c for c in columns if c not in dims
                   and pd.api.types.is_numeric_dtype(frame[c])][:4]
    series_settings = settings.get("series_settings") or {}
    stacked = settings.get("stackable.stack_type") in ("stacked", "normalized")
    fig = go.Figure()
    x_name = dims[0]

    if card.display == "pie":
        labels, _ = _axis_values(frame[x_name])
        fig.add_trace(go.Pie(labels=labels, values=frame[metrics[0]].tolist(), hole=0.45,
                             marker={"colors": PALETTE}, sort=False))
        return fig

    # (name, x, y, settings) for each series; a second dimension splits one metric
    series: list[tuple[str, list, list, dict]] = []
    if len(dims) >= 2 and metrics:
        split = dims[1]
        for value in pd.unique(frame[split]):
            part = frame[frame[split] == value]
            x, _ = _axis_values(part[x_name])
            series.append((format_value(value), x, part[metrics[0]].tolist(),
                           series_settings.get(str(value), {})))
    else:
        for metric in metrics:
            x, _ = _axis_values(frame[x_name])
            series.append((metric, x, frame[metric].tolist(), series_settings.get(metric, {})))
    _, axis_type = _axis_values(frame[x_name])
    right_axis = False
    for index, (name, x, y, opts) in enumerate(series):
        kind = _series_display(card.display, index, opts)
        color = str(opts.get("color") or PALETTE[index % len(PALETTE)])
        axis = "y2" if opts.get("axis") == "right" else "y"
        right_axis = right_axis or axis == "y2"
        label = _esc(str(opts.get("title") or name))
        if kind == "bar":
            horizontal = card.display == "row"
            fig.add_trace(go.Bar(
                x=y if horizontal else x, y=x if horizontal else y, name=label, yaxis=axis,
                orientation="h" if horizontal else "v", marker={"color": color},
            ))
            continue
        # Metabase draws straight segments unless told `cardinal` (a spline can pass below
        # the real points); areas stack only with areas, and only when the card stacks
        shape = SHAPES.get(str(opts.get("line.interpolate") or "linear"), "linear")
        dash = DASHES.get(str(opts.get("line.style", "solid")), "solid")
        markers = opts.get("line.marker_enabled") is not False
        hidden = color.lower() in HIDDEN
        area = kind == "area"
        if area and stacked:  # a band covers only the months it has values for
            kept = [(a, b) for a, b in zip(x, y, strict=True) if not _is_missing(b)]
            x, y = [a for a, _ in kept], [b for _, b in kept]
        fig.add_trace(go.Scatter(
            x=x, y=y, name=label, yaxis=axis, mode="lines+markers" if markers else "lines",
            line={"color": color, "width": 0 if hidden else (1 if area else 2.5),
                  "dash": dash, "shape": shape},
            marker={"size": 5},
            connectgaps=opts.get("line.missing", "interpolate") == "interpolate",
            fill=None if not area else ("tonexty" if stacked else "tozeroy"),
            fillcolor=_fill(color) if area else None,
            stackgroup=f"area-{axis}" if area and stacked else None,
            showlegend=not hidden, hoverinfo="skip" if hidden else None,
        ))
    fig.update_layout(barmode="stack" if stacked else "group")
    x_title = settings.get("graph.x_axis.title_text")
    y_title = settings.get("graph.y_axis.title_text")
    if currency and card.display != "row" and any(
            m in card.money and (series_settings.get(m) or {}).get("axis") != "right"
            for m in metrics):
        y_title = f"{y_title or 'Amount'} ({currency})"
    category_axis = {"type": axis_type} if card.display != "row" else {}
    if axis_type == "date" and card.display != "row":
        category_axis.update(_month_ticks(frame[x_name]))
    fig.update_xaxes(title_text=_esc(x_title) if x_title else None, **category_axis)
    fig.update_yaxes(title_text=_esc(y_title) if y_title else None)
    if not settings.get("graph.y_axis.unpin_from_zero") and card.display != "row":
        fig.update_layout(yaxis={"rangemode": "tozero"})  # Metabase pins y to zero too
    if right_axis:
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "showgrid": False,
                                  "rangemode": "tozero", "tickmode": "auto", "nticks": 6})
    return fig


def _render_chart(card: CardSpec, frame: pd.DataFrame, figures: Figures,
                  currency: str | None = None) -> str:
    if frame.empty:
        return '<div class="empty">No rows</div>'
    fig = _figure(card, frame, currency)
    fig.update_layout(
        template="plotly_white",
        font={"family": FONT, "size": 12, "color": "#4C5773"},
        margin={"l": 8, "r": 8, "t": 8, "b": 8},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "left", "x": 0,
                "font": {"size": 11}},
        hoverlabel={"font": {"family": FONT}},
        colorway=PALETTE,
        bargap=0.25,
        autosize=True,
    )
    fig.update_xaxes(automargin=True, showgrid=False, linecolor="#DCE1E8",
                     title_font={"size": 11})
    fig.update_yaxes(automargin=True, gridcolor="#EEF0F4", zeroline=False,
                     title_font={"size": 11})
    if "yaxis2" in fig.layout and fig.layout.yaxis2.overlaying:
        fig.update_layout(margin={"r": 44})  # room for the right axis' labels
    return f"<div>{figures.html(fig)}</div>"


def render_card(card: CardSpec, frame: pd.DataFrame, figures: Figures,
                currency: str | None = None) -> str:
    """One card's HTML: title, description and its visualisation, placed on the grid.
    Money columns (`card.money`) are shown in `currency`, the latest run's."""
    p = card.position
    if card.display in ("scalar", "smartscalar", "progress", "gauge"):
        body, kind = _render_scalar(card, frame, currency), "scalar-card"
    elif card.display in ("table", "object", "pivot"):
        body, kind = _render_table(card, frame, currency), "table-card"
    else:
        body, kind = _render_chart(card, frame, figures, currency), "chart-card"
    description = (
        f'<p class="card-desc" title="{_esc(card.description)}">{_esc(card.description)}</p>'
        if card.description else ""
    )
    return (
        f'<section class="card {kind}" data-card="{_esc(card.file)}" '
        f'style="grid-column: {p.col + 1} / span {p.size_x}; '
        f'grid-row: {p.row + 1} / span {p.size_y};">'
        f'<header><h2 class="card-title">{_esc(card.name)}</h2>{description}</header>'
        f'<div class="card-body">{body}</div>'
        "</section>"
    )


CSS = BASE_CSS + """
:root { --ink:#2E353B; --muted:#696E7B; --line:#E4E7EC; --bg:#F6F8FA; --brand:#509EE3; }
html, body { margin: 0; background: var(--bg); color: var(--ink);
  font-family: @FONT@; -webkit-font-smoothing: antialiased; }
.page { max-width: 1480px; margin: 0 auto; padding: 28px 32px 40px; }
.top { display: flex; justify-content: space-between; align-items: flex-end; gap: 24px;
  margin-bottom: 22px; }
.top h1 { margin: 0; font-size: 26px; font-weight: 700; letter-spacing: -0.01em; }
.top h1 .badge { display: inline-block; vertical-align: middle; margin-left: 10px;
  padding: 3px 9px; border-radius: 999px; background: #E6F1FC; color: #2B6CB0;
  font-size: 12px; font-weight: 600; letter-spacing: 0; }
.top p { margin: 6px 0 0; color: var(--muted); font-size: 14px; max-width: 880px;
  line-height: 1.45; }
.meta { color: var(--muted); font-size: 12px; text-align: right; white-space: nowrap;
  line-height: 1.6; }
.grid { display: grid; grid-template-columns: repeat(24, minmax(0, 1fr));
  grid-auto-rows: @ROW@px; gap: @GAP@px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px;
  box-shadow: 0 1px 2px rgba(16, 24, 40, .05); display: flex; flex-direction: column;
  min-width: 0; min-height: 0; overflow: hidden; }
.card header { padding: 14px 16px 6px; }
.card-title { margin: 0; font-size: 15px; font-weight: 650; line-height: 1.3; }
.card-desc { margin: 4px 0 0; color: var(--muted); font-size: 12.5px; line-height: 1.4; }
.card-body { flex: 1; min-height: 0; position: relative; padding: 0 10px 10px; }
.chart-card .card-body > div { position: absolute; inset: 0 10px 10px 10px; }
.scalar-card header { padding-bottom: 0; }
.scalar { height: 100%; display: flex; flex-direction: column; justify-content: center;
  padding: 0 6px; }
.scalar-value { font-size: 36px; font-weight: 700; color: var(--brand); line-height: 1.1;
  font-variant-numeric: tabular-nums; letter-spacing: -0.02em; }
.scalar-label { margin-top: 2px; color: var(--muted); font-size: 12px; }
.table-wrap { position: absolute; inset: 0 10px 10px 10px; overflow: auto;
  border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: separate; border-spacing: 0; width: 100%; font-size: 12.5px; }
thead th { position: sticky; top: 0; background: #F9FAFB; color: var(--muted);
  font-weight: 600; text-align: left; padding: 8px 10px; border-bottom: 1px solid var(--line);
  vertical-align: bottom; line-height: 1.25; }
th.num { text-align: right; }
td { padding: 7px 10px; border-bottom: 1px solid #F0F2F5; vertical-align: top;
  line-height: 1.35; }
tbody tr:nth-child(even) td { background: #FCFCFD; }
tbody tr:hover td { background: #F2F7FD; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num, td.short { white-space: nowrap; }
td.txt:not(.short) { min-width: 140px; }
.table-note { position: absolute; right: 18px; bottom: 14px; font-size: 11px;
  color: var(--muted); background: rgba(255,255,255,.9); padding: 2px 6px; }
.empty { height: 100%; display: flex; align-items: center; justify-content: center;
  color: var(--muted); font-size: 13px; }
footer { margin-top: 22px; color: var(--muted); font-size: 12px; }
@media (max-width: 900px) {
  .grid { display: flex; flex-direction: column; }
  .card { min-height: 320px; }
  .scalar-card { min-height: 150px; }
}
""".replace("@FONT@", FONT).replace("@ROW@", str(ROW_PX)).replace("@GAP@", str(GAP_PX))


def render_page(spec: DashboardSpec, results: dict[str, pd.DataFrame]) -> str:
    """The whole page as a string, from the definition and each card's query result."""
    figures = Figures(prefix="card")
    money = results.get("__currency__")
    currency = money.iloc[0, 0] if money is not None and len(money) else None
    currency = None if _is_missing(currency) else currency
    sections = [render_card(card, results[card.name], figures, currency)
                for card in spec.cards]
    latest_frame = results.get("__latest_run__")
    latest = latest_frame.iloc[0, 0] if latest_frame is not None else None
    rendered = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    badge = (f'<span class="badge">latest run {_esc(latest)}</span>'
             if not _is_missing(latest) else "")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(spec.name)}</title><style>{CSS}</style></head><body>"
        '<div class="page">'
        f'<div class="top"><div><h1>{_esc(spec.name)}{badge}</h1>'
        f"<p>{_esc(spec.description)}</p></div>"
        f'<div class="meta">Collection: {_esc(spec.collection)}<br>'
        f"{len(spec.cards)} cards · rendered {_esc(rendered)}</div></div>"
        f'<main class="grid">{"".join(sections)}</main>'
        "<footer>Static copy of the Metabase dashboard: the same SQL files "
        f"({_esc(spec.directory.name)}/cards), run against the SQL store.</footer>"
        "</div></body></html>\n"
    )


def render_dashboard(sql_url: str, out: Path, definition_dir: Path | None = None) -> Path:
    """Run every card's SQL against the store at `sql_url` and write one static page to `out`.

    Raises `DashboardError` (one line) when the definition is wrong or a card's SQL fails,
    naming the card file.
    """
    try:
        spec = load_definition(definition_dir)
    except DefinitionError as exc:
        raise DashboardError(str(exc)) from None
    results = query_cards(sql_url, spec)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_page(spec, results), encoding="utf-8")
    return out
