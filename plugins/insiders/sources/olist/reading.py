"""Olist marketplace source: several tables in, canonical transactions plus experience out.

Olist (Brazil) ships orders, order items, payments, reviews, customers, products,
sellers and a category translation as separate CSVs. This adapter turns them into
the package's canonical transaction lines (so quality, features, segmentation,
Insiders, forecast and report work unchanged) and keeps what transactions cannot
carry - review scores and delivery dates - as experience tables under
`work/source/`, used for the satisfaction features and the customer-experience cards.

Rules (docs/olist.md explains them to users):
- the person is `customer_unique_id`; `customer_id` is one per order;
- only delivered orders are purchases. Every other order is kept in sight: its
  lines go to the quarantine with reason `order_not_delivered`;
- the canonical invoice is "order-<order_id>": a bare hex id starting with "c" would read as
  a cancellation;
- one canonical line per order, product and price (items of the same product at the
  same price in one order become one line with quantity = their count: as separate
  identical lines, quality would set the second one aside as a duplicate);
- every source row is accounted for, per table: rows_in = rows_kept + set aside.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ... import data_end, quality, wording
from ...errors import InputError
from ...extract import RAW_COLUMNS
from ...log import info
from ...models.text import is_in
from .tables import NO_CATEGORY, TABLES, read_tables

if TYPE_CHECKING:
    from ...catalog import RunFolder

DAY = np.timedelta64(1, "D")


# per-table set-aside reasons (the per-table accounting in extract.json)
TABLE_REASONS: dict[str, str] = {
    "malformed_row": "the row could not be split into the file's columns",
    "duplicate": "the key (order_id, review_id+order_id, product_id, ...) appeared earlier",
    "order_not_delivered": "the order was cancelled or not delivered (yet): not a purchase",
    "no_items": "a delivered order without any item: nothing was bought",
    "unknown_customer": "the order's customer_id is not in the customers table",
    "unknown_order": "the order_id is not in the orders table",
    "no_order": "no order refers to this customer_id",
}
DELIVERED = "delivered"
# order ids are hex: one in sixteen starts with "c", which the canonical layout reads as a
# cancellation (Online Retail's "C" invoices), so the invoice is the order id behind a prefix
INVOICE_PREFIX = "order-"


# --------------------------------------------------------------------------- extract


def _first_reason(*pairs: tuple[str, np.ndarray]) -> np.ndarray:
    """Per row, the first reason whose mask is true ("" = kept)."""
    n = len(pairs[0][1])
    out = np.full(n, "", dtype=object)
    for reason, mask in pairs:
        out[(out == "") & np.asarray(mask, dtype=bool)] = reason
    return out


def _accounting(reasons: np.ndarray, malformed: int = 0) -> dict:
    counts = pd.Series(reasons[reasons != ""]).value_counts()
    set_aside = {k: int(v) for k, v in counts.items()}
    if malformed:
        set_aside = {"malformed_row": malformed, **set_aside}
    return {"rows_in": int(len(reasons)) + malformed, "rows_kept": int((reasons == "").sum()),
            "set_aside": set_aside}


def _parse_dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.replace("", None), format="ISO8601", errors="coerce"
                          ).astype("datetime64[us]")


def extract(source: str | Path, folder: RunFolder) -> dict:
    """Write the folder's `raw` and `rejects` datasets and the experience tables.

    Returns the extract summary with the per-table accounting (`tables`) and the
    default as-of date (the day after the last delivered purchase).
    """
    started = time.perf_counter()
    frames, files, rejects, notes = read_tables(source)
    malformed = rejects.groupby("source_file").size().to_dict() if len(rejects) else {}

    def bad_rows(table: str) -> int:
        return int(malformed.get(files.get(table, ""), 0))

    orders, items, customers = frames["orders"], frames["order_items"], frames["customers"]
    reviews, payments = frames["reviews"], frames["payments"]
    if orders.empty:  # else every item is an orphan line and the tables below have no rows
        raise InputError(f"{files.get('orders', source)}: no order rows, so there is nothing "
                         "to analyse; check that --input is the Olist folder")

    # customers: the person behind each per-order customer_id
    customers["_dup"] = customers["customer_id"].duplicated()
    people = customers[~customers["_dup"]].set_index("customer_id")

    # orders: delivered ones with items are purchases
    orders["order_status"] = orders["order_status"].str.lower()
    orders["_dup"] = orders["order_id"].duplicated()
    has_items = is_in(orders["order_id"], items["order_id"])
    known_customer = is_in(orders["customer_id"], people.index)
    delivered = orders["order_status"] == DELIVERED
    orders["_reason"] = _first_reason(
        ("duplicate", orders["_dup"]),
        ("order_not_delivered", ~delivered),
        ("no_items", ~has_items),
        ("unknown_customer", ~known_customer),
    )
    first_orders = orders[~orders["_dup"]].set_index("order_id")
    order_reason = first_orders["_reason"]

    def child_reason(frame: pd.DataFrame) -> np.ndarray:
        parent = frame["order_id"].map(order_reason)
        return np.where(parent.isna(), "unknown_order", parent.fillna("")).astype(object)

    items["_reason"] = np.where(items.duplicated(["order_id", "order_item_id"]), "duplicate",
                                child_reason(items)).astype(object)
    payments["_reason"] = child_reason(payments) if len(payments) else np.array([], dtype=object)

    reviews["_dup"] = reviews.duplicated(["review_id", "order_id"])
    reviews["_reason"] = _first_reason(
        ("duplicate", reviews["_dup"]),
        ("unknown_order", ~is_in(reviews["order_id"], first_orders.index)),
    )

    # a customer row is kept when a kept order refers to it; otherwise the reason of its
    # least bad order (or no_order when none refers to it)
    rank = {"": 0, **{r: i + 1 for i, r in enumerate(TABLE_REASONS)}}
    by_customer = orders[~orders["_dup"]].assign(_rank=orders["_reason"].map(rank)) \
        .groupby("customer_id")["_rank"].min()
    names = {v: k for k, v in rank.items()}
    cust_rank = customers["customer_id"].map(by_customer)
    customers["_reason"] = _first_reason(
        ("duplicate", customers["_dup"]),
        ("no_order", cust_rank.isna()),
    )
    linked = (customers["_reason"] == "") & cust_rank.notna()
    customers.loc[linked, "_reason"] = cust_rank[linked].astype(int).map(names)

    for table, key in (("products", ["product_id"]), ("sellers", ["seller_id"]),
                       ("translation", ["product_category_name"])):
        frames[table]["_reason"] = _first_reason(("duplicate", frames[table].duplicated(key)))

    tables = {
        name: _accounting(np.asarray(frames[name]["_reason"], dtype=object), bad_rows(name))
        for name in TABLES
    }

    # ---- canonical lines
    translation = frames["translation"].drop_duplicates("product_category_name").set_index(
        "product_category_name")["product_category_name_english"]
    products = frames["products"].drop_duplicates("product_id").set_index("product_id")
    portuguese = products["product_category_name"]
    english = portuguese.map(translation).where(lambda s: s.fillna("") != "", portuguese)
    category = english.replace("", NO_CATEGORY)

    order_info = first_orders.join(people[["customer_unique_id", "customer_state",
                                           "customer_zip_code_prefix", "customer_city"]],
                                   on="customer_id")
    items["description"] = items["product_id"].map(category).fillna(NO_CATEGORY)
    lines = items.groupby(["order_id", "product_id", "price", "_reason"], sort=False,
                          as_index=False).agg(
        quantity=("order_item_id", "size"), description=("description", "first"),
        source_row=("source_row", "min"))
    lines = lines.join(order_info[["order_purchase_timestamp", "customer_unique_id",
                                   "customer_state"]], on="order_id")
    lines["source_file"] = files.get("order_items", "")
    # orders that produce no item line still appear, so every order can be found in the
    # transactions or the quarantine: undelivered (order_not_delivered), delivered without
    # items (quantity 0 -> zero_quantity), repeated order_id rows (duplicate)
    lone = orders[(~has_items) | orders["_dup"]].join(
        people[["customer_unique_id", "customer_state"]], on="customer_id")
    placeholders = pd.DataFrame({
        "order_id": lone["order_id"], "product_id": "", "price": "", "quantity": 0,
        "description": "", "source_row": lone["source_row"],
        "_reason": lone["_reason"].replace({"no_items": "zero_quantity"}),
        "order_purchase_timestamp": lone["order_purchase_timestamp"],
        "customer_unique_id": lone["customer_unique_id"],
        "customer_state": lone["customer_state"], "source_file": files.get("orders", ""),
    })
    lines = pd.concat([lines, placeholders], ignore_index=True)
    # the quality stage knows these reasons; unknown customer or order -> no customer id
    lines["source_reason"] = lines["_reason"].replace(
        {"unknown_customer": "missing_customer_id", "unknown_order": "missing_customer_id",
         "no_items": "zero_quantity"})
    raw = pd.DataFrame({
        "invoice": INVOICE_PREFIX + lines["order_id"],
        "stock_code": lines["product_id"],
        "description": lines["description"],
        "quantity": lines["quantity"].astype("int64").astype("str"),
        "invoice_date": lines["order_purchase_timestamp"].fillna(""),
        "unit_price": lines["price"],
        "customer_id": lines["customer_unique_id"].fillna(""),
        "country": lines["customer_state"].fillna(""),
    }).astype("str")
    raw["source_file"] = lines["source_file"].astype("str")
    raw["source_row"] = lines["source_row"].astype("int64")
    raw["source_reason"] = lines["source_reason"].astype("str")
    raw = raw.sort_values(["source_file", "source_row"], kind="stable").reset_index(drop=True)
    if raw.empty:
        raise InputError(f"{files.get('orders', source)}: no order rows, so there is nothing "
                         "to analyse; check that --input is the Olist folder")
    folder.write("raw", raw[[*RAW_COLUMNS, "source_file", "source_row", "source_reason"]])
    folder.write("rejects", rejects)

    # ---- experience tables
    experience = _experience_tables(order_info, items, reviews, payments, frames["sellers"],
                                    category)
    for name, frame in experience.items():
        folder.write_source_table(name, frame)

    # ---- summary
    purchase = experience["orders"].loc[experience["orders"]["is_purchase"], "purchase_at"]
    status = orders.loc[~orders["_dup"], "order_status"].value_counts()
    not_delivered = status.drop(DELIVERED, errors="ignore")
    lone_undelivered = orders[~has_items & ~orders["_dup"]]
    # counted over the orders read (a partial export of orders comes with whole tables of
    # customers and reviews: their other rows are accounted for in the tables' counts)
    placed = people[is_in(people.index, orders.loc[~orders["_dup"], "customer_id"])]
    known = reviews[reviews["_reason"] != "unknown_order"]
    notes = [
        f"Only delivered orders count as purchases: {int(status.get(DELIVERED, 0)):,} of "
        f"{int(status.sum()):,}. The other {int(not_delivered.sum()):,} ("
        + ", ".join(f"{k} {v:,}" for k, v in not_delivered.items())
        + ") are set aside with reason order_not_delivered; they stay in the experience "
        "tables (cards, reviews by zip code).",
        f"{len(lone_undelivered):,} orders have no item ("
        + ", ".join(f"{k} {v:,}" for k, v in lone_undelivered["order_status"].value_counts()
                    .items())
        + "); each appears once in the quarantine (empty product and price) under its "
        "order's reason (order_not_delivered, or zero_quantity if it was delivered).",
        f"{tables['order_items']['rows_in']:,} order items become "
        f"{len(lines) - len(placeholders):,} lines: items of the same product at the same "
        "price in one order are one line with quantity = their count.",
        f"The person is customer_unique_id: {placed['customer_unique_id'].nunique():,} people "
        f"behind the {len(placed):,} per-order customer_ids of these orders.",
        f"{int((reviews['_reason'] == '').sum()):,} reviews kept; "
        f"{int(known['order_id'].duplicated().sum()):,} orders have more than one review (the "
        "latest known one counts) and "
        f"{int(known.loc[~known['_dup'], 'review_id'].duplicated().sum()):,} review ids "
        "cover several orders (each pair counts).",
        *notes,
    ]
    orphans = lines["_reason"].isin(["unknown_order", "unknown_customer"])
    if orphans.any():  # a partial export (some orders, every item): say what the count is
        kinds = lines.loc[orphans, "_reason"].value_counts()
        why = {"unknown_order": "order_id not in the orders table",
               "unknown_customer": "customer_id not in the customers table"}
        n = int(orphans.sum())
        verb, them, are = ("belongs", "it", "it is") if n == 1 else ("belong", "them", "they are")
        notes.append(
            f"{wording.counted(n, 'item line')} {verb} to no known order or customer ("
            + ", ".join(f"{why[k]} {v:,}" for k, v in kinds.items())
            + f"): nobody to attribute {them} to, so {are} set aside as missing_customer_id.")
    for table, acc in tables.items():
        if acc["rows_in"] != acc["rows_kept"] + sum(acc["set_aside"].values()):
            raise RuntimeError(f"olist {table}: row accounting does not balance: {acc}")
    info("extract (olist): %s canonical lines from %d tables in %.1f s; %s",
         f"{len(raw):,}", len(files), time.perf_counter() - started,
         "; ".join(f"{t} {a['rows_kept']:,}/{a['rows_in']:,} kept" for t, a in tables.items()))
    return {
        "rows": int(len(raw) + len(rejects)),
        "rows_parsed": int(len(raw)),
        "rejects": int(len(rejects)),
        "files": {files[t]: int(tables[t]["rows_in"]) for t in TABLES if t in files},
        "notes": notes,
        "source": str(source),
        "tables": tables,
        "table_reasons": TABLE_REASONS,
        **_default_as_of(purchase),
    }


def _default_as_of(purchase: pd.Series) -> dict:
    """The default as-of from the delivered purchases, by `data_end.default_as_of`'s rule: a
    purchase typed in 2031, or a lone one months after the rest, is a typo that must neither
    move the as-of nor make the run refuse it (set aside as `stray_date` instead). Stated in
    the extract's notes only when a run takes the default (`Olist.default_as_of`)."""
    days = purchase.dropna().dt.normalize().value_counts()
    if days.empty:
        return {"default_as_of": None}
    choice = data_end.default_as_of(days, pd.Timestamp.now())
    last = choice.as_of - DAY
    note = (f"The last delivered purchase is on {last.date()}; the default as-of date is the "
            f"day after ({choice.as_of.date()}), not the last order, because later orders are "
            "cancelled or undelivered.")
    if choice.note:
        note = (f"{note} {choice.note.replace(' line', ' delivered purchase line', 1)}")
    return {"default_as_of": str(choice.as_of.date()), "default_as_of_note": note,
            "default_stray_from": str(choice.stray_from.date()) if choice.stray_from else None}


def _experience_tables(order_info: pd.DataFrame, items: pd.DataFrame, reviews: pd.DataFrame,
                       payments: pd.DataFrame, sellers: pd.DataFrame, category: pd.Series,
                       ) -> dict[str, pd.DataFrame]:
    """Order-level delivery and review facts, items with sellers, sellers, reviews."""
    o = order_info.reset_index()
    purchase = _parse_dates(o["order_purchase_timestamp"])
    delivered = _parse_dates(o["order_delivered_customer_date"])
    estimated = _parse_dates(o["order_estimated_delivery_date"])
    days_late = (delivered.dt.normalize() - estimated.dt.normalize()) / DAY
    kept_reviews = reviews[reviews["_reason"] == ""].copy()
    kept_reviews["score"] = pd.to_numeric(kept_reviews["review_score"], errors="coerce")
    kept_reviews["created_at"] = _parse_dates(kept_reviews["review_creation_date"])
    kept_reviews = kept_reviews.sort_values(["order_id", "created_at"], kind="stable")
    per_order = kept_reviews.groupby("order_id").agg(
        review_score=("score", "last"), review_score_mean=("score", "mean"),
        review_count=("score", "size"))
    kept_items = items[items["_reason"] != "duplicate"].copy()
    # a price the quality stage sets aside as implausible_price (a typo, a broken export) is
    # unknown here too: one would make its seller and its order the largest in every card
    for column, to in (("price", "price_value"), ("freight_value", "freight")):
        value = pd.to_numeric(kept_items[column], errors="coerce")
        kept_items[to] = value.where(value.abs() <= quality.MAX_UNIT_PRICE)
    item_totals = kept_items.groupby("order_id").agg(
        items=("order_item_id", "size"), items_value=("price_value", "sum"),
        freight_value=("freight", "sum"))
    paid = payments.assign(value=pd.to_numeric(payments["payment_value"], errors="coerce")) \
        .groupby("order_id")["value"].sum() if len(payments) else pd.Series(dtype=float)
    orders = pd.DataFrame({
        "order_id": o["order_id"],
        "customer_id": o["customer_id"],
        "customer_unique_id": o["customer_unique_id"].fillna(""),
        "status": o["order_status"],
        "is_purchase": (o["_reason"] == "").to_numpy(),
        "purchase_at": purchase,
        "approved_at": _parse_dates(o["order_approved_at"]),
        "delivered_at": delivered,
        "estimated_at": estimated,
        "delivered_late": (days_late > 0).where(delivered.notna() & estimated.notna())
                                         .astype("boolean"),
        "days_late": days_late.astype("Int64"),
        "customer_zip_prefix": o["customer_zip_code_prefix"].fillna(""),
        "customer_city": o["customer_city"].fillna(""),
        "customer_state": o["customer_state"].fillna(""),
    })
    orders = orders.join(item_totals, on="order_id").join(per_order, on="order_id")
    orders["payment_value"] = orders["order_id"].map(paid)
    orders["items"] = orders["items"].fillna(0).astype("int64")
    orders["review_count"] = orders["review_count"].fillna(0).astype("int64")

    item_table = pd.DataFrame({
        "order_id": kept_items["order_id"],
        "order_item_id": pd.to_numeric(kept_items["order_item_id"], errors="coerce")
                           .astype("Int64"),
        "product_id": kept_items["product_id"],
        "seller_id": kept_items["seller_id"],
        "category": kept_items["product_id"].map(category).fillna(NO_CATEGORY),
        "price": kept_items["price_value"],
        "freight_value": kept_items["freight"],
    }).reset_index(drop=True)
    seller_table = sellers.loc[sellers["_reason"] == "", ["seller_id", "seller_zip_code_prefix",
                                                          "seller_city", "seller_state"]] \
        .rename(columns={"seller_zip_code_prefix": "zip_prefix", "seller_city": "city",
                         "seller_state": "state"}).reset_index(drop=True)
    where = orders.set_index("order_id")[["customer_unique_id", "customer_zip_prefix",
                                          "customer_state", "status"]]
    review_table = pd.DataFrame({
        "review_id": kept_reviews["review_id"],
        "order_id": kept_reviews["order_id"],
        "review_score": kept_reviews["score"].astype("Int64"),
        "created_at": kept_reviews["created_at"],
        "answered_at": _parse_dates(kept_reviews["review_answer_timestamp"]),
    }).join(where, on="order_id").rename(columns={"status": "order_status"}) \
        .reset_index(drop=True)
    return {"orders": orders, "items": item_table, "sellers": seller_table,
            "reviews": review_table}


