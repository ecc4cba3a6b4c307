"""The static dashboard page: same cards as Metabase, safe HTML, and it renders in Chromium."""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from insiders.dashboards.page import DashboardError, format_value, render_dashboard
from insiders.dashboards.spec import default_definition_dir, load_definition
from sqlstore_fixture import RUN_IDS, build_synthetic_store

SPEC = load_definition()
EVIL_PERSONA = "<script>window.__pwned=1</script>Big spenders"
EVIL_DESCRIPTION = 'Love <b>bold</b> & "quotes" <img src=x onerror="window.__pwned=2">'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--virtual-time-budget=5000",
]
WINDOW = (1400, 4700)  # tall enough for the whole dashboard


def dom_text(text: str) -> str:
    """How a text node is serialised in a DOM dump."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dashboard of a synthetic store whose top persona carries markup."""
    folder = tmp_path_factory.mktemp("page")
    url = f"sqlite:///{folder / 'insiders.sqlite'}"
    build_synthetic_store(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        params = {"persona": EVIL_PERSONA, "description": EVIL_DESCRIPTION, "run": RUN_IDS[-1]}
        conn.execute(sa.text("UPDATE segment_profiles SET persona = :persona, "
                             "description = :description WHERE run_id = :run AND segment = 0"),
                     params)
        conn.execute(sa.text("UPDATE customer_segments SET persona = :persona "
                             "WHERE run_id = :run AND segment = 0"), params)
    engine.dispose()
    return render_dashboard(url, folder / "dashboard.html")


def test_page_has_every_card_and_is_self_contained(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert html.count('<section class="card') == len(SPEC.cards)
    for card in SPEC.cards:
        assert f'data-card="{card.file}"' in html
        p = card.position
        assert (f"grid-column: {p.col + 1} / span {p.size_x}; "
                f"grid-row: {p.row + 1} / span {p.size_y};") in html
    assert html.count('id="insiders-plotly"') == 1, "plotly.js must be inlined exactly once"
    assert "<script src=" not in html and "<link " not in html, "nothing may load from outside"
    assert "<script>window.__pwned" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;Big spenders" in html


def test_failing_card_names_its_file(tmp_path: Path) -> None:
    definitions = tmp_path / "metabase"
    shutil.copytree(default_definition_dir(), definitions)
    card = SPEC.cards[3]
    (definitions / card.file).write_text("SELECT revenue FROM nowhere")
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    build_synthetic_store(url)
    with pytest.raises(DashboardError) as caught:
        render_dashboard(url, tmp_path / "out.html", definitions)
    assert card.file in str(caught.value) and "no such table: nowhere" in str(caught.value)
    assert not (tmp_path / "out.html").exists()


def test_values_are_formatted_for_people() -> None:
    assert format_value(1234567) == "1,234,567"
    assert format_value(10.2941, "Share of customers (%)") == "10.3%"
    # a small share reads as the report writes it (two significant digits), never 0.6%
    assert format_value(0.5912, "Returns (%)") == "0.59%"
    assert format_value(99.97, "Share of customers (%)") == "99.97%"
    assert format_value(192708.12) == "192,708"
    assert format_value(0.42831) == "0.428"
    assert format_value(None) == "–" and format_value(float("nan")) == "–"
    assert format_value(True) == "yes"
    assert format_value(18.6612, "Average days since last order") == "18.7"
    assert format_value(13.5312, "Average orders") == "13.5"


def test_a_columns_decimals_setting_is_honoured_as_metabase_does() -> None:
    """The Insiders table's 'Days since last order' has Metabase's `decimals: 0`: one
    customer bought 7.5 days ago reads 8 (as in the report's who table), not 7.5; halves go
    away from zero, as Metabase's number formatting rounds. Other columns keep their rules."""
    import pandas as pd
    from insiders.dashboards.page import _render_table

    card = next(c for c in SPEC.cards if c.file.endswith("14_current_insiders.sql"))
    frame = pd.DataFrame({"Days since last order": [7.5, 2.5, 3.4958],
                          "Orders": [69, 57, 3], "Customer": ["14646", "18102", "15098"]})
    cells = re.findall(r'<td class="[^"]*">([^<]*)</td>', _render_table(card, frame))
    assert cells[0::3] == ["8", "3", "3"]  # 3.4958 is 3: no rounding to cents first
    assert cells[1::3] == ["69", "57", "3"]
    other = next(c for c in SPEC.cards if c.file.endswith("09_segment_profiles.sql"))
    frame = pd.DataFrame({"Average days since last order": [18.66]})
    assert "18.7" in _render_table(other, frame)


def png_size_and_variety(data: bytes) -> tuple[int, int, int]:
    """Width, height and how many distinct byte values the image data holds (stdlib only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless chromium is not installed "
                                             "(apt-get install chromium)")
def test_page_renders_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    shots = Path(os.environ.get("INSIDERS_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "dashboard.png"
    done = chromium(f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}",
                    page.resolve().as_uri())
    assert shot.is_file(), f"no screenshot: {done.stderr[-800:]}"
    data = shot.read_bytes()
    width, height, variety = png_size_and_variety(data)
    assert (width, height) == WINDOW
    assert len(data) > 100_000 and variety > 100, "the screenshot looks blank"

    dom = chromium(f"--window-size={WINDOW[0]},{WINDOW[1]}", "--dump-dom",
                   page.resolve().as_uri()).stdout
    for card in SPEC.cards:
        assert dom_text(card.name) in dom, f"card title {card.name!r} missing from the page"
    charts = sum(card.display not in ("scalar", "table") for card in SPEC.cards)
    assert dom.count('class="main-svg"') >= charts, "plotly did not draw every chart"
    # the persona is shown as text, never run or parsed as markup
    assert dom_text(EVIL_PERSONA) in dom
    assert "<script>window.__pwned" not in dom
    assert "<img src=" not in dom and "<b>bold</b>" not in dom


def card_figures(html: str) -> dict[str, dict]:
    """Each chart card's plotly figure (data and layout), by card file."""
    out = {}
    for part in html.split('<section class="card')[1:]:
        file = re.search(r'data-card="([^"]+)"', part).group(1)
        found = re.search(r'<script type="application/json" data-figure="[^"]+">(.*?)</script>',
                          part, re.S)
        if found:
            out[htmllib.unescape(file)] = json.loads(found.group(1))
    return out


def test_the_forecast_card_is_one_group_with_a_band_and_straight_lines(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    figures = card_figures(html)
    traces = figures["cards/10_forecast_vs_actuals.sql"]["data"]
    by_name = {t["name"]: t for t in traces}
    assert set(by_name) == {"Interval low", "80% interval", "Actual", "Forecast"}
    band = by_name["80% interval"]
    base = by_name["Interval low"]
    # the interval is a filled band: its width stacked on its (invisible) low end
    assert band["stackgroup"] == base["stackgroup"] and band["fill"] == "tonexty"
    assert base["showlegend"] is False and band.get("showlegend", True) is not False
    assert by_name["Forecast"]["line"]["dash"] == "dash"
    assert "stackgroup" not in by_name["Actual"] and "stackgroup" not in by_name["Forecast"]
    layout = figures["cards/10_forecast_vs_actuals.sql"]["layout"]
    assert layout["yaxis"]["rangemode"] == "tozero"
    assert layout["xaxis"]["tickformat"] == "%b %Y"  # months, not plotly's day ticks
    # no smoothed line on the page: Metabase draws straight segments unless told otherwise
    shapes = {t.get("line", {}).get("shape") for f in figures.values() for t in f["data"]
              if t["type"] == "scatter"}
    assert shapes <= {"linear"}, shapes


def test_money_is_shown_in_the_runs_currency(page: Path) -> None:
    """The synthetic store's runs are in GBP: scalars carry the code, tables name it in the
    money columns' headings (Metabase's currency_in_header), charts in their y axis title."""
    html = page.read_text(encoding="utf-8")
    forecast = html.split('data-card="cards/04_forecast_next.sql"')[1].split("</section>")[0]
    assert re.search(r'class="scalar-value">GBP [0-9,]+<', forecast), forecast
    share = html.split('data-card="cards/03_insiders_revenue_share_now.sql"')[1]
    assert "GBP" not in share.split("</section>")[0]  # a share is no money
    campaigns = html.split('data-card="cards/19_campaign_list.sql"')[1].split("</section>")[0]
    assert ">Expected value (GBP)</th>" in campaigns and ">Churn risk (%)</th>" in campaigns
    layout = card_figures(html)["cards/10_forecast_vs_actuals.sql"]["layout"]
    assert layout["yaxis"]["title"]["text"].endswith("(GBP)")


def test_the_campaign_cards_show_the_latest_runs_lists(page: Path) -> None:
    engine = sa.create_engine(str(page.parent / "insiders.sqlite").join(("sqlite:///", "")))
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.text(
            'SELECT "list", COUNT(*) FROM campaigns WHERE run_id = :r GROUP BY "list"'),
            {"r": RUN_IDS[-1]}).all())
    engine.dispose()
    html = page.read_text(encoding="utf-8")
    bars = card_figures(html)["cards/18_campaign_counts.sql"]["data"]
    (customers,) = [t for t in bars if t["name"] == "Customers"]
    labels = {"welcome": "Welcome", "at_risk": "At risk", "win_back": "Win back",
              "next_in_line": "Next in line"}
    assert customers["x"] == list(labels.values())  # every list, an empty one too
    assert dict(zip(customers["x"], customers["y"], strict=True)) == {
        labels[k]: counts.get(k, 0) for k in labels}
    table = html.split('data-card="cards/19_campaign_list.sql"')[1].split("</section>")[0]
    assert table.count("<tr>") - 1 == min(sum(counts.values()), 500)


CLIP_CHECK = """<script>setTimeout(function () {
  var problems = [];
  document.querySelectorAll('section.card').forEach(function (card) {
    var name = card.getAttribute('data-card'), box = card.getBoundingClientRect();
    if (card.scrollHeight > card.clientHeight + 1 || card.scrollWidth > card.clientWidth + 1)
      problems.push(name + ': content larger than the card');
    card.querySelectorAll('.card-title, .card-desc, .scalar-value, .scalar-label')
      .forEach(function (el) {
        var r = el.getBoundingClientRect();
        if (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1
            || r.bottom > box.bottom + 1)
          problems.push(name + ': text cut: ' + el.textContent.slice(0, 50));
      });
    card.querySelectorAll('.table-wrap').forEach(function (el) {
      if (el.scrollWidth > el.clientWidth + 1) problems.push(name + ': table cut at the side');
    });
    card.querySelectorAll('svg.main-svg text').forEach(function (t) {
      var r = t.getBoundingClientRect();
      if (!t.textContent || r.width === 0) return;
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1
          || r.bottom > box.bottom + 1)
        problems.push(name + ': chart text outside the card: ' + t.textContent.slice(0, 40));
    });
  });
  var out = document.createElement('pre'); out.id = 'clip-report';
  out.textContent = JSON.stringify(problems); document.body.appendChild(out);
}, 1500);</script>"""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless chromium is not installed "
                                             "(apt-get install chromium)")
def test_no_title_label_or_table_is_cut_off(page: Path, tmp_path: Path) -> None:
    """Laid out by Chromium at the page's width: every title, description, scalar, axis
    label and table fits its card (the scalar descriptions and the model table used to be
    cut, with an ellipsis or a scrollbar)."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CLIP_CHECK + "</body>"),
                     encoding="utf-8")
    dom = chromium(f"--window-size={WINDOW[0]},{WINDOW[1]}", "--dump-dom",
                   probe.resolve().as_uri()).stdout
    found = re.search(r'<pre id="clip-report">(.*?)</pre>', dom, re.S)
    assert found, "the check did not run"
    assert json.loads(htmllib.unescape(found.group(1))) == []
