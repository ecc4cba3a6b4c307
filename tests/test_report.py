"""The report: self-contained, the nine questions in order, data values escaped, renders.

It is built from the demo pipeline run (shared with test_pipeline.py), then
rendered again with customer ids and personas that carry markup, and opened in
headless chromium to check that the markup stays text.
"""

from __future__ import annotations

import copy
import html
import re
import shutil
import struct
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from conftest import dump_dom, screenshot
from insiders.publish import report
from test_pipeline import answers as read_answers
from test_pipeline import run_demo_pipeline

SCREENS = Path("/tmp/insiders-screens")
ORDER = ["who", "how_many", "characteristics", "revenue_share", "expected_revenue", "entry",
         "exit", "guarantee", "actions"]
SCRIPT = "<script>alert(1)</script>"
BOLD = "<b>bold</b>"
# if this ran, the page's <html> element would carry data-pwned="1"
MARKER = "<script>document.documentElement.setAttribute('data-pwned','1')</script>"


@pytest.fixture(scope="module")
def run(demo_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_demo_pipeline(demo_file, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def inputs(run: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    return (read_answers(run), pd.read_parquet(run / "customers.parquet"),
            pd.read_parquet(run / "work/cohorts.parquet"))


class _Dom(HTMLParser):
    """Elements and visible text of a page (script and style bodies kept apart)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in.append(tag)
            if tag == "script":
                self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "script":
            self.scripts[-1] += data
        elif not self._in:
            self.text.append(data)


def parse(page: str) -> _Dom:
    dom = _Dom()
    dom.feed(page)
    return dom


def sections(page: str) -> list[tuple[str, str]]:
    """(id, html) of each <section>, in page order."""
    return re.findall(r"<section id='([^']+)'>(.*?)</section>", page, flags=re.S)


# --------------------------------------------------------------------------- the demo report


def test_report_is_self_contained(run: Path) -> None:
    page = (run / "report.html").read_text(encoding="utf-8")
    dom = parse(page)
    for tag, attrs in dom.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"(https?:)?//", value), f"<{tag} {name}={value}> loads a URL"
    assert "@import" not in page and "<link" not in page
    # plotly.js itself is inlined exactly once, however many figures there are
    assert page.count('id="insiders-plotly"') == 1
    assert page.count('data-figure=') >= 9


def test_the_nine_questions_in_order(run: Path) -> None:
    page = (run / "report.html").read_text(encoding="utf-8")
    a = read_answers(run)
    found = sections(page)
    assert [sid for sid, _ in found][:9] == ORDER
    keys = ["who", "how_many", "characteristics", "revenue_share", "expected_revenue",
            "entry_conditions", "exit_conditions", "guarantee", "marketing_actions"]
    for number, ((sid, body), key) in enumerate(zip(found[:9], keys, strict=True), start=1):
        assert f"<span class='n'>{number}</span>" in body, sid
        assert html.escape(a[key]["text"], quote=True) in body, sid  # its answer, as text
    # the analyst's sections follow the nine answers
    assert {"quality", "model", "stability", "cohorts"} <= {sid for sid, _ in found[9:]}


def test_who_note_counts_the_members_shown(inputs: tuple) -> None:
    a, customers, cohorts = inputs
    few = customers.copy()
    keep = few[few["is_insider"]].sort_values("value_rank").head(5).index
    few["is_insider"] = few.index.isin(keep)
    body = dict(sections(report.render(a, few, cohorts)))["who"]
    assert body.count("<tr>") == 1 + 5  # the header and every member
    assert "Top 20 of 5." not in body


def test_kpis_repeat_the_answers(inputs: tuple) -> None:
    a, customers, cohorts = inputs
    page = report.render(a, customers, cohorts)
    header = page.split("</header>")[0]
    assert f"<b>{a['how_many']['count']:,}</b><span>Insiders</span>" in header
    assert f"{a['how_many']['share_of_customers']:.1%}" in header
    assert f"expected in the next {len(a['expected_revenue']['months'])} months" in header


# --------------------------------------------------------------------------- hostile values


def hostile(a: dict, customers: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """The top Insider's id and the first persona carry markup, as a CRM export might."""
    a, customers = copy.deepcopy(a), customers.copy()
    top = a["who"]["customer_ids"][0]
    evil_id = SCRIPT + BOLD
    persona = a["marketing_actions"]["segments"][0]["persona"]
    evil_persona = f"{BOLD}{SCRIPT}{MARKER}"
    customers["customer_id"] = customers["customer_id"].replace(top, evil_id)
    customers["persona"] = customers["persona"].replace(persona, evil_persona)
    a["who"]["customer_ids"][0] = evil_id
    a["who"]["text"] = a["who"]["text"].replace(top, evil_id)
    a["who"]["top"][0]["customer_id"] = evil_id
    for s in a["marketing_actions"]["segments"]:
        if s["persona"] == persona:
            s["persona"] = evil_persona
            s["description"] = "<img src=x onerror=alert(1)> " + s["description"]
    assert evil_id in a["who"]["text"]
    return a, customers


def test_markup_in_the_data_is_escaped(inputs: tuple) -> None:
    a, customers, cohorts = inputs
    page = report.render(*hostile(a, customers), cohorts)
    for raw in (SCRIPT, BOLD, MARKER, "<img src=x"):
        assert raw not in page
    assert html.escape(SCRIPT) in page and html.escape(BOLD) in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    dom = parse(page)
    assert not any(s.strip() in ("alert(1)", MARKER[8:-9]) for s in dom.scripts)
    text = "".join(dom.text)
    assert SCRIPT + BOLD in text  # the id reads as it is, markup and all
    assert f"{BOLD}{SCRIPT}{MARKER}" in text


@pytest.fixture(scope="module")
def hostile_dom(inputs: tuple, chromium: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The hostile report as chromium built it, after its scripts ran."""
    a, customers, cohorts = inputs
    page = tmp_path_factory.mktemp("hostile") / "hostile.html"
    report.write(page, *hostile(a, customers), cohorts)
    return dump_dom(chromium, page)


@pytest.mark.browser
def test_markup_stays_text_in_a_browser(hostile_dom: str) -> None:
    assert 'data-pwned="1"' not in hostile_dom  # the marker script never ran
    dom = parse(hostile_dom)
    assert not any(s.strip() in ("alert(1)", MARKER[8:-9]) for s in dom.scripts)
    assert not any(tag == "img" and attrs.get("src") == "x" for tag, attrs in dom.tags)
    assert BOLD not in hostile_dom  # no <b> element was made from the data
    text = "".join(dom.text)
    assert SCRIPT + BOLD in text and f"{BOLD}{SCRIPT}{MARKER}" in text
    # plotly drew the charts (their SVG is in the DOM), so the page's own scripts did run
    assert hostile_dom.count('class="main-svg"') >= 9


@pytest.mark.browser
def test_markup_stays_text_in_chart_labels(hostile_dom: str) -> None:
    assert 'font-weight:bold">bold</tspan>' not in hostile_dom


def test_bad_outcomes_are_said_plainly(inputs: tuple) -> None:
    """No out-of-time check, a naive forecast, Insiders who did worse: the page says so."""
    a, customers, cohorts = inputs
    a = copy.deepcopy(a)
    a["expected_revenue"]["method"] = "naive"
    for m in a["expected_revenue"]["months"]:
        m["lower"] = m["upper"] = None
    a["expected_revenue"]["backtest"] = {"available": False, "text": "Not enough history "
                                                                     "before 2011-09-10."}
    page = report.render(a, customers, cohorts)
    body = dict(sections(page))
    assert "Not enough history before 2011-09-10." in body["expected_revenue"]
    assert "n/a" in body["expected_revenue"]  # no interval to show
    worse = copy.deepcopy(a)
    oot = worse["guarantee"]["out_of_time"]
    oot["insiders"]["revenue_per_customer"] = oot["rest"]["revenue_per_customer"] - 1
    assert "<div class='answer warn'>" in dict(sections(report.render(worse, customers,
                                                                       cohorts)))["guarantee"]
    assert "<div class='answer ok'>" in body["guarantee"]  # the demo's Insiders did better
    gone = copy.deepcopy(a)
    gone["guarantee"]["out_of_time"] = {"available": False, "text": "Not enough history for "
                                                                    "an out-of-time check."}
    page = report.render(gone, customers, cohorts)
    assert "Not enough history for an out-of-time check." in dict(sections(page))["guarantee"]


# --------------------------------------------------------------------------- screenshot


@pytest.mark.browser
def test_screenshot_of_the_demo_report(run: Path, chromium: str, tmp_path: Path) -> None:
    png = screenshot(chromium, run / "report.html", tmp_path / "report.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == (1280, 2400)
    assert len(data) > 50_000  # charts and tables, not a blank page
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, SCREENS / "report.png")  # for people to look at
