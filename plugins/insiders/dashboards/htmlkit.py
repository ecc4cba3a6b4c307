"""What every HTML page of the product shares: escaping, base CSS and plotly embedding.

Used by the report (`insiders.report`) and the static dashboard page (`page.py`).

Pages must work offline (no CDN is reachable where they are opened), so plotly.js is
inlined. The whole plotly.min.js is 4.8 MB; the pages use only bar, pie, scatter and
heatmap traces, so they carry plotly's official *cartesian* partial bundle instead
(`assets/plotly-cartesian-4.1.1.min.js`, npm `plotly.js-cartesian-dist-min@4.1.1`, MIT,
the same plotly.js version plotly.py 7.1 writes figures for), gzip-compressed and base64
encoded: 1.5 MB of JavaScript become 0.66 MB of page. A small loader unpacks it with the
browser's `DecompressionStream` (Chrome 80+, Firefox 113+, Safari 16.4+) and draws
every figure once the page is parsed. Figures travel as plotly JSON in
`<script type="application/json">` blocks, never as code.

A line cannot show more points than the chart has pixels, so a plain line trace of more
than `MAX_LINE_POINTS` sorted points (the Olist report's cumulative curve has one per
customer, 95,000: 1.5 MB of JSON) is embedded thinned: per bucket of points, the lowest
and the highest one, plus the first and the last point. Every point kept is a real data
point, and spikes survive.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

PLOTLY_JS_VERSION = "4.1.1"
PLOTLY_ASSET = f"plotly-cartesian-{PLOTLY_JS_VERSION}.min.js"
# the trace modules in that bundle (its README): anything else would not draw
BUNDLE_TRACES = frozenset({
    "bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour",
    "image", "pie", "scatter", "scatterternary", "violin",
})
PLOT_CONFIG = {"displayModeBar": False, "responsive": True}
MAX_LINE_POINTS = 4000  # per line trace, as embedded (see the module docstring)
_PER_POINT = ("text", "hovertext", "customdata", "ids")

BASE_CSS = (
    "*{box-sizing:border-box}"
    ".plot-missing{padding:18px;color:#8a4b0f;background:#fff4e5;border-radius:6px;"
    "font-size:13px}"
)

# Runs once per page. It waits for the whole page to be parsed, so the figures after it
# exist, then unpacks plotly.js, runs it and draws each figure into its div.
_LOADER = """(function () {
  function fail(text) {
    document.querySelectorAll("div[data-plot]").forEach(function (div) {
      div.innerHTML = '<div class="plot-missing"></div>';
      div.firstChild.textContent = text;
    });
  }
  function parsed() {
    return new Promise(function (resolve) {
      if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", resolve);
      } else {
        resolve();
      }
    });
  }
  async function unpack() {
    var packed = document.getElementById("insiders-plotly").textContent;
    var data = await fetch("data:application/gzip;base64," + packed);
    var stream = data.body.pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text();
  }
  async function draw() {
    if (typeof DecompressionStream === "undefined") {
      await parsed();
      fail("Charts need a current browser (Chrome 80+, Firefox 113+, Safari 16.4+).");
      return;
    }
    var code = await unpack();
    performance.mark("insiders:plotly-unpacked");
    var script = document.createElement("script");
    script.textContent = code;
    document.head.appendChild(script);
    performance.mark("insiders:plotly-ready");
    await parsed();
    var nodes = document.querySelectorAll("script[data-figure]");
    for (var i = 0; i < nodes.length; i++) {
      var fig = JSON.parse(nodes[i].textContent);
      var div = document.getElementById(nodes[i].getAttribute("data-figure"));
      await Plotly.newPlot(div, fig.data, fig.layout || {}, fig.config || {});
    }
    performance.mark("insiders:drawn");
  }
  draw();
})();"""


def esc(value: object) -> str:
    """Text as HTML (attributes too): data is shown, never run or parsed as markup."""
    return html.escape("" if value is None else str(value), quote=True)


def label(text: object, width: int = 16) -> str:
    """A chart label: escaped (plotly renders its own markup in labels) and wrapped."""
    words, lines, line = esc(text).split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join([*lines, line]) if line else ""


def month_labels(months: object) -> list[str]:
    """Month keys (YYYY-MM) as category labels for a month axis: one tick per month
    ('Sep 2011'), never a day axis with ticks every two weeks."""
    return [pd.Period(str(m), freq="M").strftime("%b %Y") for m in months]  # type: ignore


def log_ticks(values: list[float]) -> tuple[list[float], list[str]]:
    """Readable ticks for a log axis spanning `values`: 1-3-10 steps labelled 0.3, 1, 3, 10,
    1k (plotly's own log labels read '2 5 1 2 5 10 2')."""
    lo = min([v for v in values if v > 0] + [1.0])
    hi = max([*values, 1.0])
    ticks, decade = [], 10.0 ** (int(np.floor(np.log10(lo))) - 1)
    while decade <= hi * 10:
        ticks += [step * decade for step in (1, 3) if lo / 3 <= step * decade <= hi * 3]
        decade *= 10
    return ticks, [short_number(v) for v in ticks]


def short_number(v: float) -> str:
    """A tick label: 300, 1k, 2.5M."""
    for size, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if v >= size:
            return f"{v / size:g}{suffix}"
    return f"{v:g}"


@functools.cache
def plotly_bundle() -> bytes:
    """The plotly.js partial bundle shipped with the package (1.5 MB, read once)."""
    return resources.files("insiders").joinpath("assets", PLOTLY_ASSET).read_bytes()


@functools.cache
def packed_plotly() -> str:
    """The bundle gzip-compressed (fixed mtime: the same bytes every time) and base64-encoded."""
    return base64.b64encode(gzip.compress(plotly_bundle(), compresslevel=9, mtime=0)).decode()


@functools.cache
def ready_plotly() -> None:
    """Make and embed one throwaway figure, so that the page's first real one is quick.

    The first figure a process makes loads plotly's default template (the classes of every
    trace type and of the layout's parts) and its validators, and a page's first figure
    packs the plotly.js bundle: ~0.3 s of the report stage here. `insiders run` calls this
    while it waits for other stages (`stages.report.loads`), so the report, which runs last
    and alone, does not wait for them. Only plotly's caches and `packed_plotly`'s stay."""
    long = list(range(MAX_LINE_POINTS + 1))  # a line long enough to be thinned (a copy)
    fig = go.Figure([go.Bar(x=[0], y=[0]), go.Scatter(x=long, y=long, mode="lines")])
    fig.update_layout(title="ready", height=100, margin={"l": 1}, legend={"orientation": "h"})
    fig.update_xaxes(gridcolor="#eef1f4")
    Figures().html(fig)


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element: no `<` can close or open a tag."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def thinned_indices(y: np.ndarray, max_points: int = MAX_LINE_POINTS) -> np.ndarray:
    """Indices to keep of a line's values: each bucket's lowest and highest, first, last."""
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    keep = {0, n - 1}
    for bucket in np.array_split(np.arange(n), max(1, (max_points - 2) // 2)):
        values = y[bucket]
        keep.add(int(bucket[np.argmin(values)]))
        keep.add(int(bucket[np.argmax(values)]))
    return np.array(sorted(keep))


def thin_lines(fig: go.Figure, max_points: int = MAX_LINE_POINTS) -> go.Figure:
    """`fig` itself, or a copy whose long plain line traces keep at most `max_points` points.

    Only `scatter` traces drawn as bare lines, with numeric x in ascending order, no gaps
    and no per-point text, are thinned: anything else would change what the chart shows.
    The copy is made only when a trace is thinned: copying a figure validates every
    property again (half of the report stage's time when it was made for every chart).
    """
    plan = {}
    for i, trace in enumerate(fig.data):
        thinned = _thinned(trace, max_points)
        if thinned is not None:
            plan[i] = thinned
    if not plan:
        return fig
    out = go.Figure(fig)
    for i, (x, y) in plan.items():
        out.data[i].x, out.data[i].y = x, y
    return out


def _thinned(trace: Any, max_points: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The thinned x and y of one trace, or None when it is to be drawn as it is."""
    if trace.type != "scatter" or trace.mode != "lines" or trace.x is None:
        return None
    if any(isinstance(getattr(trace, name, None), (list, tuple, np.ndarray))
           for name in _PER_POINT):
        return None
    try:
        x = np.asarray(trace.x, dtype=float)
        y = np.asarray(trace.y, dtype=float)
    except (TypeError, ValueError):  # dates or categories: left alone
        return None
    if (len(x) != len(y) or len(y) <= max_points or np.isnan(x).any()
            or np.isnan(y).any() or (np.diff(x) < 0).any()):
        return None
    keep = thinned_indices(y, max_points)
    return x[keep], y[keep]


class Figures:
    """Embeds plotly figures in one page; the first figure also brings plotly.js.

    One instance per page. `html()` returns a figure's div and its JSON; the bundle and
    the loader come with the first figure, so a page without charts carries neither.
    """

    def __init__(self, prefix: str = "fig") -> None:
        self.prefix = prefix
        self.count = 0

    def html(self, fig: go.Figure, *, height: str = "100%", width: str = "100%",
             config: dict | None = None) -> str:
        kinds = {trace.type for trace in fig.data}
        missing = sorted(kinds - BUNDLE_TRACES)
        if missing:
            raise ValueError(
                f"plotly trace type(s) {', '.join(missing)} are not in the page's plotly.js "
                f"bundle ({PLOTLY_ASSET}); use one of {', '.join(sorted(BUNDLE_TRACES))}"
            )
        self.count += 1
        ident = f"{self.prefix}-{self.count}"
        spec = json.loads(thin_lines(fig).to_json())
        spec["config"] = {**PLOT_CONFIG, **(config or {})}
        out = ""
        if self.count == 1:
            out += (f'<script id="insiders-plotly" type="application/octet-stream">'
                    f"{packed_plotly()}</script><script>{_LOADER}</script>")
        out += (f'<div id="{ident}" data-plot="1" class="plot" '
                f'style="height:{esc(height)};width:{esc(width)}"></div>'
                f'<script type="application/json" data-figure="{ident}">'
                f"{_script_json(json.dumps(spec, separators=(',', ':')))}</script>")
        return out


def table(frame: pd.DataFrame, left: tuple[str, ...] = (), whole: tuple[str, ...] = ()) -> str:
    """A plain HTML table, every cell escaped; `left` names the left-aligned columns, `whole`
    those whose cells never break over lines (a risk "Low (<1%)" or a date read as one)."""
    def kind(c: str) -> str:
        return " ".join(k for k, on in (("l", c in left), ("nw", c in whole)) if on)

    head = "".join(f"<th class='{'l' if c in left else ''}'>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = "".join(f"<td class='{kind(c)}'>{esc(row[c])}</td>" for c in frame.columns)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def analysts(text: str = "", body: str = "") -> str:
    """The folded "For analysts" part of a section: tests, p-values, intervals.

    Plain words come first on every page; the statistics behind them stay one click away
    (`text` is escaped, `body` is HTML the caller built from escaped parts)."""
    if not text and not body:
        return ""
    para = f"<p>{esc(text)}</p>" if text else ""
    return (f"<details class='analysts'><summary>For analysts</summary>{para}{body}"
            "</details>")


def section(number: int | str, anchor: str, title: str, answer: str, body: str,
            tone: str = "", details: str = "", details_body: str = "") -> str:
    """A report section: its number (none for the extra sections), title, plain answer,
    the body, then the folded statistics (`details` text, `details_body` HTML)."""
    badge = f"<span class='n'>{esc(number)}</span>" if str(number) else ""
    return (f"<section id='{anchor}'><h2>{badge}{esc(title)}</h2>"
            f"<div class='answer {tone}'>{esc(answer)}</div>{body}"
            f"{analysts(details, details_body)}</section>")
