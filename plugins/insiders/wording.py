"""Figures in words a marketer can repeat: money with its currency, counts, shares, times.

Every sentence of answers.json and every figure of the report goes through these, so the
same figure reads the same everywhere (the proof box and the table beside it round alike)
and small figures keep the precision that makes them true: 0.98 BRL, not "1"; 0.4%, not
"0%"; "12 hours", not "0.502 days"; "57 times", not "x57.0146".
"""

from __future__ import annotations

import math

# set-aside reasons as a chart or a sentence names them (the codes stay in the files)
REASON_WORDS = {
    "malformed_row": "line could not be read",
    "order_not_delivered": "order not delivered",
    "unparseable_date": "date not readable",
    "implausible_date": "date before 1990",
    "stray_date": "date typo (far in the future)",
    "after_as_of": "after the run's date",
    "missing_customer_id": "no customer id",
    "unparseable_quantity": "quantity not a whole number",
    "implausible_quantity": "quantity over a million",
    "zero_quantity": "quantity zero",
    "unparseable_price": "price not a number",
    "non_positive_price": "price zero or negative",
    "implausible_price": "price over a million",
    "non_product_code": "postage, fees and other non-products",
    "duplicate": "duplicate line",
}


def _finite(x: object) -> bool:
    try:
        return x is not None and math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def whole(x: float) -> str:
    """An amount to the unit, with thousands separators, as the figure stored to the cent
    reads: rounded to cents first, then halves away from zero (1,634,842.50 -> 1,634,843).

    A sentence written from the unrounded figure and a page written from the stored one
    would otherwise disagree by one: Python rounds an exact half to even."""
    if not _finite(x):
        return "n/a"
    cents = round(float(x), 2)
    units = math.floor(abs(cents) + 0.5)
    return f"{'-' if cents < 0 and units else ''}{units:,}"


def nearest(x: float | None) -> str:
    """A count or a number of days to the unit, halves away from zero (0.5 -> 1), as
    Metabase's number formatting (Intl.NumberFormat) shows a column set to 0 decimals;
    unlike `whole`, no rounding to cents first (3.4958 days is 3, not 4)."""
    if not _finite(x):
        return "n/a"
    units = math.floor(abs(float(x)) + 0.5)  # type: ignore[arg-type]
    return f"{'-' if float(x) < 0 and units else ''}{units:,}"  # type: ignore[arg-type]


def amount(x: float | None) -> str:
    """An amount without its currency: whole units from 100 on, cents below (1.45)."""
    if not _finite(x):
        return "n/a"
    x = float(x)  # type: ignore[arg-type]
    return whole(x) if abs(round(x, 2)) >= 100 else f"{x:,.2f}"


def money(x: float | None, currency: str = "") -> str:
    """An amount with its currency code after it (`1,234 GBP`, `0.98 BRL`)."""
    text = amount(x)
    return f"{text} {currency}" if currency and text != "n/a" else text


def count(n: float | None) -> str:
    """A count with thousands separators (7,208)."""
    return "n/a" if not _finite(n) else f"{round(float(n)):,}"  # type: ignore[arg-type]


def noun(n: int, singular: str, plural: str | None = None) -> str:
    """The noun alone for `n` things: 'column' for 1, 'columns' otherwise (no '(s)')."""
    return singular if n == 1 else (plural or singular + "s")


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """A count and its noun in agreement: '1 customer', '8 customers', '1,204 rows'."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def share(x: float | None, digits: int | None = None) -> str:
    """A share as a percentage to one decimal (15.4%); below 1% two significant digits
    (0.40%, 0.035%), so a small share never reads as 0% (nor a near-whole one as 100%).

    `digits` fixes the decimals instead (tables that line figures up)."""
    if not _finite(x):
        return "n/a"
    x = float(x)  # type: ignore[arg-type]
    if digits is not None:
        return f"{x:,.{digits}%}"  # 14,943.0%: a naive rule's error on a marketplace
    pct = abs(x) * 100
    if stored(x) == 0:  # float noise (1e-17 of a net of zero) is the 0% the files keep
        return "0%"
    if pct < 0.00005:  # would print 0.0000%
        return "<0.0001%" if x > 0 else ">-0.0001%"
    if pct >= 1:
        # nor does a share short of the whole read as 100.0% (11,142 of 11,145: 99.97%)
        decimals = 1
        while pct < 100 and round(pct, decimals) >= 100:
            if decimals == 2:
                return f"{'-' if x < 0 else ''}over 99.99%"
            decimals += 1
        return f"{x:,.{decimals}%}"
    decimals = min(4, 1 - math.floor(math.log10(pct)))  # two significant digits
    return f"{x:.{decimals}%}"


def share_beside(x: float, limit: float, digits: int = 0) -> str:
    """A share printed beside the limit it breaks, with as many decimals (from `digits`, at
    most 3) as it takes to differ from the limit: 743 of 2,967 is "25.04% (> 25%)", not the
    "25% (> 25%)" a reader takes for a bug."""
    for d in range(digits, 4):
        text = f"{float(x):,.{d}%}"
        if text != f"{float(limit):,.{d}%}":
            return text
    return f"just {'under' if x < limit else 'over'} {text}"


def stored(x: float | None) -> float | None:
    """A share as the run files keep it: 8 decimals. Four decimals rounded twice: 833 of
    4,261 (0.195494) was kept as 0.1955 and printed 19.6% beside the 19.5% of the same
    share printed unrounded; at 8 decimals both print alike."""
    return round(float(x), 8) if _finite(x) else None  # type: ignore[arg-type]


def times(ratio: float | None) -> str:
    """How many times as much: '57 times', '2.3 times', 'about the same'."""
    if not _finite(ratio):
        return "n/a"
    r = float(ratio)  # type: ignore[arg-type]
    if 0.95 <= r <= 1.05:
        return "about the same"
    return f"{r:,.0f} times" if r >= 10 else f"{r:.1f} times"


def duration_days(days: float | None) -> str:
    """A span in days, in words: '12 hours', 'a day', '3.5 days', '45 days'."""
    if not _finite(days):
        return "n/a"
    d = float(days)  # type: ignore[arg-type]
    if d < 1:
        hours = round(d * 24)
        return "under an hour" if hours < 1 else ("1 hour" if hours == 1 else f"{hours} hours")
    if round(d, 1) == 1:
        return "a day"
    return f"{d:.1f} days" if d < 10 else f"{d:,.0f} days"


def reason(code: str) -> str:
    """A set-aside reason in plain words (the code itself when it has none)."""
    return REASON_WORDS.get(code, code.replace("_", " "))


def p_value(p: float | None) -> str:
    """A p-value as analysts read it: 'p < 0.001' below that, two digits above."""
    if not _finite(p):
        return "n/a"
    p = float(p)  # type: ignore[arg-type]
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"
