"""The source protocol: what an adapter must do (read) and may add (everything else)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import pandas as pd

    from ..catalog import RunFolder
    from ..config import Settings

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
    # the ISO 4217 code of the data's money (every amount the product shows carries it) and
    # what the customers' region column holds, as the report's tables label it
    currency: ClassVar[str] = ""
    region_label: ClassVar[str] = "Country"

    def currency_of(self, settings: Settings) -> str:
        """The money's currency: the retailer's own (`INSIDERS_CURRENCY`) or the source's."""
        return (settings.currency or self.currency).strip().upper()

    def extract(self, location: str, folder: RunFolder, settings: Settings,
                progress: Callable[[int], None] | None = None) -> dict:
        raise NotImplementedError

    @classmethod
    def recognises(cls, location: str) -> bool:
        """Whether `location` looks like this source's input (asked only when another source
        refused it, so that the refusal can name the right `--source`)."""
        return False

    def default_as_of(self, folder: RunFolder, note: bool = True) -> pd.Timestamp:
        """The day after the last real line; stray lines (typos: after today, or alone far
        after the rest) do not move it and are set aside as `stray_date` by the quality
        stage. The rule is `data_end.default_as_of`. `note=False`: only ask where the data
        ends (a monthly run checking its month), leaving the extract's notes as they are."""
        import pandas as pd

        from .. import data_end
        from ..errors import InputError
        from ..log import info

        # a SQL input aggregated in its database left its lines per day, not its lines
        days = folder.read("raw_days").set_index("day")["lines"] \
            if folder.exists("raw_days") else data_end.lines_per_day(folder.path_of("raw"))
        hint = "" if days.sum() or not folder.exists("raw") else \
            data_end.serial_date_hint(folder.path_of("raw"))
        try:
            choice = data_end.default_as_of(days, pd.Timestamp.now(), hint=hint)
        except InputError as exc:  # the rule knows days, not files: name the input here
            source = folder.stage("extract").get("source") if folder.has_stage("extract") \
                else None
            raise InputError(f"{source}: {exc}" if source else str(exc)) from None
        if choice.note and note:
            info("as-of: %s", choice.note)
            extracted = folder.stage("extract")
            extracted["notes"] = [*extracted.get("notes", []), choice.note]
            extracted["stray_from"] = str(choice.stray_from)
            folder.save_stage("extract", extracted)
        return choice.as_of

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

    def personas(self, profile: pd.DataFrame, currency: str = "") -> pd.DataFrame:
        """Name segment profiles (persona, description, action); default: the transaction
        personas of `models.segmentation.personas` (`currency` follows their amounts)."""
        from ..models import segmentation

        return segmentation.personas(profile, currency)

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
