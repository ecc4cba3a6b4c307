"""Page weight: the report and the dashboard page stay light and still work offline.

They carry plotly's cartesian partial bundle, compressed, instead of the whole 4.8 MB
plotly.js (`insiders.dashboards.htmlkit`). The target is 1.5 MB per page; load times are
measured by `bench/page_weight.py` (they depend on the machine, so they are not asserted).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.offline
import pytest
from insiders.dashboards import htmlkit
from insiders.dashboards.page import render_dashboard
from sqlstore_fixture import build_synthetic_store
from test_pipeline import run_demo_pipeline

MAX_PAGE_BYTES = 1_500_000
FIGURE = re.compile(r'<script type="application/json" data-figure="[^"]+">(.*?)</script>')


def values(array: object) -> np.ndarray:
    """A trace's array as plotly.py writes it: a list, or typed base64 (`bdata`)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


def figure_types(html: str) -> set[str]:
    return {trace["type"] for raw in FIGURE.findall(html)
            for trace in json.loads(raw)["data"]}


def test_the_bundle_is_the_plotly_js_that_plotly_py_writes_for() -> None:
    bundle = htmlkit.plotly_bundle()
    assert bundle.startswith(b"/**\n* plotly.js (cartesian - minified) v"
                             + htmlkit.PLOTLY_JS_VERSION.encode() + b"\n")
    # figures are written by plotly.py for this plotly.js: an upgrade must bring its bundle
    assert plotly.offline.get_plotlyjs_version() == htmlkit.PLOTLY_JS_VERSION
    assert gzip.decompress(base64.b64decode(htmlkit.packed_plotly())) == bundle
    assert len(htmlkit.packed_plotly()) < 700_000  # 1.5 MB of JavaScript, as sent


def test_a_trace_outside_the_bundle_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="scattergl.*not in the page's plotly.js bundle"):
        htmlkit.Figures().html(go.Figure(go.Scattergl(x=[1], y=[2])))


def test_figure_json_cannot_close_its_script() -> None:
    figures = htmlkit.Figures()
    figures.html(go.Figure())  # the first one carries the bundle
    out = figures.html(go.Figure(go.Bar(x=["</script><script>alert(1)</script>"], y=[1])))
    assert "</script><script>alert" not in out
    (raw,) = FIGURE.findall(out)
    assert json.loads(raw)["data"][0]["x"] == ["</script><script>alert(1)</script>"]
    assert "insiders-plotly" not in out  # the bundle comes once per page


def test_demo_report_is_light_and_has_every_chart(demo_file: Path,
                                                  tmp_path_factory: pytest.TempPathFactory
                                                  ) -> None:
    run = run_demo_pipeline(demo_file, tmp_path_factory.mktemp("weight"))
    page = (run / "report.html").read_text(encoding="utf-8")
    size = len(page.encode())
    print(f"demo report.html: {size:,} bytes")
    assert size <= MAX_PAGE_BYTES
    assert page.count('id="insiders-plotly"') == 1
    kinds = figure_types(page)
    assert {"bar", "pie", "scatter", "heatmap"} <= kinds <= htmlkit.BUNDLE_TRACES


def test_dashboard_page_is_light(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'insiders.sqlite'}"
    build_synthetic_store(url)
    page = render_dashboard(url, tmp_path / "dashboard.html")
    size = page.stat().st_size
    print(f"dashboard.html: {size:,} bytes")
    assert size <= MAX_PAGE_BYTES
    html = page.read_text(encoding="utf-8")
    assert html.count('id="insiders-plotly"') == 1
    assert figure_types(html) <= htmlkit.BUNDLE_TRACES


def test_long_lines_are_thinned_to_real_points_and_keep_their_shape() -> None:
    rng = np.random.default_rng(7)
    x = np.arange(100_000, dtype=float)
    y = np.cumsum(rng.normal(size=x.size))
    y[31_337] += 500  # a spike must survive
    fig = go.Figure([go.Scatter(x=x, y=y, mode="lines", name="long"),
                     go.Scatter(x=x[:9000], y=y[:9000], mode="lines+markers", name="dots")])
    out = htmlkit.Figures().html(fig)
    (raw,) = FIGURE.findall(out)
    long, dots = json.loads(raw)["data"]
    kept_x, kept_y = values(long["x"]), values(long["y"])
    assert len(kept_x) <= htmlkit.MAX_LINE_POINTS
    assert (kept_x[0], kept_x[-1]) == (0, 99_999)
    assert np.array_equal(kept_y, y[kept_x.astype(int)])  # real points, in order
    assert kept_y.max() == y.max() and kept_y.min() == y.min()
    assert len(values(dots["x"])) == 9000  # markers show every point: left alone
    assert len(fig.data[0].x) == 100_000  # the caller's figure is not changed
