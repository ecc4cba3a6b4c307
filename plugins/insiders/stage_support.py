"""What the stages read besides their run folder, and how the modelling stages run.

The previous month's members and the membership history come from the document store;
the value models' inputs (one row per customer and day, and the fits per cut-off) are
built once per process and shared by the value, evaluate and forecast stages; modelling
stages run with one OpenMP/BLAS thread. `stages.py` keeps only the stages themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from .log import info

if TYPE_CHECKING:
    import pandas as pd

    from .context import Run


def single_threaded(func: Callable) -> Callable:
    """Run a modelling stage with one OpenMP/BLAS thread. The models here are small
    (thousands to a few hundred thousand rows): threads buy little, and on a shared 2-core
    machine OpenMP's spinning threads made one gradient boosting fit 40x slower (24 s
    instead of 0.6 s on the Olist customers)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        # threadpoolctl limits the libraries already loaded: load OpenMP (scikit-learn's
        # compiled estimators share one libgomp) and BLAS (scipy) before setting the limit
        import scipy.linalg  # noqa: F401
        import sklearn.cluster  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return func(*args, **kwargs)

    return wrapper

def previous_members(run: Run) -> frozenset[str]:
    """The Insiders of the previous run: given (one-off runs), or the latest complete
    earlier month in the document store (monthly runs)."""
    if run.previous_members is not None:
        return run.previous_members
    from . import schedule, stores

    with stores.store_from(run.settings) as store:
        # a gap in the chain (an earlier month complete, the one just before not) is an
        # error naming the missing month, never a silent restart of the membership
        members = frozenset(schedule.previous_members(store, run.month))
    info("insiders: %d members in the previous complete run", len(members))
    return members

def value_inputs(run: Run) -> tuple[pd.DataFrame, object]:
    """The value models' inputs: one row per customer and day (`clv.activity`) and the
    cache of fits per cut-off, shared by the stages of one process."""
    from .models import clv, valuation

    def load():
        from .engine import steps

        lines = steps.lines_of(run)
        if lines is not None:  # the engine sums per customer and day
            days = lines.activity(run.day)
        else:
            tx = run.folder.transactions()
            days = clv.activity(tx[tx["invoice_date"] < run.day])
        return days, valuation.FitCache(days, run.settings.lookback_months)

    return run.folder.cached("value_inputs", load)

def membership_history(run: Run) -> pd.DataFrame | None:
    """Entered / stayed / left of the earlier complete months and this one (monthly runs)."""
    if run.month is None:
        return None
    import pandas as pd

    from . import stores

    with stores.store_from(run.settings) as store:
        history = store.membership_history()
    history = history[history["run_id"] < run.month]
    ins = run.folder.stage("insiders")
    now = {"run_id": run.month, **ins["membership"], "members": ins["count"]}
    return pd.concat([history, pd.DataFrame([now])], ignore_index=True)
