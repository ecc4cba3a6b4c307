"""Olist marketplace source: several tables in, canonical transactions plus experience out.

Olist (Brazil) ships orders, order items, payments, reviews, customers, products,
sellers and a category translation as separate CSVs. This adapter turns them into
the package's canonical transaction lines (so quality, features, segmentation,
Insiders, forecast and report work unchanged) and keeps what transactions cannot
carry - review scores and delivery dates - as experience tables under
`work/olist/`, used for the satisfaction features and the customer-experience cards.

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

import codecs
import csv
import gzip
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import InputError
from .extract import RAW_COLUMNS, _shift_past
from .features import DAY, period_start
from .log import info

# table -> (file stem, required columns, optional columns); a table is required unless listed
# in OPTIONAL_TABLES. The stems are those of the public Kaggle copy (olistbr/brazilian-ecommerce).
TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "orders": ("olist_orders_dataset",
               ("order_id", "customer_id", "order_status", "order_purchase_timestamp",
                "order_delivered_customer_date", "order_estimated_delivery_date"),
               ("order_approved_at", "order_delivered_carrier_date")),
    "order_items": ("olist_order_items_dataset",
                    ("order_id", "order_item_id", "product_id", "seller_id", "price"),
                    ("freight_value", "shipping_limit_date")),
    "payments": ("olist_order_payments_dataset",
                 ("order_id", "payment_value"),
                 ("payment_sequential", "payment_type", "payment_installments")),
    "reviews": ("olist_order_reviews_dataset",
                ("review_id", "order_id", "review_score", "review_creation_date"),
                ("review_answer_timestamp",)),
    "customers": ("olist_customers_dataset",
                  ("customer_id", "customer_unique_id", "customer_zip_code_prefix",
                   "customer_state"),
                  ("customer_city",)),
    "products": ("olist_products_dataset", ("product_id", "product_category_name"), ()),
    "sellers": ("olist_sellers_dataset", ("seller_id",),
                ("seller_zip_code_prefix", "seller_city", "seller_state")),
    "translation": ("product_category_name_translation",
                    ("product_category_name", "product_category_name_english"), ()),
}
OPTIONAL_TABLES = ("payments", "products", "sellers", "translation")
SUFFIXES = (".csv.gz", ".csv")

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
NO_CATEGORY = "unknown category"
OUT_DIR = "work/olist"
# order ids are hex: one in sixteen starts with "c", which the canonical layout reads as a
# cancellation (Online Retail's "C" invoices), so the invoice is the order id behind a prefix
INVOICE_PREFIX = "order-"
LOW_SCORE = 2  # reviews of 1 or 2 stars are "unhappy"


# --------------------------------------------------------------------------- reading


def find_file(directory: Path, table: str) -> Path | None:
    stem = TABLES[table][0]
    for suffix in SUFFIXES:
        path = directory / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _header(path: Path) -> list[str]:
    try:
        with _open(path) as fh:
            head = fh.read(64 * 1024)
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None
    if head.startswith(codecs.BOM_UTF8):  # the translation file starts with a BOM
        head = head[len(codecs.BOM_UTF8):]
    lines = head.decode("utf-8", errors="replace").splitlines()
    if not lines or not lines[0].strip():
        raise InputError(f"{path}: the file is empty; expected a header row")
    return [name.strip() for name in next(csv.reader([lines[0]]))]


def read_table(path: Path, table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All columns we use, as text, with `source_row` (header = row 1), and the unreadable rows.

    Quoted values may span lines (review comments): the row number is the record's number,
    as a spreadsheet shows it.
    """
    _, required, optional = TABLES[table]
    names = _header(path)
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} for the Olist "
                         f"{table} table (found: {', '.join(names[:10]) or 'none'})")
    wanted = [c for c in (*required, *optional) if c in names]
    bad: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        bad.append((row.number if row.number is not None else -1, row.text))
        return "skip"

    reader_names = [f"c{i}" for i in range(len(names))]
    by_name = {n: f"c{i}" for i, n in reversed(list(enumerate(names)))}
    try:
        with _open(path) as fh:
            data = pacsv.read_csv(
                fh,
                read_options=pacsv.ReadOptions(column_names=reader_names, skip_rows=1,
                                               use_threads=False),
                parse_options=pacsv.ParseOptions(newlines_in_values=True,
                                                 invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in reader_names},
                    include_columns=[by_name[c] for c in wanted],
                    strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "unknown error"
        raise InputError(f"{path}: stopped reading: {first}. Is the file truncated or "
                         "corrupt?") from None
    frame = pd.DataFrame({c: data.column(by_name[c]).to_pandas().str.strip() for c in wanted})
    for column in optional:
        if column not in frame:
            frame[column] = ""
    rows = 2 + np.arange(len(frame), dtype=np.int64)
    numbers = np.sort(np.array([n for n, _ in bad if n >= 0], dtype=np.int64))
    frame["source_row"] = _shift_past(rows, numbers) if len(numbers) else rows
    rejects = pd.DataFrame({"source_file": pd.Series([str(path)] * len(bad), dtype="str"),
                            "source_row": pd.Series([n for n, _ in bad], dtype="int64"),
                            "raw_text": pd.Series([t for _, t in bad], dtype="str")})
    return frame, rejects


def _empty_table(table: str) -> pd.DataFrame:
    _, required, optional = TABLES[table]
    frame = pd.DataFrame({c: pd.Series([], dtype="str") for c in (*required, *optional)})
    frame["source_row"] = pd.Series([], dtype="int64")
    return frame


def read_tables(source: str | Path) -> tuple[dict[str, pd.DataFrame], dict[str, str],
                                             pd.DataFrame, list[str]]:
    """Every table as text, the file each came from, the unreadable rows, and notes."""
    directory = Path(source)
    if not directory.is_dir():
        raise InputError(f"{directory}: for --source olist, --input must be the folder holding "
                         "the Olist CSV files (olist_orders_dataset.csv.gz, ...)")
    frames: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    rejects: list[pd.DataFrame] = []
    notes: list[str] = []
    missing = [t for t in TABLES if t not in OPTIONAL_TABLES and find_file(directory, t) is None]
    if missing:
        names = ", ".join(f"{TABLES[t][0]}.csv.gz" for t in missing)
        raise InputError(f"{directory}: missing Olist file(s) {names} (.csv or .csv.gz)")
    for table in TABLES:
        path = find_file(directory, table)
        if path is None:
            frames[table] = _empty_table(table)
            notes.append(f"{TABLES[table][0]}: not found; "
                         + {"payments": "payments are not shown",
                            "products": f"every product is in '{NO_CATEGORY}'",
                            "sellers": "sellers have no city or state",
                            "translation": "categories keep their Portuguese names"}[table])
            continue
        frames[table], bad = read_table(path, table)
        frames[table]["_bad"] = False
        files[table] = str(path)
        if len(bad):
            rejects.append(bad)
            notes.append(f"{path.name}: {len(bad):,} row(s) could not be split into columns "
                         "(set aside as malformed_row)")
    bad = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame(
        {"source_file": pd.Series([], dtype="str"), "source_row": pd.Series([], dtype="int64"),
         "raw_text": pd.Series([], dtype="str")})
    return frames, files, bad, notes


# --------------------------------------------------------------------------- extract


def _first_reason(*pairs: tuple[str, np.ndarray]) -> np.ndarray:
    """Per row, the first reason whose mask is true ("" = kept)."""
    n = len(pairs[0][1])
    out = np.full(n, "", dtype=object)
    for reason, mask in pairs:
        out[(out == "") & np.asarray(mask, dtype=bool)] = reason
    return out


def _isin(values: pd.Series, reference: pd.Series | pd.Index) -> np.ndarray:
    """`values.isin(reference)` for text ids (pandas' own is slow on Arrow strings)."""
    found = pc.is_in(pa.array(values.to_numpy(dtype=object), type=pa.string()),
                     value_set=pa.array(pd.unique(reference.to_numpy(dtype=object)),
                                        type=pa.string()))
    return found.to_numpy(zero_copy_only=False).astype(bool)


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


def extract_stage(run_dir: Path | str, source: str | Path) -> dict:
    """Write `work/raw.parquet`, `work/rejects.parquet` and the experience tables.

    Called by `tasks.extract_stage` when the source kind is "olist"; returns the
    extract summary with the per-table accounting (`tables`).
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    frames, files, rejects, notes = read_tables(source)
    malformed = rejects.groupby("source_file").size().to_dict() if len(rejects) else {}

    def bad_rows(table: str) -> int:
        return int(malformed.get(files.get(table, ""), 0))

    orders, items, customers = frames["orders"], frames["order_items"], frames["customers"]
    reviews, payments = frames["reviews"], frames["payments"]

    # customers: the person behind each per-order customer_id
    customers["_dup"] = customers["customer_id"].duplicated()
    people = customers[~customers["_dup"]].set_index("customer_id")

    # orders: delivered ones with items are purchases
    orders["order_status"] = orders["order_status"].str.lower()
    orders["_dup"] = orders["order_id"].duplicated()
    has_items = _isin(orders["order_id"], items["order_id"])
    known_customer = _isin(orders["customer_id"], people.index)
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
        ("unknown_order", ~_isin(reviews["order_id"], first_orders.index)),
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
    work = run_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    raw[[*RAW_COLUMNS, "source_file", "source_row", "source_reason"]].to_parquet(
        work / "raw.parquet", index=False)
    rejects.to_parquet(work / "rejects.parquet", index=False)

    # ---- experience tables
    experience = _experience_tables(order_info, items, reviews, payments, frames["sellers"],
                                    category)
    out = run_dir / OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in experience.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)

    # ---- summary
    purchase = experience["orders"].loc[experience["orders"]["is_purchase"], "purchase_at"]
    last_purchase = purchase.max() if len(purchase) else pd.NaT
    status = orders.loc[~orders["_dup"], "order_status"].value_counts()
    not_delivered = status.drop(DELIVERED, errors="ignore")
    lone_undelivered = orders[~has_items & ~orders["_dup"]]
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
        f"The person is customer_unique_id: {people['customer_unique_id'].nunique():,} people "
        f"behind {len(people):,} per-order customer_ids.",
        f"{int((reviews['_reason'] == '').sum()):,} reviews kept; "
        f"{int(reviews['order_id'].duplicated().sum()):,} orders have more than one review (the "
        "latest known one counts) and "
        f"{int(reviews.loc[~reviews['_dup'], 'review_id'].duplicated().sum()):,} review ids "
        "cover several orders (each pair counts).",
        *notes,
    ]
    if pd.notna(last_purchase):
        notes.append(f"The last delivered purchase is on {last_purchase.date()}; the default "
                     f"as-of date is the day after ({(last_purchase.normalize() + DAY).date()}), "
                     "not the last order, because later orders are cancelled or undelivered.")
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
        "kind": "olist",
        "tables": tables,
        "table_reasons": TABLE_REASONS,
        "default_as_of": (str((last_purchase.normalize() + DAY).date())
                          if pd.notna(last_purchase) else None),
    }


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
    kept_items["price_value"] = pd.to_numeric(kept_items["price"], errors="coerce")
    kept_items["freight"] = pd.to_numeric(kept_items["freight_value"], errors="coerce")
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


def default_as_of(run_dir: Path | str) -> pd.Timestamp | None:
    """The day after the last delivered purchase (later orders are cancelled or in transit)."""
    import json

    path = Path(run_dir) / "work" / "extract.json"
    if not path.exists():
        return None
    value = json.loads(path.read_text()).get("default_as_of")
    return pd.Timestamp(value) if value else None


# --------------------------------------------------------------------------- features

EXPERIENCE_FEATURES = ["review_score_mean", "low_review_share", "review_count", "late_share",
                       "avg_days_late"]
EXPERIENCE_DESCRIPTIONS = {
    "review_score_mean": "mean review score (1-5) of the period's purchases, latest review per "
                         "order known on the as-of date; customers without a review get the "
                         "period's mean",
    "low_review_share": "share of reviewed purchases rated 1 or 2 stars (no review: the "
                        "period's share)",
    "review_count": "purchases with a review known on the as-of date",
    "late_share": "share of purchases delivered after the estimated date (or still undelivered "
                  "past it on the as-of date); none known yet: 0",
    "avg_days_late": "average days after the estimated date per purchase (0 when on time)",
}
@dataclass
class _Purchases:
    """Delivered orders as arrays (customer codes, dates) and their reviews, sorted by time."""

    customers: pd.Index  # customer_unique_id of each code
    customer_code: np.ndarray
    purchase_at: np.ndarray
    delivered_at: np.ndarray
    estimated_at: np.ndarray
    review_order: np.ndarray  # position of the reviewed order in the arrays above
    review_score: np.ndarray
    review_created_at: np.ndarray  # ascending


_EXPERIENCE_CACHE: dict[tuple[str, int], _Purchases] = {}


def _purchases(run_dir: Path | str) -> _Purchases:
    """The run's purchases and reviews, read once per run folder (the stability loop reuses it)."""
    base = Path(run_dir) / OUT_DIR
    key = (str(base.resolve()), (base / "orders.parquet").stat().st_mtime_ns)
    if key not in _EXPERIENCE_CACHE:
        _EXPERIENCE_CACHE.clear()
        orders = pd.read_parquet(base / "orders.parquet", columns=[
            "order_id", "customer_unique_id", "is_purchase", "purchase_at", "delivered_at",
            "estimated_at"])
        orders = orders[orders["is_purchase"]].reset_index(drop=True)
        reviews = pd.read_parquet(base / "reviews.parquet",
                                  columns=["order_id", "review_score", "created_at"])
        reviews = reviews.dropna(subset=["review_score", "created_at"])
        position = pd.Index(orders["order_id"]).get_indexer(reviews["order_id"])
        reviews = reviews.assign(position=position)[position >= 0]
        reviews = reviews.sort_values("created_at", kind="stable")
        codes, customers = pd.factorize(orders["customer_unique_id"])
        _EXPERIENCE_CACHE[key] = _Purchases(
            customers=pd.Index(customers),
            customer_code=codes,
            purchase_at=orders["purchase_at"].to_numpy("datetime64[us]"),
            delivered_at=orders["delivered_at"].to_numpy("datetime64[us]"),
            estimated_at=orders["estimated_at"].to_numpy("datetime64[us]"),
            review_order=reviews["position"].to_numpy(np.int64),
            review_score=reviews["review_score"].to_numpy(dtype=float, na_value=np.nan),
            review_created_at=reviews["created_at"].to_numpy("datetime64[us]"),
        )
    return _EXPERIENCE_CACHE[key]


def order_facts(run_dir: Path | str, as_of: pd.Timestamp, start: pd.Timestamp
                ) -> pd.DataFrame:
    """Per purchase in [start, as_of): customer code, score, late and days late as known then.

    A review counts once created before `as_of` (the latest per order). A delivery is
    judged once it happened before `as_of`, or as late once its estimated date passed
    without it (days late counted to `as_of`); otherwise late is unknown (NaN).
    """
    p = _purchases(run_dir)
    as_of64 = pd.Timestamp(as_of).to_datetime64()
    start64 = pd.Timestamp(start).to_datetime64()
    score = np.full(len(p.customer_code), np.nan)
    known = p.review_created_at < as_of64
    score[p.review_order[known]] = p.review_score[known]  # ascending: the latest one wins
    day = np.timedelta64(1, "D")
    estimated = p.estimated_at.astype("datetime64[D]")
    delivered = p.delivered_at < as_of64
    days = np.where(delivered, (p.delivered_at.astype("datetime64[D]") - estimated) / day,
                    (np.datetime64(pd.Timestamp(as_of).date(), "D") - estimated) / day)
    judged = (delivered | (p.estimated_at < as_of64)) & ~np.isnat(p.estimated_at)
    late = np.where(judged, (days > 0).astype(float), np.nan)
    bought = (p.purchase_at >= start64) & (p.purchase_at < as_of64)
    return pd.DataFrame({
        "customer_code": p.customer_code[bought],
        "score": score[bought],
        "late": late[bought],
        "days_late": np.where(judged, np.clip(days, 0, None), np.nan)[bought],
        "delivered": delivered[bought],
    })


def add_experience_features(run_dir: Path | str, table: pd.DataFrame, as_of: pd.Timestamp,
                            lookback_months: int) -> pd.DataFrame:
    """Satisfaction and delivery features per customer, from what was known before `as_of`.

    The stability analysis calls this for past cuts, so nothing may leak from later: see
    `order_facts`. Customers without a known review get the period's mean score and share
    of 1-2 star reviews (neutral: neither flattered nor blamed) and review_count 0;
    customers without a judged delivery get late_share and avg_days_late 0.
    """
    as_of = pd.Timestamp(as_of)
    facts = order_facts(run_dir, as_of, period_start(as_of, lookback_months))
    n = len(_purchases(run_dir).customers)
    codes = facts["customer_code"].to_numpy()
    score = facts["score"].to_numpy()
    rated = ~np.isnan(score)
    judged = ~np.isnan(facts["late"].to_numpy())
    review_count = np.bincount(codes[rated], minlength=n)
    score_sum = np.bincount(codes[rated], weights=score[rated], minlength=n)
    low_sum = np.bincount(codes[rated], weights=(score[rated] <= LOW_SCORE), minlength=n)
    judged_count = np.bincount(codes[judged], minlength=n)
    late_sum = np.bincount(codes[judged], weights=facts["late"].to_numpy()[judged], minlength=n)
    days_sum = np.bincount(codes[judged], weights=facts["days_late"].to_numpy()[judged],
                           minlength=n)
    mean_score = float(score[rated].mean()) if rated.any() else 0.0
    mean_low = float((score[rated] <= LOW_SCORE).mean()) if rated.any() else 0.0
    where = _purchases(run_dir).customers.get_indexer(table["customer_id"].astype("str"))
    found = where >= 0
    at = np.where(found, where, 0)
    reviews = np.where(found, review_count[at], 0)
    deliveries = np.where(found, judged_count[at], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = table.copy()
        out["review_score_mean"] = np.where(reviews > 0, score_sum[at] / reviews, mean_score)
        out["low_review_share"] = np.where(reviews > 0, low_sum[at] / reviews, mean_low)
        out["review_count"] = reviews.astype("int64")
        out["late_share"] = np.where(deliveries > 0, late_sum[at] / deliveries, 0.0)
        out["avg_days_late"] = np.where(deliveries > 0, days_sum[at] / deliveries, 0.0)
    return out


# --------------------------------------------------------------------------- segmentation

# What the segmentation clusters on for Olist. Frequency stays in on purpose: 97% of the
# customers buy once, so its log is a near-constant that still puts the 2-3% of repeat
# buyers apart (the segment that matters most for a loyalty program); the satisfaction and
# delivery features carry the rest of the variation. Tenure and return rate are left out:
# for one-time buyers tenure equals recency, and Olist records no returns. The share of 1-2
# star reviews is left out too: for one-time buyers it restates the mean score, and with it
# the clusters split on satisfaction alone (80% of customers in one "delighted" segment).
MODEL_FEATURES = ["recency_days", "frequency", "monetary", "review_score_mean", "late_share",
                  "avg_days_late"]

HAPPY_SCORE = 4.5  # mean review at or above: delighted
UNHAPPY_SCORE = 3.5  # mean review at or below (or a third of reviews 1-2 stars): unhappy
UNHAPPY_LOW_SHARE = 0.3
LATE_SHARE = 0.3  # a segment whose deliveries were late this often is "let down"
REPEAT_ORDERS = 1.5  # mean orders per customer at or above: repeat buyers
BIG_SPEND_INDEX = 1.5  # revenue share / customer share at or above: big spenders
SMALL_SPEND_INDEX = 0.5  # at or below: small spenders
RECENT_DAYS = 90
DORMANT_DAYS = 240


def personas(profile: pd.DataFrame) -> pd.DataFrame:
    """Satisfaction- and delivery-aware personas: a name, a description and an action.

    A name is built from the segment's traits (mood, recency, who they are, delivery),
    each an explicit threshold above, so two segments with the same name really are
    the same kind of customer (segmentation.choose then rejects that candidate). Most
    customers buy once, so "repeat" is judged on the mean number of orders, not the
    median (which is 1 in nearly every segment).
    """
    from .segmentation import _unique

    p = profile.copy()
    n_total = max(float(p["customers"].sum()), 1.0)

    def col(name: str, default: float) -> pd.Series:
        return p[name].astype(float) if name in p else pd.Series(default, index=p.index)

    score = col("review_score_mean", 4.0)
    low = col("low_review_share", 0.0)
    late = col("late_share", 0.0)
    days_late = col("avg_days_late", 0.0)
    orders = col("mean_frequency", 1.0)
    share = p["customers"] / n_total
    spend_index = p["revenue_share"].astype(float) / share.where(share > 0)
    repeat = orders >= REPEAT_ORDERS
    big = spend_index >= BIG_SPEND_INDEX
    let_down = late >= LATE_SHARE
    unhappy = (score <= UNHAPPY_SCORE) | (low >= UNHAPPY_LOW_SHARE)
    delighted = (score >= HAPPY_SCORE) & ~unhappy
    recent = p["recency_days"] <= RECENT_DAYS
    dormant = p["recency_days"] >= DORMANT_DAYS

    small = spend_index <= SMALL_SPEND_INDEX
    who = np.select([repeat, big, small], ["repeat buyers", "big spenders", "small spenders"],
                    "one-time buyers")
    mood = np.select([let_down, unhappy, delighted], ["", "Unhappy", "Delighted"], "")
    when = np.select([recent, dormant], ["recent", "dormant"], "")
    tail = np.where(let_down, " let down by late deliveries", "")
    names = []
    for m, w, s, t in zip(mood, when, who, tail, strict=True):
        words = " ".join(x for x in (m, w, s) if x)
        names.append(words[:1].upper() + words[1:] + t)

    actions = np.select(
        [let_down & (repeat | big), let_down, unhappy & (repeat | big), unhappy,
         repeat & delighted, repeat, big & dormant, big, delighted & recent, delighted & dormant,
         recent, dormant, delighted & small],
        [
            "Call or e-mail within a week: apologise for the late delivery, give a voucher with "
            "a guaranteed delivery date on the next order, and send the late orders' sellers and "
            "carriers to operations; they are worth keeping.",
            "Apologise for the late delivery with a small voucher; hold promotions until "
            "operations has fixed the sellers and carriers involved.",
            "Customer care follow-up on their bad reviews (what went wrong, a goodwill coupon); "
            "keep them in Insiders only once the problem is solved.",
            "Ask what went wrong (one-question survey), answer every 1-2 star review; exclude "
            "them from paid look-alike audiences until they rate us again.",
            "Insiders core: early access, free shipping and referral rewards; they rate us "
            "highly, so ask them for reviews and referrals.",
            "Loyalty perks on their favourite categories and a satisfaction check after each "
            "order, to turn them into promoters.",
            "Win-back: a personal offer in the category of their big order before the next "
            "seasonal peak (Black Friday).",
            "Second-order campaign in their category within 30-60 days, free shipping on the "
            "next order; invite them to Insiders when they buy again.",
            "Onboarding: cross-sell related categories within 30 days and ask for a review or a "
            "referral while they are happy.",
            "Low-cost reactivation: best-sellers of the category they liked, before the "
            "seasonal peaks.",
            "Second-purchase incentive within 30 days (free-shipping threshold, related "
            "products).",
            "E-mail only, at the seasonal peaks; drop from paid campaigns if they do not react.",
            "They like us but spend little: bundles and a free-shipping threshold just above "
            "their usual ticket; ask them for a review or a referral.",
        ],
        "Regular newsletter; test a free-shipping threshold to raise the ticket.",
    )
    descriptions = []
    for i, r in enumerate(p.itertuples()):
        text = (f"{int(r.customers):,} customers ({share.iloc[i]:.0%}) bringing "
                f"{r.revenue_share:.0%} of revenue; {orders.iloc[i]:.2f} orders per customer, "
                f"the typical one spent {r.monetary:,.0f} BRL and last bought "
                f"{r.recency_days:.0f} days ago")
        if "review_score_mean" in p:
            text += f"; mean review {score.iloc[i]:.1f}/5"
        if "low_review_share" in p:
            text += f" with {low.iloc[i]:.0%} of reviews at 1-2 stars"
        if "late_share" in p:
            text += f"; {late.iloc[i]:.0%} of deliveries late"
        if "avg_days_late" in p and days_late.iloc[i] >= 0.05:
            text += f" ({days_late.iloc[i]:.1f} days late per order on average)"
        descriptions.append(text + ".")
    p["persona_base"] = names
    p["persona"] = _unique(p)
    p["description"] = descriptions
    p["action"] = list(actions)
    return p


# --------------------------------------------------------------------------- answers

NO_RETURNS = ("Olist records no returns (a cancelled order is not a purchase, not a return), "
              "so return figures are 0 by construction and say nothing about these customers.")


def _reviewed_mean(frame: pd.DataFrame, column: str) -> float | None:
    """Mean over customers with at least one review (filled values would flatter no one)."""
    rated = frame.loc[frame["review_count"] > 0, column]
    return round(float(rated.mean()), 4) if len(rated) else None


def satisfaction_figures(run_dir: Path | str, as_of: pd.Timestamp, start: pd.Timestamp,
                         customers: pd.DataFrame) -> dict:
    """Order-level satisfaction and delivery facts for the period, and per group of customers."""
    facts = order_facts(run_dir, as_of, start)
    score = facts["score"]
    late = facts["late"]
    days = facts["days_late"]
    low = (score <= LOW_SCORE).where(score.notna())
    both = late.notna() & low.notna()

    def share(mask: pd.Series) -> float | None:
        return round(float(mask.mean()), 4) if mask.notna().any() else None

    active = customers[customers["has_purchase"]]
    groups = {"insiders": active[active["is_insider"]], "rest": active[~active["is_insider"]]}
    per_group = {
        name: {"customers": int(len(g)),
               "review_score_mean": _reviewed_mean(g, "review_score_mean"),
               "low_review_share": _reviewed_mean(g, "low_review_share"),
               "late_share": round(float(g["late_share"].mean()), 4) if len(g) else None,
               "repeat_share": round(float((g["frequency"] >= 2).mean()), 4) if len(g) else None}
        for name, g in groups.items()
    }
    by_persona = []
    for persona, g in active.groupby("persona", sort=False):
        by_persona.append({"persona": str(persona), "customers": int(len(g)),
                           "review_score_mean": _reviewed_mean(g, "review_score_mean"),
                           "low_review_share": _reviewed_mean(g, "low_review_share"),
                           "late_share": round(float(g["late_share"].mean()), 4),
                           "avg_days_late": round(float(g["avg_days_late"].mean()), 2)})
    by_persona.sort(key=lambda x: -x["customers"])
    return {
        "purchases": int(len(facts)),
        "reviewed_share": share(score.notna()),
        "review_score_mean": round(float(score.mean()), 4) if score.notna().any() else None,
        "low_review_share": share(low),
        "late_share": share(late),
        "avg_days_late_when_late": (round(float(days[late == 1].mean()), 2)
                                    if (late == 1).any() else None),
        "low_review_share_when_late": share(low[both & (late == 1)]),
        "low_review_share_when_on_time": share(low[both & (late == 0)]),
        "repeat_share": round(float((active["frequency"] >= 2).mean()), 4) if len(active)
        else None,
        "insiders": per_group["insiders"],
        "rest": per_group["rest"],
        "by_persona": by_persona,
    }


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def extra_answers(run_dir: Path | str, stages: dict) -> dict:
    """Olist's additions to answers.json: a satisfaction answer and what does not apply.

    Deep-merged into the nine answers by `answers.build`.
    """
    as_of = pd.Timestamp(stages["quality"]["as_of"])
    start = pd.Timestamp(stages["features"]["period_start"])
    customers = pd.read_parquet(Path(run_dir) / "customers.parquet")
    fig = satisfaction_figures(run_dir, as_of, start, customers)
    ins, rest = fig["insiders"], fig["rest"]
    when_late = fig["low_review_share_when_late"]
    on_time = fig["low_review_share_when_on_time"]
    verdict = ("Late deliveries drive the bad reviews"
               if when_late is not None and on_time is not None and when_late >= 2 * on_time
               else "Late deliveries do not explain the bad reviews on their own")
    text = (
        f"Customers rated {_fmt(fig['reviewed_share'], '.0%')} of the period's "
        f"{fig['purchases']:,} purchases, {_fmt(fig['review_score_mean'], '.2f')}/5 on average, "
        f"with {_fmt(fig['low_review_share'], '.0%')} at 1-2 stars. {verdict}: "
        f"{_fmt(fig['low_review_share_when_late'], '.0%')} of late purchases got "
        f"1-2 stars against {_fmt(fig['low_review_share_when_on_time'], '.0%')} of those on "
        f"time ({_fmt(fig['late_share'], '.0%')} of deliveries were late). The Insiders rate "
        f"us {_fmt(ins['review_score_mean'], '.2f')}/5 against "
        f"{_fmt(rest['review_score_mean'], '.2f')} for the rest, and "
        f"{_fmt(ins['late_share'], '.0%')} of their deliveries were late against "
        f"{_fmt(rest['late_share'], '.0%')}."
    )
    vs = stages["evaluate"]["insiders_vs_rest"]
    m, f = vs["monetary"], vs["frequency"]
    personas_count = customers.loc[customers["is_insider"], "persona"].value_counts()
    top = personas_count.index[0] if len(personas_count) else "n/a"
    characteristics = (
        f"The typical Insider spent {_fmt(m['insiders_median'], ',.0f')} BRL in the period "
        f"against {_fmt(m['rest_median'], ',.0f')} for other customers and placed "
        f"{_fmt(f['insiders_mean'], '.2f')} orders on average against "
        f"{_fmt(f['rest_mean'], '.2f')} ({_fmt(fig['repeat_share'], '.1%')} of customers "
        f"ordered more than once). They rated their purchases "
        f"{_fmt(ins['review_score_mean'], '.1f')}/5 against "
        f"{_fmt(rest['review_score_mean'], '.1f')}. Most are {top}. Returns do not apply: "
        "Olist records none."
    )
    not_applicable = {
        "characteristics.return_rate": NO_RETURNS,
        "guarantee.insiders_vs_rest.return_rate": NO_RETURNS,
        "characteristics.top_countries": ("Olist customers all live in Brazil: the 'country' "
                                          "of the figures is the customer's state."),
    }
    answers = {
        "satisfaction": {"text": text, **fig,
                         "feature_descriptions": EXPERIENCE_DESCRIPTIONS},
        "characteristics": {
            "text": characteristics,
            "not_applicable": ["return_rate"],
            "not_applicable_text": NO_RETURNS,
            "top_countries_are": "Brazilian states",
        },
        "guarantee": {"not_applicable": ["return_rate"], "not_applicable_text": NO_RETURNS},
        "not_applicable": not_applicable,
        "data_quality": {"policy": (
            "Only delivered orders are purchases: cancelled and undelivered ones are set aside "
            "as order_not_delivered (per-table accounting in work/extract.json)."),
            "tables": stages["extract"].get("tables", {})},
        "marketing_actions": {"insiders_action": (
            "Recognition over discounts, and a flawless next order: free shipping with a "
            "guaranteed delivery date, priority customer care and a personal apology when a "
            f"delivery is late ({_fmt(ins['late_share'], '.0%')} of theirs were); the goal is a "
            f"second purchase ({_fmt(ins['repeat_share'], '.0%')} of them have made one).")},
        "questions": {"satisfaction": "How satisfied are the customers, and what upsets them?"},
        "source": {"kind": "olist", "person": "customer_unique_id",
                   "purchase": "a delivered order (order_status = delivered)",
                   "currency": "BRL", "tables": stages["extract"].get("tables", {})},
    }
    n_members = int(customers["is_insider"].sum())
    _merge_future(answers, stages, n_members, fig["repeat_share"])
    return answers


def _merge_future(answers: dict, stages: dict, n_members: int, repeat_share: float | None
                  ) -> None:
    """Say plainly what the Insiders' past spend does and does not promise on a marketplace.

    Prophet extrapolates the members' past monthly revenue, which assumes they keep
    buying; on Olist almost nobody buys twice, so the measured out-of-time spend of a
    group chosen the same way is the honest expectation, and the forecast is shown as
    not applicable.
    """
    oot = stages["evaluate"]["out_of_time"]
    fc = stages["forecast"]
    prophet_total = round(float(sum(m["revenue"] for m in fc["months"])), 2)
    repeat = _fmt(repeat_share, ".1%")
    if not oot.get("available"):
        answers["expected_revenue"] = {
            "text": (f"{fc['method']} projects about {prophet_total:,.0f} BRL over the next "
                     f"{len(fc['months'])} months from the members' past revenue, but only "
                     f"{repeat} of Olist customers ordered more than once: treat it as an upper "
                     "bound (no out-of-time check was possible to measure what such a group "
                     "really spends next)."),
            "not_applicable": ["forecast as an expectation"],
        }
        answers["not_applicable"]["expected_revenue.forecast"] = (
            "Without an out-of-time check, the forecast is an upper bound only.")
        return
    g, rest = oot["insiders"], oot["rest"]
    per_member = float(g["revenue_per_customer"])
    estimate = round(per_member * n_members, 2)
    months = [{"month": m["month"], "revenue": round(estimate / max(len(fc["months"]), 1), 2),
               "lower": None, "upper": None} for m in fc["months"]]
    answers["expected_revenue"] = {
        "text": (f"About {estimate:,.0f} BRL over the next {oot['months']} months: the group "
                 f"chosen the same way on {oot['chosen_on']} spent {per_member:,.2f} BRL per "
                 f"member in the {oot['months']} months after ({g['bought_again']:.1%} bought "
                 f"again), times today's {n_members:,} members. {fc['method'].capitalize()}'s "
                 f"{prophet_total:,.0f} BRL does not apply: it extrapolates the members' past "
                 f"revenue as if they kept buying, while only {repeat} of Olist customers "
                 "ordered more than once."),
        "total": estimate,
        "months": months,
        "method": "out-of-time spend per member",
        "not_applicable": [fc["method"]],
        "not_applicable_text": (f"The {fc['method']} forecast of the members' revenue assumes "
                                "repeat purchases that Olist customers rarely make."),
        "forecast_not_applicable": {"method": fc["method"], "total": prophet_total,
                                    "months": fc["months"]},
    }
    answers["not_applicable"]["expected_revenue.forecast"] = (
        answers["expected_revenue"]["not_applicable_text"])
    significant = oot.get("insiders_vs_rest", {}).get("significant")
    from .answers import _guarantee_text

    base = _guarantee_text(stages["evaluate"]["insiders_vs_rest"], oot)
    answers["guarantee"]["text"] = (
        f"{base} On a marketplace where {repeat} of customers "
        f"order more than once, that is past spend, not a promise: the Insiders chosen on "
        f"{oot['chosen_on']} spent {per_member:,.2f} BRL each over the next {oot['months']} "
        f"months against {rest['revenue_per_customer']:,.2f} for the rest"
        + (" (a difference that is not statistically significant)" if significant is False
           else "")
        + ". The program's job here is to turn them into repeat buyers, and the satisfaction "
        "figures say where to start."
    ).strip()


# --------------------------------------------------------------------------- SQL store

def experience_schema():
    """The experience tables in the SQL store (portable SQLite/PostgreSQL types).

    Day columns (`*_day`) are whole days since 1970-01-01, so the cards do date
    arithmetic with plain integers, identically on both engines.
    """
    import sqlalchemy as sa

    md = sa.MetaData()
    text, day = sa.String, sa.Integer
    orders = sa.Table(
        "olist_orders", md,
        sa.Column("order_id", text(64), primary_key=True),
        sa.Column("customer_id", text(64)),
        sa.Column("customer_unique_id", text(64), index=True),
        sa.Column("status", text(20), nullable=False),
        sa.Column("is_purchase", sa.Boolean, nullable=False),
        sa.Column("purchase_at", sa.DateTime), sa.Column("purchase_date", sa.Date),
        sa.Column("purchase_day", day),
        sa.Column("delivered_at", sa.DateTime), sa.Column("delivered_date", sa.Date),
        sa.Column("delivered_day", day),
        sa.Column("estimated_date", sa.Date), sa.Column("estimated_day", day),
        sa.Column("delivered_late", sa.Boolean), sa.Column("days_late", sa.Integer),
        sa.Column("review_score", sa.Float), sa.Column("review_count", sa.Integer),
        sa.Column("customer_zip_prefix", text(10)), sa.Column("customer_city", text(64)),
        sa.Column("customer_state", text(4)),
        sa.Column("items", sa.Integer), sa.Column("items_value", sa.Float),
        sa.Column("freight_value", sa.Float), sa.Column("payment_value", sa.Float),
    )
    items = sa.Table(
        "olist_order_items", md,
        sa.Column("order_id", text(64), primary_key=True),
        sa.Column("order_item_id", sa.Integer, primary_key=True),
        sa.Column("product_id", text(64)),
        sa.Column("seller_id", text(64), index=True),
        sa.Column("category", text(80)),
        sa.Column("price", sa.Float), sa.Column("freight_value", sa.Float),
    )
    sellers = sa.Table(
        "olist_sellers", md,
        sa.Column("seller_id", text(64), primary_key=True),
        sa.Column("zip_prefix", text(10)), sa.Column("city", text(64)),
        sa.Column("state", text(4)),
    )
    reviews = sa.Table(
        "olist_reviews", md,
        sa.Column("review_id", text(64), primary_key=True),
        sa.Column("order_id", text(64), primary_key=True),
        sa.Column("review_score", sa.Integer),
        sa.Column("created_date", sa.Date), sa.Column("created_day", day),
        sa.Column("answered_at", sa.DateTime),
        sa.Column("customer_unique_id", text(64)),
        sa.Column("customer_zip_prefix", text(10), index=True),
        sa.Column("customer_state", text(4)),
        sa.Column("order_status", text(20)),
    )
    return md, {"olist_orders": orders, "olist_order_items": items, "olist_sellers": sellers,
                "olist_reviews": reviews}


def create_experience_tables(sql_url: str) -> list[str]:
    """Create the empty `olist_*` tables (if missing), e.g. before Metabase provisioning.

    Provisioning runs every card's SQL first, so the experience cards need the tables to
    exist even before the first Olist run has been synced.
    """
    import sqlalchemy as sa

    md, tables = experience_schema()
    engine = sa.create_engine(sql_url)
    try:
        md.create_all(engine, checkfirst=True)
    finally:
        engine.dispose()
    return list(tables)


def _days(values: pd.Series) -> pd.Series:
    """Whole days since 1970-01-01 (NaT -> missing)."""
    day = values.dt.floor("D")
    return ((day - pd.Timestamp("1970-01-01")) / DAY).astype("Int64")


def experience_rows(run_dir: Path | str) -> dict[str, pd.DataFrame]:
    """The experience tables as the SQL store holds them (dates, day numbers)."""
    base = Path(run_dir) / OUT_DIR
    o = pd.read_parquet(base / "orders.parquet")
    orders = pd.DataFrame({
        "order_id": o["order_id"], "customer_id": o["customer_id"],
        "customer_unique_id": o["customer_unique_id"], "status": o["status"],
        "is_purchase": o["is_purchase"],
        "purchase_at": o["purchase_at"], "purchase_date": o["purchase_at"].dt.date,
        "purchase_day": _days(o["purchase_at"]),
        "delivered_at": o["delivered_at"], "delivered_date": o["delivered_at"].dt.date,
        "delivered_day": _days(o["delivered_at"]),
        "estimated_date": o["estimated_at"].dt.date, "estimated_day": _days(o["estimated_at"]),
        "delivered_late": o["delivered_late"], "days_late": o["days_late"],
        "review_score": o["review_score"], "review_count": o["review_count"],
        "customer_zip_prefix": o["customer_zip_prefix"], "customer_city": o["customer_city"],
        "customer_state": o["customer_state"], "items": o["items"],
        "items_value": o["items_value"], "freight_value": o["freight_value"],
        "payment_value": o["payment_value"],
    })
    r = pd.read_parquet(base / "reviews.parquet")
    reviews = pd.DataFrame({
        "review_id": r["review_id"], "order_id": r["order_id"],
        "review_score": r["review_score"], "created_date": r["created_at"].dt.date,
        "created_day": _days(r["created_at"]), "answered_at": r["answered_at"],
        "customer_unique_id": r["customer_unique_id"],
        "customer_zip_prefix": r["customer_zip_prefix"],
        "customer_state": r["customer_state"], "order_status": r["order_status"],
    })
    items = pd.read_parquet(base / "items.parquet").dropna(subset=["order_item_id"])
    items = items.drop_duplicates(["order_id", "order_item_id"])
    return {"olist_orders": orders, "olist_order_items": items,
            "olist_sellers": pd.read_parquet(base / "sellers.parquet"),
            "olist_reviews": reviews}


def _values(series: pd.Series, column, dialect: str) -> list:
    """One column as the driver wants it: plain Python values, missing as None.

    SQLite gets dates as ISO text and booleans as 0/1 (how SQLAlchemy stores them there),
    PostgreSQL gets date, datetime and bool objects.
    """
    import sqlalchemy as sa

    missing = series.isna().to_numpy()
    kind = column.type
    if isinstance(kind, sa.DateTime):
        stamps = pd.to_datetime(series)
        values = (stamps.dt.strftime("%Y-%m-%d %H:%M:%S.%f").to_numpy(dtype=object)
                  if dialect == "sqlite" else stamps.dt.to_pydatetime())
    elif isinstance(kind, sa.Date):
        values = series.astype("str").to_numpy(dtype=object) if dialect == "sqlite" else \
            series.to_numpy(dtype=object)
    elif isinstance(kind, sa.Boolean):
        flags = series.fillna(False).astype(bool).to_numpy()
        values = flags.astype(int).astype(object) if dialect == "sqlite" else \
            flags.astype(object)
    elif isinstance(kind, sa.Integer):
        values = series.fillna(0).astype("int64").to_numpy().astype(object)
    elif isinstance(kind, sa.Float):
        values = series.astype(float).to_numpy().astype(object)
    else:
        values = series.astype(object).to_numpy()
    values = np.array(values, dtype=object)
    values[missing] = None
    return values.tolist()


def _insert(conn, table, frame: pd.DataFrame, chunk_rows: int) -> None:
    """Bulk insert: COPY on PostgreSQL (psycopg 3), executemany elsewhere.

    SQLAlchemy's row-by-row parameter processing costs more than the database itself for
    a few hundred thousand rows, so the rows go to the driver already converted.
    """
    dialect = conn.dialect.name
    names = [c.name for c in table.columns]
    columns = [_values(frame[c.name], c, dialect) for c in table.columns]
    rows = list(zip(*columns, strict=True))
    raw = conn.connection.driver_connection
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(n) for n in names)
    if dialect == "postgresql" and conn.dialect.driver == "psycopg":
        cursor = raw.cursor()
        try:
            with cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
    elif dialect == "sqlite":
        statement = str(table.insert().compile(dialect=conn.dialect))  # qmark placeholders
        cursor = raw.cursor()
        try:
            cursor.executemany(statement, rows)
        finally:
            cursor.close()
    else:
        for begin in range(0, len(rows), chunk_rows):
            conn.execute(table.insert(), [dict(zip(names, r, strict=True))
                                          for r in rows[begin:begin + chunk_rows]])


def sync_experience(run_dir: Path | str, sql_url: str, chunk_rows: int = 20_000
                    ) -> dict[str, int]:
    """Replace the `olist_*` tables of the SQL store with this run's experience tables.

    The cards of `metabase/experience/` read them. Tables are created when missing and
    their content replaced in one transaction (readers see the old rows or the new ones,
    never a mix; grants on existing tables are kept). Returns the rows written per table.
    """
    import sqlalchemy as sa

    started = time.perf_counter()
    md, tables = experience_schema()
    frames = experience_rows(run_dir)
    engine = sa.create_engine(sql_url)
    try:
        md.create_all(engine, checkfirst=True)
        with engine.begin() as conn:
            for name, table in tables.items():
                conn.execute(table.delete())
                _insert(conn, table, frames[name], chunk_rows)
    finally:
        engine.dispose()
    counts = {name: int(len(frame)) for name, frame in frames.items()}
    info("sync (olist experience): %s in %.1f s",
         ", ".join(f"{k} {v:,}" for k, v in counts.items()), time.perf_counter() - started)
    return counts
