"""Quality: every line is kept or set aside with exactly one reason, on frames built by hand.

Each row below carries the reason it must get, written next to it, so the
expected counts are simply the counts of those annotations. Returns and
cancellations are kept (and net out downstream); the as-of cut, duplicates and
non-product codes are checked on their own small frames.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import default_as_of, run_stage
from insiders import data_end, extract, quality, quality_notes, stages
from insiders.catalog import RunFolder
from insiders.errors import InputError

AS_OF = pd.Timestamp("2011-12-01")
TODAY = pd.Timestamp("2012-06-01")  # the day of the run in the frames below
GOOD = {"invoice": "536365", "stock_code": "85123A", "description": "WHITE HANGING HEART",
        "quantity": "6", "invoice_date": "2011-11-30 10:00:00", "unit_price": "2.55",
        "customer_id": "17850.0", "country": "United Kingdom"}

# (changes to the good line, reason it must get; None = kept)
CASES: list[tuple[dict, str | None]] = [
    ({}, None),
    ({"invoice_date": "not a date"}, "unparseable_date"),
    ({"invoice_date": "2011-02-30 10:00:00"}, "unparseable_date"),  # 30 February
    ({"invoice_date": "1989-12-31 10:00:00"}, "implausible_date"),
    ({"invoice_date": "2011-12-01 00:00:00"}, "after_as_of"),  # exactly on the as-of date
    ({"invoice_date": "2011-12-09 12:50:00"}, "after_as_of"),
    ({"invoice_date": "2099-01-01 10:00:00"}, "stray_date"),  # after the day of the run
    ({"invoice_date": "2011-11-30 23:59:59"}, None),  # the last second before the cut
    ({"customer_id": ""}, "missing_customer_id"),
    ({"customer_id": "nan"}, "missing_customer_id"),
    ({"quantity": "2.5"}, "unparseable_quantity"),
    ({"quantity": "six"}, "unparseable_quantity"),
    ({"quantity": "1000001"}, "implausible_quantity"),
    ({"quantity": "-1000001", "invoice": "C536380"}, "implausible_quantity"),
    ({"quantity": "1000000"}, None),  # a million is the limit, not beyond it
    ({"quantity": "0"}, "zero_quantity"),
    ({"unit_price": "abc"}, "unparseable_price"),
    ({"unit_price": "0"}, "non_positive_price"),
    ({"unit_price": "-11062.06", "stock_code": "B"}, "non_positive_price"),  # bad-debt line
    ({"unit_price": "1000000.01"}, "implausible_price"),  # a typo outweighing a year of trade
    ({"unit_price": "1e308"}, "implausible_price"),  # times a quantity: infinity in every sum
    ({"unit_price": "1000000"}, None),  # a million is the limit, not beyond it
    ({"stock_code": "POST", "description": "POSTAGE"}, "non_product_code"),
    # several problems: the first reason in REASONS' order wins
    ({"customer_id": "", "quantity": "0", "stock_code": "POST"}, "missing_customer_id"),
    ({"invoice_date": "2012-01-01 09:00:00", "customer_id": ""}, "after_as_of"),
    ({"quantity": "0", "unit_price": "abc"}, "zero_quantity"),
    # returns and cancellations are kept
    ({"invoice": "536366", "quantity": "-2"}, None),
    ({"invoice": "C536379", "quantity": "-1", "stock_code": "22423"}, None),
]


def _raw(cases: list[tuple[dict, str | None]], first_row: int = 2,
         source: str = "hand.csv") -> pd.DataFrame:
    frame = pd.DataFrame([{**GOOD, **change} for change, _ in cases], dtype="str")
    frame["source_file"] = source
    frame["source_row"] = np.arange(first_row, first_row + len(frame), dtype=np.int64)
    return frame


def _expected(cases: list[tuple[dict, str | None]]) -> list[str | None]:
    return [reason for _, reason in cases]


def test_each_line_gets_the_first_reason_that_applies() -> None:
    raw = _raw(CASES)
    kept, aside = quality.clean_chunk(raw, AS_OF, today=TODAY)
    expected = _expected(CASES)
    assert len(kept) + len(aside) == len(raw)
    got = dict(zip(aside["source_row"], aside["reason"], strict=True))
    want = {row: r for row, r in zip(raw["source_row"], expected, strict=True) if r}
    assert got == want
    assert kept["source_row"].tolist() == [row for row, r in zip(raw["source_row"], expected,
                                                                 strict=True) if r is None]
    # the quarantine keeps the raw text as written, with its row
    bad_date = aside[aside["source_row"] == 3].iloc[0]
    assert bad_date["invoice_date"] == "not a date" and bad_date["source_file"] == "hand.csv"


def test_returns_and_cancellations_are_kept_with_negative_revenue() -> None:
    kept, _ = quality.clean_chunk(_raw(CASES), AS_OF)
    kept = kept.set_index("source_row")
    row = {tuple(change.items()): 2 + i for i, (change, _) in enumerate(CASES)}
    ret = kept.loc[row[(("invoice", "536366"), ("quantity", "-2"))]]  # a return, -2 x 2.55
    assert ret["is_return"] and not ret["is_cancellation"]
    assert ret["revenue"] == pytest.approx(-5.10)
    canc = kept.loc[row[(("invoice", "C536379"), ("quantity", "-1"), ("stock_code", "22423"))]]
    assert canc["is_return"] and canc["is_cancellation"]
    assert canc["revenue"] == pytest.approx(-2.55)
    assert canc["stock_code"] == "22423"
    buy = kept.loc[2]
    assert not buy["is_return"] and not buy["is_cancellation"]
    assert buy["revenue"] == pytest.approx(15.30)  # 6 x 2.55
    # the two ordinary 6 x 2.55 lines (the good line and the last second before the cut; the
    # million units and the million-a-unit lines left out) net against the return and the
    # cancellation: 15.30 + 15.30 - 5.10 - 2.55
    small = kept[(kept["quantity"].abs() < 1_000) & (kept["unit_price"] < 1_000)]
    assert small["revenue"].sum() == pytest.approx(15.30 + 15.30 - 5.10 - 2.55)


def test_typed_columns() -> None:
    kept, _ = quality.clean_chunk(_raw(CASES), AS_OF)
    first = kept.iloc[0]
    assert first["customer_id"] == "17850"  # the `.0` of the float export is gone
    assert first["invoice_date"] == pd.Timestamp("2011-11-30 10:00:00")
    assert kept["quantity"].dtype == np.int64 and kept["unit_price"].dtype == np.float64
    assert kept["invoice_date"].max() < AS_OF


def test_as_of_cut_sets_aside_every_line_on_or_after_it() -> None:
    dates = ["2011-11-30 23:59:59", "2011-12-01 00:00:00", "2011-12-01 00:00:01",
             "2010-12-01 08:26:00"]
    raw = _raw([({"invoice_date": d}, None) for d in dates])
    kept, aside = quality.clean_chunk(raw, AS_OF)
    assert kept["invoice_date"].tolist() == [pd.Timestamp(dates[0]), pd.Timestamp(dates[3])]
    assert aside["invoice_date"].tolist() == dates[1:3]
    assert set(aside["reason"]) == {"after_as_of"}
    # a later as-of keeps all four
    kept, aside = quality.clean_chunk(raw, pd.Timestamp("2011-12-02"))
    assert len(kept) == 4 and aside.empty


def test_a_reason_from_the_source_comes_first() -> None:
    """Olist marks undelivered orders; that reason wins over any later check."""
    raw = _raw([({}, None), ({}, None), ({"customer_id": ""}, None)])
    raw["source_reason"] = ["", "order_not_delivered", "order_not_delivered"]
    kept, aside = quality.clean_chunk(raw, AS_OF)
    assert kept["source_row"].tolist() == [2]
    assert aside["reason"].tolist() == ["order_not_delivered", "order_not_delivered"]
    raw["source_reason"] = ["", "lost_in_the_post", ""]
    with pytest.raises(ValueError, match="lost_in_the_post"):
        quality.clean_chunk(raw, AS_OF)


def test_malformed_rows_keep_their_raw_text() -> None:
    rejects = pd.DataFrame({"source_file": ["hand.csv"], "source_row": [7],
                            "raw_text": ["536365,85123A,TOO,MANY,FIELDS,6,x,y,z,w"]})
    out = quality.malformed_to_quarantine(rejects)
    assert out[["source_row", "reason"]].to_dict("records") == [
        {"source_row": 7, "reason": "malformed_row"}]
    assert out["description"].iloc[0] == "536365,85123A,TOO,MANY,FIELDS,6,x,y,z,w"


@pytest.mark.parametrize("code", ["POST", "D", "M", "m", "BANK CHARGES", "AMAZONFEE", "C2",
                                  "DOT", "CRUK", "S", "B", "gift_0001_40", "TEST001",
                                  "ADJUST2", " post "])
def test_non_product_codes_are_set_aside(code: str) -> None:
    assert quality.is_non_product(pd.Series([code])).tolist() == [True]


@pytest.mark.parametrize("code", ["85123A", "84406B", "22423", "85123a", "15056BL", "47566B",
                                  "90214A", "10002", "79323P"])
def test_product_codes_are_kept(code: str) -> None:
    assert quality.is_non_product(pd.Series([code])).tolist() == [False]
    kept, aside = quality.clean_chunk(_raw([({"stock_code": code}, None)]), AS_OF)
    assert len(kept) == 1 and aside.empty


def test_customer_id_spellings() -> None:
    ids = pd.Series(["17850.0", "17850", " 17850 ", "17850.00", "", "nan", "NaN", "None", "-",
                     "A-17"])
    got = quality.normalise_customer_id(ids)
    assert got.isna().tolist() == [False] * 4 + [True] * 5 + [False]  # blanks: no customer
    assert got.dropna().tolist() == ["17850"] * 4 + ["A-17"]


def test_numbers_with_decimal_comma() -> None:
    got = quality.to_number(pd.Series(["2.55", "2,55", "-1,5", "12", "1,234,5", "x"]))
    assert got.tolist()[:4] == [2.55, 2.55, -1.5, 12.0]
    assert got.iloc[4:].isna().all()  # thousands separators are not guessed


@pytest.mark.parametrize(("text", "number", "money"), [
    ("1,234.50", 1234.5, 1234.5),  # thousands beside a decimal point: unambiguous
    ("1.234,50", 1234.5, 1234.5),  # the European way round
    ("-12,345,678.9", -12345678.9, -12345678.9),
    ("1,000", None, None),  # a thousand or one: not guessed
    ("£2.55", None, 2.55),  # a currency mark, on prices only
    ("-£2.55", None, -2.55),
    ("2,55 €", None, 2.55),
    ("R$ 1.234,56", None, 1234.56),
    ("BRL 10.00", None, 10.0),
    ("£1,000", None, None),
    ("GBP", None, None),
])
def test_numbers_with_thousands_and_currency(text: str, number: float | None,
                                             money: float | None) -> None:
    """An export with `2,550.00` set 58% of a file aside as unparseable_price; `£2.55` all of it."""
    for as_money, want in ((False, number), (True, money)):
        got = quality.to_number(pd.Series([text]), money=as_money).iloc[0]
        assert (np.isnan(got) if want is None else got == pytest.approx(want)), (text, as_money)


def test_a_thousand_written_1_000_is_read_as_the_rest_of_the_column_says() -> None:
    """A spreadsheet export with "use 1000 separator" wrote its largest wholesale lines as
    `1,000` and `12,480`: they were set aside as not whole (63 lines of 200,000, the
    biggest). Beside plain quantities and no decimal comma, the commas are thousands."""
    reader = quality.NumberReader()
    got = reader.parse_unique(pd.Series(["6", "-12", "1,000", "12,480", "-1,200", "2.5"]))
    assert got.tolist() == [6.0, -12.0, 1000.0, 12480.0, -1200.0, 2.5]
    # the choice is kept for the next blocks of the same source, even one of commas only
    assert reader.parse_unique(pd.Series(["3,000"])).tolist() == [3000.0]
    # beside a decimal comma (2,5) a `1,000` may be one: not guessed, set aside as before
    doubtful = quality.NumberReader().parse_unique(pd.Series(["6", "2,5", "1,000"]))
    assert doubtful.iloc[:2].tolist() == [6.0, 2.5] and np.isnan(doubtful.iloc[2])
    # with nothing to compare with, neither reading is safe
    assert np.isnan(quality.NumberReader().parse_unique(pd.Series(["1,000"])).iloc[0])
    # prices: `£1,250.00` was already read; `1,250` beside `2.55` is a thousand too
    prices = quality.NumberReader(money=True).parse_unique(pd.Series(["2.55", "£1,250"]))
    assert prices.tolist() == [2.55, 1250.0]
    euro = quality.NumberReader(money=True).parse_unique(pd.Series(["2,55", "1,250"]))
    assert euro.iloc[0] == 2.55 and np.isnan(euro.iloc[1])


@pytest.mark.parametrize("text", ["2011-06-01T08:26:00Z", "2011-06-01T08:26:00+01:00",
                                  "2011-06-01 08:26:00-0300", "2011-06-01T08:26:00 UTC"])
def test_dates_with_a_time_zone_keep_the_clock_time(text: str) -> None:
    """`...Z` stopped the run with a pandas TypeError (exit 1); mixed offsets would too."""
    got = quality.DateParser().parse_unique(pd.Series([text, "2011-06-02T09:00:00+02:00",
                                                       "2011-06-03 10:00"]))
    assert got.tolist() == [pd.Timestamp("2011-06-01 08:26"), pd.Timestamp("2011-06-02 09:00"),
                            pd.Timestamp("2011-06-03 10:00")]


def test_slash_dates_month_first_unless_only_day_first_makes_sense() -> None:
    us = quality.DateParser().parse_unique(pd.Series(["12/1/2010 8:26", "1/13/2011 9:00"]))
    assert us.tolist() == [pd.Timestamp("2010-12-01 08:26"), pd.Timestamp("2011-01-13 09:00")]
    # 13/1/2011 only makes sense day-first: the whole source is then read day-first
    eu = quality.DateParser().parse_unique(pd.Series(["13/1/2011 9:00", "12/1/2010 8:26"]))
    assert eu.tolist() == [pd.Timestamp("2011-01-13 09:00"), pd.Timestamp("2010-01-12 08:26")]


def test_duplicates_across_blocks_keep_the_first_copy() -> None:
    """What quality_stage does: clean block by block, then decide duplicates on all hashes."""
    first = _raw([({}, None), ({"stock_code": "84406B"}, None)], first_row=2)
    second = _raw([({"stock_code": "22423"}, None), ({}, None), ({}, None)], first_row=4,
                  source="hand.csv")
    k1, _ = quality.clean_chunk(first, AS_OF)
    k2, _ = quality.clean_chunk(second, AS_OF)
    hashes = np.concatenate([k1["row_hash"].to_numpy(), k2["row_hash"].to_numpy()])
    # rows 5 and 6 repeat row 2 exactly (row 2 is in the first block): both go, row 2 stays
    assert quality.duplicate_mask(hashes).tolist() == [False, False, False, True, True]


def test_a_different_value_is_not_a_duplicate() -> None:
    raw = _raw([({}, None), ({"quantity": "7"}, None), ({"customer_id": "17851"}, None),
                ({"invoice": "536399"}, None)])
    kept, _ = quality.clean_chunk(raw, AS_OF)
    assert not quality.duplicate_mask(kept["row_hash"].to_numpy()).any()


def test_quality_report_balances() -> None:
    report = quality.QualityReport(rows_in=10, rows_kept=6)
    report.add("duplicate", 3)
    assert not report.balanced
    report.add("after_as_of", 1)
    assert report.balanced
    assert report.as_dict()["set_aside"] == {"after_as_of": 1, "duplicate": 3}


# --------------------------------------------------------------------------- the stage


def _write_run(run_dir: Path, raw: pd.DataFrame, rejects: pd.DataFrame | None = None) -> None:
    (run_dir / "work").mkdir(parents=True)
    schema = pa.schema([(c, pa.string()) for c in extract.RAW_COLUMNS]
                       + [("source_file", pa.string()), ("source_row", pa.int64())]
                       + ([("source_reason", pa.string())] if "source_reason" in raw else []))
    pq.write_table(pa.Table.from_pandas(raw, schema=schema, preserve_index=False),
                   run_dir / "work/raw.parquet")
    rejects = rejects if rejects is not None else pd.DataFrame(
        {"source_file": pd.Series([], dtype="str"), "source_row": pd.Series([], dtype="int64"),
         "raw_text": pd.Series([], dtype="str")})
    rejects.to_parquet(run_dir / "work/rejects.parquet", index=False)


def test_stage_accounts_for_every_row_and_every_reason(tmp_path: Path) -> None:
    """One run that meets every reason of REASONS; quarantine.csv.gz holds each set-aside row."""
    cases = [*CASES,
             ({}, "duplicate"),  # an exact copy of the first line
             ({"invoice": "536367"}, "order_not_delivered")]
    raw = _raw(cases)
    raw["source_reason"] = [""] * (len(cases) - 1) + ["order_not_delivered"]
    # the reader could not split row 40 of the file
    rejects = pd.DataFrame({"source_file": ["hand.csv"], "source_row": [40],
                            "raw_text": ["536365,85123A,\"unclosed,6"]})
    _write_run(tmp_path, raw, rejects)
    result = run_stage(stages.quality, tmp_path, as_of=AS_OF)

    expected = Counter(r for r in _expected(cases) if r) + Counter({"malformed_row": 1})
    assert set(expected) == set(quality.REASONS)  # the frame really meets every reason
    assert result["set_aside"] == dict(expected)
    assert result["rows_in"] == len(cases) + 1
    assert result["rows_kept"] == _expected(cases).count(None)
    assert result["rows_in"] == result["rows_kept"] + sum(result["set_aside"].values())

    aside = pd.read_csv(tmp_path / "quarantine.csv.gz", dtype="str", keep_default_na=False)
    assert Counter(aside["reason"]) == expected
    assert aside.loc[aside["reason"] == "duplicate", "source_row"].tolist() == [
        str(2 + len(CASES))]
    assert aside.loc[aside["reason"] == "malformed_row", "source_row"].tolist() == ["40"]
    tx = pd.read_parquet(tmp_path / "work/transactions.parquet")
    assert len(tx) == result["rows_kept"]
    assert 2 in set(tx["source_row"])  # the first copy stays
    assert tx["invoice_date"].max() < AS_OF
    assert set(tx.columns) >= {"invoice", "stock_code", "description", "quantity",
                               "invoice_date", "unit_price", "customer_id", "country",
                               "revenue", "is_return", "is_cancellation", "source_row"}


def test_stage_finds_duplicates_in_different_blocks(tmp_path: Path) -> None:
    """The stage reads raw text in blocks of 250,000 rows: a copy in the second block still goes.

    Rows 2..250,001 are distinct purchases (invoice numbers differ); row 250,002 is a copy of
    row 2 (first block), row 250,003 a copy of row 250,001 (last row of the first block).
    """
    n = 250_000
    raw = pd.DataFrame({c: pd.Series([v] * n, dtype="str") for c, v in GOOD.items()})
    raw["invoice"] = pd.Series((536_000 + np.arange(n)).astype(str), dtype="str")
    copies = raw.iloc[[0, n - 1]]
    raw = pd.concat([raw, copies], ignore_index=True)
    raw["source_file"] = "big.csv"
    raw["source_row"] = np.arange(2, len(raw) + 2, dtype=np.int64)
    _write_run(tmp_path, raw)
    result = run_stage(stages.quality, tmp_path, as_of=AS_OF)
    assert result["set_aside"] == {"duplicate": 2}
    assert result["rows_kept"] == n
    aside = pd.read_csv(tmp_path / "quarantine.csv.gz", dtype="str")
    assert sorted(aside["source_row"].astype(int)) == [n + 2, n + 3]
    assert sorted(aside["invoice"]) == ["536000", str(536_000 + n - 1)]
    tx = pd.read_parquet(tmp_path / "work/transactions.parquet", columns=["source_row"])
    assert tx["source_row"].min() == 2 and tx["source_row"].max() == n + 1


# --------------------------------------------------------------------------- the default as-of


def _days(spec: dict[str, int]) -> pd.Series:
    """Lines per day, as `data_end.lines_per_day` returns them."""
    return pd.Series(spec, dtype="int64").rename(index=pd.Timestamp).sort_index()


def _retail_days(total: int = 20_000) -> dict[str, int]:
    """`total` lines spread over the trading days of Dec 2010 - 9 Dec 2011."""
    days = pd.bdate_range("2010-12-01", "2011-12-09")
    counts = np.full(len(days), total // len(days))
    counts[: total - counts.sum()] += 1
    return {str(d.date()): int(c) for d, c in zip(days, counts, strict=True)}


def test_default_as_of_sets_a_line_after_today_aside() -> None:
    """The issue: one 2031 line in a 20,000-line file moved the as-of to 2031-01-02."""
    days = _days({**_retail_days(), "2031-01-01": 1})
    choice = data_end.default_as_of(days, today=pd.Timestamp("2026-12-01"))
    assert choice.as_of == pd.Timestamp("2011-12-10")
    assert choice.stray_from == pd.Timestamp("2031-01-01") and choice.stray_lines == 1
    assert choice.note.startswith("1 line dated after 2011-12-09 (2031-01-01; after today, "
                                  "2026-12-01) looks like a typo")


def test_default_as_of_sets_a_misdated_invoice_aside_even_before_today() -> None:
    """A 169-line invoice typed 2031 for 2010 holds 0.8% of the file: more than the 0.5%
    support the old rule asked for, so the old rule took 2031-01-02 as the as-of. Found
    alone after a years-long gap, it is a typo whatever the day of the run."""
    days = _days({**_retail_days(), "2031-01-01": 169})
    choice = data_end.default_as_of(days, today=pd.Timestamp("2040-01-01"))
    assert choice.as_of == pd.Timestamp("2011-12-10")
    assert choice.stray_lines == 169 and "far after the rest" in choice.note


def test_default_as_of_in_thin_data_does_not_fall_back_to_the_last_date() -> None:
    """One line a month for ten years: every day has the old rule's support of 1 line, so a
    2031 typo counted as the end of the data."""
    months = pd.date_range("2010-01-15", "2019-12-15", freq="MS") + pd.Timedelta(days=14)
    days = _days({**{str(d.date()): 1 for d in months}, "2025-03-01": 1})
    choice = data_end.default_as_of(days, today=pd.Timestamp("2026-12-01"))
    assert choice.as_of == months[-1] + pd.Timedelta(days=1)
    assert choice.stray_lines == 1


def test_default_as_of_keeps_real_data_to_its_last_day() -> None:
    days = _days(_retail_days())
    choice = data_end.default_as_of(days, today=pd.Timestamp("2026-12-01"))
    assert choice == data_end.AsOfChoice(pd.Timestamp("2011-12-10"))
    # a quiet last week and a Christmas closure are data, not typos
    quiet = _days({**_retail_days(), "2011-12-20": 3, "2012-01-05": 40})
    assert data_end.default_as_of(quiet, pd.Timestamp("2026-12-01")).as_of == pd.Timestamp(
        "2012-01-06")


def test_default_as_of_a_lone_line_a_month_later_is_set_aside() -> None:
    """No long gap, but the month up to it holds one line of 20,000: the support rule."""
    days = _days({**_retail_days(), "2012-01-20": 1})
    choice = data_end.default_as_of(days, today=pd.Timestamp("2026-12-01"))
    assert choice.as_of == pd.Timestamp("2011-12-10") and choice.stray_lines == 1


def test_default_as_of_refuses_when_every_date_is_after_today() -> None:
    with pytest.raises(InputError, match=r"after today \(2026-12-01\).*2031-01-01"):
        data_end.default_as_of(_days({"2031-01-01": 5, "2031-02-01": 5}),
                              pd.Timestamp("2026-12-01"))
    with pytest.raises(InputError, match="no row has a readable invoice date"):
        data_end.default_as_of(pd.Series(dtype="int64"), pd.Timestamp("2026-12-01"))


def test_stage_sets_the_stray_lines_aside_with_their_reason(tmp_path: Path) -> None:
    """Through the stages: the default as-of, then quality; the 2031 invoice is stray_date."""
    days = pd.bdate_range("2010-12-01", "2011-12-09")
    raw = _raw([({"invoice_date": f"{days[i % len(days)].date()} 10:00:00",
                  "invoice": str(540_000 + i)}, None) for i in range(3_000)]
               + [({"invoice_date": "2031-01-01 10:00:00", "invoice": "599999",
                    "stock_code": str(20_000 + i)}, None) for i in range(40)])
    _write_run(tmp_path, raw)
    folder = RunFolder(tmp_path)
    folder.save_stage("extract", {"source": "hand.csv", "notes": []})
    as_of = default_as_of(tmp_path)
    assert as_of == pd.Timestamp("2011-12-10")
    notes = folder.stage("extract")["notes"]
    assert len(notes) == 1 and "40 lines dated after 2011-12-09" in notes[0]
    result = run_stage(stages.quality, tmp_path, as_of=as_of)
    assert result["set_aside"] == {"stray_date": 40}
    aside = pd.read_csv(tmp_path / "quarantine.csv.gz", dtype="str")
    assert set(aside["invoice"]) == {"599999"} and set(aside["reason"]) == {"stray_date"}


def test_as_of_advice_says_the_right_direction() -> None:
    """`--as-of 2030-01-01` on 2011 data said "choose a later --as-of": it means earlier."""
    first, last = pd.Timestamp("2010-12-01 08:26"), pd.Timestamp("2011-12-09 12:50")
    late = data_end.as_of_advice(pd.Timestamp("2030-01-01"), first, last, 12)
    assert "choose an earlier --as-of" in late and "2011-12-10" in late
    early = data_end.as_of_advice(pd.Timestamp("2005-01-01"), first, last, 12)
    assert "choose a later --as-of" in early and "2010-12-01" in early


# --------------------------------------------------------------------------- non-product codes


def test_a_catalogue_of_short_word_codes_is_kept() -> None:
    """A music shop codes its products CD, LP, DVD, BOX: the old short-code rule set every
    line aside as non_product_code."""
    codes = ["CD", "LP", "DVD", "BOX", "VINYL", "MP3"]
    kept, aside = quality.clean_chunk(_raw([({"stock_code": c}, None) for c in codes]), AS_OF)
    assert kept["stock_code"].tolist() == codes and aside.empty


def test_non_product_codes_are_configurable() -> None:
    rule = quality.NonProductCodes.parse("cd, GIFT*")
    assert rule.codes == frozenset({"CD"}) and rule.prefixes == ("GIFT",)
    mask = rule.mask(pd.Series(["CD", " cd ", "LP", "GIFTCARD", "POST"]))
    assert mask.tolist() == [True, True, False, True, False]
    assert quality.NonProductCodes.parse("").mask(pd.Series(["POST"])).tolist() == [False]
    # the default is the documented Online Retail list
    assert quality.NonProductCodes.parse(None) == quality.DEFAULT_NON_PRODUCTS
    assert quality.DEFAULT_NON_PRODUCTS.mask(pd.Series(["POST", "DCGS0003", "85123A"])
                                             ).tolist() == [True, False, False]


def test_settings_read_the_non_product_codes_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from insiders.config import Settings

    monkeypatch.setenv("INSIDERS_NON_PRODUCT_CODES", "WRAP,POST")
    settings = Settings.from_env(home=tmp_path)
    assert settings.non_product_codes == "WRAP,POST"
    raw = _raw([({}, None), ({"stock_code": "WRAP", "invoice": "2"}, None),
                ({"stock_code": "DOT", "invoice": "3"}, None)])
    _write_run(tmp_path / "run", raw)
    result = run_stage(stages.quality, tmp_path / "run", as_of=AS_OF,
                       non_product_codes=settings.non_product_codes)
    assert result["set_aside"] == {"non_product_code": 1}  # WRAP; DOT is a product here


def test_a_rule_that_would_discard_most_lines_stops(tmp_path: Path) -> None:
    raw = _raw([({"stock_code": f"CD{i}", "invoice": str(i)}, None) for i in range(24)]
               + [({"stock_code": "85123A", "invoice": "99"}, None)])
    _write_run(tmp_path, raw)
    with pytest.raises(InputError, match=r"would set aside 96% of the usable lines \(24 of 25\)"
                                         r".*--non-product-codes.*now: CD\*"):
        run_stage(stages.quality, tmp_path, as_of=AS_OF, non_product_codes="CD*")
    # the same file with the default list goes through
    assert run_stage(stages.quality, tmp_path, as_of=AS_OF)["rows_kept"] == 25


def test_a_rule_that_would_discard_most_revenue_stops() -> None:
    """Few lines but most of the money: a catalogue's big-ticket items coded like fees."""
    tally = quality.NonProductTally(quality.NonProductCodes.parse("FEE"))
    raw = _raw([({"stock_code": "FEE", "unit_price": "500"}, None)]
               + [({"invoice": str(i)}, None) for i in range(24)])
    quality.clean_chunk(raw, AS_OF, non_products=tally)
    assert (tally.aside_lines, tally.kept_lines) == (1, 24)
    assert tally.aside_revenue == pytest.approx(3000.0)  # against 24 x 15.30 = 367.20 kept
    with pytest.raises(InputError, match=r"4% of the usable lines \(1 of 25\) and 89% of"):
        tally.check("shop.csv")


def test_the_guard_needs_enough_lines_to_judge() -> None:
    """A handful of lines (the corpus' all_rows_bad file) is no evidence about a catalogue."""
    tally = quality.NonProductTally()
    quality.clean_chunk(_raw([({"stock_code": "POST"}, None), ({"stock_code": "DOT"}, None)]),
                        AS_OF, non_products=tally)
    assert tally.aside_lines == 2 and tally.kept_lines == 0
    tally.check("tiny.csv")  # does not raise


# --------------------------------------------------------------------------- an export twice


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_a_month_delivered_twice_is_named_in_the_notes(real_file: Path, tmp_path: Path,
                                                       engine: str) -> None:
    """Two months of the real file and the first month again under another name: the
    copies are set aside as duplicates (as before), and the note names the file that is
    all copies, not the originals, whose own ~1% of repeated lines is ordinary."""
    lines = pd.read_csv(real_file, dtype="str", keep_default_na=False)
    month = lines["InvoiceDate"].str[:7]
    folder = tmp_path / "in"
    folder.mkdir()
    lines[month == "2011-03"].to_csv(folder / "a_2011-03.csv", index=False)
    lines[month == "2011-04"].to_csv(folder / "b_2011-04.csv", index=False)
    lines[month == "2011-03"].to_csv(folder / "c_resent.csv", index=False)
    run_stage(stages.extract, tmp_path / "run", folder, engine=engine)
    result = run_stage(stages.quality, tmp_path / "run", folder, as_of="2011-05-01",
                       engine=engine)

    aside = pd.read_csv(tmp_path / "run/quarantine.csv.gz", dtype="str",
                        keep_default_na=False)
    resent = str(folder / "c_resent.csv")
    mine = aside[aside["source_file"] == resent]
    copies = int((mine["reason"] == "duplicate").sum())
    checked = int((month == "2011-03").sum()) - int((mine["reason"] != "duplicate").sum())
    assert copies == checked > 20_000  # every line of it that passed the checks is a copy
    notes = [n for n in result["notes"] if "exact copies" in n]
    assert notes == [f"{resent}: {copies:,} of the {checked:,} lines that pass the other "
                     "checks (100.0%) are exact copies of lines read before, set aside as "
                     "duplicates: is the same export in the input twice?"]
    # the originals' own repeated lines are counted but not called a second export
    assert (aside.loc[aside["source_file"] != resent, "reason"] == "duplicate").sum() > 0


def test_copied_file_share_counts_only_the_lines_that_reach_the_copy_check() -> None:
    """Lines set aside for another reason (no customer id) never reach the copy check: a
    file of 100 lines, 50 without an id and 20 copies, is 40% copies, at the threshold."""
    report = quality.QualityReport()
    quality_notes.count_aside(report, pd.Series(["f.csv"] * 70 + ["g.csv"] * 19),
                        pd.Series(["missing_customer_id"] * 50 + ["duplicate"] * 39))
    assert report.copies == {"f.csv": 20, "g.csv": 19}
    assert report.other_aside == {"f.csv": 50}
    notes = quality_notes.copied_file_notes(report, {"f.csv": 100, "g.csv": 100})
    assert [n.split(":")[0] for n in notes] == ["f.csv"]  # g.csv: 19 of 100, ordinary
    assert "20 of the 50 lines that pass the other checks (40.0%)" in notes[0]
