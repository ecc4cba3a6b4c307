"""The stages, once: the one list that `insiders run`, `insiders backfill` and the DAG run.

Each stage is a function of a `Run` (context.py): it reads what earlier stages left in the
run folder (catalog.py), calls pure functions of `models/`, `publish/` or the source adapter,
writes its outputs back and returns its figures, which are saved as `work/<stage>.json` and
logged. Nothing else passes between stages, so each can run in its own process (an Airflow
task) or all in one (the CLI).

    ANALYSIS = extract, quality, features, segment, value, insiders, forecast,
               evaluate, stability, report          (insiders run)
    MONTHLY  = ANALYSIS + write_documents, sync_sql (DAG, insiders backfill)

Each stage names the stages it reads (`needs`): the DAG draws its edges from
them, and `insiders run` starts a stage once those are done, two at a time
(`INSIDERS_WORKERS`), so the segmentation runs beside value, insiders (which
reads no segment), forecast and evaluate, and stability after it:

    extract > quality > features > value > insiders > forecast, evaluate > report
                                 > segment > stability ----------------^

and, while the first stages run in copies, loads what the later ones import (`loads`).

Modules with heavy imports (scikit-learn, scipy, Prophet, plotly, the stores) are imported
inside the stage that needs them: the DAG file parses in a fraction of a second and bad
input is reported before seconds of imports.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from .catalog import clean_floats, csv_floats
from .errors import InputError
from .log import info
from .stage_support import (
    membership_history,
    previous_members,
    single_threaded,
    value_inputs,
)

if TYPE_CHECKING:

    from .context import Run


@dataclass(frozen=True)
class Stage:
    """A named step: `func(run)` returns its figures; `summary` names those worth a log line
    and an XCom (the rest stays in `work/<name>.json`)."""

    name: str
    func: Callable[[Run], dict]
    summary: tuple[str, ...] = ()
    # the stages whose outputs this one reads: the DAG's edges, and what `insiders run`
    # waits for before starting it (independent stages run side by side: pipeline.py)
    needs: tuple[str, ...] = ()
    # run it in the CLI's own process when it is ready beside others: what it caches there
    # (the value models' fits, stage_support.value_inputs) serves the stages after it
    prefer_main: bool = False
    # libraries it imports that take a while, as modules or `module:function` (a function of
    # no arguments that readies one): `insiders run` loads them while the stages before it
    # run in copies, so that neither this stage nor the copies after it wait for them
    loads: tuple[str, ...] = ()

    def __call__(self, run: Run) -> dict:
        started = time.perf_counter()
        result = self.func(run)
        result = clean_floats({**result, "seconds": round(time.perf_counter() - started, 3)})
        run.folder.save_stage(self.name, result)
        return {k: result[k] for k in (*self.summary, "seconds") if k in result}


def _source_name(run: Run) -> str:
    """The input as the user named it, for error messages."""
    return run.folder.stage("extract").get("source", "the input") \
        if run.folder.has_stage("extract") else "the input"


# --------------------------------------------------------------------------- extract


def _extract(run: Run) -> dict:
    """Read the source into the folder's raw lines (text) and the unsplittable lines."""
    from .sources import naming_the_right_source

    run.folder.start({"source": run.source.kind, "month": run.month})
    with naming_the_right_source(run.location, run.source.kind):
        result = run.source.extract(run.location, run.folder, run.settings, run.progress)
    return {**result, "kind": run.source.kind}


# --------------------------------------------------------------------------- quality


def _quality(run: Run) -> dict:
    """Typed transactions and a quarantine that accounts for every set-aside row, on the
    run's engine (settings.engine: auto by default, i.e. pandas for a small input and
    DuckDB beyond; spark; engine/steps.py): every engine writes the same transactions file
    and quarantine, with the same counts."""
    from . import data_end, quality_notes
    from .engine import pushdown, steps

    as_of, folder = run.day, run.folder
    report, kept_rows = steps.run_quality(run, _source_name(run))
    quarantine_path = folder.path_of("quarantine")
    if not report.balanced:  # a bug, never a data problem: refuse to go on with lost rows
        raise RuntimeError(f"row accounting does not balance: {report.as_dict()}")
    files = folder.stage("extract").get("files", {}) if folder.has_stage("extract") else {}
    report.notes.extend(quality_notes.format_warnings(report)
                        + quality_notes.copied_file_notes(report, files))
    aside_text = ", ".join(f"{k} {v:,}" for k, v in report.set_aside.items() if v) or "none"
    engine = "push-down" if pushdown.pushed_down(folder) else steps.engine_name(run)
    info("quality: %s rows in, %s kept, set aside: %s (engine %s)", f"{report.rows_in:,}",
         f"{report.rows_kept:,}", aside_text, engine)
    if run.month is not None:  # a monthly run of a month the data does not reach: refuse it
        from . import schedule

        schedule.require_covered(run.source.default_as_of(folder, note=False), as_of, run.month)
    if not kept_rows:
        late = report.set_aside.get("after_as_of", 0) * 2 > report.rows_in
        undated = report.set_aside.get("unparseable_date", 0) * 2 > report.rows_in
        raise InputError(
            f"{_source_name(run)}: every one of the {report.rows_in:,} rows was set aside "
            f"({aside_text}); see {quarantine_path} for each row and its reason"
            + ("; most are dated on or after the as-of: choose a later --as-of" if late else "")
            + (data_end.serial_date_hint(folder.path_of("raw"))
               if undated and folder.exists("raw") else ""))
    # where a reader finds each set-aside row: the quarantine file, or (push-down) the
    # source's own database, which the rows never left
    where = "kept in the source database, not copied out: push-down" \
        if pushdown.pushed_down(folder) else "see quarantine.csv.gz"
    return {**report.as_dict(), "as_of": str(as_of.date()), "set_aside_where": where,
            "engine": engine}


# --------------------------------------------------------------------------- features


@single_threaded
def _features(run: Run) -> dict:

    from . import data_end
    from .engine import steps
    from .models import clv, features

    windows = run.settings.windows
    lines = steps.lines_of(run)  # the engine aggregates; None: the pandas frame
    tx = lines if lines is not None else run.folder.transactions()
    table = features.customer_features(tx, run.day, windows.lookback_months)
    table = run.source.add_features(run.folder, table, run.day, windows.lookback_months)
    run.folder.write("features", table)
    active = int(table["has_purchase"].sum())
    info("features: %s customers with a line in the period, %s with a purchase",
         f"{len(table):,}", f"{active:,}")
    if active == 0:
        first, last = features.date_range(tx)
        raise InputError(f"{_source_name(run)}: no customer made a purchase in the "
                         f"{windows.lookback_months} months before {run.day.date()}; "
                         + data_end.as_of_advice(run.day, first, last, windows.lookback_months))
    # the last day with a kept line: the as-of is the day after it in a one-off run, and
    # the report shows both ("as of 2011-12-10, data through 2011-12-09")
    first, last = features.date_range(tx)
    short = clv.history_problem(first, run.day)
    if short:  # refused here, before any model: their figures would be artefacts
        later = run.folder.stage("quality").get("set_aside", {}).get("after_as_of", 0)
        raise InputError(f"{_source_name(run)}: {short}; use a longer extract"
                         + (f" or a later --as-of (the input goes on after {run.day.date()})"
                            if later else ""))
    return {"customers": len(table), "active": active,
            "period_start": str(features.period_start(run.day, windows.lookback_months).date()),
            "data_through": str(last.date()) if last is not None else None,
            "data_from": str(first.date()) if first is not None else None}


# --------------------------------------------------------------------------- segment


def _transforms(run: Run) -> dict[str, str]:
    from .models import segmentation

    return {**segmentation.TRANSFORMS, **run.source.feature_transforms}


@single_threaded
def _segment(run: Run) -> dict:
    import pandas as pd

    from .models import segmentation

    table = run.folder.read("features")
    active = table[table["has_purchase"]].reset_index(drop=True)
    model_features = run.source.model_features
    try:
        seg = segmentation.segment(active, run.settings.segmentation, run.settings.seed,
                                   model_features=model_features,
                                   persona_fn=functools.partial(
                                       run.source.personas,
                                       currency=run.source.currency_of(run.settings)),
                                   transforms=_transforms(run))
    except ValueError as exc:
        raise InputError(f"{_source_name(run)}: {exc}") from None
    assigned = pd.DataFrame({"customer_id": active["customer_id"], "segment": seg.labels})
    assigned = assigned.merge(seg.profiles[["segment", "persona"]], on="segment")
    run.folder.write("segments", assigned)
    profiles = seg.profiles.drop(columns=["persona_base"])
    info("segment: %d candidates; chosen %s k=%d (%s)", len(seg.candidates),
         seg.chosen.algorithm, seg.chosen.k,
         ", ".join(f"{p} {n:,}" for p, n in zip(profiles["persona"], profiles["customers"],
                                                strict=True)))
    return {
        "chosen": {"algorithm": seg.chosen.algorithm, "k": seg.chosen.k},
        "why": seg.why,
        "candidates": [c.as_dict() for c in seg.candidates],
        "profiles": profiles.to_dict(orient="records"),
        "model_features": model_features or segmentation.MODEL_FEATURES,
        "personas": [str(p) for p in profiles["persona"]],
    }


# --------------------------------------------------------------------------- value


# the per-customer predictions every customer carries (CRM-style profile, models.clv)
PREDICTIONS = ["historic_value", "p_alive", "churn_risk", "churn_band", "expected_next_order",
               "expected_purchases", "expected_order_value", "avg_days_between_orders"]
VALUE_COLUMNS = ["customer_id", "value_score", "expected_spend_model",
                 "predicted_clv_12m_model", *PREDICTIONS, "probably_gone"]


@single_threaded
def _value(run: Run) -> dict:
    """Every customer valued on what they will spend next: the champion of a rolling-origin
    replay of the value models, and the purchase model's profile (churn risk, expected
    spend, CLV). It reads the lines and the features, not the segments, so it runs beside
    the segmentation."""

    from .models import clv, valuation

    s, folder = run.settings, run.folder
    days, fits = value_inputs(run)
    try:  # too few customers to fit on: a fact of the input, said as such (no retry)
        replay = valuation.replay(None, run.day, s.horizon_months, s.lookback_months,
                                  valuation.contest_methods(s.learned_challenger), s.selection,
                                  n_boot=s.bootstrap // 4, seed=s.seed, days=days, fits=fits)
        champion = replay.champion
        values = valuation.value_customers(None, run.day, champion, s.horizon_months,
                                           s.lookback_months, s.seed, days=days, fits=fits)
        fit = fits.fit(run.day)
    except ValueError as exc:
        raise InputError(f"{_source_name(run)}: {exc}") from None
    if fit.purchases.diagnostics_["repeat_customers"] == 0:
        raise InputError(f"{_source_name(run)}: no customer bought again after their first "
                         f"purchase before {run.day.date()}: the purchase model cannot be "
                         "fitted, so nobody can be valued on what they will spend")
    profile = clv.predictions(fit, s.horizon_months).set_index("customer_id")
    table = folder.read("features", columns=["customer_id", "has_purchase"])
    ids = table["customer_id"].astype("str")
    score = values.set_index("customer_id")["value_score"]
    table["value_score"] = ids.map(score).astype(float).fillna(0.0).to_numpy()
    table["expected_spend_model"] = ids.map(profile["expected_spend"]).astype(float) \
        .fillna(0.0).to_numpy()
    table["predicted_clv_12m_model"] = ids.map(profile["predicted_clv_12m"]).astype(float) \
        .fillna(0.0).to_numpy()
    for column in PREDICTIONS:
        table[column] = ids.map(profile[column]).to_numpy()
    # "probably gone" only where the model can tell (see BetaGeoModel's diagnostics)
    table["probably_gone"] = clv.probably_gone(table["p_alive"], fit.purchases)
    folder.write("values", table[VALUE_COLUMNS])
    summary = replay.summary.to_dict(orient="records") if len(replay.summary) else []
    info("value: %s chosen by the rolling-origin replay (%s)", champion, replay.why)
    return {
        "method": champion,
        "value_model": {
            "method": champion, "label": valuation.LABELS.get(champion, champion),
            "horizon_months": s.horizon_months, "why": replay.why,
            "probably_gone": int(table.loc[table["has_purchase"], "probably_gone"].sum()),
            "fit": fit.diagnostics(),
            "note": "; ".join(dict.fromkeys(values.attrs.get("notes", []))),
        },
        "value_contest": {
            "winner": champion, "why": replay.why, "methods": summary,
            "origins": replay.table.to_dict(orient="records") if len(replay.table) else [],
            "notes": replay.notes,
        },
        # timings stay out of the answers and the documents (same data, same answers)
        "value_contest_seconds": round(replay.seconds, 3),
    }


# --------------------------------------------------------------------------- insiders


@single_threaded
def _insiders(run: Run) -> dict:
    """Select on the value stage's scores, with hysteresis against the previous members,
    and explain in plain words. Its figures carry the value model's (`value_model`,
    `value_contest`): the answers and the documents read them here."""

    from .models import insiders as ins

    s, folder = run.settings, run.folder
    previous = previous_members(run)
    valued = folder.stage("value")
    champion = valued["method"]
    table = folder.read("features")
    values = folder.read("values")
    if not table["customer_id"].astype("str").equals(values["customer_id"].astype("str")):
        raise RuntimeError("the values file does not list the customers of the features file "
                           "in the same order: re-run the value stage")
    for column in VALUE_COLUMNS[1:]:
        table[column] = values[column].to_numpy()
    gone = table.pop("probably_gone").to_numpy(dtype=bool)
    label = ins.value_words(champion, s.windows).split(" (")[0]
    chosen, selection = ins.select(table, set(previous), s.selection, value="value_score",
                                   size_by="monetary", gone=gone, value_label=label)
    conditions = ins.derive_conditions(chosen, selection, s.windows, s.seed, method=champion,
                                       currency=run.source.currency_of(s))
    folder.write("selection", chosen)
    counts = chosen["membership"].value_counts().to_dict()
    # customers whose value would have put them in, passed over as probably gone
    gone_in_top = int((chosen["has_purchase"] & (chosen["value_score"] >= selection.entry_line)
                       & chosen["membership_reason"].str.startswith("probably gone")).sum())
    # previous members with no line at all in the period have left too
    gone_ids = sorted(set(previous) - set(chosen["customer_id"].astype("str")))
    counts["left"] = counts.get("left", 0) + len(gone_ids)
    n = int(chosen["is_insider"].sum())
    info("insiders: %s members (%.1f%% of %s active); value method %s; entered %d, stayed %d, "
         "left %d", f"{n:,}", 100 * n / max(selection.active, 1), f"{selection.active:,}",
         champion, counts.get("entered", 0), counts.get("stayed", 0), counts.get("left", 0))
    return {
        "count": n,
        "active": selection.active,
        "selection": asdict(selection),
        "value_model": {**valued["value_model"], "probably_gone_in_top": gone_in_top},
        "value_contest": valued["value_contest"],
        "value_contest_seconds": valued["value_contest_seconds"],
        "conditions": asdict(conditions),
        "membership": {k: int(counts.get(k, 0)) for k in ("entered", "stayed", "left")},
        "previous_members": len(previous),
        "previous_member_ids": sorted(previous),
    }


# --------------------------------------------------------------------------- evaluate


@single_threaded
def _evaluate(run: Run) -> dict:
    from .models import cohort_value, evaluation, features, hypotheses

    s, folder = run.settings, run.folder
    chosen = folder.read("selection")
    method = folder.stage("insiders")["value_model"]["method"]
    today = evaluation.insiders_vs_rest(chosen, s.bootstrap, s.seed)
    days, fits = value_inputs(run)
    oot = evaluation.out_of_time(days, fits, run.day, method, s.windows, s.selection,
                                 s.bootstrap, s.seed, currency=run.source.currency_of(s))
    oot.pop("member_ids", None)  # thousands of ids: the group is known by who it is today
    from .engine import steps

    # on an engine the checks read its small per-customer / per-month tables, not the lines
    lines = steps.lines_of(run)
    tx = lines if lines is not None else run.folder.transactions()
    cohort = evaluation.cohorts(tx, run.day, s.lookback_months)
    cohort.columns = [str(c) for c in cohort.columns]
    cohort.to_parquet(folder.path_of("cohorts"))
    value = cohort_value.cohort_value(tx, run.day, features.period_start(run.day,
                                                                         s.lookback_months))
    folder.write("cohort_value", value.table)
    tested = hypotheses.evaluate_hypotheses(tx, chosen, run.day, s.lookback_months)
    info("evaluate: Insiders vs rest net revenue x%s; out-of-time: %s; hypotheses: %s",
         today["monetary"]["ratio"], oot["text"],
         ", ".join(f"{h['id']} {'true' if h['verdict'] else 'false'}" for h in tested))
    return {"insiders_vs_rest": today, "out_of_time": oot, "hypotheses": tested,
            "cohort_value": {"last_month": value.last_month,
                             "last_month_partial": value.last_month_partial}}


# --------------------------------------------------------------------------- forecast


@single_threaded
def _forecast(run: Run) -> dict:
    """One expected revenue: the members' expected spend, calibrated on earlier groups,
    split over the months by Prophet's shape, with a split-conformal 80% interval; every
    customer's expected spend scaled by the same factor, so the Insiders' figures add up
    to the group's total (models.group_forecast)."""
    import pandas as pd

    from .models import forecast, valuation
    from .models import group_forecast as gf
    from .models import insiders as ins

    s, folder, as_of = run.settings, run.folder, run.day
    chosen = folder.read("selection")
    members = set(chosen.loc[chosen["is_insider"], "customer_id"].astype("str"))
    method = folder.stage("insiders")["value_model"]["method"]
    days, fits = value_inputs(run)
    groups = valuation.groups_by_origin(fits, as_of, method, 12, s.horizon_months,
                                        s.selection, s.seed)
    groups[as_of] = members  # today's group is the real one (hysteresis included)
    history_days = int((as_of - valuation.first_day(days)).days) if len(days) else 0
    shape = "prophet" if history_days >= 2 * gf.MIN_SHAPE_DAYS else "model"
    result = gf.group_forecast(days, as_of, groups, s.horizon_months, s.lookback_months,
                               shape=shape, fits=fits, seed=s.seed,
                               currency=run.source.currency_of(s))
    factor = float(result["factor"])
    expected = ins.calibrated(chosen, factor)
    folder.write("expected_values", expected)
    months = result["months"]
    rows = [{"month": str(pd.Timestamp(r.month).date()), "revenue": round(float(r.revenue), 2),
             "lower": None if pd.isna(r.lower) else round(float(r.lower), 2),
             "upper": None if pd.isna(r.upper) else round(float(r.upper), 2)}
            for r in months.itertuples()]
    from .engine import steps

    lines = steps.lines_of(run)  # the engine hands back the members' lines only
    daily = lines.daily_revenue(members, as_of) if lines is not None else \
        forecast.daily_revenue(folder.transactions(), members, as_of)
    history_starts = forecast.periods(as_of, s.lookback_months, before=True)
    history = [
        {"month": str(start.date()), "revenue": round(v, 2)}
        for start, v in zip(history_starts, forecast.period_totals(daily, history_starts),
                            strict=True)
        if start >= daily.index.min().normalize()
    ] if len(daily) else []
    back = gf.backtest_figures(result["backtest"], result["backtest_summary"])
    total = round(float(expected.loc[chosen["is_insider"], "expected_value"].sum()), 2)
    info("forecast: %s next %d months (%s), total %s; %s", "bottom-up", s.horizon_months,
         ", ".join(f"{r['month']} {r['revenue']:,.0f}" for r in rows), f"{total:,.0f}",
         back["text"])
    lo, hi = result["total_interval"]
    return {"method": f"bottom-up ({shape} shape)", "shape": shape, "months": rows,
            "total": total, "total_interval": [None if pd.isna(lo) else round(float(lo), 2),
                                                None if pd.isna(hi) else round(float(hi), 2)],
            "factor": round(factor, 6), "model_total": round(float(
                chosen.loc[chosen["is_insider"], "expected_spend_model"].sum()), 2),
            "bias_months": result["bias_months"], "notes": result["notes"],
            "text": result["text"], "history": history, "backtest": back}


# --------------------------------------------------------------------------- stability


@single_threaded
def _stability(run: Run) -> dict:
    """ARI curve of the chosen segmentation over the last months, and the refresh advice."""
    from .engine import steps
    from .models import stability

    s, folder = run.settings, run.folder
    lines = steps.lines_of(run)  # six cuts' features, aggregated by the engine
    tx = lines if lines is not None else folder.transactions()
    seg = folder.stage("segment")
    result = stability.ari_curve(
        tx, run.day, seg["chosen"]["algorithm"], seg["chosen"]["k"], s.stability,
        s.lookback_months, seg.get("model_features"), s.cluster_sample, s.seed,
        feature_fn=run.source.feature_function(folder, tx, s.lookback_months),
        transforms=_transforms(run))
    info("stability: %s", result["text"])
    return result


# --------------------------------------------------------------------------- report

# the stages whose figures the answers and the documents are built from
REPORTED = ("extract", "quality", "features", "segment", "insiders", "evaluate", "forecast")
INSIDERS_COLUMNS = [
    "customer_id", "value_rank", "segment", "persona", "country", "expected_value",
    "predicted_clv_12m", "churn_risk", "churn_band", "expected_next_order",
    "avg_days_between_orders", "historic_value", "monetary", "frequency", "recency_days",
    "avg_ticket", "revenue_90d", "tenure_days", "return_rate", "membership",
    "membership_reason",
]


def _report(run: Run) -> dict:
    """answers.json, insiders.csv and report.html from the stages' outputs."""
    from .models import campaigns
    from .models import insiders as ins
    from .publish import answers as answers_mod
    from .publish import report

    s, folder = run.settings, run.folder
    stages = folder.stages(REPORTED)
    customers = ins.customers_table(folder.read("selection"), folder.read("segments"),
                                    folder.read("expected_values"))
    folder.write("customers", customers)
    extra = run.source.amend_answers(folder, stages, customers)
    if "stability" not in extra and folder.has_stage("stability"):
        # timings live in the run's `timings`, never in the answers (same data, same answers)
        extra["stability"] = {k: v for k, v in folder.stage("stability").items()
                              if k != "seconds"}
    lists = campaigns.campaign_lists(
        customers, stages["insiders"]["selection"]["size"],
        stages["insiders"]["selection"]["exit_rank"],
        stages["insiders"]["selection"]["exit_line"],
        gone_members=sorted(set(stages["insiders"]["previous_member_ids"])
                            - set(customers["customer_id"].astype("str"))),
        entry_line=stages["insiders"]["selection"].get("entry_line"),
        currency=run.source.currency_of(s))
    csv_floats(lists, 4).to_csv(folder.path_of("campaigns"), index=False, float_format="%.4f")
    answers = answers_mod.build(run.day, stages, customers, extra,
                                currency=run.source.currency_of(s),
                                region_label=run.source.region_label)
    answers["campaigns"] = campaigns.summary(lists)
    answers["how_many"]["bounds"] = {"min_share": s.min_share, "max_share": s.max_share}
    answers = clean_floats(answers)
    folder.write_json("answers", answers)
    members = customers[customers["is_insider"]].sort_values("value_rank")
    csv_floats(members[INSIDERS_COLUMNS], 2).to_csv(folder.path_of("insiders_csv"), index=False,
                                                  float_format="%.2f")
    cohorts = folder.read("cohorts") if folder.exists("cohorts") else None
    value = folder.read("cohort_value") if folder.exists("cohort_value") else None
    # a monthly run's page names its run as the dashboard does ("latest run 2011-11"): its
    # as-of, the first day of the next month, alone read as a different month
    title = run.source.title + (f" - run {run.month}" if run.month else "")
    report.write(folder.path_of("report"), answers, customers, cohorts,
                 membership_history(run), title, cohort_value=value, campaigns=lists)
    info("report: answers.json, insiders.csv, report.html written in %s", folder.path)
    return {"answers": str(folder.path_of("answers")), "report": str(folder.path_of("report")),
            "insiders": str(folder.path_of("insiders_csv")),
            "campaigns": str(folder.path_of("campaigns"))}


# --------------------------------------------------------------------------- publish


def _write_documents(run: Run) -> dict:
    """Replace the month's documents; the run is visible to readers only once complete."""
    from . import stores
    from .publish import documents

    built_run, docs = documents.build(run.folder, run.month)
    with stores.store_from(run.settings) as store:
        result = store.write_run(built_run, docs)
        kind = store.kind
    info("write_documents: run %s complete in the %s store: %s", run.month, kind,
         ", ".join(f"{k} {v:,}" for k, v in result["counts"].items()))
    return result


def _sync_sql(run: Run) -> dict:
    """Copy complete runs that are new or changed to the SQL store (one transaction each),
    then the source's own tables (Olist's customer experience)."""
    from . import stores
    from .publish import sql_sync

    url = run.settings.sql_url_or_default
    with stores.store_from(run.settings) as store:
        result = sql_sync.sync(store, url)
    extra = run.source.sync_sql(run.folder, url)
    if extra:
        result["source_tables"] = extra
    return result


# what every modelling stage (`single_threaded`) imports, ~1.2 s here, in pieces of at most
# ~0.4 s (each loaded whole: a copy that ends meanwhile is collected after the piece)
MODELLING = ("scipy.linalg", "scipy.optimize", "scipy.stats", "sklearn", "sklearn.metrics",
             "sklearn.cluster", "insiders.models.clv")
extract = Stage("extract", _extract, ("rows", "rejects", "source"))
quality = Stage("quality", _quality, ("rows_in", "rows_kept", "set_aside"), ("extract",))
# features reads the kept lines into this process, where value and the copies reuse them
features = Stage("features", _features, ("customers", "active", "period_start"), ("quality",),
                 prefer_main=True, loads=MODELLING)
segment = Stage("segment", _segment, ("chosen", "personas"), ("features",), loads=MODELLING)
# value and segment read nothing of each other: they run side by side
value = Stage("value", _value, ("method",), ("features",), prefer_main=True, loads=MODELLING)
# insiders reads no segment: it starts beside the segmentation once the values are known
insiders = Stage("insiders", _insiders, ("count", "active", "membership"),
                 ("features", "value"), loads=MODELLING)
# evaluate, forecast and stability read nothing of each other: they run side by side
evaluate = Stage("evaluate", _evaluate, (), ("insiders",), loads=MODELLING)
forecast = Stage("forecast", _forecast, ("method", "months"), ("insiders",),
                 loads=(*MODELLING, "holidays", "insiders.models.forecast:prophet_class"))
stability = Stage("stability", _stability, ("recommended_refresh_months", "min_ari", "text"),
                  ("features", "segment"), loads=MODELLING)
report = Stage("report", _report, ("answers", "report", "insiders"),
               ("segment", "evaluate", "forecast", "stability"),
               loads=("insiders.publish.report", "insiders.dashboards.htmlkit:ready_plotly"))
write_documents = Stage("write_documents", _write_documents, ("run_id", "counts", "version"),
                        ("report",))
sync_sql = Stage("sync_sql", _sync_sql, ("synced", "unchanged", "source_tables"),
                 ("write_documents",))

# forecast before evaluate: side by side, the longer of the two starts first
ANALYSIS: tuple[Stage, ...] = (extract, quality, features, segment, value, insiders, forecast,
                               evaluate, stability, report)
PUBLISH: tuple[Stage, ...] = (write_documents, sync_sql)
MONTHLY: tuple[Stage, ...] = ANALYSIS + PUBLISH
