"""The stages at the edge: each reads its inputs from a run folder and writes its outputs there.

One function per stage, plain inputs (a run folder, dates, settings) and plain,
small outputs (dicts of figures), so the same calls serve the CLI and the
Airflow tasks; big data moves between stages as Parquet files, never via XCom.

Run folder layout: final outputs at the top (answers.json, insiders.csv,
customers.parquet, quarantine.csv.gz, report.html), intermediates in `work/`.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

# the modelling stages (scikit-learn, scipy, Prophet) are imported where they are used, so a
# bad input is reported in a fraction of a second instead of after seconds of imports
from . import extract, features, quality
from .config import Settings
from .errors import InputError
from .log import info

RAW = "work/raw.parquet"
REJECTS = "work/rejects.parquet"
CANDIDATES = "work/candidates.parquet"
TRANSACTIONS = "work/transactions.parquet"
FEATURES = "work/features.parquet"
SEGMENTS = "work/segments.parquet"
MEMBERS_OOT = "work/out_of_time_members.json"
COHORTS = "work/cohorts.parquet"
QUARANTINE = "quarantine.csv.gz"
CUSTOMERS = "customers.parquet"
INSIDERS_CSV = "insiders.csv"
ANSWERS = "answers.json"
REPORT = "report.html"


# --------------------------------------------------------------------------- helpers


def single_threaded(func):
    """Run a modelling stage with one OpenMP/BLAS thread.

    The models here are small (thousands to a few hundred thousand rows): threads buy
    little, and on a shared 2-core machine OpenMP's spinning threads made one gradient
    boosting fit 40x slower (24 s instead of 0.6 s on the Olist customers).
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        # threadpoolctl limits the libraries already loaded: load OpenMP (scikit-learn's
        # compiled estimators) and BLAS (scipy) before setting the limit
        import scipy.linalg  # noqa: F401
        import sklearn.cluster  # noqa: F401
        import sklearn.ensemble  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return func(*args, **kwargs)

    return wrapper


def _path(run_dir: Path | str, name: str) -> Path:
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_json(run_dir: Path | str, name: str, data: dict) -> Path:
    """Write atomically (a reader never sees half a file)."""
    path = _path(run_dir, name)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default, allow_nan=False))
    tmp.replace(path)
    return path


def read_json(run_dir: Path | str, name: str) -> dict:
    return json.loads((Path(run_dir) / name).read_text())


def _json_default(value: object) -> object:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, (pd.Timestamp,)):
        return str(value.date()) if value == value.normalize() else value.isoformat()
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clean_floats(data: object) -> object:
    """NaN and infinities become None so JSON stays strict (documents and files alike)."""
    if isinstance(data, dict):
        return {k: clean_floats(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [clean_floats(v) for v in data]
    if isinstance(data, (float, np.floating)):
        return None if not math.isfinite(float(data)) else float(data)
    if isinstance(data, np.integer):
        return int(data)
    if isinstance(data, np.bool_):
        return bool(data)
    return data


def _stage(run_dir: Path | str, name: str, result: dict, started: float) -> dict:
    result = clean_floats({**result, "seconds": round(time.perf_counter() - started, 3)})
    write_json(run_dir, f"work/{name}.json", result)
    return result


_TRANSACTIONS_CACHE: dict[tuple[str, int, int], pd.DataFrame] = {}


def source_name(run_dir: Path | str) -> str:
    """The input as the user named it, for error messages."""
    path = Path(run_dir) / "work" / "extract.json"
    return json.loads(path.read_text()).get("source", "the input") if path.exists() else \
        "the input"


def read_transactions(run_dir: Path | str) -> pd.DataFrame:
    """The kept transactions, text as categoricals (groupbys on ids are several times faster).

    Stages that run in one process (the CLI) share one copy: they only read it.
    """
    path = Path(run_dir) / TRANSACTIONS
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _TRANSACTIONS_CACHE:
        return _TRANSACTIONS_CACHE[key]
    _TRANSACTIONS_CACHE.clear()
    frame = pd.read_parquet(path)
    for column in ("invoice", "stock_code", "description", "customer_id", "country",
                   "source_file"):
        if column in frame and not isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype("category")
    _TRANSACTIONS_CACHE[key] = frame
    return frame


# --------------------------------------------------------------------------- extract


def extract_stage(run_dir: Path | str, source: str | Path, kind: str = "online_retail",
                  query: str | None = None, chunk_rows: int = 250_000,
                  progress=None) -> dict:
    """Read the source into `work/raw.parquet` (text, chunked) and the unsplittable lines."""
    started = time.perf_counter()
    if kind == "olist":
        from . import olist

        return _stage(run_dir, "extract", olist.extract_stage(run_dir, source), started)
    stats = extract.ExtractStats()
    raw_path, rejects_path = _path(run_dir, RAW), _path(run_dir, REJECTS)
    writer = None
    rejects = []
    seen = 0
    schema = pa.schema([(c, pa.string()) for c in extract.RAW_COLUMNS]
                       + [("source_file", pa.string()), ("source_row", pa.int64())])
    try:
        for chunk in extract.read_source(source, chunk_rows, stats, query):
            table = pa.Table.from_pandas(chunk.frame, schema=schema, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(raw_path, schema)
            writer.write_table(table)
            if len(chunk.rejects):
                rejects.append(chunk.rejects)
            seen += len(chunk.frame) + len(chunk.rejects)
            if progress:
                progress(len(chunk.frame) + len(chunk.rejects))
            info("extract: %s rows read so far", f"{seen:,}")
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        pq.write_table(schema.empty_table(), raw_path)
    frame = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(
        {"source_file": pd.Series([], dtype="str"), "source_row": pd.Series([], dtype="int64"),
         "raw_text": pd.Series([], dtype="str")})
    frame.to_parquet(rejects_path, index=False)
    total = stats.rows + stats.rejects
    if total == 0:
        raise InputError(f"{source}: the file has a header but no transaction rows")
    info("extract: %s rows from %d file(s); %s could not be split into columns",
         f"{total:,}", len(stats.files), f"{stats.rejects:,}")
    for note in stats.notes:
        info("extract: %s", note)
    result = {"rows": total, "rows_parsed": stats.rows, "rejects": stats.rejects,
              "files": stats.files, "notes": stats.notes,
              "source": extract.redact_url(str(source)), "kind": kind}
    return _stage(run_dir, "extract", result, started)


# --------------------------------------------------------------------------- quality


def _line_days(run_dir: Path | str) -> pd.Series:
    """Lines per calendar day, from the raw extract's readable dates (since 1990)."""
    parser = quality.DateParser()
    counts: pd.Series | None = None
    parquet = pq.ParquetFile(Path(run_dir) / RAW)
    for batch in parquet.iter_batches(columns=["invoice_date"], batch_size=500_000):
        values = batch.column(0).to_pandas().value_counts()
        dates = parser.parse_unique(pd.Series(values.index, dtype="str"))
        days = pd.Series(values.to_numpy(), index=dates.dt.normalize().to_numpy())
        days = days[days.index.notna() & (days.index >= pd.Timestamp("1990-01-01"))]
        days = days.groupby(level=0).sum()
        counts = days if counts is None else counts.add(days, fill_value=0)
    return (counts if counts is not None else pd.Series(dtype="int64")).sort_index()


def default_as_of(run_dir: Path | str) -> pd.Timestamp:
    """The day after the last real line; the rule is `quality.default_as_of` (pure)."""
    extracted = read_json(run_dir, "work/extract.json")
    if extracted.get("default_as_of"):  # a source adapter knows better (Olist: last delivery)
        return pd.Timestamp(extracted["default_as_of"])
    choice = quality.default_as_of(_line_days(run_dir), pd.Timestamp.now())
    if choice.note:  # the stray lines are set aside as stray_date by the quality stage
        info("as-of: %s", choice.note)
        extracted["notes"] = [*extracted.get("notes", []), choice.note]
        extracted["stray_from"] = str(choice.stray_from)
        write_json(run_dir, "work/extract.json", extracted)
    return choice.as_of


def quality_stage(run_dir: Path | str, as_of: pd.Timestamp, settings: Settings | None = None
                  ) -> dict:
    """Typed transactions and a quarantine that accounts for every set-aside row.

    Text is read back block by block; the typed lines that pass are compact
    (categorical text), so holding them until duplicates are decided keeps
    memory proportional to the kept data, not to the raw text.
    """
    started = time.perf_counter()
    as_of = pd.Timestamp(as_of)
    report = quality.QualityReport()
    parser = quality.DateParser()
    stray_from = read_json(run_dir, "work/extract.json").get("stray_from") if (
        Path(run_dir) / "work/extract.json").exists() else None
    non_products = quality.NonProductTally(quality.NonProductCodes.parse(
        settings.non_product_codes if settings else None))
    quarantine_path = _path(run_dir, QUARANTINE)
    blocks: list[pd.DataFrame] = []
    with QuarantineWriter(quarantine_path) as set_aside:
        rejects = pd.read_parquet(Path(run_dir) / REJECTS)
        if len(rejects):
            set_aside(quality.malformed_to_quarantine(rejects))
            report.add("malformed_row", len(rejects))
            report.rows_in += len(rejects)
        parquet = pq.ParquetFile(Path(run_dir) / RAW)
        for batch in parquet.iter_batches(batch_size=250_000):
            raw = batch.to_pandas()
            kept, aside = quality.clean_chunk(raw, as_of, parser, pd.Timestamp.now(),
                                              stray_from, non_products)
            report.rows_in += len(raw)
            for reason, count in aside["reason"].value_counts().items():
                report.add(str(reason), int(count))
            set_aside(aside)
            blocks.append(kept)
            del raw, aside
        non_products.check(source_name(run_dir))
        kept = _concat_categorical(blocks)
        del blocks
        # exact duplicates may sit in different blocks: decide on all hashes at once
        dup = quality.duplicate_mask(kept["row_hash"].to_numpy())
        if dup.any():
            set_aside(_raw_rows(run_dir, kept.loc[dup, ["source_file", "source_row"]],
                                "duplicate"))
            report.add("duplicate", int(dup.sum()))
        kept = kept.loc[~dup].drop(columns="row_hash").reset_index(drop=True)
    report.rows_kept = len(kept)
    kept.to_parquet(_path(run_dir, TRANSACTIONS), index=False)
    if not report.balanced:  # a bug, never a data problem: refuse to go on with lost rows
        raise RuntimeError(f"row accounting does not balance: {report.as_dict()}")
    if len(kept):
        several = quality.customers_with_several_countries(kept)
        if several:
            report.notes.append(f"{several} customer(s) appear under several countries; each is "
                                "shown with the country of most of their lines")
    aside_text = ", ".join(f"{k} {v:,}" for k, v in report.set_aside.items() if v) or "none"
    info("quality: %s rows in, %s kept, set aside: %s", f"{report.rows_in:,}",
         f"{report.rows_kept:,}", aside_text)
    if not len(kept):
        late = report.set_aside.get("after_as_of", 0) * 2 > report.rows_in
        raise InputError(
            f"{source_name(run_dir)}: every one of the {report.rows_in:,} rows was set aside "
            f"({aside_text}); see {quarantine_path} for each row and its reason"
            + ("; most are dated on or after the as-of: choose a later --as-of" if late else ""))
    result = {**report.as_dict(), "as_of": str(as_of.date())}
    return _stage(run_dir, "quality", result, started)


QUARANTINE_SCHEMA = pa.schema([(c, pa.string()) for c in extract.RAW_COLUMNS]
                              + [("source_file", pa.string()), ("source_row", pa.int64()),
                                 ("reason", pa.string())])


class QuarantineWriter:
    """Appends set-aside rows to one gzip CSV (raw values, where they came from, why)."""

    def __init__(self, path: Path) -> None:
        # gzip level 3: pyarrow's own gzip stream uses level 9, ten times slower for 10% less
        self._sink = gzip.open(path, "wb", compresslevel=3)
        self._writer = pacsv.CSVWriter(self._sink, QUARANTINE_SCHEMA)

    def __call__(self, frame: pd.DataFrame) -> None:
        if len(frame):
            table = pa.Table.from_pandas(frame[QUARANTINE_SCHEMA.names], preserve_index=False)
            self._writer.write_table(table.cast(QUARANTINE_SCHEMA))

    def __enter__(self) -> QuarantineWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()
        self._sink.close()



def _concat_categorical(blocks: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate blocks keeping text categorical (one dictionary per column, not per block)."""
    from pandas.api.types import union_categoricals

    if not blocks:
        return pd.DataFrame(columns=[*_empty_transactions().schema.names, "row_hash"])
    if len(blocks) == 1:
        return blocks[0]
    out = {}
    for column in blocks[0].columns:
        parts = [b[column] for b in blocks]
        if isinstance(parts[0].dtype, pd.CategoricalDtype):
            out[column] = pd.Series(union_categoricals([p.array for p in parts]))
        else:
            out[column] = pd.Series(np.concatenate([p.to_numpy() for p in parts]),
                                    dtype=parts[0].dtype)
    return pd.DataFrame(out)


def _raw_rows(run_dir: Path | str, keys: pd.DataFrame, reason: str) -> pd.DataFrame:
    """The raw text of the given (source_file, source_row) lines, re-read from the extract.

    The quarantine shows lines as the user wrote them (`12977.0`, `12/1/2010 8:26`), not
    as the quality stage cleaned them. Rows are matched in Arrow, per file, so only the
    few wanted lines become pandas rows.
    """
    import pyarrow.compute as pc

    wanted = {str(f): pa.array(g["source_row"].astype("int64").unique())
              for f, g in keys.groupby(keys["source_file"].astype("str"), observed=True)}
    parts = []
    parquet = pq.ParquetFile(Path(run_dir) / RAW)
    for batch in parquet.iter_batches(batch_size=500_000):
        mask = None
        for name, rows in wanted.items():
            hit = pc.and_(pc.equal(batch.column("source_file"), name),
                          pc.is_in(batch.column("source_row"), value_set=rows))
            mask = hit if mask is None else pc.or_(mask, hit)
        if mask is not None and pc.any(mask).as_py():
            parts.append(batch.filter(mask).to_pandas())
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=[*extract.RAW_COLUMNS, "source_file", "source_row"])
    out["reason"] = reason
    return out


def _empty_transactions() -> pa.Table:
    return pa.schema([
        ("invoice", pa.string()), ("stock_code", pa.string()), ("description", pa.string()),
        ("quantity", pa.int64()), ("invoice_date", pa.timestamp("us")),
        ("unit_price", pa.float64()), ("customer_id", pa.string()), ("country", pa.string()),
        ("revenue", pa.float64()), ("is_return", pa.bool_()), ("is_cancellation", pa.bool_()),
        ("source_file", pa.string()), ("source_row", pa.int64()),
    ]).empty_table()


# --------------------------------------------------------------------------- features


@single_threaded
def features_stage(run_dir: Path | str, as_of: pd.Timestamp, settings: Settings) -> dict:
    started = time.perf_counter()
    tx = read_transactions(run_dir)
    table = features.customer_features(tx, pd.Timestamp(as_of), settings.lookback_months)
    extra = _source_extra_features(run_dir, table, as_of, settings)
    if extra is not None:
        table = extra
    table.to_parquet(_path(run_dir, FEATURES), index=False)
    active = int(table["has_purchase"].sum())
    info("features: %s customers with a line in the period, %s with a purchase",
         f"{len(table):,}", f"{active:,}")
    if active == 0:
        dates = tx["invoice_date"] if len(tx) else pd.Series(dtype="datetime64[us]")
        raise InputError(f"{source_name(run_dir)}: no customer made a purchase in the "
                         f"{settings.lookback_months} months before "
                         f"{pd.Timestamp(as_of).date()}; " + quality.as_of_advice(
                             as_of, dates.min(), dates.max(), settings.lookback_months))
    return _stage(run_dir, "features", {"customers": len(table), "active": active,
                                        "period_start": str(features.period_start(
                                            pd.Timestamp(as_of), settings.lookback_months)
                                            .date())}, started)


def _source_extra_features(run_dir, table, as_of, settings):
    """Sources with more than transactions (Olist: reviews, delivery) add their features."""
    extract_info = read_json(run_dir, "work/extract.json")
    if extract_info.get("kind") != "olist":
        return None
    from . import olist

    return olist.add_experience_features(run_dir, table, pd.Timestamp(as_of),
                                         settings.lookback_months)


# --------------------------------------------------------------------------- segment


@single_threaded
def segment_stage(run_dir: Path | str, settings: Settings) -> dict:
    from . import segmentation

    started = time.perf_counter()
    table = pd.read_parquet(Path(run_dir) / FEATURES)
    active = table[table["has_purchase"]].reset_index(drop=True)
    model_features, persona_fn = _source_segmentation(run_dir)
    try:
        seg = segmentation.segment(
            active, settings.k_min, settings.k_max, settings.min_segment_share,
            settings.cluster_sample, settings.seed, model_features=model_features,
            persona_fn=persona_fn)
    except ValueError as exc:
        raise InputError(f"{source_name(run_dir)}: {exc}") from None
    assigned = pd.DataFrame({"customer_id": active["customer_id"], "segment": seg.labels})
    assigned = assigned.merge(seg.profiles[["segment", "persona"]], on="segment")
    assigned.to_parquet(_path(run_dir, SEGMENTS), index=False)
    profiles = seg.profiles.drop(columns=["persona_base"])
    result = {
        "chosen": {"algorithm": seg.chosen.algorithm, "k": seg.chosen.k},
        "why": seg.why,
        "candidates": [c.as_dict() for c in seg.candidates],
        "profiles": profiles.to_dict(orient="records"),
        "model_features": model_features or segmentation.MODEL_FEATURES,
    }
    info("segment: %d candidates; chosen %s k=%d (%s)", len(seg.candidates),
         seg.chosen.algorithm, seg.chosen.k,
         ", ".join(f"{p} {n:,}" for p, n in zip(profiles["persona"], profiles["customers"],
                                                strict=True)))
    return _stage(run_dir, "segment", result, started)


def _source_segmentation(run_dir) -> tuple[list[str] | None, object]:
    """Model features and persona naming for sources that know more than transactions."""
    extract_info = read_json(run_dir, "work/extract.json")
    if extract_info.get("kind") == "olist":
        from . import olist

        return olist.MODEL_FEATURES, olist.personas
    return None, None


# --------------------------------------------------------------------------- insiders


@single_threaded
def insiders_stage(run_dir: Path | str, as_of: pd.Timestamp, settings: Settings,
                   previous_members: list[str] | None = None) -> dict:
    """Value, select (with hysteresis against `previous_members`), explain."""
    from . import insiders as ins

    started = time.perf_counter()
    as_of = pd.Timestamp(as_of)
    tx = read_transactions(run_dir)
    table = pd.read_parquet(Path(run_dir) / FEATURES)
    segments = pd.read_parquet(Path(run_dir) / SEGMENTS)
    contest = ins.compare_value_methods(
        tx, as_of, settings.horizon_months, settings.lookback_months, settings.value_coverage,
        settings.min_share, settings.max_share, settings.seed)
    model = ins.fit_value_model(tx, as_of, settings.horizon_months, settings.lookback_months,
                                settings.seed, method=contest["winner"])
    table["expected_value"] = np.where(table["has_purchase"], model.predict(table), 0.0)
    chosen, selection = ins.select(
        table, set(previous_members or []), settings.value_coverage, settings.min_share,
        settings.max_share, settings.exit_factor)
    chosen = chosen.merge(segments, on="customer_id", how="left")
    chosen["segment"] = chosen["segment"].fillna(-1).astype("int64")
    chosen["persona"] = chosen["persona"].fillna("No purchase in the period").astype("str")
    conditions = ins.derive_conditions(chosen, selection, settings.horizon_months,
                                       settings.lookback_months, seed=settings.seed)
    chosen.to_parquet(_path(run_dir, CUSTOMERS), index=False)
    counts = chosen["membership"].value_counts().to_dict()
    # previous members with no line at all in the period have left too
    gone = sorted(set(previous_members or []) - set(chosen["customer_id"].astype("str")))
    counts["left"] = counts.get("left", 0) + len(gone)
    n = int(chosen["is_insider"].sum())
    info("insiders: %s members (%.1f%% of %s active); value method %s; entered %d, stayed %d, "
         "left %d", f"{n:,}", 100 * n / max(selection.active, 1), f"{selection.active:,}",
         model.method, counts.get("entered", 0), counts.get("stayed", 0), counts.get("left", 0))
    result = {
        "count": n,
        "active": selection.active,
        "selection": asdict(selection),
        "value_model": model.as_dict(),
        "value_contest": contest,
        "conditions": asdict(conditions),
        "membership": {k: int(counts.get(k, 0)) for k in ("entered", "stayed", "left")},
        "previous_members": len(previous_members or []),
        "previous_member_ids": sorted(previous_members or []),
    }
    return _stage(run_dir, "insiders", result, started)


# --------------------------------------------------------------------------- evaluate


@single_threaded
def evaluate_stage(run_dir: Path | str, as_of: pd.Timestamp, settings: Settings) -> dict:
    from . import evaluation

    started = time.perf_counter()
    as_of = pd.Timestamp(as_of)
    tx = read_transactions(run_dir)
    customers = pd.read_parquet(Path(run_dir) / CUSTOMERS)
    method = read_json(run_dir, "work/insiders.json")["value_model"]["method"]
    today = evaluation.insiders_vs_rest(customers, settings.bootstrap, settings.seed)
    oot = evaluation.out_of_time(
        tx, as_of, settings.horizon_months, settings.lookback_months, settings.value_coverage,
        settings.min_share, settings.max_share, settings.bootstrap, settings.seed, method)
    members = oot.pop("member_ids", [])
    write_json(run_dir, MEMBERS_OOT, {"cut": oot.get("chosen_on"), "members": members})
    cohort = evaluation.cohorts(tx, as_of, settings.lookback_months)
    cohort.columns = [str(c) for c in cohort.columns]
    cohort.to_parquet(_path(run_dir, COHORTS))
    info("evaluate: Insiders vs rest net revenue x%s; out-of-time: %s",
         today["monetary"]["ratio"], oot["text"])
    return _stage(run_dir, "evaluate", {"insiders_vs_rest": today, "out_of_time": oot},
                  started)


# --------------------------------------------------------------------------- forecast


@single_threaded
def forecast_stage(run_dir: Path | str, as_of: pd.Timestamp, settings: Settings) -> dict:
    from . import forecast

    started = time.perf_counter()
    as_of = pd.Timestamp(as_of)
    tx = read_transactions(run_dir)
    customers = pd.read_parquet(Path(run_dir) / CUSTOMERS)
    members = set(customers.loc[customers["is_insider"], "customer_id"].astype("str"))
    daily = forecast.daily_revenue(tx, members, as_of)
    months, method = forecast.forecast(daily, as_of, settings.horizon_months, settings.seed)
    history_starts = forecast.periods(as_of, settings.lookback_months, before=True)
    history = [
        {"month": str(s.date()), "revenue": round(v, 2)}
        for s, v in zip(history_starts, forecast.period_totals(daily, history_starts),
                        strict=True)
        if s >= daily.index.min().normalize() - pd.DateOffset(months=1)
    ] if len(daily) else []
    oot = read_json(run_dir, MEMBERS_OOT)
    if oot.get("cut") and oot.get("members"):
        cut = pd.Timestamp(oot["cut"])
        oot_daily = forecast.daily_revenue(tx, set(oot["members"]), as_of)
        back = forecast.backtest(oot_daily, cut, as_of, settings.horizon_months, settings.seed)
    else:
        back = {"available": False, "text": "No out-of-time group to backtest the forecast on."}
    rows = [{"month": str(r.month.date()), "revenue": round(r.revenue, 2),
             "lower": None if pd.isna(r.lower) else round(r.lower, 2),
             "upper": None if pd.isna(r.upper) else round(r.upper, 2)}
            for r in months.itertuples()]
    info("forecast: %s next %d months %s (method %s)", method, settings.horizon_months,
         ", ".join(f"{r['month']} {r['revenue']:,.0f}" for r in rows), method)
    return _stage(run_dir, "forecast", {"method": method, "months": rows, "history": history,
                                        "backtest": back}, started)


# --------------------------------------------------------------------------- report

INSIDERS_COLUMNS = [
    "customer_id", "value_rank", "segment", "persona", "country", "expected_value", "monetary",
    "frequency", "recency_days", "avg_ticket", "revenue_90d", "tenure_days", "return_rate",
    "membership", "membership_reason",
]


def stage_outputs(run_dir: Path | str) -> dict[str, dict]:
    names = ("extract", "quality", "features", "segment", "insiders", "evaluate", "forecast")
    return {n: read_json(run_dir, f"work/{n}.json") for n in names}


def report_stage(run_dir: Path | str, as_of: pd.Timestamp, settings: Settings,
                 membership_history: pd.DataFrame | None = None,
                 extra_answers: dict | None = None) -> dict:
    """answers.json, insiders.csv and report.html from the stages' outputs."""
    from . import answers as answers_mod
    from . import report

    started = time.perf_counter()
    stages = stage_outputs(run_dir)
    customers = pd.read_parquet(Path(run_dir) / CUSTOMERS)
    extra = dict(extra_answers or {})
    if stages["extract"].get("kind") == "olist":
        from . import olist

        extra = {**olist.extra_answers(run_dir, stages), **extra}
    stability_path = Path(run_dir) / "work" / "stability.json"
    if "stability" not in extra and stability_path.exists():
        # timings live in the run's `timings`, never in the answers (same data, same answers)
        extra["stability"] = {k: v for k, v in read_json(run_dir, "work/stability.json").items()
                              if k != "seconds"}
    answers = answers_mod.build(pd.Timestamp(as_of), stages, customers, extra)
    answers["how_many"]["bounds"] = {"min_share": settings.min_share,
                                     "max_share": settings.max_share}
    answers = clean_floats(answers)
    write_json(run_dir, ANSWERS, answers)
    members = customers[customers["is_insider"]].sort_values("value_rank")
    members[INSIDERS_COLUMNS].to_csv(_path(run_dir, INSIDERS_CSV), index=False,
                                     float_format="%.2f")
    cohorts_path = Path(run_dir) / COHORTS
    cohorts = pd.read_parquet(cohorts_path) if cohorts_path.exists() else None
    title = "Insiders program" if stages["extract"].get("kind") != "olist" else \
        "Insiders program - marketplace"
    report.write(_path(run_dir, REPORT), answers, customers, cohorts, membership_history, title)
    info("report: %s, %s, %s written", ANSWERS, INSIDERS_CSV, REPORT)
    return _stage(run_dir, "report", {"answers": str(Path(run_dir) / ANSWERS),
                                      "report": str(Path(run_dir) / REPORT),
                                      "insiders": str(Path(run_dir) / INSIDERS_CSV)}, started)


# --------------------------------------------------------------------------- stability


@single_threaded
def stability_stage(run_dir: Path | str, as_of: pd.Timestamp, settings: Settings) -> dict:
    """ARI curve of the chosen segmentation over the last months, and the refresh advice."""
    from . import stability

    started = time.perf_counter()
    tx = read_transactions(run_dir)
    seg = read_json(run_dir, "work/segment.json")
    feature_fn = None
    if read_json(run_dir, "work/extract.json").get("kind") == "olist":
        from . import olist

        def feature_fn(cut):
            table = features.customer_features(tx, cut, settings.lookback_months)
            return olist.add_experience_features(run_dir, table, cut, settings.lookback_months)

    result = stability.ari_curve(
        tx, pd.Timestamp(as_of), seg["chosen"]["algorithm"], seg["chosen"]["k"],
        settings.stability_months, settings.lookback_months, settings.stability_threshold,
        seg.get("model_features"), settings.cluster_sample, settings.seed, feature_fn)
    info("stability: %s", result["text"])
    return _stage(run_dir, "stability", result, started)
