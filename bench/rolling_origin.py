"""Rolling-origin evidence for the value models and the group forecast, with their cost.

Per origin (every month with 3 months of data before it and a whole horizon
after it, up to the as-of) and per method: the group's capture of the next 3
months' revenue (of all revenue, and of what customers known at the origin
spent), lift, precision against the true top-N, share of perfect foresight,
and the ratio to the top past spenders with a bootstrap 95% interval (and the
capture difference's interval). Then the champion and why, the out-of-time
guarantee, and per origin the group forecast's errors next to every naive
baseline, with the 80% intervals' coverage. Finally the seconds each step
took: the monthly stage will pay fit + replay + forecast.

    .venv/bin/python bench/rolling_origin.py                                  # the real file
    .venv/bin/python bench/rolling_origin.py --source olist --input ../shared/data/olist
    .venv/bin/python bench/rolling_origin.py --transactions run/work/transactions.parquet

The transactions are built by the pipeline's own extract and quality stages
(not timed as model cost). Output also goes to bench/out/rolling_origin_<source>.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from benchlib import OUT, REAL_FILE, code_version, load, machine, table, write_json
from insiders.models import clv, guarantee, valuation
from insiders.models import group_forecast as gf
from insiders.sources import SOURCES
from threadpoolctl import threadpool_limits


def transactions(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.Timestamp]:
    if args.transactions:
        tx = pd.read_parquet(args.transactions)
        as_of = (pd.Timestamp(args.as_of) if args.as_of
                 else tx["invoice_date"].max().normalize() + pd.Timedelta(days=1))
        return tx[tx["invoice_date"] < as_of], as_of
    from insiders import pipeline, stages
    from insiders.config import Settings
    from insiders.context import Run

    root = Path(tempfile.mkdtemp(prefix="rolling-origin-"))
    run = Run.one_off(Settings(home=root / "home"), root / "run", args.input, args.as_of,
                      kind=args.source)
    run, _ = pipeline.run_stages(run, (stages.extract, stages.quality))
    return run.folder.transactions(), run.day


def pct(v: float) -> str:
    return "n/a" if v is None or v != v else f"{v:.1%}"


def ci(pair: tuple[float, float], fmt: str = "{:.3f}") -> str:
    lo, hi = pair
    return "n/a" if lo != lo else f"{fmt.format(lo)}..{fmt.format(hi)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(REAL_FILE))
    parser.add_argument("--source", default=None, choices=sorted(SOURCES))
    parser.add_argument("--transactions", help="a transactions.parquet instead of --input")
    parser.add_argument("--as-of")
    parser.add_argument("--max-origins", type=int, default=12)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--shape", default="prophet", choices=["prophet", "model"])
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    print(f"machine: {machine()}\ncode: {code_version()}\nload before: {load()}")
    tx, as_of = transactions(args)
    print(f"source: {args.transactions or args.input} ({args.source}), {len(tx):,} lines, "
          f"as-of {as_of.date()}")
    seconds: dict[str, float] = {}
    with threadpool_limits(limits=1):
        t = time.perf_counter()
        days = clv.activity(tx)
        fits = valuation.FitCache(days, 12)
        seconds["activity table"] = time.perf_counter() - t
        t = time.perf_counter()
        now = fits.fit(as_of)
        profile = clv.predictions(now)
        seconds["BG/NBD + Gamma-Gamma fit and profile at the as-of"] = time.perf_counter() - t
        t = time.perf_counter()
        r = valuation.replay(None, as_of, days=days, fits=fits, max_origins=args.max_origins,
                             n_boot=args.boot, seed=args.seed)
        seconds["rolling-origin replay (all methods, fits included)"] = time.perf_counter() - t
        t = time.perf_counter()
        values = valuation.value_customers(None, as_of, r.champion, days=days, fits=fits)
        seconds["champion's values at the as-of"] = time.perf_counter() - t
        t = time.perf_counter()
        g = guarantee.guarantee(days, as_of, r.champion, n_boot=args.boot, seed=args.seed,
                                fits=fits)
        seconds["guarantee"] = time.perf_counter() - t
        t = time.perf_counter()
        groups = valuation.groups_by_origin(fits, as_of, r.champion, args.max_origins + 2)
        seconds["champion's group at every month (forecast calibration)"] = (
            time.perf_counter() - t)
        t = time.perf_counter()
        fc = gf.group_forecast(days, as_of, groups, shape=args.shape, fits=fits,
                               seed=args.seed)
        seconds[f"group forecast + backtest ({args.shape} shape)"] = time.perf_counter() - t

    print("\n== BG/NBD x Gamma-Gamma at the as-of")
    d = now.diagnostics()
    print("BG/NBD  " + ", ".join(f"{k}={d['bgnbd'][k]:.4g}" for k in ("r", "alpha", "a", "b"))
          + f" (alpha in weeks), degenerate: {d['bgnbd']['degenerate']}")
    print("Gamma-Gamma  " + ", ".join(f"{k}={d['gamma_gamma'][k]:.4g}" for k in
                                      ("p", "q", "gamma")))
    for note in d["notes"]:
        print("note:", note)
    active = profile[profile["active"]]
    bands = active["churn_band"].value_counts()
    print(f"active customers {len(active):,}; churn risk (no purchase in 90 days) bands: "
          + ", ".join(f"{b} {bands.get(b, 0):,}" for b in ("Low", "Medium", "High"))
          + f"; expected spend next 3 months {active['expected_spend'].sum():,.0f}; "
          f"12-month CLV {active['predicted_clv_12m'].sum():,.0f}; one-time buyers "
          f"{(active['purchases_to_date'] == 1).mean():.0%}")

    top = values.nsmallest(max(len(values) // 20, 1), "value_rank")
    print(f"champion's top 5% ({len(top):,}): churn bands "
          + ", ".join(f"{b} {int((top['churn_band'] == b).sum()):,}" for b in
                      ("Low", "Medium", "High"))
          + f"; probably gone (P(alive) < 0.5): {int(top['probably_gone'].sum()):,} of them, "
          f"{int(values['probably_gone'].sum()):,} of all active customers")

    print("\n== Value methods per origin (group = size rule on past spend, same N for all)")
    rows = []
    for _, x in r.table.iterrows():
        rows.append([x["origin"], x["method"], x["size"], x["candidates"], pct(x["capture"]),
                     pct(x["capture_known"]), round(x["lift"], 2), pct(x["precision"]),
                     pct(x["vs_perfect"]), round(x["ratio_to_past"], 3), ci(x["ratio_ci95"]),
                     ci(x["diff_capture_ci95"], "{:+.2%}")])
    print(table(["origin", "method", "N", "cands", "capture", "of known", "lift", "precision",
                 "of perfect", "x past", "x past 95%", "capture diff 95%"], rows))

    print("\n== Over the origins")
    rows = [[x["method"], x["origins"], round(x["mean_ratio_to_past"], 3), ci(x["ratio_ci95"]),
             round(x["min_ratio"], 3), x["origins_worse_beyond_noise"], pct(x["mean_capture"]),
             pct(x["mean_vs_perfect"])] for _, x in r.summary.iterrows()]
    print(table(["method", "origins", "mean x past", "95%", "min x past", "worse beyond noise",
                 "mean capture", "of perfect"], rows))
    print(f"champion: {r.champion}. {r.why}")
    for note in sorted(set(n for n in r.notes if "learned" in n)):
        print("note:", note)

    print("\n== Guarantee (out of time, same size)")
    print(g["text"])

    print("\n== Group forecast: one expected revenue")
    print(fc["text"])
    months = fc["months"]
    for _, m in months.iterrows():
        print(f"  {m['month'].date()}  {m['revenue']:>14,.0f}  80% {m['lower']:,.0f}.."
              f"{m['upper']:,.0f}")
    lo, hi = fc["total_interval"]
    print(f"  total {fc['total']:,.0f} (80% {lo:,.0f}..{hi:,.0f}); members' expected spend sum "
          f"{fc['member_expected_spend'].sum():,.0f}")
    bt = fc["backtest"]
    if len(bt):
        names = [c for c in bt.columns if c.startswith("naive_")]
        totals = bt.groupby("origin").agg(
            actual=("actual", "sum"), forecast=("forecast", "sum"), raw=("model_raw", "sum"),
            lower=("total_lower", "first"), upper=("total_upper", "first"),
            inside=("actual", lambda s: 0), **{n: (n, "sum") for n in names})
        inside = bt.assign(inside=(bt["actual"] >= bt["lower"]) & (bt["actual"] <= bt["upper"]),
                           has=bt["lower"].notna()).groupby("origin")[["inside", "has"]].sum()
        rows = []
        for origin, x in totals.iterrows():
            err = {n: (x[n] - x["actual"]) / x["actual"] for n in ["forecast", "raw", *names]}
            rows.append([origin, round(x["actual"]), round(x["forecast"]),
                         f"{x['lower']:,.0f}..{x['upper']:,.0f}" if x["lower"] == x["lower"]
                         else "n/a", *[f"{err[n]:+.1%}" for n in ["forecast", "raw", *names]],
                         f"{int(inside.loc[origin, 'inside'])}/{int(inside.loc[origin, 'has'])}"])
        print(table(["origin", "actual 3m", "forecast", "80% total", "err product",
                     "err raw model", *[f"err {n[6:]}" for n in names], "months inside"], rows))
    s = fc["backtest_summary"]
    print("3-month total MAPE: " + ", ".join(
        f"{k[11:]} {pct(v)}" for k, v in s.items() if k.startswith("total_mape_")))
    print("monthly MAPE: " + ", ".join(
        f"{k[11:]} {pct(v)}" for k, v in s.items() if k.startswith("month_mape_")))
    c = s.get("complete", {})
    if c.get("origins"):
        print(f"on the {c['origins']} origin(s) with an interval: 3-month total MAPE "
              + ", ".join(f"{k[11:]} {pct(v)}" for k, v in c.items()
                          if k.startswith("total_mape_")))
    print(f"80% intervals: {s.get('months_inside', 0)} of {s.get('months_with_interval', 0)} "
          f"months inside ({pct(s.get('month_coverage'))}); 3-month totals "
          f"{pct(s.get('total_coverage'))} of {s.get('totals_with_interval', 0)}")

    print("\n== Seconds (one BLAS/OpenMP thread)")
    print(table(["step", "s"], [[k, round(v, 2)] for k, v in seconds.items()]))
    print(f"model cost in total: {sum(seconds.values()):.2f} s; load after: {load()}")
    write_json(OUT / f"rolling_origin_{args.source}.json", {
        "as_of": str(as_of.date()), "champion": r.champion, "why": r.why,
        "per_origin": r.table.to_dict("records"), "summary": r.summary.to_dict("records"),
        "guarantee": {k: v for k, v in g.items() if k != "notes"},
        "forecast_backtest": bt.to_dict("records"), "forecast_summary": s,
        "seconds": seconds, "bgnbd": d,
    })
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
