"""Where the data ends: the default as-of (the day after the last real line), the lines left
out as typos on the way (stray dates), and which way to move an as-of that finds nothing.

Kept apart from quality.py, which types lines: this module reads only the dates, before
any line is judged, so a run knows its month before quality runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import wording
from .errors import InputError
from .quality import DateParser

# --------------------------------------------------------------------------- the end of the data


def lines_per_day(raw_path: Path | str, since: str = "1990-01-01") -> pd.Series:
    """Lines per calendar day, from the raw extract's readable dates (since `since`)."""
    import pyarrow.parquet as pq

    parser = DateParser()
    counts: pd.Series | None = None
    for batch in pq.ParquetFile(raw_path).iter_batches(columns=["invoice_date"],
                                                        batch_size=500_000):
        days = days_of_values(batch.column(0).to_pandas().value_counts(), parser, since)
        counts = days if counts is None else counts.add(days, fill_value=0)
    return (counts if counts is not None else pd.Series(dtype="int64")).sort_index()


def serial_date_hint(raw_path: Path | str, sample: int = 2000) -> str:
    """What to do when the dates are spreadsheet serial day numbers (`40513.35`: a CSV saved
    from a sheet whose date column was not formatted as dates), or "" when they are not."""
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(raw_path)
        batch = next(file.iter_batches(batch_size=sample, columns=["invoice_date"]), None)
    except (OSError, KeyError, ValueError):
        return ""
    if batch is None or not batch.num_rows:
        return ""
    number = pd.to_numeric(batch.column(0).to_pandas().astype("str").str.strip(),
                           errors="coerce")
    serial = number.between(10_000, 80_000)  # 1927-05-18 .. 2119-01-10 in a spreadsheet
    if serial.mean() < 0.5:
        return ""
    example = str(batch.column(0)[int(np.argmax(serial.to_numpy()))])
    return (f"; the invoice dates look like spreadsheet serial day numbers (e.g. {example}): "
            "format the column as dates in the sheet and export again, or give the .xlsx")


def days_of_values(values: pd.Series, parser: DateParser | None = None,
                   since: str = "1990-01-01") -> pd.Series:
    """Lines per day from lines per distinct raw date text (`value_counts` of the column):
    the raw file's blocks and a SQL input's GROUP BY (engine/pushdown.py) share the rule."""
    parser = parser or DateParser()
    dates = parser.parse_unique(pd.Series(values.index, dtype="str"))
    days = pd.Series(values.to_numpy(), index=dates.dt.normalize().to_numpy())
    days = days[days.index.notna() & (days.index >= pd.Timestamp(since))]
    return days.groupby(level=0).sum().sort_index()


# --------------------------------------------------------------------------- the default as-of


@dataclass(frozen=True)
class AsOfChoice:
    """The default as-of and the lines it leaves out as typos (set aside as `stray_date`)."""

    as_of: pd.Timestamp
    stray_from: pd.Timestamp | None = None  # first day of the stray lines, if any
    stray_lines: int = 0
    note: str | None = None


def default_as_of(
    days: pd.Series, today: pd.Timestamp, support: float = 0.005, max_gap_days: int = 60,
    tail_share: float = 0.02, hint: str = "",
) -> AsOfChoice:
    """The day after the last real line, from the lines per calendar day (index: days).

    Stray lines are typos, not the end of the data, and are left out:
    - a line dated after `today` (the day of the run) is never real;
    - a tail after a gap of more than `max_gap_days` holding at most `tail_share` of
      the lines (one 2031 line, or a misdated 169-line invoice, in a 2011 file);
    - days whose 30 days up to them hold less than `support` of the lines.
    `hint`: what the message adds when no date is readable (`serial_date_hint`).
    The support rule alone missed a typo whose day held more lines than `support`
    of the file (a whole misdated invoice) and, finding no supported day in thin
    data, fell back to the very last date; the gap and today rules do not depend on it.
    """
    today = pd.Timestamp(today).normalize()
    days = days[days > 0].sort_index()
    if days.empty:
        raise InputError("no row has a readable invoice date, so there is no default as-of "
                         "date; check the InvoiceDate column or pass --as-of YYYY-MM-DD"
                         + hint)
    real = days[days.index <= today]
    if real.empty:
        first = days.index[0].date()
        raise InputError(f"every readable invoice date is after today ({today.date()}), the "
                         f"first on {first}: the dates are wrong (a typo in the year?); fix "
                         "the InvoiceDate column")
    index = real.index
    total = float(real.sum())
    last = index[-1]
    # gap rule: the first long gap after which only a small tail of lines follows
    tail = total - real.cumsum().to_numpy()
    gaps = np.diff(index.to_numpy()).astype("timedelta64[D]").astype(np.int64)
    cut = np.nonzero((gaps > max_gap_days) & (tail[:-1] <= tail_share * total))[0]
    if len(cut):
        last = index[cut[0]]
    # support rule: the last day whose 30 days hold a fair share of the lines
    kept = real[real.index <= last]
    cum = kept.cumsum().to_numpy()
    start = kept.index.searchsorted(kept.index - pd.Timedelta(days=30), side="left")
    window = cum - np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
    supported = np.nonzero(window >= max(1.0, support * total))[0]
    if len(supported):
        last = kept.index[supported[-1]]
    stray = days[days.index > last]
    if stray.empty:
        return AsOfChoice(last + pd.Timedelta(days=1))
    count = int(stray.sum())
    future = int(stray[stray.index > today].sum())
    dates = ", ".join(str(d.date()) for d in stray.index[:3]) + (
        ", ..." if len(stray) > 3 else "")
    why = ("far after the rest of the data" if not future else
           f"after today, {today.date()}" if future == count else
           f"{future:,} of them after today, {today.date()}")
    typos = "looks like a typo" if count == 1 else "look like typos"
    note = (f"{wording.counted(count, 'line')} dated after {last.date()} ({dates}; {why}) "
            f"{typos}, not the end of the data: set aside as stray_date; the default as-of is "
            f"{(last + pd.Timedelta(days=1)).date()} (pass --as-of YYYY-MM-DD to choose)")
    return AsOfChoice(last + pd.Timedelta(days=1), stray.index[0], count, note)


def as_of_advice(as_of: pd.Timestamp, first_day: pd.Timestamp | None,
                 last_day: pd.Timestamp | None, lookback_months: int) -> str:
    """Which way to move an as-of that finds no purchase in its period: say the right one.

    `first_day`/`last_day`: the readable dates of the input. Data that ends before the
    period starts needs an earlier as-of; data that starts on or after it, a later one.
    """
    as_of = pd.Timestamp(as_of)
    start = as_of - pd.DateOffset(months=lookback_months)
    if last_day is not None and pd.Timestamp(last_day) < start:
        after_last = pd.Timestamp(last_day).normalize() + pd.Timedelta(days=1)
        return (f"the data ends on {pd.Timestamp(last_day).date()}, before the "
                f"{lookback_months} months up to {as_of.date()} begin: choose an earlier "
                f"--as-of (e.g. {after_last.date()}, the day after the last line)")
    if first_day is not None and pd.Timestamp(first_day) >= as_of:
        return (f"the data starts on {pd.Timestamp(first_day).date()}, on or after "
                f"{as_of.date()}: choose a later --as-of")
    return "choose another --as-of, or check the dates and customer ids of the input"
