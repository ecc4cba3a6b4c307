"""Speed helpers that must not change a figure: ids as text, charts copied only when thinned."""

from __future__ import annotations

import numpy as np
import pandas as pd
from insiders.models.text import as_text, customer_keys
from model_data import synthetic_shop


def test_as_text_of_a_categorical_equals_astype_str_with_missing_values() -> None:
    ids = synthetic_shop(customers=300, seed=5)["customer_id"].astype("str")
    column = ids.astype("category")
    column.iloc[[3, 17]] = np.nan
    expected = column.astype("str")
    got = as_text(column)
    pd.testing.assert_series_equal(got, expected)
    assert got.isna().sum() == 2
    pd.testing.assert_series_equal(as_text(ids), ids.astype("str"))  # already text


def test_customer_keys_group_like_the_ids() -> None:
    ids = pd.Series(["b", "a", "b", None, "c", "a"], dtype="str")
    for column in (ids, ids.astype("category")):
        keys = customer_keys(column)
        assert keys[3] == -1  # a missing id belongs to no customer
        seen = {}
        for key, value in zip(keys, column, strict=True):
            if key >= 0:
                assert seen.setdefault(key, value) == value  # one key, one id
        assert len(set(keys[keys >= 0])) == 3


def test_thin_lines_copies_only_a_figure_it_thins() -> None:
    """The report embeds every chart through thin_lines: a chart with nothing to thin is
    passed through (copying re-validates every property), a long line is thinned in a copy
    and the original keeps every point."""
    import plotly.graph_objects as go
    from insiders.dashboards import htmlkit

    short = go.Figure(go.Scatter(x=list(range(50)), y=list(range(50)), mode="lines"))
    assert htmlkit.thin_lines(short) is short
    n = 3 * htmlkit.MAX_LINE_POINTS
    y = np.sin(np.arange(n) / 50.0)
    long = go.Figure([go.Bar(x=["a", "b"], y=[1, 2]),
                      go.Scatter(x=np.arange(n), y=y, mode="lines")])
    thinned = htmlkit.thin_lines(long)
    assert thinned is not long and len(long.data[1].y) == n
    kept = np.asarray(thinned.data[1].y)
    assert len(kept) <= htmlkit.MAX_LINE_POINTS
    assert kept.max() == y.max() and kept.min() == y.min()  # the peaks survive
    assert list(thinned.data[0].y) == [1, 2]  # other traces as they were


def test_the_learned_challenger_joins_the_contest_only_when_asked(monkeypatch) -> None:
    from insiders.config import Settings
    from insiders.models import valuation

    monkeypatch.delenv("INSIDERS_LEARNED_CHALLENGER", raising=False)
    assert valuation.contest_methods(Settings.from_env().learned_challenger) == (
        "past_spend", "bgnbd", "blend")
    for raw, expected in (("1", True), ("true", True), ("0", False), ("no", False)):
        monkeypatch.setenv("INSIDERS_LEARNED_CHALLENGER", raw)
        assert Settings.from_env().learned_challenger is expected, raw
    assert set(valuation.LEARNED) <= set(valuation.contest_methods(True))
