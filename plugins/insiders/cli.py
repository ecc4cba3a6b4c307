"""`insiders`: the command line. Errors users can act on are one line, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .config import Settings
from .errors import InsidersError
from .sources import DEFAULT as DEFAULT_SOURCE
from .sources import SOURCES


def _date(text: str) -> str:
    import pandas as pd

    try:
        return str(pd.Timestamp(text).date())
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (use YYYY-MM-DD)") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="insiders",
        description="Pick the best customers for a loyalty program, explain why, forecast "
                    "what they will spend.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole flow on a transactions file")
    run.add_argument("--input", help="transactions: .csv, .csv.gz, .zip, .xlsx, a folder, a glob "
                                     "or a SQLAlchemy URL (default: the demo data set)")
    run.add_argument("--source", choices=sorted(SOURCES), default=None,
                     help=f"the layout of the input (default: {DEFAULT_SOURCE})")
    run.add_argument("--query", help="table name or SELECT when --input is a database URL")
    run.add_argument("--as-of", type=_date, help="use only lines dated before this day "
                                                  "(default: the day after the last line)")
    run.add_argument("--out", default="insiders-out", help="output folder (default: "
                                                           "./insiders-out)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--engine", choices=("duckdb", "spark", "pandas"), default=None,
                     help="where the line-level work runs (default: INSIDERS_ENGINE or duckdb; "
                          "spark needs the spark extra)")

    demo = sub.add_parser("demo", help="write the deterministic demo data set")
    demo.add_argument("--out", required=True, help="file to write (.csv or .csv.gz)")
    demo.add_argument("--customers", type=int, default=1500)
    demo.add_argument("--seed", type=int, default=7)

    dash = sub.add_parser("dashboard", help="render the dashboard's cards into one static page")
    dash.add_argument("--out", required=True, help="HTML file to write")
    dash.add_argument("--sql-url", help="SQL store (default: INSIDERS_SQL_URL or the embedded "
                                        "SQLite file)")
    dash.add_argument("--definitions", help="dashboard folder (default: metabase/; "
                                            "metabase/experience for the Olist cards)")

    mb = sub.add_parser("metabase", help="Metabase dashboard as code")
    mb_sub = mb.add_subparsers(dest="metabase_command", required=True)
    prov = mb_sub.add_parser("provision", help="create or update the collection, cards and "
                                               "dashboard (credentials from the environment)")
    prov.add_argument("--url", help="Metabase URL (default: INSIDERS_METABASE_URL)")
    prov.add_argument("--definitions", help="dashboard folder (default: metabase/; "
                                            "metabase/experience for the Olist cards)")

    sync = sub.add_parser("sync", help="copy complete runs from the document store to the SQL "
                                       "store")
    sync.add_argument("--sql-url", help="SQL store (default: INSIDERS_SQL_URL or SQLite)")

    back = sub.add_parser("backfill", help="run the monthly DAG's tasks for a range of months in "
                                           "this process (no Airflow needed)")
    back.add_argument("--first-month", required=True, help="first month covered, YYYY-MM")
    back.add_argument("--last-month", required=True, help="last month covered, YYYY-MM")
    return parser


class _BarFriendlyHandler(logging.Handler):
    """Log lines above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = _BarFriendlyHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    for noisy in ("cmdstanpy", "prophet", "py4j", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return _dispatch(args)
    except InsidersError as exc:
        print(f"insiders: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("insiders: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line unless asked for the traceback
        if args.debug:
            raise
        print(f"insiders: unexpected error: {type(exc).__name__}: {exc} (run with --debug for "
              "the traceback)", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "demo":
        from . import demo

        path = demo.write(args.out, customers=args.customers, seed=args.seed)
        print(path)
        return 0
    if args.command == "dashboard":
        from . import dashboard

        settings = Settings.from_env()
        path = dashboard.render_dashboard(
            args.sql_url or settings.sql_url_or_default, Path(args.out),
            Path(args.definitions) if args.definitions else None)
        print(path)
        return 0
    if args.command == "metabase":
        from . import metabase

        report = metabase.provision_from_env(
            args.url, Path(args.definitions) if args.definitions else None)
        print(report)
        return 0
    if args.command == "sync":
        from . import documents
        from .publish import sql_sync

        settings = Settings.from_env()
        with documents.store_from(settings) as store:
            summary = sql_sync.sync(store, args.sql_url or settings.sql_url_or_default)
        print(f"synced {len(summary['synced'])} run(s), {len(summary['unchanged'])} unchanged")
        return 0
    if args.command == "backfill":
        return _backfill(args)
    raise AssertionError(args.command)


def _run(args: argparse.Namespace) -> int:
    from . import pipeline, stages

    settings = Settings.from_env(source_query=args.query, engine=args.engine)
    started = time.perf_counter()
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(stages.ANALYSIS), unit="stage", file=sys.stderr, leave=True,
                   bar_format="{desc:<22}{bar:30}{n_fmt}/{total_fmt} [{elapsed}]")

    def on_stage(name: str) -> None:
        if bar is not None:
            if bar.n or name != "extract":
                bar.update(1)
            bar.set_description(name)

    try:
        result = pipeline.run(settings, args.input, args.as_of, args.out, kind=args.source,
                              on_stage=on_stage)
    finally:
        if bar is not None:
            bar.update(bar.total - bar.n)
            bar.close()
    out = Path(args.out)
    print(f"as of {result['as_of']}: done in {time.perf_counter() - started:.1f} s")
    for name in ("answers.json", "insiders.csv", "customers.parquet", "quarantine.csv.gz",
                 "report.html"):
        print(f"  {out / name}")
    return 0


def _backfill(args: argparse.Namespace) -> int:
    """Months as the DAG would run them: the run for month M has as-of the 1st of M+1."""
    import pandas as pd

    from . import monthly

    settings = Settings.from_env()
    try:
        first = pd.Period(args.first_month, freq="M")
        last = pd.Period(args.last_month, freq="M")
    except ValueError:
        raise InsidersError("months must look like 2011-03") from None
    if last < first:
        raise InsidersError(f"--last-month {last} is before --first-month {first}")
    for period in pd.period_range(first, last, freq="M"):
        as_of = (period + 1).to_timestamp()
        started = time.perf_counter()
        monthly.run_month(as_of, settings)
        print(f"run {period}: complete in {time.perf_counter() - started:.1f} s")
    print(f"documents: {settings.mongo_uri or settings.home / 'documents'}")
    print(f"SQL store: {settings.sql_url_or_default}")
    print(f"reports:   {settings.home / 'runs'}/<YYYY-MM>/report.html")
    return 0
