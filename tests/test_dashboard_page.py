"""The static dashboard page: same cards as Metabase, safe HTML, and it renders in Chromium."""

from __future__ import annotations

import os
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
WINDOW = (1400, 3100)  # tall enough for the whole dashboard


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
    assert format_value(192708.12) == "192,708"
    assert format_value(0.42831) == "0.428"
    assert format_value(None) == "–" and format_value(float("nan")) == "–"
    assert format_value(True) == "yes"


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
