"""Shared fixtures. Airflow's environment is set before anything imports airflow."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REAL_FILE = SHARED_DATA / "online_retail.csv.gz"
OLIST_DIR = SHARED_DATA / "olist"

# Airflow reads its configuration at import: give the test session its own home and database.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="insiders-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                      f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
# no INSIDERS_* setting of the developer's shell may leak into tests
for _name in [n for n in os.environ if n.startswith("INSIDERS_") and not n.startswith(
        "INSIDERS_TEST_")]:
    del os.environ[_name]


@pytest.fixture(scope="module")
def one_thread():
    """One OpenMP/BLAS thread for a module of small model fits: as fast, and scikit-learn's
    spinning worker threads do not fight over a busy 2-core machine (ten times slower)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small deterministic demo data set (Online Retail layout, ~60k lines, 300 customers)."""
    from insiders import demo

    return demo.write(tmp_path_factory.mktemp("demo") / "demo.csv.gz", customers=300, seed=11)


@pytest.fixture(scope="session")
def real_file() -> Path:
    if not REAL_FILE.exists():
        pytest.skip(f"the real data set is not here ({REAL_FILE}); it lives in ../shared/data")
    return REAL_FILE


@pytest.fixture(scope="session")
def olist_dir() -> Path:
    if not OLIST_DIR.exists():
        pytest.skip(f"the Olist data set is not here ({OLIST_DIR}); it lives in ../shared/data")
    return OLIST_DIR


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A PostgreSQL superuser URL (started by .ci/run via .ci/start-postgres.sh)."""
    url = os.environ.get("INSIDERS_TEST_PG_URL")
    if not url:
        pytest.skip("INSIDERS_TEST_PG_URL is not set: run `bash .ci/start-postgres.sh` and export "
                    "the URL it prints (.ci/run does)")
    return url


@pytest.fixture
def fresh_pg(pg_url: str) -> str:
    """An empty PostgreSQL database of its own for one test (dropped afterwards)."""
    import uuid

    import sqlalchemy as sa

    name = f"insiders_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does)")
    return path


def screenshot(chromium: str, page: Path, out: Path, width: int = 1280, height: int = 2400
               ) -> Path:
    """Render a local page headless and save a PNG (the flags these machines need)."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", f"--user-data-dir={profile}", "--virtual-time-budget=8000",
         f"--window-size={width},{height}", f"--screenshot={out}", page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    return out


def dump_dom(chromium: str, page: Path) -> str:
    profile = tempfile.mkdtemp(prefix="chromium-")
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", f"--user-data-dir={profile}", "--virtual-time-budget=8000",
         "--dump-dom", page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120, text=True,
    )
    return done.stdout


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty INSIDERS_HOME for one test (embedded stores live under it)."""
    path = tmp_path / "home"
    monkeypatch.setenv("INSIDERS_HOME", str(path))
    return path


def run_cli(*args: str, env: dict | None = None, timeout: int = 600
            ) -> subprocess.CompletedProcess:
    """The `insiders` command as a user runs it (a fresh process)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from insiders.cli import main; raise SystemExit(main())", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env,
    )


@functools.lru_cache(maxsize=1)
def pipeline_runs() -> dict[str, tuple]:
    """Three consecutive real monthly runs on a small demo set, computed once per session.

    (run, documents) per run id 2011-09..2011-11; each month is selected with hysteresis
    against the previous month's Insiders.
    """
    from insiders import demo, pipeline, stages
    from insiders.config import Settings
    from insiders.context import Run
    from insiders.publish import documents

    home = Path(tempfile.mkdtemp(prefix="insiders-pipeline-runs-"))
    source = demo.write(home / "demo.csv.gz", customers=300, seed=11)
    settings = Settings(home=home, source=str(source), stability_months=2, bootstrap=200)
    out = {}
    for as_of in ("2011-10-01", "2011-11-01", "2011-12-01"):
        run = Run.monthly(settings, as_of)
        run, _ = pipeline.run_stages(run, stages.ANALYSIS)  # to the report; the store is next
        out[run.month] = documents.build(run.folder, run.month)
        stages.write_documents(run)  # so the next month sees these members
    return out


@pytest.fixture(scope="session")
def month_runs() -> dict[str, tuple]:
    """Two consecutive real monthly runs (2011-10, 2011-11) as (run, documents)."""
    runs = pipeline_runs()
    return {key: runs[key] for key in ("2011-10", "2011-11")}


def _pipeline_store(url: str) -> None:
    """Fill an empty SQL store the way the DAG does: documents, then the sync."""
    import copy

    from insiders import stores
    from insiders.config import Settings
    from insiders.publish import sql_sync

    with stores.store_from(Settings(home=Path(tempfile.mkdtemp(prefix="docs-")))) as store:
        for run, docs in pipeline_runs().values():
            store.write_run(copy.deepcopy(run), copy.deepcopy(docs))
        sql_sync.sync(store, url)


# the dashboard cards are checked on a store the real pipeline filled, not only a synthetic one
from sqlstore_fixture import register_store_builder  # noqa: E402

register_store_builder("pipeline", _pipeline_store)


def run_stage(stage, run_dir: Path, location: str | Path = "-", as_of: object | None = None,
              kind: str | None = None, **settings) -> dict:
    """One stage on a run folder as `insiders run` runs it; returns all the stage reported
    (its work/<stage>.json). `settings` override the defaults (home: under the folder)."""
    from insiders.config import Settings
    from insiders.context import Run

    base = Settings(home=Path(run_dir).parent / f"{Path(run_dir).name}-home")
    run = Run.one_off(base.with_(**settings), run_dir, location, as_of, kind)
    stage(run)
    return run.folder.stage(stage.name)


def default_as_of(run_dir: Path, kind: str | None = None):
    """The as-of date `insiders run` would take for an extracted folder."""
    from insiders.catalog import RunFolder
    from insiders.sources import get_source

    return get_source(kind).default_as_of(RunFolder(run_dir))
