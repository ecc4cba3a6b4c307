"""`insiders`: the command line. Errors users can act on are one line, never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import sys
import time
from pathlib import Path

from . import wording
from .config import ENGINES, Settings
from .errors import InsidersError
from .sources import DEFAULT as DEFAULT_SOURCE
from .sources import SOURCES

ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# what a run writes into --out: only these are ever deleted, and only from a run folder
def parse_as_of(text: str, today: dt.date) -> str:
    """`--as-of` as YYYY-MM-DD only, and not after today.

    `01-09-2011` is 1 September in the UK and 9 January in the US: a date library
    guesses (it read 2011-01-09), so any other form is refused with one line. A day
    after today has no data yet: the advice is an earlier as-of, not a later one.
    """
    value = text.strip()
    if not ISO_DAY.fullmatch(value):
        raise InsidersError(f"--as-of {text!r}: write the date as YYYY-MM-DD (e.g. 2011-09-01); "
                            "forms like 01-09-2011 or 9/1/2011 read differently in the UK "
                            "and the US")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise InsidersError(f"--as-of {text!r} is not a day of the calendar; write a real "
                            "date as YYYY-MM-DD") from None
    if day > today:
        raise InsidersError(f"--as-of {day} is after today ({today}): no line dated after "
                            "today can be known; choose an earlier --as-of (at most "
                            f"{today + dt.timedelta(days=1)}, to include today's lines)")
    return str(day)


def check_sql_store(url: str, settings: Settings) -> None:
    """A SQLite store that is not there: name the path and what to do.

    SQLite would otherwise create an empty file (or fail with "unable to open database
    file" when its folder is missing), which says neither where it looked nor why.
    """
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise InsidersError(f"{url!r} is not a SQLAlchemy URL (e.g. sqlite:////abs/path.sqlite "
                            "or postgresql+psycopg://user@host/db)") from None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if not path.is_file():
        raise InsidersError(
            f"no SQL store at {path.resolve()} (INSIDERS_HOME is {settings.home}): run the "
            "monthly flow first (`make run` in the repository, or `insiders backfill "
            "--first-month 2011-11 --last-month 2011-11`), or point --sql-url, "
            "INSIDERS_SQL_URL or INSIDERS_HOME at an existing store")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="insiders",
        description="Pick the best customers for a loyalty program, explain why, forecast "
                    "what they will spend.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole flow on a transactions file")
    run.add_argument("--input", help="transactions: .csv, .csv.gz, .zip, .xlsx, .parquet, a "
                                     "folder, a glob or a SQLAlchemy URL (default: the demo "
                                     "data set); for olist, the folder or zip of its CSVs")
    run.add_argument("--source", choices=sorted(SOURCES), default=None,
                     help=f"the layout of the input (default: {DEFAULT_SOURCE})")
    run.add_argument("--query", help="table name or SELECT when --input is a database URL")
    run.add_argument("--as-of", help="use only lines dated before this day, YYYY-MM-DD "
                                      "(default: the day after the last line)")
    run.add_argument("--non-product-codes", default=None,
                     help="stock codes that are not products, comma separated, NAME* for a "
                          "prefix; '' for none (default: INSIDERS_NON_PRODUCT_CODES or the "
                          "Online Retail list: POST, DOT, M, D, BANK CHARGES, GIFT_*, ...)")
    run.add_argument("--out", default="insiders-out",
                     help="output folder, new or from an earlier run, whose outputs are "
                          "replaced (default: ./insiders-out)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--engine", choices=ENGINES, default=None,
                     help="where the line-level work runs (default: INSIDERS_ENGINE or auto: "
                          "pandas up to 2.5 million lines, duckdb beyond; spark needs the "
                          "spark extra)")
    run.add_argument("--pushdown", action="store_true", default=None,
                     help="a SQL table input: aggregate it inside its database instead of "
                          "pulling every line (default: INSIDERS_PUSHDOWN)")
    run.add_argument("--workers", type=int, default=None,
                     help="stages run side by side when they need nothing of each other "
                          "(default: INSIDERS_WORKERS or 2; 1 = one at a time)")

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
    back.add_argument("--workers", type=int, default=None,
                      help="stages side by side (default: INSIDERS_WORKERS or 2)")
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
        from .dashboards import page

        settings = Settings.from_env()
        check_sql_store(args.sql_url or settings.sql_url_or_default, settings)
        path = page.render_dashboard(
            args.sql_url or settings.sql_url_or_default, Path(args.out),
            Path(args.definitions) if args.definitions else settings.metabase.definitions)
        print(path)
        return 0
    if args.command == "metabase":
        from .dashboards import provision

        report = provision.provision_from_env(
            args.url, Path(args.definitions) if args.definitions else None)
        print(report)
        return 0
    if args.command == "sync":
        from . import stores
        from .publish import sql_sync

        settings = Settings.from_env()
        with stores.store_from(settings) as store:
            summary = sql_sync.sync(store, args.sql_url or settings.sql_url_or_default)
        print(f"synced {wording.counted(len(summary['synced']), 'run')}, "
              f"{len(summary['unchanged'])} unchanged")
        return 0
    if args.command == "backfill":
        return _backfill(args)
    raise AssertionError(args.command)


def _run(args: argparse.Namespace) -> int:
    from . import pipeline, stages

    settings = Settings.from_env(source_query=args.query,
                                 non_product_codes=args.non_product_codes, engine=args.engine,
                                 pushdown=args.pushdown, workers=args.workers)
    as_of = parse_as_of(args.as_of, dt.date.today()) if args.as_of else None
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
        result = pipeline.run(settings, args.input, as_of, args.out, kind=args.source,
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

    settings = Settings.from_env(workers=args.workers)
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
