"""Running the stages: the whole analysis in one process (`insiders run`) and one month of
the monthly service (`insiders backfill`, tests). The DAG runs the same `stages.MONTHLY`,
one task per stage."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from . import stages
from .config import Settings
from .context import Run
from .log import info


def run_stages(run: Run, steps: Sequence[stages.Stage],
               on_stage: Callable[[str], None] | None = None,
               workers: int | None = None) -> tuple[Run, dict[str, dict]]:
    """Run `steps` on `run`, each once the stages it `needs` (among `steps`) are done; after
    extract, a run without an as-of date takes the source's default (the day after the last
    line). Returns the run (with its as-of) and each stage's figures, in the listed order
    (side by side, also `ran`: in this process or a copy, when it started and when its
    result was collected, epoch seconds).

    Up to `workers` stages (default: the settings') run at a time, each ready stage in a
    forked copy of this process, which starts with everything this process has read,
    cached and imported so far, except one that `prefer_main` (what it caches serves the
    stages after it: features, value) or one that is alone (nothing else ready or running),
    unless libraries it does not import are left to load (below): those run here. So the
    value models run here beside the segmentation in a copy; then insiders, forecast,
    evaluate and stability each in a copy, and a copy ending starts the next ready stage at
    once (while this process ran evaluate, forecast waited for it: 1-2 s on the real file).
    On DuckDB (`_engine_here`) one ready stage always runs here, the others in copies.
    While this process would wait for a copy, it loads what later stages import
    (`Stage.loads`: SciPy, scikit-learn, Prophet, plotly's first figure; ~2 s here), one
    piece at a time, collecting a copy that ended between two. So extract and quality run
    in copies while they load, and no stage after them waits for an import: the features
    stage used to import scikit-learn on the run's critical path (1.1 s of the real file's
    11 s), each forecast copy Prophet (0.5 s). A failed copy stops the loading; so does a
    library that fails to load (the stage importing it then reports that, in its words).
    Copies, not threads: most of a stage holds Python's lock, and a copy shares nothing
    it writes. One worker, a platform without fork, Spark (a JVM behind a socket) or a
    push-down (each copy would aggregate the table again) run the stages one by one.
    The first failure stops new stages from starting; the running ones end, then the
    failure of the earliest listed stage is raised: the one a run one by one would have
    stopped at (a file of one customer stops at segment, not at value beside it)."""
    workers = run.settings.workers if workers is None else workers
    steps = list(steps)
    outputs: dict[str, dict] = {}
    if workers <= 1 or not side_by_side_possible(run):
        for stage in steps:
            run = _one(run, stage, outputs, on_stage)
        return run, outputs
    from multiprocessing.connection import wait

    names = {stage.name for stage in steps}
    waiting = list(steps)
    copies: dict = {}  # result pipe -> (stage, process, when it started)
    failures: dict[str, BaseException] = {}
    to_load = libraries_to_load(steps)

    def collect(block: bool) -> None:
        nonlocal run
        if block and to_load and not failures:  # load one while the copies work
            try:
                _load(to_load.pop(0))
            except Exception:  # noqa: BLE001 (the stage that imports it says why, in context)
                to_load.clear()
            block = False
        for pipe in wait(list(copies), timeout=None if block else 0):
            stage, process, started = copies.pop(pipe)
            status, value = _receive(stage, pipe, process)
            if status == "ok":
                value, as_of = value
                outputs[stage.name] = {**value, "ran": {"in": "copy", "started": started,
                                                        "collected": time.time()}}
                if as_of is not None:  # the copy that ran extract decided it
                    run = run.with_as_of(as_of)
                    info("as-of date: %s", run.day.date())
            else:
                failures[stage.name] = value

    while waiting or copies:
        ready = [st for st in waiting if not failures
                 and all(n in outputs or n not in names for n in st.needs)]
        if not ready:
            if not copies:
                if failures:
                    break
                raise RuntimeError("stages " + ", ".join(st.name for st in waiting)
                                   + " need stages that never run")
            collect(block=True)
            continue
        here = next((st for st in ready if st.prefer_main), None)
        if here is None and ((len(ready) == 1 and not copies
                              and not (to_load and not _needs_any(ready[0], to_load)))
                             or _engine_here(run, ready[0])):
            here = ready[0]
        free = workers - len(copies) - (here is not None)
        if free < 0 or (here is None and free == 0):  # every worker is busy
            collect(block=True)
            continue
        for stage in [st for st in ready if st is not here][:max(free, 0)]:
            waiting.remove(stage)
            if on_stage:
                on_stage(stage.name)
            started = time.time()
            pipe, process = _fork(stage, run)
            copies[pipe] = (stage, process, started)
        if here is None:  # this process waits for the copies (it runs no stage of its own)
            continue
        waiting.remove(here)
        started = time.time()
        try:
            run = _one(run, here, outputs, on_stage)
        except BaseException as exc:  # the copies end first, then it is raised
            failures[here.name] = exc
        else:
            outputs[here.name]["ran"] = {"in": "main", "started": started,
                                         "collected": time.time()}
        collect(block=False)
    if failures:
        raise next(failures[st.name] for st in steps if st.name in failures)
    return run, {stage.name: outputs[stage.name] for stage in steps}


_READIED: set[str] = set()  # the `module:function` loads this process has called


def libraries_to_load(steps: Sequence[stages.Stage]) -> list[str]:
    """The `loads` of `steps` this process has not loaded yet, in the order the stages come:
    modules not imported, `module:function` entries not called here."""
    import sys

    names = dict.fromkeys(name for stage in steps for name in stage.loads)
    return [name for name in names
            if name.partition(":")[0] not in sys.modules or (":" in name and name not in _READIED)]


def _needs_any(stage: stages.Stage, names: list[str]) -> bool:
    return any(name in names for name in stage.loads)


def _load(name: str) -> None:
    import importlib

    module, _, function = name.partition(":")
    loaded = importlib.import_module(module)
    if function:
        getattr(loaded, function)()
        _READIED.add(name)


def side_by_side_possible(run: Run) -> bool:
    """Stages may run in forked copies of this process (see `run_stages`)."""
    import multiprocessing as mp
    import sys

    from .engine import pushdown

    return (sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()
            and run.settings.engine != "spark" and not run.settings.pushdown
            and not (run.folder.has_stage("extract") and pushdown.pushed_down(run.folder)))


def _engine_here(run: Run, stage: stages.Stage) -> bool:
    """The run's lines are aggregated by DuckDB (`engine.steps.lines_of`): a copy opens a
    connection of its own and reads the lines again, which cost more than waiting for this
    process (10x set: 2-4 s more CPU), so here one ready stage runs in this process.
    Extract reads no lines through the engine (and before it the engine is not known: an
    earlier run's figures in the folder must not decide)."""
    from .engine import steps

    return stage is not stages.extract and steps.engine_name(run) != "pandas"


def _fork(stage: stages.Stage, run: Run):
    """`stage(run)` in a forked copy of this process; its figures come back through a pipe."""
    import multiprocessing as mp
    import sys

    context = mp.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    sys.stdout.flush()
    sys.stderr.flush()
    process = context.Process(target=_in_copy, args=(stage, run, send, os.getpid()), daemon=True,
                              name=f"insiders-{stage.name}")
    process.start()
    send.close()
    return receive, process


def _in_copy(stage: stages.Stage, run: Run, send, parent: int) -> None:
    _die_with(parent)
    try:
        figures = stage(run)
        as_of = None
        if stage is stages.extract and run.as_of is None:  # from the folder it just wrote
            as_of = run.source.default_as_of(run.folder)
        message = ("ok", (figures, as_of))
    except BaseException as exc:  # noqa: BLE001 (handed to the parent, which raises it)
        message = ("error", _portable(exc, stage))
    send.send(message)
    send.close()


def _die_with(parent: int) -> None:
    """A copy ends with its parent, even a killed one (Linux: PR_SET_PDEATHSIG): no orphan
    goes on writing into a folder that a retry is already rewriting."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the call
        os._exit(1)


def _portable(exc: BaseException, stage: stages.Stage) -> BaseException:
    """The exception itself when it survives pickling (an InputError stays one), else a
    RuntimeError carrying the copy's traceback."""
    import pickle
    import traceback

    try:
        return pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 (any unpicklable exception)
        text = "".join(traceback.format_exception(exc))
        return RuntimeError(f"stage {stage.name} failed in its process:\n{text}")


def _receive(stage: stages.Stage, pipe, process) -> tuple[str, object]:
    try:
        status, value = pipe.recv()
    except EOFError:  # it died without a word (killed, out of memory)
        process.join()
        return "error", RuntimeError(f"stage {stage.name} ended without a result (exit code "
                                     f"{process.exitcode}); see the log above")
    finally:
        pipe.close()
    process.join()
    return status, value


def _one(run: Run, stage: stages.Stage, outputs: dict[str, dict],
         on_stage: Callable[[str], None] | None) -> Run:
    if on_stage:
        on_stage(stage.name)
    outputs[stage.name] = stage(run)
    if stage is stages.extract and run.as_of is None:
        run = _decide_as_of(run)
    return run


def _decide_as_of(run: Run) -> Run:
    run = run.with_as_of(run.source.default_as_of(run.folder))
    info("as-of date: %s", run.day.date())
    return run


def run(
    settings: Settings,
    source: str | Path | None = None,
    as_of: str | pd.Timestamp | None = None,
    out_dir: str | Path = "insiders-out",
    kind: str | None = None,
    previous_members: set[str] | None = None,
    on_stage: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Every analysis stage into `out_dir` (nothing is published to the stores)."""
    one = Run.one_off(settings, out_dir, source, as_of, kind, previous_members, progress)
    done, outputs = run_stages(one, stages.ANALYSIS, on_stage)
    return {"as_of": str(done.day.date()),
            "timings": {name: out["seconds"] for name, out in outputs.items()},
            **outputs["report"]}
