"""Stages side by side (`pipeline.run_stages`): what each stage `needs` decides the order;
with two workers, independent stages run at once, the extra one in a forked copy of the
process. The run must come out exactly as one stage at a time, a failure in a copy must
reach the caller and stop what follows, and a copy must never outlive its parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from insiders import pipeline, stages
from insiders.catalog import RunFolder
from insiders.config import Settings
from insiders.context import Run
from insiders.errors import InputError, InsidersError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="side by side needs fork (Linux); elsewhere one by one")


def _outputs(folder: Path) -> dict:
    """Everything a run wrote that a reader sees, without the seconds each stage took."""
    run = RunFolder(folder)
    stage_files = {}
    for name in (s.name for s in stages.ANALYSIS):
        figures = run.stage(name)
        figures.pop("seconds", None)
        figures.get("value_model", {}).pop("seconds", None)
        figures.pop("value_contest_seconds", None)
        if name == "report":  # the paths it wrote (each run its own folder)
            figures = {k: Path(v).name for k, v in figures.items()}
        stage_files[name] = figures
    return {
        "answers": json.loads((folder / "answers.json").read_text()),
        "insiders_csv": (folder / "insiders.csv").read_text(),
        "campaigns_csv": (folder / "campaigns.csv").read_text(),
        "customers": pd.read_parquet(folder / "customers.parquet"),
        "stages": stage_files,
    }


def test_side_by_side_gives_the_run_one_by_one_gives(demo_file: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(home=tmp_path / "home")
    ran = {}
    for workers in (1, 2):
        run = Run.one_off(settings.with_(workers=workers), tmp_path / f"w{workers}", demo_file)
        # as in a fresh process: nothing readied yet (earlier tests may have readied all)
        monkeypatch.setattr(pipeline, "_READIED", set())
        left_to_load = pipeline.libraries_to_load(stages.ANALYSIS)
        _, ran[workers] = pipeline.run_stages(run, stages.ANALYSIS)
    one, two = _outputs(tmp_path / "w1"), _outputs(tmp_path / "w2")
    pd.testing.assert_frame_equal(one.pop("customers"), two.pop("customers"))
    assert one == two
    # one by one: all here, in the listed order; side by side: the segments in a copy while
    # the values are computed here (so each really ran beside the other); where stages are
    # ready and none prefers this process, each runs in a copy, so that one ending starts
    # the next at once (the forecast, listed first, before evaluate)
    assert all("ran" not in out for out in ran[1].values())
    assert list(ran[2]) == [s.name for s in stages.ANALYSIS]
    assert ran[2]["stability"]["ran"]["in"] == "copy"
    assert ran[2]["value"]["ran"]["in"] == "main"
    assert ran[2]["segment"]["ran"]["in"] == "copy"
    assert ran[2]["segment"]["ran"]["started"] < ran[2]["value"]["ran"]["collected"]
    assert ran[2]["insiders"]["ran"]["in"] == "copy"
    assert ran[2]["forecast"]["ran"]["in"] == ran[2]["evaluate"]["ran"]["in"] == "copy"
    assert ran[2]["forecast"]["ran"]["started"] <= ran[2]["evaluate"]["ran"]["started"]
    # extract runs in a copy while this process loads what later stages import, if any is
    # left (the run one by one imported every module; the readying functions are left)
    assert left_to_load == ["insiders.models.forecast:prophet_class",
                            "insiders.dashboards.htmlkit:ready_plotly"]
    assert ran[2]["extract"]["ran"]["in"] == "copy"
    assert ran[2]["features"]["ran"]["in"] == ran[2]["report"]["ran"]["in"] == "main"
    running = [(out["ran"]["started"], out["ran"]["collected"]) for out in ran[2].values()]
    assert max(sum(a <= t < b for a, b in running) for t, _ in running) <= 2  # 2 workers
    for stage in stages.ANALYSIS:  # nothing started before what it needs had ended
        for need in stage.needs:
            assert ran[2][need]["ran"]["collected"] <= ran[2][stage.name]["ran"]["started"]


def _run(tmp_path: Path, workers: int = 2) -> Run:
    return Run.one_off(Settings(home=tmp_path / "home", workers=workers), tmp_path / "out",
                       "unused", as_of="2011-12-01")


def _write_pid(run: Run, name: str) -> None:
    (run.folder.path / f"{name}.pid").write_text(str(os.getpid()))


def test_a_failure_in_a_copy_reaches_the_caller_and_stops_what_follows(tmp_path: Path) -> None:
    def slow(run: Run) -> dict:
        _write_pid(run, "here")
        time.sleep(0.5)
        return {"done": True}

    def bad(run: Run) -> dict:
        _write_pid(run, "copy")
        raise InputError("orders.csv, row 7, column Quantity: not a number")

    first = stages.Stage("first", lambda run: {"n": 1})
    here = stages.Stage("here", slow, needs=("first",), prefer_main=True)
    copy = stages.Stage("copy", bad, needs=("first",))
    last = stages.Stage("last", lambda run: {"n": 2}, needs=("here", "copy"))
    run = _run(tmp_path)
    with pytest.raises(InputError, match="row 7, column Quantity"):
        pipeline.run_stages(run, [first, here, copy, last])
    folder = run.folder
    assert folder.has_stage("first") and folder.has_stage("here")  # the running one ended
    assert not folder.has_stage("copy") and not folder.has_stage("last")
    pids = {name: int((folder.path / f"{name}.pid").read_text()) for name in ("here", "copy")}
    assert pids["here"] == os.getpid() != pids["copy"]


def test_when_stages_side_by_side_both_fail_the_earliest_listed_error_is_raised(
        tmp_path: Path) -> None:
    """A file of one customer cannot be segmented, and the value models beside the
    segmentation fail on it too: the user hears what a run one stage at a time says (the
    segment stage's reason), whichever failed first or ran in this process."""

    def segment_fails(run: Run) -> dict:
        _write_pid(run, "segment")
        time.sleep(0.5)  # fails after the other one
        raise InputError("one.csv: only 1 customer: too few to segment")

    def value_fails(run: Run) -> dict:
        _write_pid(run, "value")
        raise InputError("one.csv: nobody bought again")

    first = stages.Stage("first", lambda run: {"n": 1})
    segment = stages.Stage("segment", segment_fails, needs=("first",))
    value = stages.Stage("value", value_fails, needs=("first",), prefer_main=True)
    for workers in (1, 2):
        run = Run.one_off(Settings(home=tmp_path / "home", workers=workers),
                          tmp_path / f"w{workers}", "unused", as_of="2011-12-01")
        with pytest.raises(InputError, match="too few to segment"):
            pipeline.run_stages(run, [first, segment, value])
    pids = {name: int((tmp_path / "w2" / f"{name}.pid").read_text())
            for name in ("segment", "value")}
    assert pids["value"] == os.getpid() != pids["segment"]  # prefer_main: value ran here


def _slow_module(tmp_path: Path, name: str, seconds: float) -> None:
    """A module whose import takes `seconds` and notes which process imported it, when."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
        import os, time
        started = time.time()
        time.sleep({seconds})
        imported = (os.getpid(), started, time.time())
    """))


def test_libraries_later_stages_import_load_here_while_a_copy_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What later stages import loads in this process while the first stages run in copies:
    the first stage (it imports nothing of them) goes to a copy, the libraries load here,
    one at a time, while it runs, and the stage that imports them runs here after, without
    waiting for an import. A stage that itself imports what is left runs here."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("slow_lib_a", "slow_lib_b", "slow_lib_c"):
        _slow_module(tmp_path, name, 0.3)
        monkeypatch.delitem(sys.modules, name, raising=False)

    def note(name: str):
        def func(run: Run) -> dict:
            run.folder.path.mkdir(parents=True, exist_ok=True)
            _write_pid(run, name)
            loaded = sorted(m for m in ("slow_lib_a", "slow_lib_b", "slow_lib_c")
                            if m in sys.modules)
            if name == "first":
                time.sleep(2.0)
            return {"loaded": loaded, "ended": time.time()}
        return func

    first = stages.Stage("first", note("first"))
    model = stages.Stage("model", note("model"), needs=("first",),
                         loads=("slow_lib_a", "slow_lib_b"))
    last = stages.Stage("last", note("last"), needs=("model",), loads=("slow_lib_c",))
    run = Run.one_off(Settings(home=tmp_path / "home", engine="pandas"), tmp_path / "out",
                      "unused", as_of="2011-12-01")
    assert pipeline.libraries_to_load([first, model, last]) == ["slow_lib_a", "slow_lib_b",
                                                                 "slow_lib_c"]
    _, ran = pipeline.run_stages(run, [first, model, last])
    pids = {n: int((run.folder.path / f"{n}.pid").read_text()) for n in ran}
    assert pids["first"] != os.getpid() == pids["model"] == pids["last"]
    assert ran["first"]["ran"]["in"] == "copy" and ran["model"]["ran"]["in"] == "main"
    figures = {n: run.folder.stage(n) for n in ran}
    assert figures["first"]["loaded"] == []  # forked before any was loaded
    assert figures["model"]["loaded"] == figures["last"]["loaded"] == [
        "slow_lib_a", "slow_lib_b", "slow_lib_c"]
    imported = {n: sys.modules[n].imported for n in ("slow_lib_a", "slow_lib_b", "slow_lib_c")}
    assert {pid for pid, _, _ in imported.values()} == {os.getpid()}
    # one after the other, all while the copy ran (it sleeps 2 s; the three take 0.9)
    spans = sorted((start, end) for _, start, end in imported.values())
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert ran["first"]["ran"]["started"] <= spans[0][0]
    assert spans[-1][1] <= figures["first"]["ended"]


def test_a_failed_copy_stops_the_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("slow_lib_d", "slow_lib_e"):
        _slow_module(tmp_path, name, 0.4)
        monkeypatch.delitem(sys.modules, name, raising=False)

    def bad(run: Run) -> dict:
        raise InputError("lines.csv, row 2, column InvoiceDate: not a date")

    # two copies: one fails at once, the other runs on for 1.5 s, while this process waits
    bad_one = stages.Stage("bad", bad)
    slow = stages.Stage("slow", lambda run: time.sleep(1.5) or {})
    model = stages.Stage("model", lambda run: {}, needs=("bad", "slow"),
                         loads=("slow_lib_d", "slow_lib_e"))
    run = Run.one_off(Settings(home=tmp_path / "home", engine="pandas"), tmp_path / "out",
                      "unused", as_of="2011-12-01")
    with pytest.raises(InputError, match="row 2, column InvoiceDate"):
        pipeline.run_stages(run, [bad_one, slow, model])
    # the error ended the loading after the piece that was loading, though the other copy
    # ran long enough for both
    assert "slow_lib_d" in sys.modules and "slow_lib_e" not in sys.modules


def test_a_library_that_fails_to_load_is_left_to_the_stage_that_imports_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading ahead is a speed-up, never a new way to fail: a module that raises on import
    stops the loading, the run goes on, and the stage that imports it fails as it would
    have (here its own error, raised from the stage)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_lib_f.py").write_text("raise ImportError('libbroken.so: not found')\n")
    _slow_module(tmp_path, "slow_lib_g", 0.1)
    for name in ("broken_lib_f", "slow_lib_g"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    def uses_it(run: Run) -> dict:
        import broken_lib_f  # noqa: F401

        return {}

    first = stages.Stage("first", lambda run: time.sleep(0.5) or {})
    fine = stages.Stage("fine", lambda run: {}, needs=("first",),
                        loads=("broken_lib_f", "slow_lib_g"))
    user = stages.Stage("user", uses_it, needs=("fine",), loads=("broken_lib_f",))
    run = Run.one_off(Settings(home=tmp_path / "home", engine="pandas"), tmp_path / "out",
                      "unused", as_of="2011-12-01")
    _, ran = pipeline.run_stages(run, [first, fine])  # nothing imports it: the run ends
    assert set(ran) == {"first", "fine"} and "slow_lib_g" not in sys.modules
    with pytest.raises(ImportError, match="libbroken.so"):
        pipeline.run_stages(run, [first, fine, user])


def test_a_copy_that_dies_is_an_error_naming_its_stage(tmp_path: Path) -> None:
    first = stages.Stage("first", lambda run: {"n": 1})
    here = stages.Stage("here", lambda run: {"n": 2}, needs=("first",))
    dies = stages.Stage("dies", lambda run: os._exit(3), needs=("first",))
    with pytest.raises(RuntimeError, match=r"stage dies ended without a result \(exit code 3\)"):
        pipeline.run_stages(_run(tmp_path), [first, here, dies])


def test_one_worker_runs_every_stage_here_in_order(tmp_path: Path) -> None:
    order = []

    def note(name: str):
        return lambda run: order.append((name, os.getpid())) or {}

    steps = [stages.Stage("a", note("a")), stages.Stage("b", note("b"), needs=("a",)),
             stages.Stage("c", note("c"), needs=("a",))]
    pipeline.run_stages(_run(tmp_path, workers=1), steps)
    assert order == [("a", os.getpid()), ("b", os.getpid()), ("c", os.getpid())]
    with pytest.raises(InsidersError, match="workers 0"):
        Settings(workers=0)


def test_a_copy_ends_with_its_killed_parent(tmp_path: Path) -> None:
    """SIGKILL to `insiders run` (an OOM killer, a cancelled task) takes its copies along:
    none goes on writing into a folder that a retry rewrites."""
    pid_file = tmp_path / "out" / "copy.pid"
    code = textwrap.dedent(f"""
        import os, sys, time
        from insiders import pipeline, stages
        from insiders.config import Settings
        from insiders.context import Run

        def copy(run):
            (run.folder.path / "copy.pid").write_text(str(os.getpid()))
            time.sleep(120)
            return {{}}

        def here(run):
            print("running", flush=True)
            time.sleep(120)
            return {{}}

        run = Run.one_off(Settings(home={str(tmp_path / "home")!r}, workers=2),
                          {str(tmp_path / "out")!r}, "unused", as_of="2011-12-01")
        first = stages.Stage("first", lambda run: {{}})
        pipeline.run_stages(run, [first, stages.Stage("here", here, needs=("first",)),
                                  stages.Stage("copy", copy, needs=("first",))])
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "running"
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_bench_counts_memory_a_copy_shares_once(tmp_path: Path) -> None:
    """bench/benchlib.measure: the tree's summed PSS sees a forked copy's own memory, and
    the pages it only inherited count once (not twice, as summed RSS would)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import benchlib

    code = textwrap.dedent("""
        import os, time
        inherited = bytearray(300 * 2**20)  # shared with the copy, never written there
        pid = os.fork()
        if pid == 0:
            own = bytearray(200 * 2**20)  # the copy's own
            time.sleep(1.5)
            os._exit(0)
        os.waitpid(pid, 0)
    """)
    done = benchlib.measure([sys.executable, "-c", code])
    assert done.ok
    # the copy's RSS holds both (500 MB), the parent's the 300 it shares: summed RSS would
    # say 800 MB, PSS counts the shared 300 once (wait4's peak is no help here: a child
    # forked from this large test process starts with its RSS)
    assert 480 <= done.tree_peak_mb < 650


def test_on_duckdb_one_ready_stage_runs_here(demo_file: Path, tmp_path: Path) -> None:
    """A copy on DuckDB opens its own connection and reads the lines again: there this
    process keeps one of the ready stages (insiders, then forecast) rather than waiting."""
    settings = Settings(home=tmp_path / "home", engine="duckdb", workers=2)
    run = Run.one_off(settings, tmp_path / "duck", demo_file)
    _, ran = pipeline.run_stages(run, stages.ANALYSIS)
    assert ran["insiders"]["ran"]["in"] == ran["forecast"]["ran"]["in"] == "main"
    # the segments beside the values; stability goes wherever a worker is free first
    assert ran["segment"]["ran"]["in"] == "copy" and ran["value"]["ran"]["in"] == "main"
