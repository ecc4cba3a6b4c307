"""The monthly to-do for marketing: four lists, each customer on one at most, by hand."""

from __future__ import annotations

import pandas as pd
from insiders.models import campaigns


def month() -> pd.DataFrame:
    """Ten customers: size 4, exit rank 6, exit line 50 (value of rank 6)."""
    rows = [
        # id, membership, insider, value, rank, band, reason
        ("a", "entered", True, 100.0, 1, "Low", "value 100 >= entry line 70"),
        ("b", "stayed", True, 90.0, 2, "High", "value 90 >= exit line 50"),
        ("c", "stayed", True, 52.0, 5, "Low", "value 52 >= exit line 50"),
        ("d", "stayed", True, 80.0, 3, "Medium", "value 80 >= exit line 50"),
        ("e", "left", False, 30.0, 8, "Low", "value 30 < exit line 50"),
        ("f", "outside", False, 60.0, 4, "Low", "probably gone: no purchase the model "
                                                 "expects any more"),
        ("g", "outside", False, 51.0, 6, "Medium", "value 51 < entry line 70"),
        ("h", "outside", False, 40.0, 7, "Low", "value 40 < entry line 70"),
        ("i", "outside", False, 10.0, 9, "High", "value 10 < entry line 70"),
        ("j", "entered", True, 70.0, 4, "High", "value 70 >= entry line 70"),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "membership", "is_insider",
                                        "value_score", "value_rank", "churn_band",
                                        "membership_reason"])
    frame["has_purchase"] = True
    frame["expected_value"] = frame["value_score"] / 10
    frame["churn_risk"] = frame["churn_band"].map({"Low": 0.1, "Medium": 0.5, "High": 0.8})
    return frame


def test_each_list_holds_who_it_should() -> None:
    lists = campaigns.campaign_lists(month(), size=4, exit_rank=6, exit_line=50.0,
                                     gone_members=["z"])
    by_list = {name: list(g["customer_id"]) for name, g in lists.groupby("list", sort=False)}
    assert by_list["welcome"] == ["a", "j"]  # entered, most valuable first (j is High: new)
    assert by_list["at_risk"] == ["b", "c"]  # High churn risk; value within 10% of the line
    assert by_list["win_back"] == ["e", "z"]  # left, and a member with no line at all
    assert by_list["next_in_line"] == ["g"]  # rank 5..6, not a member, not gone (f is gone)
    assert lists["customer_id"].is_unique  # one list at most per customer
    reasons = dict(zip(lists["customer_id"], lists["reason"], strict=True))
    assert reasons["b"].startswith("high churn risk") and reasons["c"].startswith("value close")
    assert reasons["e"] == "left the Insiders this month: value 30 < exit line 50"
    assert list(lists.columns) == campaigns.COLUMNS


def test_the_summary_counts_and_says_what_to_do() -> None:
    lists = campaigns.campaign_lists(month(), size=4, exit_rank=6, exit_line=50.0)
    out = campaigns.summary(lists)
    assert out["counts"] == {"welcome": 2, "at_risk": 2, "win_back": 1, "next_in_line": 1}
    assert out["text"].startswith("This month: welcome 2 new Insiders, call 2 members at risk")


def test_next_in_line_says_how_far_below_the_entry_line() -> None:
    """'one more purchase away' was said of every next-in-line customer, also of one whose
    value was a third of the entry line: the reason now states the gap, in the money."""
    from insiders import wording

    lists = campaigns.campaign_lists(month(), size=4, exit_rank=6, exit_line=50.0,
                                     entry_line=70.0, currency="GBP")
    reason = lists.loc[lists["customer_id"] == "g", "reason"].item()
    assert reason == f"just below the entry line: {wording.money(19.0, 'GBP')} short of it"
    assert "GBP" in reason and "purchase away" not in reason
    bare = campaigns.campaign_lists(month(), size=4, exit_rank=6, exit_line=50.0)
    assert bare.loc[bare["customer_id"] == "g", "reason"].item() == "just below the entry line"
