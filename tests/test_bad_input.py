"""Bad input never crashes and never silently shortens the result.

Every case of the corpus (tests/data/bad/make_corpus.py, described in its
README) goes two ways, as users and the scheduler meet it: through `insiders
run` as a subprocess, and through the DAG's extract and quality tasks
(`stages.extract`, `stages.quality`, called directly). A case ends
either in one clear line on stderr (non-zero exit, no traceback; `InputError`
for the tasks) or in a run whose quarantine holds every set-aside row, with
its file row and reason, exactly as the generator built it.

The CLI runs take a few seconds each (imports, clustering, Prophet), so the
selected ones run in parallel once per session.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import default_as_of, run_stage
from insiders import quality, stages, wording
from insiders.catalog import RunFolder
from insiders.errors import InputError, InsidersError

CORPUS_SCRIPT = Path(__file__).parent / "data" / "bad" / "make_corpus.py"


def _load_corpus_module():
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


corpus_mod = _load_corpus_module()
NAMES = corpus_mod.names()
CSV_RUNS = ["renamed_columns", "wrong_delimiter", "non_numeric", "mixed_dates",
            "impossible_dates", "future_dates", "future_typo_no_as_of", "misdated_invoice",
            "word_codes", "column_aliases", "bad_prices",
            "huge_quantities", "duplicates",
            "malformed_lines", "latin1_bytes", "several_countries", "one_customer",
            "one_day", "all_rows_bad"]

# Known gaps, kept visible as strict xfails until they are fixed (none at the moment).
CLI_GAPS: dict[str, str] = {}
DAG_GAPS: dict[str, str] = {}


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    out: Path


@dataclass
class StageRun:
    run_dir: Path
    extract: dict | None = None
    quality: dict | None = None
    error: Exception | None = None
    failed_stage: str | None = None


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return corpus_mod.build(tmp_path_factory.mktemp("bad-corpus"))


def _cli_command() -> list[str]:
    script = Path(sys.executable).with_name("insiders")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from insiders.cli import main; raise SystemExit(main())"]


def _run_cli(case, out: Path, home: Path) -> CliRun:
    command = [*_cli_command(), "run", "--input", str(case.path), "--out", str(out), "--quiet"]
    if case.as_of:
        command += ["--as-of", case.as_of]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDERS_")}
    env["INSIDERS_HOME"] = str(home)
    # runs go two at a time on tiny data: BLAS threads would only fight over the cores
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    return CliRun(done.returncode, done.stdout, done.stderr, out)


class _Runs(dict):
    """Runs by case name, made on first use."""

    def __init__(self, make) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, name: str):
        self[name] = self._make(name)
        return self[name]


@pytest.fixture(scope="session")
def cli_runs(corpus: dict, request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, CliRun]:
    """`insiders run` per case; those the selected tests parametrise on run in parallel first."""
    base = tmp_path_factory.mktemp("cli")
    runs = _Runs(lambda name: _run_cli(corpus[name], base / name, base / "home"))
    wanted = sorted({item.callspec.params["name"] for item in request.session.items
                     if "cli_runs" in getattr(item, "fixturenames", ())
                     and "name" in getattr(getattr(item, "callspec", None), "params", {})})
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for name, run in zip(wanted, pool.map(runs._make, wanted), strict=True):
            runs[name] = run
    return runs


@pytest.fixture(scope="session")
def stage_runs(corpus: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, StageRun]:
    """The DAG's extract and quality tasks on a case, once per case."""
    base = tmp_path_factory.mktemp("dag")
    return _Runs(lambda name: _run_stages(corpus[name], base / name))


def _run_stages(case, run_dir: Path) -> StageRun:
    run = StageRun(run_dir)
    try:
        run.failed_stage = "extract"
        run.extract = run_stage(stages.extract, run_dir, case.path)
        run.failed_stage = "quality"
        as_of = pd.Timestamp(case.as_of) if case.as_of else default_as_of(run_dir)
        run.quality = run_stage(stages.quality, run_dir, as_of=as_of)
        run.failed_stage = None
    except InsidersError as exc:
        run.error = exc
    return run


# --------------------------------------------------------------------------- helpers


def _quarantine(run_dir: Path) -> pd.DataFrame:
    frame = pd.read_csv(run_dir / "quarantine.csv.gz", dtype="str", keep_default_na=False)
    frame["source_row"] = frame["source_row"].astype("int64")
    return frame


def _relative(source_file: pd.Series, case) -> pd.Series:
    """`/tmp/.../two_files.zip:a.csv` -> `two_files.zip:a.csv`, as the generator names it."""
    prefix = str(case.path.parent) + os.sep
    return source_file.astype("str").str.removeprefix(prefix)


def _assert_quarantine(run_dir: Path, case) -> pd.DataFrame:
    """The quarantine holds exactly the set-aside rows the generator made, by row and reason."""
    frame = _quarantine(run_dir)
    assert len(frame) == sum(case.set_aside.values())
    assert frame["reason"].value_counts().to_dict() == case.set_aside
    got = sorted(zip(_relative(frame["source_file"], case), frame["source_row"],
                     frame["reason"], strict=True))
    assert [(w, int(r), why) for w, r, why in got] == list(case.aside_rows)
    return frame


def _one_line(message: str) -> str:
    lines = [line for line in message.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{message}"
    return lines[0]


def _transactions(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "work/transactions.parquet")


def _by_row(frame: pd.DataFrame, case) -> pd.DataFrame:
    keys = _relative(frame["source_file"], case) + "#" + frame["source_row"].astype("str")
    return frame.set_index(keys)


def _file_lines(path: Path) -> list[str]:
    """The file's lines as text: row n (header = 1) is lines[n - 1]."""
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    return text.replace("\r\n", "\n").split("\n")


def _file_rows(path: Path) -> list[list[str]]:
    """The file's lines split into fields, with the delimiter its header uses."""
    lines = _file_lines(path)
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    return [next(csv.reader([line], delimiter=delimiter), []) for line in lines]


# --------------------------------------------------------------------------- every case, CLI


def _params(names: list[str], gaps: dict[str, str]) -> list:
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=gaps[n]))
            if n in gaps else n for n in names]


@pytest.mark.parametrize("name", _params(NAMES, CLI_GAPS))
def test_cli(name: str, corpus: dict, cli_runs: dict[str, CliRun]) -> None:
    case, run = corpus[name], cli_runs[name]
    assert "Traceback" not in run.stderr
    if case.outcome == "error":
        assert run.returncode != 0, run.stdout
        line = _one_line(run.stderr)
        assert "error" in line
        assert "unexpected error" not in line, line
        for fragment in case.fragments:
            assert fragment in line, line
        return
    assert run.returncode == 0, run.stderr
    answers = json.loads((run.out / "answers.json").read_text())
    dq = answers["data_quality"]
    assert (dq["rows_in"], dq["rows_kept"], dq["set_aside"]) == (
        case.rows_in, case.rows_kept, case.set_aside)
    _assert_quarantine(run.out, case)


ERRORS = [n for n in NAMES if n in {"empty", "header_only", "not_a_table", "missing_column",
                                    "unclosed_quote", "truncated_gzip", "one_customer",
                                    "one_day", "all_rows_bad"}]


@pytest.mark.parametrize("name", ERRORS)
def test_cli_error_names_the_file(name: str, corpus: dict, cli_runs: dict[str, CliRun]) -> None:
    case, run = corpus[name], cli_runs[name]
    assert case.outcome == "error"
    assert case.path.name in _one_line(run.stderr)


# --------------------------------------------------------------------------- every case, DAG


@pytest.mark.parametrize("name", _params(NAMES, DAG_GAPS))
def test_dag_tasks(name: str, corpus: dict, stage_runs: dict[str, StageRun]) -> None:
    case, run = corpus[name], stage_runs[name]
    if case.error_stage in ("extract", "quality"):
        assert isinstance(run.error, InputError), run
        assert run.failed_stage == case.error_stage
        message = _one_line(str(run.error))
        for fragment in case.fragments:
            assert fragment in message, message
        if case.error_stage == "extract":
            assert case.path.name in message
        else:  # quality refuses to go on, but the quarantine is written and complete
            _assert_quarantine(run.run_dir, case)
        return
    assert run.error is None, run.error
    result = run.quality
    assert (result["rows_in"], result["rows_kept"], result["set_aside"]) == (
        case.rows_in, case.rows_kept, case.set_aside)
    assert len(_transactions(run.run_dir)) == case.rows_kept
    _assert_quarantine(run.run_dir, case)


def test_dag_later_stage_error(corpus: dict, stage_runs: dict[str, StageRun]) -> None:
    """A file of one customer passes extract and quality; the segment task says why it stops
    (and the value task beside it, why it cannot value anyone)."""
    case, run = corpus["one_customer"], stage_runs["one_customer"]
    as_of = pd.Timestamp(run.quality["as_of"])
    run_stage(stages.features, run.run_dir, as_of=as_of)
    with pytest.raises(InputError) as caught:
        run_stage(stages.segment, run.run_dir, as_of=as_of)
    message = _one_line(str(caught.value))
    for fragment in case.fragments:
        assert fragment in message
    # the value task beside it stops too, at once (bad input is not retried), naming the file
    with pytest.raises(InputError) as caught:
        run_stage(stages.value, run.run_dir, as_of=as_of)
    assert case.path.name in _one_line(str(caught.value))


def test_dag_features_task_refuses_a_history_too_short_to_value_anyone(
        corpus: dict, stage_runs: dict[str, StageRun]) -> None:
    """A day of invoices passes extract and quality (counts and quarantine as built); the
    features task stops before any model with the span it saw and what it needs."""
    case, run = corpus["one_day"], stage_runs["one_day"]
    assert run.error is None, run.error
    with pytest.raises(InputError) as caught:
        run_stage(stages.features, run.run_dir, as_of=pd.Timestamp(run.quality["as_of"]))
    message = _one_line(str(caught.value))
    for fragment in case.fragments:
        assert fragment in message, message
    assert "later --as-of" not in message  # the as-of is already the day after the data


# --------------------------------------------------------------------------- behaviours


@pytest.mark.parametrize("name", CSV_RUNS)
def test_quarantine_rows_point_at_the_file(name: str, corpus: dict,
                                           stage_runs: dict[str, StageRun]) -> None:
    """Each set-aside row's source_row is the line it came from, read back from the file."""
    case, run = corpus[name], stage_runs[name]
    lines, rows = _file_lines(case.path), _file_rows(case.path)
    shift = 1 if name == "renamed_columns" else 0  # its first column is an unnamed index
    for line in _quarantine(run.run_dir).itertuples():
        raw = rows[line.source_row - 1]
        if line.reason == "malformed_row":  # kept verbatim
            assert line.description == lines[line.source_row - 1]
            continue
        assert (raw[shift], raw[shift + 1]) == (line.invoice, line.stock_code)
        if line.reason != "duplicate":  # duplicates are written from the typed kept line
            assert raw[shift + 3:shift + 7] == [line.quantity, line.invoice_date,
                                                line.unit_price, line.customer_id]


def test_returns_and_cancellations_are_kept_and_netted(corpus: dict,
                                                       stage_runs: dict[str, StageRun]) -> None:
    case, run = corpus["huge_quantities"], stage_runs["huge_quantities"]
    tx = _transactions(run.run_dir)
    big = tx[tx["stock_code"].astype("str") == "23843"]
    assert sorted(big["quantity"]) == [-80995, 80995]
    cancel = big[big["quantity"] < 0].iloc[0]
    assert cancel["is_cancellation"] and cancel["is_return"]
    assert big["revenue"].sum() == pytest.approx(0.0)
    aside = _quarantine(run.run_dir)
    assert not aside["invoice"].str.startswith("C").any()
    cancellations = sum(row[0].startswith("C") for row in _file_rows(case.path)[1:] if row)
    assert cancellations >= 5  # the two big ones and the base's returns
    assert tx["is_cancellation"].sum() == cancellations
    assert (tx.loc[tx["is_cancellation"], "quantity"] < 0).all()


@pytest.mark.parametrize("name", ["renamed_columns", "wrong_delimiter", "xlsx_sheets"])
def test_customer_id_spellings_are_one_customer(name: str, corpus: dict,
                                                stage_runs: dict[str, StageRun]) -> None:
    """`17850.0`, `17850` (and `17850,0`, a float cell 17850.0) are the same customer."""
    run = stage_runs[name]
    tx = _transactions(run.run_dir)
    ids = set(tx["customer_id"].astype("str"))
    assert "17850" in ids
    assert not any(i.startswith("17850") and i != "17850" for i in ids)
    assert not any(i.endswith((".0", ",0")) for i in ids)
    if name != "xlsx_sheets":
        rows = _file_rows(corpus[name].path)
        col = rows[0].index("Customer ID" if name == "renamed_columns" else "CustomerID")
        spellings = {rows[r - 1][col] for r in tx.loc[tx["customer_id"] == "17850",
                                                      "source_row"]}
        assert len(spellings) == 2, spellings  # both spellings were read into one id


def test_customer_id_spellings_in_customers_file(corpus: dict,
                                                 cli_runs: dict[str, CliRun]) -> None:
    run = cli_runs["renamed_columns"]
    customers = pd.read_parquet(run.out / "customers.parquet")
    assert (customers["customer_id"].astype("str") == "17850").sum() == 1


def test_mixed_date_formats_all_parse(corpus: dict, stage_runs: dict[str, StageRun]) -> None:
    case, run = corpus["mixed_dates"], stage_runs["mixed_dates"]
    assert run.quality["set_aside"].get("unparseable_date", 0) == 0
    tx = _by_row(_transactions(run.run_dir), case)
    got = tx["invoice_date"].dt.strftime("%Y-%m-%d %H:%M:%S").to_dict()
    assert got == case.facts["dates"]


def test_impossible_dates_set_aside_with_their_row(corpus: dict,
                                                   stage_runs: dict[str, StageRun]) -> None:
    case, run = corpus["impossible_dates"], stage_runs["impossible_dates"]
    aside = _by_row(_quarantine(run.run_dir), case)
    unparseable = aside[aside["reason"] == "unparseable_date"]
    assert unparseable["invoice_date"].to_dict() == case.facts["impossible"]
    assert "2011-02-30 10:15:00" in set(unparseable["invoice_date"])


def test_latin1_bytes_are_decoded_and_noted(corpus: dict,
                                            stage_runs: dict[str, StageRun]) -> None:
    case, run = corpus["latin1_bytes"], stage_runs["latin1_bytes"]
    tx = _by_row(_transactions(run.run_dir), case)
    assert not tx["description"].astype("str").str.contains("\ufffd").any()
    got = tx.loc[list(case.facts["descriptions"]), "description"].astype("str").to_dict()
    assert got == case.facts["descriptions"]
    notes = " ".join(run.extract["notes"])
    assert f"{case.facts['latin1_values']} values were not UTF-8" in notes


def test_zip_with_two_files_reads_both(corpus: dict, stage_runs: dict[str, StageRun]) -> None:
    case, run = corpus["zip_two_files"], stage_runs["zip_two_files"]
    assert "read 2 tables" in " ".join(run.extract["notes"])
    tx = _transactions(run.run_dir)
    aside = _quarantine(run.run_dir)
    per_file = pd.concat([_relative(tx["source_file"], case),
                          _relative(aside["source_file"], case)]).value_counts().to_dict()
    assert per_file == case.facts["sources"]
    dup = aside[aside["reason"] == "duplicate"]
    assert len(dup) == 1 and dup["source_file"].str.endswith("2011-06_2011-12.csv").all()


def test_xlsx_reads_transaction_sheets_and_notes_the_others(
        corpus: dict, stage_runs: dict[str, StageRun]) -> None:
    case, run = corpus["xlsx_sheets"], stage_runs["xlsx_sheets"]
    tx = _transactions(run.run_dir)
    assert sorted(set(_relative(tx["source_file"], case))) == sorted(case.facts["sheets"])
    notes = " ".join(run.extract["notes"])
    sheets = "sheet" if len(case.facts["ignored"]) == 1 else "sheets"
    assert f"ignored {sheets} without transactions: " + ", ".join(case.facts["ignored"]) in notes
    for sheet, count in case.facts["empty_rows"].items():
        if count:  # a gap between lines
            assert f"{sheet}: {wording.counted(count, 'empty row')} skipped" in notes
        else:  # formatted cells without a value are no rows at all
            assert not [n for n in run.extract["notes"]
                        if n.startswith(f"{sheet}: ") and "empty row" in n]


def test_customer_with_several_countries(corpus: dict, stage_runs: dict[str, StageRun],
                                         cli_runs: dict[str, CliRun]) -> None:
    case = corpus["several_countries"]
    facts = case.facts
    assert any("1 customer appears under several countries" in note
               for note in stage_runs["several_countries"].quality["notes"])
    run = cli_runs["several_countries"]
    customers = pd.read_parquet(run.out / "customers.parquet")
    mine = customers[customers["customer_id"].astype("str") == facts["customer"]]
    assert len(mine) == 1
    assert mine["country"].iloc[0] == facts["country"]
    answers = json.loads((run.out / "answers.json").read_text())
    assert any("several countries" in note for note in answers["data_quality"]["notes"])


def test_empty_lines_are_not_rows_and_keep_numbering(corpus: dict,
                                                     stage_runs: dict[str, StageRun]) -> None:
    case, run = corpus["malformed_lines"], stage_runs["malformed_lines"]
    empty = wording.counted(case.facts["empty_rows"], "empty row")
    assert f"{empty} skipped" in " ".join(run.extract["notes"])
    aside = _quarantine(run.run_dir)
    assert (aside["reason"] == "malformed_row").sum() == 2


def test_row_numbers_hold_across_blocks_and_chunks(tmp_path: Path) -> None:
    """Past the reader's 8 MB blocks and several chunks, every row keeps its file number.

    The reader parses a block ahead, so rows it rejects can belong to the next chunk;
    empty lines and unsplittable lines are spread over the file. Each line's InvoiceNo
    is its row number, so the check is exact.
    """
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    lines, malformed, empty = [header], [], 0
    for row in range(2, 200_000):
        if row % 9973 == 0:
            lines.append("")
            empty += 1
        elif row % 19997 == 0:
            lines.append(f"{row},22633,HAND WARMER, UNION JACK,6,12/1/2010 8:26,1.85,17850.0,UK")
            malformed.append(row)
        else:
            lines.append(f"{row},85123A,WHITE HANGING HEART T-LIGHT HOLDER WITH A LONG NAME,6,"
                         "12/1/2010 8:26,2.55,17850.0,United Kingdom")
    path = tmp_path / "long.csv"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 2 * (8 << 20)
    run_dir = tmp_path / "run"
    run_stage(stages.extract, run_dir, path, chunk_rows=40_000)
    raw = pd.read_parquet(run_dir / "work/raw.parquet", columns=["invoice", "source_row"])
    assert (raw["invoice"].astype("int64") == raw["source_row"]).all()
    rejects = pd.read_parquet(run_dir / "work/rejects.parquet")
    assert sorted(rejects["source_row"]) == malformed
    assert len(raw) + len(rejects) == len(lines) - 1 - empty


def test_truncated_gzip_is_one_line_naming_the_file(corpus: dict,
                                                    stage_runs: dict[str, StageRun]) -> None:
    case, run = corpus["truncated_gzip"], stage_runs["truncated_gzip"]
    message = _one_line(str(run.error))
    assert case.path.name in message and "truncated" in message


def test_corpus_is_deterministic(tmp_path: Path, corpus: dict) -> None:
    """Same code, same files: the corpus can be rebuilt anywhere instead of committed."""
    again = corpus_mod.build(tmp_path)
    for name, case in corpus.items():
        if case.path.suffix == ".xlsx":  # openpyxl stamps the save time into the workbook
            continue
        assert again[name].path.read_bytes() == case.path.read_bytes(), name
        assert again[name].aside_rows == case.aside_rows


def test_reasons_are_known(corpus: dict) -> None:
    for case in corpus.values():
        assert set(case.set_aside) <= set(quality.REASONS), case.name


def test_script_runs_from_the_command_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(CORPUS_SCRIPT), str(tmp_path)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len([p for p in tmp_path.iterdir() if p.is_file()]) == len(NAMES)


def test_case_lists_match_the_corpus(corpus: dict) -> None:
    """The lists the tests parametrise on (known before the corpus is built) stay complete."""
    assert set(ERRORS) == {n for n, c in corpus.items() if c.outcome == "error"}
    assert set(CSV_RUNS) == {n for n, c in corpus.items()
                             if c.path.suffix == ".csv" and c.rows_in is not None}



# --------------------------------------------------------------------------- issue 13 (input)


@pytest.mark.parametrize("name", ["future_typo_no_as_of", "misdated_invoice"])
def test_stray_dates_do_not_move_the_default_as_of(name: str, corpus: dict,
                                                   stage_runs: dict[str, StageRun],
                                                   cli_runs: dict[str, CliRun]) -> None:
    """A line (or a whole invoice) typed 2031 or 2021 for 2011 is set aside as stray_date and
    said in data_quality; the as-of stays the day after the real last line."""
    case, run = corpus[name], stage_runs[name]
    assert run.quality["as_of"] == case.facts["as_of"]
    assert run.quality["set_aside"]["stray_date"] == case.set_aside["stray_date"]
    answers = json.loads((cli_runs[name].out / "answers.json").read_text())
    assert answers["as_of"] == case.facts["as_of"]
    notes = " ".join(answers["data_quality"]["notes"])
    assert re.search(r"looks? like (a )?typos?", notes) and "stray_date" in notes


def test_column_aliases_and_unused_columns_are_noted(corpus: dict,
                                                     cli_runs: dict[str, CliRun]) -> None:
    case, run = corpus["column_aliases"], cli_runs["column_aliases"]
    notes = " ".join(json.loads((run.out / "answers.json").read_text())["data_quality"]["notes"])
    for alias, canonical in case.facts["aliases"].items():
        assert f"{alias!r} as {canonical}" in notes, notes
    for column in case.facts["ignored"]:
        assert re.search(rf"columns? not used: [^(]*{re.escape(repr(column))}", notes), notes


def test_renamed_columns_note_the_unnamed_columns(stage_runs: dict[str, StageRun]) -> None:
    notes = " ".join(stage_runs["renamed_columns"].extract["notes"])
    assert "columns not used: an unnamed column, 'Unnamed: 9'" in notes
    assert "another name" not in notes  # Invoice, Price, Customer ID are Online Retail II's


def test_out_of_time_without_anyone_to_compare_does_not_crash() -> None:
    """The issue's crash: as of 2031-01-02 nobody had bought in the year before the cut, but a
    2031 line brought revenue after it; the text formatted a None spend per customer."""
    from insiders.config import SelectionRules, Windows
    from insiders.models import clv, evaluation, valuation

    rows = [(str(c), f"2011-{m:02d}-01 10:00:00", 10.0 + c) for c in range(30) for m in (3, 6, 9)]
    rows.append(("5", "2031-01-01 10:00:00", 99.0))
    tx = pd.DataFrame(rows, columns=["customer_id", "invoice_date", "revenue"])
    tx["invoice_date"] = pd.to_datetime(tx["invoice_date"])
    tx = tx.assign(invoice=[f"I{i}" for i in range(len(tx))], stock_code="85123A",
                   description="X", quantity=1, unit_price=tx["revenue"], country="UK",
                   is_return=False, is_cancellation=False)
    tx["customer_id"] = tx["customer_id"].astype("category")
    as_of = pd.Timestamp("2031-01-02")
    days = clv.activity(tx)
    result = evaluation.out_of_time(days, valuation.FitCache(days, 12), as_of, "past_spend",
                                    Windows(), SelectionRules(), n_boot=50, seed=42)
    assert result["available"] is False
    assert result["text"].startswith("Chosen on 2030-10-02, no customer had a purchase")


# --------------------------------------------------------------------------- CLI arguments


def _cli(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDERS_")}
    env["INSIDERS_HOME"] = str(home)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")
    return subprocess.run([*_cli_command(), *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300, check=False)


@pytest.mark.parametrize("text", ["01-09-2011", "9/1/2011", "1.9.2011", "2011/09/01",
                                  "Sept 1 2011", "20110901"])
def test_as_of_in_another_form_is_refused(text: str) -> None:
    """`01-09-2011` was read as 2011-01-09 on UK data: any form but YYYY-MM-DD is refused."""
    from insiders import cli

    with pytest.raises(InsidersError, match=r"write the date as YYYY-MM-DD"):
        cli.parse_as_of(text, dt.date(2026, 12, 1))


def test_as_of_checks() -> None:
    from insiders import cli

    today = dt.date(2026, 12, 1)
    assert cli.parse_as_of(" 2011-09-01 ", today) == "2011-09-01"
    assert cli.parse_as_of("2026-12-01", today) == "2026-12-01"
    with pytest.raises(InsidersError, match="not a day of the calendar"):
        cli.parse_as_of("2011-02-30", today)
    with pytest.raises(InsidersError, match=r"after today \(2026-12-01\).*choose an earlier"):
        cli.parse_as_of("2030-01-01", today)


def test_cli_as_of_messages_are_one_line_and_point_the_right_way(corpus: dict,
                                                                 tmp_path: Path) -> None:
    path = corpus["future_typo_no_as_of"].path
    ambiguous = _cli(["run", "--input", str(path), "--as-of", "01-09-2011", "--quiet",
                      "--out", str(tmp_path / "a")], tmp_path, tmp_path / "home")
    assert ambiguous.returncode == 2
    assert "YYYY-MM-DD" in _one_line(ambiguous.stderr)
    future = _cli(["run", "--input", str(path), "--as-of", "2030-01-01", "--quiet",
                   "--out", str(tmp_path / "b")], tmp_path, tmp_path / "home")
    assert future.returncode == 2 and "choose an earlier --as-of" in _one_line(future.stderr)
    # before today but years after the data: earlier, with the day after the last line
    late = _cli(["run", "--input", str(path), "--as-of", "2015-01-01", "--quiet",
                 "--out", str(tmp_path / "c")], tmp_path, tmp_path / "home")
    line = _one_line(late.stderr)
    assert late.returncode == 2 and "choose an earlier --as-of" in line, line
    assert "later" not in line and "2011-12-10" in line
    early = _cli(["run", "--input", str(path), "--as-of", "2009-01-01", "--quiet",
                  "--out", str(tmp_path / "d")], tmp_path, tmp_path / "home")
    line = _one_line(early.stderr)
    assert early.returncode == 2 and "choose a later --as-of" in line, line
    # ten days into the data: too little history, and the data goes on, so a later as-of works
    dates = pd.read_csv(path, dtype=str)["InvoiceDate"]
    first = quality.DateParser().parse_unique(dates).min().normalize()
    soon = first + pd.Timedelta(days=10)
    short = _cli(["run", "--input", str(path), "--as-of", str(soon.date()), "--quiet",
                  "--out", str(tmp_path / "e")], tmp_path, tmp_path / "home")
    line = _one_line(short.stderr)
    assert short.returncode == 2 and "at least 28 days of history" in line, line
    assert f"or a later --as-of (the input goes on after {soon.date()})" in line, line


def test_cli_non_product_codes_flag(corpus: dict, tmp_path: Path) -> None:
    """The flag replaces the list: with `CD,LP` the word-coded shop's CD and LP lines go, and
    POST (no longer listed) stays."""
    case = corpus["word_codes"]
    done = _cli(["run", "--input", str(case.path), "--quiet", "--out", str(tmp_path / "out"),
                 "--non-product-codes", "CD,LP"], tmp_path, tmp_path / "home")
    assert done.returncode == 0, done.stderr
    quarantine = pd.read_csv(tmp_path / "out" / "quarantine.csv.gz", dtype="str")
    aside = quarantine[quarantine["reason"] == "non_product_code"]
    assert set(aside["stock_code"]) == {"CD", "LP"}
    rows = _file_rows(case.path)[1:]
    assert len(aside) == sum(1 for r in rows if r and r[1] in ("CD", "LP") and r[6])


# --------------------------------------------------------------------------- the run folder


def test_a_second_run_starts_from_a_clean_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    RunFolder(out).start()
    # what an earlier (Olist) run left, and a file of the user's
    (out / "work").mkdir()
    (out / "work" / "experience_by_persona.parquet").write_bytes(b"old")
    (out / "answers.json").write_text("{}")
    (out / "my_notes.txt").write_text("mine")
    RunFolder(out).start()
    assert sorted(p.name for p in out.iterdir()) == [".insiders-run", "my_notes.txt"]


def test_a_folder_that_is_not_a_run_folder_is_never_emptied(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("x")
    (home / "work").mkdir()  # a user's own work folder, not a run's
    (home / "work" / "thesis.tex").write_text("y")
    with pytest.raises(InsidersError, match=r"not an Insiders run folder.*\.bashrc"):
        RunFolder(home).start()
    only_work = tmp_path / "only_work"
    (only_work / "work").mkdir(parents=True)
    (only_work / "work" / "thesis.tex").write_text("y")
    with pytest.raises(InsidersError, match="not an Insiders run folder"):
        RunFolder(only_work).start()
    assert (home / "work" / "thesis.tex").exists() and (only_work / "work" / "thesis.tex").exists()
    # a run folder written before the marker existed is recognised by its record
    legacy = tmp_path / "legacy"
    (legacy / "work").mkdir(parents=True)
    (legacy / "work" / "extract.json").write_text("{}")
    (legacy / "report.html").write_text("old")
    RunFolder(legacy).start()
    assert sorted(p.name for p in legacy.iterdir()) == [".insiders-run"]


def test_cli_refuses_a_home_folder_as_out(corpus: dict, tmp_path: Path) -> None:
    home = tmp_path / "user"
    home.mkdir()
    (home / "photo.jpg").write_bytes(b"\xff\xd8")
    done = _cli(["run", "--input", str(corpus["future_typo_no_as_of"].path), "--quiet",
                 "--out", str(home)], tmp_path, tmp_path / "home")
    assert done.returncode == 2 and "photo.jpg" in _one_line(done.stderr)
    assert sorted(p.name for p in home.iterdir()) == ["photo.jpg"]


def test_dashboard_without_a_store_names_the_path(tmp_path: Path) -> None:
    """Outside the repository: "unable to open database file" said neither where nor what to
    do, and an existing home got an empty SQLite file as a side effect."""
    home = tmp_path / "insiders-home"
    done = _cli(["dashboard", "--out", str(tmp_path / "d.html")], tmp_path, home)
    line = _one_line(done.stderr)
    assert done.returncode == 2
    assert f"no SQL store at {home / 'insiders.sqlite'}" in line and "make run" in line
    home.mkdir()
    done = _cli(["dashboard", "--out", str(tmp_path / "d.html")], tmp_path, home)
    assert done.returncode == 2 and "no SQL store at" in _one_line(done.stderr)
    assert not (home / "insiders.sqlite").exists()
