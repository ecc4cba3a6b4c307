"""Typing and setting lines aside on an engine, with the rules of `quality.py`.

Raw columns repeat a handful of spellings millions of times: the engine lists
each column's distinct values (with where each first appears), `quality.py`
judges every distinct value once in pandas (the same functions the pandas path
uses, so a rule changed there changes here), and the engine joins those small
dictionaries back to the lines. The first applicable reason wins, in the order
of `quality.REASONS`; the checks come in column groups in that order (date,
customer, quantity, price, stock code), so each dictionary carries the first
reason of its own column and a line's reason is the first non-empty one.

Exact duplicates are decided on the raw text (first copy kept, in file order),
as in the pandas path. The kept lines come back with integer codes into the
cleaned values, whose order is their first appearance in the input: the
transactions file is the one the pandas path writes, category for category.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import quality
from ..extract import RAW_COLUMNS
from .backends import POSITION, Engine

if TYPE_CHECKING:
    import pyarrow as pa

NULL_KEY = "<insiders:no value>"  # joins never match a missing value: stand-in for it on both sides
# the columns whose checks set a line aside, in the order of quality.REASONS
CHECKED = ("invoice_date", "customer_id", "quantity", "unit_price", "stock_code")
# a line's reason is a small integer, its index in quality.REASONS (NULL: kept): millions of
# lines carry it through the joins and the materialized table, where text took 16 bytes each
REASON_NAMES = tuple(quality.REASONS)
NO_REASON = -1


def reason_code(name: str) -> int:
    """The code of a reason (its index in quality.REASONS)."""
    return REASON_NAMES.index(name)


def reason_names(codes: np.ndarray) -> np.ndarray:
    """Reason codes -> their names (object array; NULL/negative -> None)."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.full(len(codes), None, dtype=object)
    known = np.isfinite(codes) & (codes >= 0)
    out[known] = np.asarray(REASON_NAMES, dtype=object)[codes[known].astype(np.int64)]
    return out
TEXT_COLUMNS = ("invoice", "stock_code", "description", "customer_id", "country")


@dataclass
class Dictionary:
    """One raw column: its distinct values, the reason each sets a line aside (if any), and
    what a kept line gets from it (a code into `categories`, or a typed value)."""

    column: str
    frame: pd.DataFrame  # key (raw text or NULL_KEY), rc (raw code), reason, code/value, ...
    categories: pd.Index | None = None


def _distinct(engine: Engine, raw, column: str) -> pd.Series:
    key = raw[column].fill_null(NULL_KEY)
    values = engine.to_pandas(raw.select(key=key, pos=raw[POSITION]).group_by("key").aggregate(
        first=lambda t: t.pos.min()).order_by("first"))
    return values["key"].astype("str").reset_index(drop=True)


def _text(keys: pd.Series) -> pd.Series:
    """Distinct raw values as the pandas path sees them (missing = NaN, text dtype)."""
    return pd.Series(keys.where(keys != NULL_KEY), dtype="str")


def _first_reason(checks: list[tuple[str, np.ndarray]], n: int) -> np.ndarray:
    """The code of the first check each value fails (NO_REASON: none)."""
    reason = np.full(n, NO_REASON, dtype=np.int16)
    for name, mask in reversed(checks):
        reason[np.asarray(mask, dtype=bool)] = reason_code(name)
    return reason


def _coded(keys: pd.Series, cleaned: pd.Series) -> tuple[np.ndarray, pd.Index]:
    codes, categories = pd.factorize(cleaned)
    return codes.astype(np.int32), pd.Index(categories, dtype="str")


def build_dictionaries(engine: Engine, raw, as_of: pd.Timestamp,
                       parser: quality.DateParser | None = None,
                       today: pd.Timestamp | None = None,
                       stray_from: pd.Timestamp | None = None,
                       rule: quality.NonProductCodes = quality.DEFAULT_NON_PRODUCTS,
                       ) -> dict[str, Dictionary]:
    """Judge each distinct raw value once with `quality.py`'s rules (`today`, `stray_from`
    and `rule` as in `quality.clean_chunk`)."""
    parser = parser or quality.DateParser()
    as_of = pd.Timestamp(as_of)
    out: dict[str, Dictionary] = {}
    for column in RAW_COLUMNS:
        keys = _distinct(engine, raw, column)
        text = _text(keys)
        n = len(keys)
        # 32-bit codes: the engine's working table of all the lines stays half as wide
        frame = pd.DataFrame({"key": keys, "rc": np.arange(n, dtype=np.int32)})
        checks: list[tuple[str, np.ndarray]] = []
        categories = None
        if column == "invoice_date":
            dates = parser.parse_unique(text).to_numpy()
            nat = np.isnat(dates)
            checks = [("unparseable_date", nat),
                      ("implausible_date", ~nat & (dates < np.datetime64("1990-01-01"))),
                      ("stray_date", ~nat & quality.stray_mask(dates, today, stray_from)),
                      ("after_as_of", ~nat & (dates >= as_of.to_datetime64()))]
            frame["value"] = pd.Series(dates, dtype="datetime64[us]")
        elif column in ("quantity", "unit_price"):
            # the whole column at once: the same reading of `1,000` as the pandas path's
            number = quality.NumberReader(money=column == "unit_price").parse_unique(
                text).to_numpy()
            with np.errstate(invalid="ignore"):
                if column == "quantity":
                    whole = np.isfinite(number) & (number == np.round(number))
                    checks = [("unparseable_quantity", ~whole),
                              ("implausible_quantity",
                               np.abs(number) > quality.MAX_QUANTITY),
                              ("zero_quantity", number == 0)]
                else:
                    checks = [("unparseable_price", ~np.isfinite(number)),
                              ("non_positive_price", number <= 0),
                              ("implausible_price", number > quality.MAX_UNIT_PRICE)]
            frame["value"] = np.where(np.isfinite(number), number, np.nan)
        elif column == "customer_id":
            clean = quality.normalise_customer_id(text)
            checks = [("missing_customer_id", clean.isna().to_numpy())]
            frame["code"], categories = _coded(keys, clean.fillna(""))
        else:
            clean = text.str.strip()
            if column == "country":
                clean = clean.replace("", "Unknown")
            if column == "stock_code":
                checks = [("non_product_code", rule.mask(text.fillna("")))]
            frame["code"], categories = _coded(keys, clean)
            if column == "invoice":
                frame["cancel"] = np.asarray(
                    pd.Series(categories, dtype="str").str.upper().str.startswith("C"),
                    dtype=bool)[frame["code"].to_numpy()]
        frame["reason"] = _first_reason(checks, n)
        out[column] = Dictionary(column, frame, categories)
    return out


def classify(engine: Engine, raw, dictionaries: dict[str, Dictionary], sources: bool = True):
    """Every line with its reason's code (NULL = kept; `reason_names`), its raw codes and,
    with `sources`, where it came from (`source_file`, `source_row`; without, they are read
    from the raw file by position where the kept lines are written, `kept_batches`)."""
    table = raw
    reasons = []
    if "source_reason" in raw.columns:  # what the source set aside (names checked before)
        known = engine.table(pd.DataFrame({
            "source_reason__name": pd.Series(REASON_NAMES, dtype="str"),
            "source_reason__code": np.arange(len(REASON_NAMES), dtype=np.int16)}))
        table = table.left_join(known, table["source_reason"] == known["source_reason__name"])
        table = table.select(*[c for c in table.columns if c != "source_reason__name"])
    picks = [raw[POSITION]]
    for column, d in dictionaries.items():
        small = engine.table(d.frame[["key", "rc", "reason"]].add_prefix(f"{column}__"))
        table = table.left_join(small, table[column].fill_null(NULL_KEY)
                                == small[f"{column}__key"])
        table = table.select(*[c for c in table.columns if c != f"{column}__key"])
    if "source_reason" in raw.columns:
        reasons.append(table["source_reason__code"])
    reasons += [table[f"{column}__reason"].nullif(NO_REASON) for column in CHECKED]
    # only the raw codes are kept per line (what a line gets from them, `typed`, comes from
    # the small dictionaries where a step needs it): the table is half as wide, and at 50x
    # the wide one spilled to disk
    picks += [table[f"{column}__rc"].name(f"rc_{column}") for column in dictionaries]
    import ibis

    reason = ibis.coalesce(*reasons) if len(reasons) > 1 else reasons[0]
    if sources:
        picks += [table["source_file"], table["source_row"]]
    return table.select(*picks, reason=reason)


EXTRAS = ("code", "value", "cancel")


def typed(engine: Engine, table, dictionaries: dict[str, Dictionary], columns: tuple[str, ...]):
    """Lines (with their raw codes `rc_<column>`) with what the given columns' dictionaries
    give a kept line: `<column>_code`, `<column>_value`, `invoice_cancel`; joins on the
    dictionaries' integer codes, small tables."""
    out = table
    for column in columns:
        frame = dictionaries[column].frame
        extras = [e for e in EXTRAS if e in frame]
        small = engine.table(frame[["rc", *extras]].rename(
            columns={"rc": f"rc_{column}__", **{e: f"{column}_{e}" for e in extras}}))
        joined = out.left_join(small, out[f"rc_{column}"] == small[f"rc_{column}__"])
        out = joined.select(out, *[small[f"{column}_{e}"] for e in extras])
    return out


def duplicates(classified):
    """Positions of kept lines that copy an earlier kept line (raw text equal).

    A group-by on the raw codes finds the texts seen more than once (few); only lines of
    those are compared with their group's first position: no sort of all the lines, and
    the result is small (the duplicates' positions)."""
    kept = classified.filter(classified.reason.isnull())
    keys = [f"rc_{c}" for c in RAW_COLUMNS]
    groups = kept.group_by(keys).aggregate(first=kept[POSITION].min(), n=kept.count())
    repeated = groups.filter(groups.n > 1).select(*keys, "first")
    marked = kept.inner_join(repeated, keys)
    return marked.filter(marked[POSITION] != marked.first).select(POSITION)


def kept_lines(classified, dups):
    """The lines that pass every check and are no copy."""
    kept = classified.filter(classified.reason.isnull())
    return kept.anti_join(dups, POSITION)


@dataclass
class Outcome:
    counts: dict[str, int]
    rows_in: int
    several_countries: int


def account(engine: Engine, classified, dups, dictionaries: dict[str, Dictionary]) -> Outcome:
    """Rows per reason (kept lines count under None), duplicates, several-country customers."""
    per = engine.to_pandas(classified.group_by("reason").aggregate(n=classified.count()))
    names = reason_names(per["reason"].to_numpy(dtype=np.float64, na_value=np.nan))
    counts = {("" if r is None else r): int(n) for r, n in zip(names, per["n"], strict=True)}
    rows_in = sum(counts.values())
    counts.pop("", None)
    dup = int(engine.to_pandas(dups.count().name("n").as_table())["n"].iloc[0])
    if dup:
        counts["duplicate"] = dup
    good = typed(engine, kept_lines(classified, dups), dictionaries,
                 ("customer_id", "country"))
    several = good.group_by("customer_id_code").aggregate(
        n=good.country_code.nunique())
    several_countries = int(engine.to_pandas(several.filter(several.n > 1).count().name("n")
                                             .as_table())["n"].iloc[0])
    return Outcome(counts, rows_in, several_countries)


def tally_non_products(engine: Engine, classified, dictionaries: dict[str, Dictionary],
                       tally: quality.NonProductTally) -> None:
    """Add to `tally` what the non-product rule sets aside against what is kept (before
    copies are decided, as `quality.clean_chunk` counts): lines and |quantity x price| per
    raw stock code. One small group-by; the guard itself is `NonProductTally.check`."""
    import ibis

    c = classified
    aside = c.reason == reason_code("non_product_code")
    picked = typed(engine, c.filter(c.reason.isnull() | aside), dictionaries,
                   ("quantity", "unit_price"))
    value = (picked.quantity_value * picked.unit_price_value).abs()
    per = engine.to_pandas(picked.group_by(
        aside=ibis.ifelse(picked.reason.isnull(), False, True),
        rc=picked.rc_stock_code).aggregate(n=picked.count(), value=value.sum()))
    if per.empty:
        return
    keys = dictionaries["stock_code"].frame.set_index("rc")["key"]
    per["aside"] = per["aside"].astype(bool)
    out = per[per["aside"]]
    kept = per[~per["aside"]]
    codes = _text(keys.reindex(out["rc"].to_numpy()).reset_index(drop=True))
    tally.add(codes.repeat(out["n"].to_numpy()).reset_index(drop=True),
              float(out["value"].sum()), int(kept["n"].sum()), float(kept["value"].sum()))


def quarantine_batches(engine: Engine, classified, dups, dictionaries: dict[str, Dictionary],
                       raw_path=None) -> Iterator[pa.RecordBatch]:
    """Set-aside lines as written in the input, in file order, duplicates last: Arrow
    batches in the quarantine's columns, written as they come (never through pandas).

    A line's raw text is its raw code's distinct value (`Dictionary.frame["key"]`), so the
    text comes from the small dictionaries, not from the input again: at 50x reading and
    decoding the raw extract's text columns was ~5 of the stage's 40 s. Where the lines were
    classified without their sources (`classify`; positions are rows of `raw_path`), where
    each came from is read there, in order."""
    import pyarrow as pa

    columns = [*RAW_COLUMNS, "source_file", "source_row"]
    names = pa.array(REASON_NAMES, pa.string())  # every reason a line can get, by code
    text = {c: pa.array(_text(d.frame["key"]).to_numpy(na_value=None), pa.string())
            for c, d in dictionaries.items()}
    codes = [f"rc_{c}" for c in RAW_COLUMNS]
    source = ["source_file", "source_row"]
    from_file = raw_path is not None and "source_row" not in classified.columns
    aside = classified.filter(classified.reason.notnull())
    copies = classified.semi_join(dups, POSITION)
    for part, label in ((aside, None), (copies, "duplicate")):
        rows = RowsInOrder(raw_path, source) if from_file else None
        wanted = [POSITION, *codes, *([] if from_file else source),
                  *(["reason"] if label is None else [])]
        for batch in engine.batches(part.order_by(POSITION).select(*wanted)):
            where = rows.take(batch.column(POSITION).to_numpy(zero_copy_only=False)
                              .astype(np.int64)) if rows else batch
            if label is None:
                code = batch.column("reason")
                if code.null_count:
                    raise ValueError("a line was set aside without a reason")
                reason = names.take(code.cast(pa.int32()))
            else:
                reason = pa.array([label] * batch.num_rows, pa.string())
            missing = [c for c in RAW_COLUMNS if batch.column(f"rc_{c}").null_count]
            if missing:  # a value not in its dictionary: its text would be lost, not shown
                raise RuntimeError(f"set-aside lines whose {', '.join(missing)} is in no "
                                   "dictionary of distinct values; nothing is lost silently")
            yield pa.RecordBatch.from_arrays(
                [*[text[c].take(batch.column(f"rc_{c}")) for c in RAW_COLUMNS],
                 *[_array(where.column(c)) for c in source], reason],
                names=[*columns, "reason"])


def _array(column) -> pa.Array:
    """One Arrow array of plain values (a table's column may come in chunks, or as codes
    into its distinct values, `RowsInOrder`)."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column


def _codes_in(column, values: pa.Array) -> np.ndarray:
    """Each value's position in `values` (-1: missing or not there), for text read as text
    or as codes into its distinct values (`RowsInOrder`), one chunk at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out = []
    for chunk in chunks:
        if pa.types.is_dictionary(chunk.type):
            known = pc.index_in(chunk.dictionary, value_set=values).fill_null(-1).to_numpy()
            at = chunk.indices.fill_null(-1).to_numpy().astype(np.int64)
            out.append(np.where(at < 0, -1, known[np.maximum(at, 0)]))
        else:
            out.append(pc.index_in(chunk, value_set=values).fill_null(-1).to_numpy())
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


CODED = ("invoice", "stock_code", "description", "customer_id", "country")


def kept_batches(engine: Engine, classified, dups, dictionaries: dict[str, Dictionary],
                 file_order: list[str], raw_path=None) -> tuple[pa.Schema, Iterator[pa.Table]]:
    """The kept lines in the transactions layout, in file order, block by block: Arrow
    tables built from the engine's batches (never through pandas) under one schema, the
    one pandas gives the same frame (categoricals with the dictionaries' categories in
    their order, pandas' metadata), so readers get the frames they always got.

    With `raw_path` (the lines classified without their sources, `classify`; positions are
    rows of that file), where each line came from is read there, in order, instead of being
    carried through the engine's table of all the lines: at 10x the materialized table's
    time fell by a third."""
    import pyarrow as pa

    source = ["source_file", "source_row"]
    from_file = raw_path is not None
    good = kept_lines(classified, dups).order_by(POSITION).select(
        *[f"rc_{c}" for c in RAW_COLUMNS], *([POSITION] if from_file else source))
    # what each raw code gives a kept line, looked up per block (arrays indexed by code)
    given = {c: {e: d.frame[e].to_numpy() for e in EXTRAS if e in d.frame}
             for c, d in dictionaries.items()}
    files = pd.Index(file_order, dtype="str")
    empty = {c: pd.Categorical.from_codes([], dictionaries[c].categories) for c in CODED}
    schema = pa.Schema.from_pandas(pd.DataFrame({
        "invoice": empty["invoice"], "stock_code": empty["stock_code"],
        "description": empty["description"], "quantity": np.array([], np.int64),
        "invoice_date": np.array([], "datetime64[us]"), "unit_price": np.array([], float),
        "customer_id": empty["customer_id"], "country": empty["country"],
        "revenue": np.array([], float), "is_return": np.array([], bool),
        "is_cancellation": np.array([], bool),
        "source_file": pd.Categorical.from_codes([], files),
        "source_row": np.array([], np.int64)}), preserve_index=False)
    # the dictionaries in the schema's own text type (pandas' is large_string): built once,
    # instead of every block's dictionary being cast to it when its table is made
    values = {c: pa.array(dictionaries[c].categories, schema.field(c).type.value_type)
              for c in CODED}
    file_values = pa.array(files, schema.field("source_file").type.value_type)

    def coded(codes: np.ndarray, dictionary: pa.Array, field: str) -> pa.DictionaryArray:
        # the codes in the index's width (-1: missing), converted once in numpy
        width = schema.field(field).type.index_type.to_pandas_dtype()
        missing = codes < 0
        indices = pa.array(codes.astype(width, copy=False),
                           mask=missing if missing.any() else None)
        return pa.DictionaryArray.from_arrays(indices, dictionary)

    def numbers(batch: pa.RecordBatch, column: str, dtype) -> np.ndarray:
        return batch.column(column).to_numpy(zero_copy_only=False).astype(dtype)

    def tables() -> Iterator[pa.Table]:
        rows = RowsInOrder(raw_path, source) if from_file else None
        for batch in engine.batches(good):
            # the raw codes index the dictionaries' arrays as they come (32-bit)
            rc = {c: batch.column(f"rc_{c}").to_numpy(zero_copy_only=False)
                  for c in RAW_COLUMNS}
            where = rows.take(numbers(batch, POSITION, np.int64)) if rows else batch
            qty = given["quantity"]["value"][rc["quantity"]].astype(np.int64)
            price = given["unit_price"]["value"][rc["unit_price"]]
            file_codes = _codes_in(where.column("source_file"), file_values)
            arrays = {c: coded(given[c]["code"][rc[c]], values[c], c) for c in CODED}
            yield pa.Table.from_arrays([
                arrays["invoice"], arrays["stock_code"], arrays["description"],
                pa.array(qty), pa.array(given["invoice_date"]["value"][rc["invoice_date"]]),
                pa.array(price), arrays["customer_id"], arrays["country"],
                pa.array(np.round(qty * price, 4)), pa.array(qty < 0),
                pa.array(given["invoice"]["cancel"][rc["invoice"]]),
                coded(file_codes, file_values, "source_file"),
                pa.array(numbers(where, "source_row", np.int64)),
            ], schema=schema)

    return schema, tables()


class RowsInOrder:
    """Columns of a Parquet file at increasing row numbers, the file read once, in order."""

    def __init__(self, path, columns: list[str], block: int = 500_000,
                 dictionary: tuple[str, ...] = ("source_file",)) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # a text column of a few values (the input files) read as codes into them: decoding
        # it as text was most of the time of reading where the lines came from
        stored = pq.ParquetFile(path).schema_arrow
        dictionary = [c for c in dictionary if c in columns
                      and pa.types.is_string(stored.field(c).type)]
        file = pq.ParquetFile(path, read_dictionary=dictionary or None)
        self.schema = pa.schema([file.schema_arrow.field(c) for c in columns])
        self._blocks = file.iter_batches(batch_size=block, columns=columns)
        self._block = None
        self._start = 0  # the current block's first row

    def take(self, at: np.ndarray) -> pa.Table:
        """The rows `at` (increasing, and after every row taken before)."""
        import pyarrow as pa

        if len(at) and (at[0] < self._start or np.any(np.diff(at) < 0)):
            raise ValueError("RowsInOrder.take: rows must increase from one call to the next")
        parts, i = [], 0
        while i < len(at):
            if self._block is None or at[i] >= self._start + self._block.num_rows:
                if self._block is not None:
                    self._start += self._block.num_rows
                self._block = next(self._blocks, None)
                if self._block is None:
                    raise IndexError(f"row {int(at[i])} is past the end of the file")
                continue
            end = int(np.searchsorted(at, self._start + self._block.num_rows))
            parts.append(self._block.take(pa.array(at[i:end] - self._start)))
            i = end
        return pa.Table.from_batches(parts, schema=self.schema)


def source_files(engine: Engine, raw) -> list[str]:
    """The input files in the order their lines come."""
    files = engine.to_pandas(raw.group_by("source_file").aggregate(
        first=raw[POSITION].min()).order_by("first"))
    return [str(f) for f in files["source_file"]]


def unknown_source_reasons(engine: Engine, raw) -> list[str]:
    if "source_reason" not in raw.columns:
        return []
    given = engine.to_pandas(raw.select("source_reason").distinct())["source_reason"]
    return sorted({str(r) for r in given.dropna() if str(r)} - set(quality.REASONS))


@dataclass
class Judged:
    """The raw lines judged once: dictionaries of distinct values, each line's reason (or
    none), the copies, and the counts per reason."""

    dictionaries: dict[str, Dictionary]
    classified: object
    dups: object
    outcome: Outcome


def judge(engine: Engine, raw, as_of: pd.Timestamp, today: pd.Timestamp | None,
          stray_from: pd.Timestamp | None, tally: quality.NonProductTally,
          where: str, sources: bool = True) -> Judged:
    """The quality rules over a raw table, the same on a file (steps) and in the source's
    database (pushdown): the non-product guard raises InputError naming `where` before the
    copies are searched."""
    dictionaries = build_dictionaries(engine, raw, as_of, today=today, stray_from=stray_from,
                                      rule=tally.rule)
    classified = engine.materialize(classify(engine, raw, dictionaries, sources))
    tally_non_products(engine, classified, dictionaries, tally)
    tally.check(where)
    dups = engine.materialize(duplicates(classified))
    return Judged(dictionaries, classified, dups,
                  account(engine, classified, dups, dictionaries))
