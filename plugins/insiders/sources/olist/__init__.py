"""Olist marketplace source: several tables in, canonical transactions plus experience out.

Olist (Brazil) ships orders, order items, payments, reviews, customers, products,
sellers and a category translation as separate CSVs (docs/olist.md). This adapter
turns them into canonical invoice lines (`reading`), keeps what transactions
cannot carry - review scores and delivery dates - as source tables, and adds
satisfaction and delivery features (`experience`), personas (`personas`),
amendments to the answers (`answers`) and the customer-experience SQL tables and
dashboard (`sql`, metabase/experience).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..base import Source

if TYPE_CHECKING:
    import pandas as pd

    from ...catalog import RunFolder
    from ...config import Settings

__all__ = ["EXPERIENCE_FEATURES", "MODEL_FEATURES", "Olist"]

# the customer features `experience.add_experience_features` adds
EXPERIENCE_FEATURES = ["review_score_mean", "low_review_share", "review_count", "late_share",
                       "avg_days_late"]
# What the segmentation clusters on for Olist. Frequency stays in on purpose: 97% of the
# customers buy once, so its log is a near-constant that still puts the 2-3% of repeat
# buyers apart (the segment that matters most for a loyalty program); the satisfaction and
# delivery features carry the rest of the variation. Tenure and return rate are left out:
# for one-time buyers tenure equals recency, and Olist records no returns. The share of 1-2
# star reviews is left out too: for one-time buyers it restates the mean score, and with it
# the clusters split on satisfaction alone (80% of customers in one "delighted" segment).
MODEL_FEATURES = ["recency_days", "frequency", "monetary", "review_score_mean", "late_share",
                  "avg_days_late"]



class Olist(Source):
    kind = "olist"
    title = "Insiders program - marketplace"
    model_features = MODEL_FEATURES
    # days late are skewed like money; shares are square-rooted like the return rate
    feature_transforms = {"avg_days_late": "log", "review_count": "log", "late_share": "sqrt",
                          "low_review_share": "sqrt"}
    dashboards = ("experience",)
    currency = "BRL"  # Olist's prices and payments are in Brazilian reais
    region_label = "State"  # every customer lives in Brazil: the region column is the state

    def currency_of(self, settings: Settings) -> str:
        """Always BRL: the data set's amounts are reais whatever the retailer setting says."""
        return self.currency

    def extract(self, location: str, folder: RunFolder, settings: Settings,
                progress: Callable[[int], None] | None = None) -> dict:
        from . import reading

        result = reading.extract(location, folder)
        if progress:
            progress(result["rows"])
        return result

    @classmethod
    def recognises(cls, location: str) -> bool:
        """A folder or zip holding the Olist orders table (by its Kaggle file name)."""
        from . import tables

        return tables.holds_orders(location)

    def default_as_of(self, folder: RunFolder, note: bool = True) -> pd.Timestamp:
        """The day after the last delivered purchase (later orders are cancelled or in
        transit), as the reader found it, typos left out (`reading._default_as_of`); the
        generic rule when there was none. Its note and the stray purchases' first day join
        the extract's summary when a run takes it, as the generic rule's do."""
        import pandas as pd

        extracted = folder.stage("extract")
        value = extracted.get("default_as_of")
        if not value:
            return super().default_as_of(folder, note)
        if note and extracted.get("default_as_of_note"):
            said = extracted.get("notes", [])
            if extracted["default_as_of_note"] not in said:
                extracted["notes"] = [*said, extracted["default_as_of_note"]]
            if extracted.get("default_stray_from"):
                extracted["stray_from"] = extracted["default_stray_from"]
            folder.save_stage("extract", extracted)
        return pd.Timestamp(value)

    def add_features(self, folder: RunFolder, table: pd.DataFrame, as_of: pd.Timestamp,
                     lookback_months: int) -> pd.DataFrame:
        from .experience import add_experience_features

        return add_experience_features(folder, table, as_of, lookback_months)

    def personas(self, profile: pd.DataFrame, currency: str = "") -> pd.DataFrame:
        """Olist's personas; their amounts are always BRL (`currency` is not needed)."""
        from .personas import personas

        return personas(profile)

    def amend_answers(self, folder: RunFolder, stages: dict[str, dict],
                      customers: pd.DataFrame) -> dict:
        from .answers import extra_answers

        return extra_answers(folder, stages, customers)

    def sync_sql(self, folder: RunFolder, sql_url: str) -> dict[str, int]:
        from .sql import sync_experience

        return sync_experience(folder, sql_url)

    def create_sql_tables(self, sql_url: str) -> list[str]:
        from .sql import create_experience_tables

        return create_experience_tables(sql_url)
