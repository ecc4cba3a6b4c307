"""A realistic SQL store for the dashboard tests, without running the pipeline.

`build_synthetic_store(url)` creates the tables of `insiders.publish.sql_sync.METADATA` and fills
ten monthly runs (2011-03 .. 2011-12) with rows that agree with each other the way the
pipeline's would: segment profiles are aggregates of the customer rows, the runs table
sums the others, membership follows the Insiders of the previous run, and so on.

Card tests take their store from `STORE_BUILDERS`, a registry of `(url) -> None`
functions that fill an empty store at `url`. The synthetic builder is registered here;
a conftest.py can add one that runs a real backfill (`register_store_builder("pipeline",
fn)`) and every card test then also runs against that store, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from insiders.publish.sql_sync import (
    CAMPAIGNS,
    CUSTOMER_SEGMENTS,
    DATA_QUALITY,
    FORECASTS,
    MEMBERSHIP,
    METADATA,
    MODEL_CANDIDATES,
    RUNS,
    SEGMENT_PROFILES,
    STABILITY,
)

StoreBuilder = Callable[[str], None]
STORE_BUILDERS: dict[str, StoreBuilder] = {}


def register_store_builder(name: str, builder: StoreBuilder) -> None:
    """Add a way to fill a store; card tests run once per builder and backend."""
    STORE_BUILDERS[name] = builder


RUN_IDS = [f"2011-{m:02d}" for m in range(3, 13)]
INSIDER_SHARE = 0.10

# persona, description, action, and the shape of its customers:
# (recency days, orders, spend per order, return rate, weight in the population)
SEGMENTS = [
    (
        "Champions",
        "Bought recently, buy often and spend the most.",
        "Invite to Insiders: early access, personal thank-you, no discounts needed.",
        (12, 18, 420.0, 0.02, 0.08),
    ),
    (
        "Loyal regulars",
        "Steady monthly buyers with mid-sized baskets.",
        "Reward consistency: loyalty points and bundles of their usual products.",
        (30, 8, 260.0, 0.03, 0.22),
    ),
    (
        "Promising newcomers",
        "First orders in the last quarter, good basket sizes.",
        "Onboarding series and a second-order incentive within 30 days.",
        (25, 2, 210.0, 0.04, 0.25),
    ),
    (
        "At risk",
        "Used to buy often but have not ordered for months.",
        "Win-back campaign with a personal offer before they lapse.",
        (140, 5, 230.0, 0.06, 0.20),
    ),
    (
        "Hibernating",
        "Few small orders, long ago.",
        "Low-cost reactivation e-mails only; do not spend on them.",
        (250, 1, 90.0, 0.08, 0.25),
    ),
]

COUNTRIES = ["United Kingdom"] * 8 + ["Germany", "France", "EIRE", "Spain", "Netherlands"]
ALGORITHMS = ["kmeans", "gmm", "agglomerative"]
QUALITY_REASONS = {
    "missing_customer_id": 0.24,
    "non_product_code": 0.012,
    "duplicate": 0.009,
    "non_positive_price": 0.004,
}


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _customers_for_run(rng: random.Random, run_index: int) -> list[dict]:
    """Active customers of one run: the pool grows a little every month."""
    count = 300 + 12 * run_index
    weights = [shape[4] for *_, shape in SEGMENTS]
    rows = []
    for n in range(count):
        # the same customer id keeps its segment most of the time: membership is stable
        cid = 12346 + n * 7
        home = random.Random(cid).choices(range(len(SEGMENTS)), weights)[0]
        segment = home if rng.random() > 0.12 else rng.choices(range(len(SEGMENTS)), weights)[0]
        recency, orders, ticket, returns, _ = SEGMENTS[segment][3]
        frequency = max(1, round(rng.gauss(orders, orders * 0.3)))
        avg_ticket = max(8.0, rng.gauss(ticket, ticket * 0.25))
        monetary = round(frequency * avg_ticket, 2)
        rows.append(
            {
                "customer_id": str(cid),
                "country": random.Random(cid + 1).choice(COUNTRIES),
                "segment": segment,
                "persona": SEGMENTS[segment][0],
                "recency_days": float(max(0, round(rng.gauss(recency, recency * 0.3)))),
                "frequency": frequency,
                "monetary": monetary,
                "avg_ticket": round(avg_ticket, 2),
                "basket_size": round(max(1.0, rng.gauss(14, 5)), 1),
                "return_rate": round(min(0.5, max(0.0, rng.gauss(returns, 0.02))), 3),
                "tenure_days": float(rng.randint(30, 365)),
                "expected_value": round(
                    monetary * (0.30 if segment < 2 else 0.12) * rng.uniform(0.7, 1.3), 2
                ),
            }
        )
        # the value model's profile: a chance of no purchase in 90 days that grows with
        # recency, banded as the product does, and a year's value about 4 horizons
        risk = min(0.99, max(0.01, rows[-1]["recency_days"] / 200 + rng.uniform(-0.1, 0.1)))
        rows[-1].update({
            "churn_risk": round(risk, 4),
            "churn_band": "Low" if risk < 1 / 3 else "Medium" if risk < 2 / 3 else "High",
            "p_alive": round(1 - risk / 2, 4),
            "predicted_clv_12m": round(rows[-1]["expected_value"] * rng.uniform(3.2, 4.2), 2),
            "expected_next_order": (date(2011, 1, 1) + timedelta(
                days=30 * run_index + rng.randint(3, 120))).isoformat(),
        })
    rows.sort(key=lambda r: -r["expected_value"])
    n_insiders = round(len(rows) * INSIDER_SHARE)
    for rank, row in enumerate(rows, start=1):
        row["value_rank"] = rank
        row["is_insider"] = rank <= n_insiders
    return rows


def _profiles(run_id: str, customers: list[dict]) -> list[dict]:
    total = len(customers)
    revenue = sum(c["monetary"] for c in customers)
    profiles = []
    for segment, (persona, description, action, _) in enumerate(SEGMENTS):
        members = [c for c in customers if c["segment"] == segment]
        if not members:
            continue
        n = len(members)

        def mean(key: str, rows: list[dict] = members, size: int = n) -> float:
            return round(sum(r[key] for r in rows) / size, 3)

        seg_revenue = round(sum(c["monetary"] for c in members), 2)
        profiles.append(
            {
                "run_id": run_id,
                "segment": segment,
                "persona": persona,
                "description": description,
                "action": action,
                "customers": n,
                "share": n / total,
                "insiders": sum(1 for c in members if c["is_insider"]),
                "revenue": seg_revenue,
                "revenue_share": seg_revenue / revenue,
                "avg_recency_days": mean("recency_days"),
                "avg_frequency": mean("frequency"),
                "avg_monetary": mean("monetary"),
                "avg_ticket": mean("avg_ticket"),
                "avg_return_rate": mean("return_rate"),
                "avg_expected_value": mean("expected_value"),
            }
        )
    return profiles


def _membership(run_id: str, customers: list[dict], previous: set[str]) -> list[dict]:
    now = {c["customer_id"]: c for c in customers}
    rows = []
    for cid, c in now.items():
        if c["is_insider"]:
            status = "stayed" if cid in previous else "entered"
            reason = (
                "still in the top group by expected value"
                if status == "stayed"
                else f"expected value rank {c['value_rank']} entered the top group"
            )
        elif cid in previous and c["value_rank"] <= 1.5 * round(len(customers) * INSIDER_SHARE):
            status, reason = "stayed", "within the exit margin (1.5x the entry size)"
        else:
            status, reason = "outside", "not in the top group"
        rows.append(
            {
                "run_id": run_id,
                "customer_id": cid,
                "status": status,
                "reason": reason,
                "expected_value": c["expected_value"],
            }
        )
    for cid in sorted(previous - {r["customer_id"] for r in rows if r["status"] != "outside"}):
        if cid in now:
            rows = [r for r in rows if r["customer_id"] != cid]
            expected = now[cid]["expected_value"]
            reason = "fell below the exit margin"
        else:
            expected, reason = 0.0, "no purchase in the analysed period"
        rows.append(
            {
                "run_id": run_id,
                "customer_id": cid,
                "status": "left",
                "reason": reason,
                "expected_value": expected,
            }
        )
    return rows


def _campaigns(run_id: str, customers: list[dict], membership: list[dict]) -> list[dict]:
    """The month's lists as models.campaigns draws them: welcome (entered), at risk (a member
    with High churn risk), win back (left), next in line (just below the entry line)."""
    by_id = {c["customer_id"]: c for c in customers}
    size = round(len(customers) * INSIDER_SHARE)
    rows = []
    for m in membership:
        c = by_id.get(m["customer_id"], {})
        if m["status"] == "entered":
            name, reason = "welcome", "entered the Insiders this month"
        elif m["status"] == "stayed" and c.get("churn_band") == "High":
            name, reason = "at_risk", "high churn risk: no purchase expected in the next 90 days"
        elif m["status"] == "left":
            name, reason = "win_back", f"left the Insiders this month: {m['reason']}"
        elif m["status"] == "outside" and size < c.get("value_rank", 0) <= 1.5 * size:
            name, reason = "next_in_line", "just below the entry line: 1,203 GBP short of it"
        else:
            continue
        rows.append({"run_id": run_id, "customer_id": m["customer_id"], "list": name,
                     "reason": reason, "expected_value": m["expected_value"],
                     "churn_risk": c.get("churn_risk"), "churn_band": c.get("churn_band"),
                     "value_rank": c.get("value_rank", 0)})
    return rows


def _forecasts(rng: random.Random, run_id: str, as_of: date, base: float) -> list[dict]:
    rows = []
    months = [_months_back(as_of, k) for k in range(12, 0, -1)]
    actual = {}
    for i, month in enumerate(months):
        seasonal = 1.0 + 0.35 * (month.month in (9, 10, 11)) + 0.1 * (month.month == 12)
        actual[month] = round(base * (0.9 + 0.02 * i) * seasonal * rng.uniform(0.92, 1.08), 2)
        rows.append({"run_id": run_id, "month": month, "kind": "actual", "revenue": actual[month],
                     "lower": None, "upper": None})
    for month in months[-3:]:
        prophet = actual[month] * rng.uniform(0.9, 1.1)
        naive = actual.get(_months_back(month, 1), actual[month])
        rows.append({"run_id": run_id, "month": month, "kind": "backtest_actual",
                     "revenue": round(actual[month] * rng.uniform(0.85, 1.0), 2), "lower": None,
                     "upper": None})
        rows.append({"run_id": run_id, "month": month, "kind": "backtest_forecast",
                     "revenue": round(prophet, 2), "lower": round(prophet * 0.85, 2),
                     "upper": round(prophet * 1.15, 2)})
        rows.append({"run_id": run_id, "month": month, "kind": "backtest_naive",
                     "revenue": round(naive, 2), "lower": None, "upper": None})
    month, last = as_of, actual[months[-1]]
    for step in range(1, 4):
        value = last * (1.0 + 0.03 * step) * rng.uniform(0.95, 1.05)
        rows.append({"run_id": run_id, "month": month, "kind": "forecast",
                     "revenue": round(value, 2), "lower": round(value * (0.88 - 0.02 * step), 2),
                     "upper": round(value * (1.12 + 0.02 * step), 2)})
        month = _next_month(month)
    return rows


def _candidates(rng: random.Random, run_id: str, chosen_k: int) -> list[dict]:
    rows = []
    for algorithm in ALGORITHMS:
        for k in range(3, 9):
            quality = 1.0 - abs(k - chosen_k) * 0.06 - (0.05 if algorithm != "kmeans" else 0.0)
            min_share = max(0.005, 0.2 / k * rng.uniform(0.3, 1.1))
            chosen = algorithm == "kmeans" and k == chosen_k
            rows.append(
                {
                    "run_id": run_id,
                    "algorithm": algorithm,
                    "k": k,
                    "silhouette": round(0.42 * quality * rng.uniform(0.95, 1.05), 4),
                    "davies_bouldin": round(0.85 / quality * rng.uniform(0.95, 1.05), 4),
                    "calinski_harabasz": round(640 * quality * rng.uniform(0.9, 1.1), 1),
                    "min_segment_share": round(min_share if not chosen else 0.06, 4),
                    "useful": chosen or min_share >= 0.02,
                    "chosen": chosen,
                    "note": "best silhouette among useful candidates" if chosen else None,
                }
            )
    return rows


def build_synthetic_store(url: str, *, seed: int = 7) -> None:
    """Create the SQL store's tables at `url` and fill ten monthly runs of plausible rows."""
    rng = random.Random(seed)
    engine = sa.create_engine(url)
    try:
        METADATA.drop_all(engine)
        METADATA.create_all(engine)
        previous: set[str] = set()
        with engine.begin() as conn:
            for index, run_id in enumerate(RUN_IDS):
                year, month = map(int, run_id.split("-"))
                as_of = _next_month(date(year, month, 1))
                customers = _customers_for_run(rng, index)
                membership = _membership(run_id, customers, previous)
                previous = {
                    r["customer_id"] for r in membership if r["status"] in ("entered", "stayed")
                }
                for c in customers:  # members inside the exit margin stay Insiders
                    c["is_insider"] = c["customer_id"] in previous
                profiles = _profiles(run_id, customers)
                revenue = round(sum(c["monetary"] for c in customers), 2)
                insiders = [c for c in customers if c["is_insider"]]
                insiders_revenue = round(sum(c["monetary"] for c in insiders), 2)
                rows_kept = 390_000 + 4_000 * index
                quality = {r: round(rows_kept * s * rng.uniform(0.8, 1.2))
                           for r, s in QUALITY_REASONS.items()}
                forecasts = _forecasts(rng, run_id, as_of, revenue / 12)
                counts = {s: sum(1 for r in membership if r["status"] == s)
                          for s in ("entered", "stayed", "left")}
                completed = datetime(as_of.year, as_of.month, as_of.day, 2, 15)
                conn.execute(
                    RUNS.insert(),
                    {
                        "run_id": run_id,
                        "as_of": as_of,
                        "period_start": _months_back(as_of, 12),
                        "source": "online_retail.csv.gz",
                        "version": "0.1.0",
                        "completed_at": completed,
                        "synced_at": completed + timedelta(minutes=1),
                        "rows_in": rows_kept + sum(quality.values()),
                        "rows_kept": rows_kept,
                        "rows_set_aside": sum(quality.values()),
                        "customers": len(customers),
                        "insiders": len(insiders),
                        "insiders_share": len(insiders) / len(customers),
                        "revenue": revenue,
                        "insiders_revenue": insiders_revenue,
                        "insiders_revenue_share": insiders_revenue / revenue,
                        "chosen_model": "kmeans",
                        "n_segments": len(profiles),
                        "entered_count": counts["entered"],
                        "stayed_count": counts["stayed"],
                        "left_count": counts["left"],
                        "forecast_next": round(
                            sum(f["revenue"] for f in forecasts if f["kind"] == "forecast"), 2
                        ),
                        "recommended_refresh_months": 3,
                        "currency": "GBP",
                    },
                )
                conn.execute(
                    CUSTOMER_SEGMENTS.insert(),
                    [{"run_id": run_id, **c} for c in customers],
                )
                conn.execute(SEGMENT_PROFILES.insert(), profiles)
                conn.execute(MEMBERSHIP.insert(), membership)
                conn.execute(FORECASTS.insert(), forecasts)
                conn.execute(CAMPAIGNS.insert(), _campaigns(run_id, customers, membership))
                conn.execute(
                    DATA_QUALITY.insert(),
                    [{"run_id": run_id, "reason": r, "rows": n} for r, n in quality.items()],
                )
                conn.execute(MODEL_CANDIDATES.insert(), _candidates(rng, run_id, len(profiles)))
                conn.execute(
                    STABILITY.insert(),
                    [
                        {
                            "run_id": run_id,
                            "months_since_fit": m,
                            "ari": round(max(0.55, 1.0 - 0.045 * m * rng.uniform(0.8, 1.2)), 3),
                            "threshold": 0.8,
                        }
                        for m in range(0, min(6, index) + 1)
                    ],
                )
    finally:
        engine.dispose()


register_store_builder("synthetic", build_synthetic_store)


def postgres_schema_url(base_url: str, schema: str) -> str:
    """A URL to a fresh, empty schema of the PostgreSQL at `base_url`.

    Each store gets its own schema (selected by `search_path`, so the cards' unqualified
    table names resolve there) and never touches tables other tests keep in `public`.
    """
    engine = sa.create_engine(base_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()
    url = sa.engine.make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)
