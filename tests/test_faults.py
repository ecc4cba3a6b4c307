"""Faults: a writer killed mid-way, and two writers for the same month, across real processes.

(Failures inside the document store and the SQL store mid-write are in test_documents.py and
test_sql_sync.py: the run stays invisible / the previous state stays whole, and a retry
completes it.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from insiders import monthly, stores
from insiders.config import Settings
from insiders.errors import RunLockedError
from insiders.publish import sql_sync

AS_OF = "2011-12-01"
RUN = "2011-11"


def _env(home: Path, source: Path) -> dict:
    return {**os.environ, "INSIDERS_HOME": str(home), "INSIDERS_SOURCE": str(source),
            "INSIDERS_STABILITY_MONTHS": "2", "INSIDERS_BOOTSTRAP": "200"}


def _state(settings: Settings) -> dict:
    with stores.store_from(settings) as store:
        run = store.run(RUN)
        counts = {name: store.count(name, RUN) for name in stores.COLLECTIONS}
        members = sorted(d["customer_id"] for d in store.documents("customers", RUN)
                         if d["is_insider"])
        return {"complete": run is not None, "version": run and run["version"],
                "counts": counts, "members": members,
                "sql": sql_sync.table_counts(settings.sql_url_or_default, RUN)}


@pytest.fixture(scope="module")
def reference(demo_file, tmp_path_factory) -> dict:
    """The same month, run without interruption."""
    home = tmp_path_factory.mktemp("reference")
    settings = Settings(home=home, source=str(demo_file), stability_months=2, bootstrap=200)
    monthly.run_month(AS_OF, settings)
    return _state(settings)


def test_a_run_killed_while_writing_documents_converges_when_run_again(reference, demo_file,
                                                                        tmp_path):
    """The DAG's tasks run in a child process; its write_documents is caught half-way (after
    customers and segments, at the membership insert: a database double makes that call stall
    and say so) and the child is SIGKILLed there. The retry converges."""
    home = tmp_path / "home"
    settings = Settings(home=home, source=str(demo_file))
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from doubles import failing\n"
        "from insiders import pipeline, stages, stores\nfrom insiders.config import Settings\n"
        "from insiders.context import Run\nfrom insiders.publish import documents\n"
        f"month = Run.monthly(Settings.from_env(), {AS_OF!r})\n"
        "month, _ = pipeline.run_stages(month, stages.ANALYSIS)\n"
        "s = month.settings\n"
        "run, docs = documents.build(month.folder, month.month)\n"
        "def stall():\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(600)\n"
        "with stores.store_from(s) as store:\n"
        "    failing(store, 'membership', 'insert_many', before_failing=stall,\n"
        "            stall_only=True).write_run(run, docs)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], env=_env(home, demo_file),
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"  # mid-way through write_documents
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    with stores.store_from(settings) as store:
        assert store.count_written("customers", RUN) == \
            reference["counts"]["customers"]  # half-written: customers are there...
        assert store.count_written("membership", RUN) == 0  # ...membership is not
    after_kill = _state(settings)
    assert not after_kill["complete"]  # readers see nothing of the half-written month
    with stores.store_from(settings) as store:
        lock = store.db["locks"].find_one({"_id": RUN})
    assert lock and lock["owner"] == f"{socket.gethostname()}:{child.pid}"  # left behind

    monthly.run_month(AS_OF, settings.with_(stability_months=2, bootstrap=200))  # the retry
    again = _state(settings)
    assert again == reference  # same documents, same Insiders, same SQL rows


def test_two_writers_for_the_same_month_cannot_both_write(demo_file, tmp_path, month_runs):
    """Another process holds the month: this one is refused and told who and since when;
    once the holder is gone (killed), the month can be written."""
    home = tmp_path / "home"
    settings = Settings(home=home)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from insiders import stores\nfrom insiders.config import Settings\n"
         f"with stores.store_from(Settings(home={str(home)!r})) as s:\n"
         "    with s.lock('2011-11'):\n"
         "        print('locked', flush=True)\n"
         "        time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        run, docs = month_runs["2011-11"]
        with stores.store_from(settings) as store:
            with pytest.raises(RunLockedError) as refused:
                store.write_run(dict(run), {k: list(v) for k, v in docs.items()})
            assert f"run 2011-11 is being written by {socket.gethostname()}:{holder.pid}" in str(
                refused.value)
            assert store.run("2011-11") is None
    finally:
        holder.kill()
        holder.wait()
    with stores.store_from(settings) as store:
        store.write_run(dict(run), {k: list(v) for k, v in docs.items()})
        assert store.run("2011-11") is not None


def test_a_killed_holder_on_another_host_is_taken_over_after_its_lease(tmp_path, month_runs):
    """A worker on another host took the month and died (SIGKILL): it cannot be checked for
    life from here, so the month is refused while its lease runs and taken over once it
    expired; while it was alive it kept renewing, so it was never taken over early."""
    home = tmp_path / "home"
    lease = 2
    settings = Settings(home=home, lock_lease_seconds=lease)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time\n"
         "from insiders import stores\nfrom insiders.config import Settings\n"
         f"with stores.store_from(Settings(home={str(home)!r}, lock_lease_seconds={lease})"
         ") as s:\n"
         "    with s.lock('2011-11', owner='worker-on-another-host:4242'):\n"
         "        print('locked', flush=True)\n"
         "        time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    run, docs = month_runs["2011-11"]
    try:
        assert holder.stdout.readline().strip() == "locked"
        time.sleep(2 * lease)  # alive and renewing: twice its lease later, still its month
        with stores.store_from(settings) as store:
            with pytest.raises(RunLockedError, match="worker-on-another-host:4242"):
                store.write_run(dict(run), {k: list(v) for k, v in docs.items()})
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    killed_at = time.monotonic()
    with stores.store_from(settings) as store:
        with pytest.raises(RunLockedError, match="lease until"):  # its last lease still runs
            store.write_run(dict(run), {k: list(v) for k, v in docs.items()})
        while time.monotonic() - killed_at < lease + 1.5:
            time.sleep(0.25)
        store.write_run(dict(run), {k: list(v) for k, v in docs.items()})  # expired: taken over
        assert store.run("2011-11") is not None
        assert store.db["locks"].count_documents({}) == 0


def test_max_active_runs_keeps_months_in_order():
    """Within Airflow, one month at a time: the DAG refuses to run two months at once."""
    source = (Path(__file__).resolve().parents[1] / "dags" / "insiders_monthly.py").read_text()
    assert "max_active_runs=1" in source
