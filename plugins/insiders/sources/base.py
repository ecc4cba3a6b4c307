"""The source protocol: what an adapter must do (read) and may add (everything else)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import pandas as pd

    from ..catalog import RunFolder
    from ..config import Settings

# a line counts as the end of the data only if the 30 days up to it hold this share of all lines
AS_OF_SUPPORT = 0.005


class Source:
    """A source of invoice lines. Subclasses set `kind` and implement `extract`.

    `extract` writes the folder's `raw` dataset (every input line as text in the
    canonical columns, with `source_file` and `source_row`; optionally a
    `source_reason` pre-marking lines the adapter already knows to set aside) and
    `rejects` (lines that could not be split into columns), and returns its summary:
    `rows`, `rows_parsed`, `rejects`, `files`, `notes`, `source` (safe to print).
    """

    kind: ClassVar[str] = ""
    title: ClassVar[str] = "Insiders program"  # the report's title
    # what the segmentation clusters on (None: the transaction features' default) and how
    # the features this source adds are transformed (see models.segmentation.TRANSFORMS)
    model_features: ClassVar[list[str] | None] = None
    feature_transforms: ClassVar[dict[str, str]] = {}
    # extra Metabase dashboards (folders under metabase/) for this source's SQL tables
    dashboards: ClassVar[tuple[str, ...]] = ()

    def extract(self, location: str, folder: RunFolder, settings: Settings,
                progress: Callable[[int], None] | None = None) -> dict:
        raise NotImplementedError

    def default_as_of(self, folder: RunFolder) -> pd.Timestamp:
        """The day after the last line, ignoring stray lines dated far past the real data.

        A single typo (2031 instead of 2011) must not move the run decades ahead: the
        last day counts only if the 30 days up to it hold at least AS_OF_SUPPORT of all
        lines. Lines after the as-of are set aside (after_as_of), never dropped.
        """
        from .. import quality
        from ..errors import InputError
        from ..log import info

        days = quality.lines_per_day(folder.path_of("raw"))
        if days.empty:
            raise InputError("no row has a readable invoice date, so there is no default as-of "
                             "date; check the InvoiceDate column or pass --as-of YYYY-MM-DD")
        last, stray = quality.last_supported_day(days, AS_OF_SUPPORT)
        if stray:
            note = (f"{stray:,} line(s) dated after {last.date()} stand alone (e.g. a typo in "
                    "the year): the default as-of ignores them and they are set aside as "
                    "after_as_of; pass --as-of to include them")
            info("as-of: %s", note)
            extracted = folder.stage("extract")
            extracted["notes"] = [*extracted.get("notes", []), note]
            folder.save_stage("extract", extracted)
        import pandas as pd

        return last + pd.Timedelta(days=1)

    def add_features(self, folder: RunFolder, table: pd.DataFrame, as_of: pd.Timestamp,
                     lookback_months: int) -> pd.DataFrame:
        """Customer features beyond transactions (known before `as_of`); default: none."""
        return table

    def feature_function(self, folder: RunFolder, transactions: pd.DataFrame,
                         lookback_months: int) -> Callable[[pd.Timestamp], pd.DataFrame]:
        """Customer features as of any cut (the stability curve re-fits at past cuts)."""
        from ..models import features

        def at(cut: pd.Timestamp) -> pd.DataFrame:
            table = features.customer_features(transactions, cut, lookback_months)
            return self.add_features(folder, table, cut, lookback_months)

        return at

    def personas(self, profile: pd.DataFrame) -> pd.DataFrame:
        """Name segment profiles (persona, description, action); default: the transaction
        personas of `models.segmentation.personas`."""
        from ..models import segmentation

        return segmentation.personas(profile)

    def amend_answers(self, folder: RunFolder, stages: dict[str, dict],
                      customers: pd.DataFrame) -> dict:
        """Additions to answers.json, deep-merged into the nine answers; default: none."""
        return {}

    def sync_sql(self, folder: RunFolder, sql_url: str) -> dict[str, int]:
        """Write this source's own SQL tables (rows per table); default: none."""
        return {}

    def create_sql_tables(self, sql_url: str) -> list[str]:
        """Create this source's SQL tables empty (before Metabase provisioning)."""
        return []
