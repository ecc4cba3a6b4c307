"""The monthly to-do for marketing: who to write to this month, and why.

Four lists, from the month's membership and the per-customer predictions:
- welcome: members who entered this month;
- at risk: members whose churn risk is high (no purchase in the next 90 days more likely
  than not, the High band) or whose value is within `near_exit` of the exit line - the
  ones to call before they leave;
- win back: members who left this month (below the exit line, probably gone, or no
  purchase in the period at all);
- next in line: customers just below the entry line (ranked between the group's size and
  the exit rank) who are not probably gone - the next Insiders if their value rises by
  the gap their reason states (it says how far below the entry line they are, never that
  one purchase is enough).
A customer is on one list at most, in that order of priority.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LISTS = ("welcome", "at_risk", "win_back", "next_in_line")
COLUMNS = ["customer_id", "list", "reason", "expected_value", "churn_risk", "churn_band",
           "value_rank"]


def campaign_lists(customers: pd.DataFrame, size: int, exit_rank: int, exit_line: float,
                   value: str = "value_score", near_exit: float = 0.1,
                   gone_members: list[str] | tuple[str, ...] = (),
                   entry_line: float | None = None, currency: str = "") -> pd.DataFrame:
    """One row per customer to contact: `COLUMNS`, most valuable first within each list.

    `customers` needs customer_id, membership, is_insider, has_purchase, value_rank,
    `value`, expected_value, churn_risk and churn_band; `gone_members` are last month's
    members with no line at all in the period (they left too). With `entry_line` (in the
    value's money, `currency`), a next-in-line reason says how far below it the customer is.
    """
    from .. import wording

    c = customers
    status = c["membership"].astype("str")
    band = c["churn_band"].astype("object").where(c["churn_band"].notna(), None)
    val = c[value].astype(float)
    rank = c["value_rank"].astype(int)
    member = c["is_insider"].astype(bool)
    near = member & (val < exit_line * (1 + near_exit)) & (status == "stayed")
    risky = member & (band == "High")
    gone = c["membership_reason"].astype("str").str.startswith("probably gone")
    below = (~member & c["has_purchase"].astype(bool) & (rank > size) & (rank <= exit_rank)
             & ~gone & (status == "outside"))
    reasons = {
        "welcome": np.where(status == "entered", "entered the Insiders this month", ""),
        "at_risk": np.where(risky, "high churn risk: no purchase expected in the next 90 days",
                            np.where(near, "value close to the exit line", "")),
        "win_back": np.where(status == "left", "left the Insiders this month: "
                             + c["membership_reason"].astype("str"), ""),
        "next_in_line": np.where(below, _below_entry(val, entry_line, currency, wording), ""),
    }
    taken = np.zeros(len(c), dtype=bool)
    parts = []
    for name in LISTS:
        mask = (reasons[name] != "") & ~taken
        taken |= mask
        part = c.loc[mask, ["customer_id", "expected_value", "churn_risk", "churn_band",
                            "value_rank"]].copy()
        part.insert(1, "list", name)
        part.insert(2, "reason", reasons[name][mask])
        parts.append(part.sort_values("value_rank"))
    known = set(c["customer_id"].astype("str"))
    extra = [m for m in gone_members if m not in known]
    if extra:
        parts.append(pd.DataFrame({
            "customer_id": extra, "list": "win_back",
            "reason": "left the Insiders this month: no purchase in the analysed period",
            "expected_value": 0.0, "churn_risk": np.nan, "churn_band": None, "value_rank": 0}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    out["customer_id"] = out["customer_id"].astype("str")
    return out[COLUMNS]


def _below_entry(val: pd.Series, entry_line: float | None, currency: str, wording) -> object:
    """'just below the entry line: 1,203 GBP short of it' per customer (the bare phrase
    without a line to measure from)."""
    if entry_line is None or not np.isfinite(entry_line):
        return "just below the entry line"
    gaps = (float(entry_line) - val).clip(lower=0)
    return np.array([f"just below the entry line: {wording.money(g, currency)} short of it"
                     for g in gaps], dtype=object)


def summary(lists: pd.DataFrame) -> dict:
    """Counts per list and one sentence a marketer can act on."""
    counts = {name: int((lists["list"] == name).sum()) for name in LISTS}
    text = (f"This month: welcome {counts['welcome']:,} new Insiders, call {counts['at_risk']:,} "
            f"members at risk, try to win back {counts['win_back']:,} who left, and nudge "
            f"{counts['next_in_line']:,} customers who are next in line. The lists are in "
            "campaigns.csv.")
    return {"text": text, "counts": counts}
