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


def pipeline_transactions(source: Path, out: Path, kind: str | None = None
                          ) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The quality stage's transactions for `source`, at the pipeline's default as-of."""
    from insiders import pipeline, stages
    from insiders.config import Settings
    from insiders.context import Run

    run = Run.one_off(Settings(home=out.parent / f"{out.name}-home"), out, source, kind=kind)
    run, _ = pipeline.run_stages(run, (stages.extract, stages.quality))
    return run.folder.transactions(), run.day


def synthetic_shop(customers: int = 600, start: str = "2010-01-01", end: str = "2011-07-01",
                   seed: int = 0) -> pd.DataFrame:
    """Canonical transactions of a shop whose customers follow the BG/NBD story: arrivals
    spread over the first half, Gamma purchase rates, dropout after purchases, Gamma order
    values; a few returns. Deterministic for a seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
    span = (t1 - t0).days
    birth = rng.uniform(0, span * 0.6, customers)
    rate = rng.gamma(0.9, 1 / 20.0, customers)  # purchases per day
    drop = rng.beta(1.0, 6.0, customers)
    value = rng.gamma(3.0, 1.0, customers) * 30
    rows = []
    for c in range(customers):
        t = birth[c]
        while t < span:
            qty = int(rng.integers(1, 6))
            rows.append((f"C{c:04d}", t, qty, round(value[c] / qty * rng.gamma(4, 0.25), 2)))
            if rng.random() < drop[c]:
                break
            t += rng.exponential(1 / rate[c])
    frame = pd.DataFrame(rows, columns=["customer_id", "day", "quantity", "unit_price"])
    frame["invoice_date"] = t0 + pd.to_timedelta(frame.pop("day"), unit="D")
    returns = frame.sample(frac=0.02, random_state=seed).copy()
    returns["quantity"] = -1
    returns["invoice_date"] += pd.Timedelta(days=3)
    frame = pd.concat([frame, returns[returns["invoice_date"] < t1]], ignore_index=True)
    frame = frame.sort_values("invoice_date", kind="stable").reset_index(drop=True)
    frame["invoice"] = [f"{i:06d}" for i in range(len(frame))]
    frame["stock_code"] = "A"
    frame["description"] = "item"
    frame["country"] = "United Kingdom"
    frame["revenue"] = frame["quantity"] * frame["unit_price"]
    frame["is_return"] = frame["quantity"] < 0
    frame["is_cancellation"] = frame["is_return"]
    frame["source_file"] = "synthetic"
    frame["source_row"] = range(len(frame))
    return frame
