"""Size and load time of the HTML pages (report, dashboard page) in headless Chromium.

Target (issue 13, item 3): every page at most 1.5 MB and drawn in under 1.5 s, fully
offline. A page counts as loaded when every plotly chart on it has drawn its SVG; the
time is the page's own clock (`performance.now()`, from navigation start), so browser
start-up is not in it. Chromium is driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`), one fresh browser per page and run, no network.

    .venv/bin/python bench/page_weight.py                      # demo report + dashboard
    .venv/bin/python bench/page_weight.py --real --olist       # also the real data sets
    .venv/bin/python bench/page_weight.py page.html other.html # pages you already have

Without pages it renders them first into bench/out/pages/: `insiders run` on the demo
data (and with --real on the Online Retail file, with --olist on the Olist folder), and
`insiders dashboard` on a SQL store filled by `insiders backfill` of three demo months.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import INSIDERS, OUT, REAL_FILE, REPO, clean_env, median, table

OLIST_DIR = REPO.parent / "shared" / "data" / "olist"
TARGET_BYTES = 1_500_000
TARGET_SECONDS = 1.5
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--window-size=1280,2000"]
# resolves with the page's clock once every chart div holds plotly's SVG
DRAWN = """new Promise((resolve) => {
  const poll = () => {
    const divs = [...document.querySelectorAll("div.plotly-graph-div, div[data-plot]")];
    if (document.readyState !== "loading" && divs.every((d) => d.querySelector(".main-svg"))) {
      const marks = Object.fromEntries(performance.getEntriesByType("mark")
        .map((m) => [m.name, m.startTime]));
      resolve({ms: performance.now(), charts: divs.length, marks: marks});
    } else {
      setTimeout(poll, 5);
    }
  };
  poll();
})"""


class Browser:
    """One headless Chromium spoken to over the DevTools protocol on fds 3 and 4."""

    def __init__(self, chromium: str) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        os.set_inheritable(to_child_r, True)
        os.set_inheritable(from_child_w, True)
        self.profile = tempfile.mkdtemp(prefix="page-weight-")
        self.log = open(Path(self.profile) / "chromium.log", "wb")  # noqa: SIM115

        def fds() -> None:  # the protocol wants its ends exactly on fds 3 and 4
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        self.proc = subprocess.Popen(
            [chromium, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
             "about:blank"],
            preexec_fn=fds, close_fds=False,  # pass_fds would close 3 and 4 after fds()
            stdout=subprocess.DEVNULL, stderr=self.log)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._id = 0

    def call(self, method: str, params: dict | None = None, session: str | None = None
             ) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_child, 1 << 16)
                if not chunk:
                    tail = (Path(self.profile) / "chromium.log").read_text(errors="replace")
                    raise RuntimeError(f"chromium closed the DevTools pipe: {tail[-600:]}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_child)
        os.close(self._from_child)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def load_seconds(chromium: str, page: Path) -> tuple[float, int, dict]:
    """Seconds from navigation start until every chart is drawn, the chart count, and the
    page's `insiders:*` performance marks (ms: plotly unpacked, plotly ready, drawn)."""
    browser = Browser(chromium)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
        browser.call("Page.enable", session=session)
        browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        result = browser.call("Runtime.evaluate", {"expression": DRAWN, "awaitPromise": True,
                                                   "returnByValue": True}, session=session)
        value = result["result"]["value"]
        return value["ms"] / 1000, int(value["charts"]), value.get("marks") or {}
    finally:
        browser.close()


def render_pages(real: bool, olist: bool) -> list[Path]:
    """The report(s) and the dashboard page, rendered fresh into bench/out/pages/."""
    folder = OUT / "pages"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = clean_env()
    runs = {"demo": []}
    if real:
        runs["real"] = ["--input", str(REAL_FILE)]
    if olist:
        runs["olist"] = ["--source", "olist", "--input", str(OLIST_DIR)]
    pages = []
    for name, args in runs.items():
        out = folder / name
        print(f"rendering the {name} report ...", file=sys.stderr)
        subprocess.run([str(INSIDERS), "run", *args, "--out", str(out), "--quiet"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        pages.append(out / "report.html")
    print("filling a SQL store with three demo months, then the dashboard page ...",
          file=sys.stderr)
    home = folder / "home"
    home_env = clean_env(INSIDERS_HOME=str(home))
    subprocess.run([str(INSIDERS), "backfill", "--first-month", "2011-09",
                    "--last-month", "2011-11"], env=home_env, check=True,
                   stdout=subprocess.DEVNULL)
    dashboard = folder / "dashboard.html"
    subprocess.run([str(INSIDERS), "dashboard", "--out", str(dashboard)], env=home_env,
                   check=True, stdout=subprocess.DEVNULL)
    return [*pages, dashboard]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="HTML pages to measure")
    parser.add_argument("--runs", type=int, default=5, help="loads per page (median)")
    parser.add_argument("--real", action="store_true", help="also the Online Retail report")
    parser.add_argument("--olist", action="store_true", help="also the Olist report")
    parser.add_argument("--marks", action="store_true",
                        help="print each load's marks (ms): plotly unpacked, ready, drawn")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("headless chromium is not installed: apt-get install -y chromium",
              file=sys.stderr)
        return 2
    pages = args.pages or render_pages(args.real, args.olist)
    rows, ok = [], True
    for page in pages:
        size = page.stat().st_size
        timings, charts = [], 0
        for _ in range(args.runs):
            seconds, charts, marks = load_seconds(chromium, page)
            timings.append(seconds)
            if args.marks:
                print(f"{page.name}: {seconds:.2f} s", {k: round(v) for k, v in marks.items()},
                      file=sys.stderr)
            time.sleep(0.2)
        load = median(timings)
        verdict = "PASS" if size <= TARGET_BYTES and load < TARGET_SECONDS else "FAIL"
        ok = ok and verdict == "PASS"
        rows.append([str(page.relative_to(REPO) if page.is_relative_to(REPO) else page),
                     f"{size / 1e6:.2f}", charts, f"{load:.2f}", f"{min(timings):.2f}",
                     verdict])
    print(table(["page", "MB", "charts", "load s (median)", "load s (min)",
                 f"<= {TARGET_BYTES / 1e6:.1f} MB, < {TARGET_SECONDS} s"], rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
