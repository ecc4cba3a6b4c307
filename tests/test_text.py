"""Customer ids as text from a categorical column: the same as converting every line."""

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
