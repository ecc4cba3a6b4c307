"""Data for the value-model tests: the CDNOW summary (published BG/NBD reference) and the
canonical transactions of the real files, built by the pipeline's own extract and quality."""

from __future__ import annotations

import glob
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

LIFETIMES = "lifetimes==0.11.3"
CDNOW = "lifetimes/datasets/cdnow_customers_summary.csv"
CDNOW_SPEND = "lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"


def _cache_dir() -> Path:
    root = os.environ.get("INSIDERS_TEST_CACHE") or Path.home() / ".cache" / "insiders-tests"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cdnow(name: str = CDNOW) -> pd.DataFrame:
    """A CDNOW table from the `lifetimes` wheel, read as a zip (the package is not imported).

    The wheel is fetched once with pip into a cache dir. Without a registry the
    test is skipped locally, but fails in CI (CI=true): the reference must run.
    """
    cache = _cache_dir()
    wheels = glob.glob(str(cache / "[Ll]ifetimes-0.11.3-*.whl"))
    if not wheels:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", LIFETIMES, "--no-deps", "-d", str(cache),
             "-q", "--disable-pip-version-check"], capture_output=True, text=True, timeout=300)
        wheels = glob.glob(str(cache / "[Ll]ifetimes-0.11.3-*.whl"))
        if not wheels:
            reason = f"could not download {LIFETIMES} for the CDNOW data: {done.stderr[-500:]}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(reason)
            pytest.skip(reason)
    with zipfile.ZipFile(wheels[0]) as wheel:
        return pd.read_csv(io.BytesIO(wheel.read(name)))


def pipeline_transactions(source: Path, out: Path, kind: str = "online_retail"
                          ) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The quality stage's transactions for `source`, at the pipeline's default as-of."""
    from insiders import tasks

    tasks.extract_stage(out, source, kind=kind)
    as_of = tasks.default_as_of(out)
    tasks.quality_stage(out, as_of)
    return tasks.read_transactions(out), pd.Timestamp(as_of)
