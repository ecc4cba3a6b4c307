"""Helpers shared by the bench scripts: paths, measured subprocesses, tables, machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
PYTHON = BIN / "python"
INSIDERS = BIN / "insiders"
AIRFLOW = BIN / "airflow"
OUT = REPO / "bench" / "out"
REAL_FILE = REPO.parent / "shared" / "data" / "online_retail.csv.gz"
REAL_ROWS = 541_909
MB = 1024 * 1024

# variables that would change what the measured commands do: never inherit them
_SCRUB = ("INSIDERS_", "AIRFLOW_", "AIRFLOW__")


@dataclass
class Measured:
    """One finished subprocess: wall and CPU seconds, peak RSS (max over it and its children)."""

    cmd: list[str]
    seconds: float
    peak_mb: float
    cpu_seconds: float  # user + system, the process and the children it waited for
    returncode: int
    stdout: str
    stderr: str
    # the whole process tree's memory at its largest, sampled: the sum of each process's
    # proportional share (PSS), so pages a forked copy shares with its parent count once
    tree_peak_mb: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 15) -> str:
        return "\n".join((self.stdout + self.stderr).strip().splitlines()[-lines:])


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without INSIDERS_*/AIRFLOW_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def thread_env(threads: int | None) -> dict[str, str]:
    """Variables that cap the OpenMP/BLAS thread pools (empty when `threads` is None)."""
    if not threads:
        return {}
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    return {name: str(threads) for name in names}


def measure(cmd: list[str | Path], env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Measured:
    """Run `cmd` to completion; times and peak RSS from wait4 (the child and its children)."""
    cmd = [str(c) for c in cmd]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd or REPO)
        sampler = TreeMemory(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        tree_peak = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(cmd, seconds, usage.ru_maxrss / 1024,
                        usage.ru_utime + usage.ru_stime, proc.returncode, out.read(), err.read(),
                        tree_peak)


class TreeMemory:
    """Samples the summed PSS of a process and its descendants (Linux /proc) every
    `every` seconds in a thread; `stop()` gives the largest sum seen, in MB (NaN elsewhere).
    Peak RSS from wait4 is the largest single process; this is what the tree held at once."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        import threading

        self.pid, self.every, self.peak = pid, every, float("nan")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        if Path("/proc/self/smaps_rollup").exists():
            self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(self.every):
            total = sum(_pss_kb(p) for p in _tree(self.pid)) / 1024
            if total and not total <= self.peak:  # NaN at first
                self.peak = total

    def stop(self) -> float:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.peak


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants now (each /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(c) for c in children.read_text().split())
            except OSError:
                continue
    return found


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


def stage_seconds(run_dir: Path, stages: tuple[str, ...]) -> dict[str, float]:
    """Per-stage seconds from a run folder's work/<stage>.json files (absent stages skipped)."""
    out = {}
    for name in stages:
        path = run_dir / "work" / f"{name}.json"
        if path.exists():
            out[name] = float(json.loads(path.read_text())["seconds"])
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain text table, numbers right-aligned (pastes into Markdown as a code block)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False
               for i in range(len(headers))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) or value in ("", "-", "n/a")


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def load() -> str:
    """The 1/5/15-minute load averages (the machine is shared: noise shows up here)."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def machine() -> str:
    """CPU model, cores, memory, OS and Python, in one line."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                      .splitlines() if line.startswith("MemTotal"))
        memory = f"{mem_kb / MB:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown memory"
    return (f"{model}, {os.cpu_count()} cores, {memory} RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def code_version() -> str:
    """HEAD of the repository and whether plugins/ or dags/ differ from it (others edit too)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                                  text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "plugins", "dags")
    return head + (" + uncommitted changes in plugins/ or dags/" if dirty else " (clean)")


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
