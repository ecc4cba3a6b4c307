"""Per-customer and per-day tables from the lines, computed by the engine.

`Lines` wraps a transactions table of any engine (the run's Parquet file on
DuckDB or Spark, or a table in the retailer's PostgreSQL) and answers what the
models ask of the lines: features as of a date, revenue per customer in a
period, daily revenue of a group, cohort activity, the first date. Only those
per-customer / per-day results come back to Python; the models
(`models/`) accept a `Lines` wherever they accept a transactions frame.

The engine does every per-line step (filters, joins, group-bys); the few
per-customer ratios are then taken in pandas exactly as `models/features.py`
takes them, so the two paths give the same numbers up to the order in which
sums are added (relative differences near 1e-15).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..models import features as feats

if TYPE_CHECKING:
    from .backends import Engine

CUSTOMER = "customer_id"
EXACT = "decimal(18, 4)"


def _fsum(column):
    """DuckDB's compensated (Kahan) sum, the summation pandas' group-by uses."""
    import ibis

    @ibis.udf.agg.builtin(name="fsum")
    def fsum(x: float) -> float:
        ...

    return fsum(column.cast("float64"))


INVOICE_RANK = "invoice_rank"


def invoice_ranks(invoices: pd.Series, invoice_order: list[str]) -> np.ndarray:
    """Each invoice's place in the category order (one not in it after all of them, as a
    categorical sorts a missing value last). Computed once for the table of every purchase
    invoice: building the categorical of 1.5 million invoices at each of the stability
    curve's seven cuts was 6 of its 27 s at 50x."""
    at = pd.Index(invoice_order, dtype="str").get_indexer(invoices.astype("str"))
    return np.where(at < 0, len(invoice_order), at)


def _per_customer(invoices: pd.DataFrame, invoice_order: list[str] | None) -> pd.DataFrame:
    """Purchase invoices -> per customer: count, first and last date, gross, units, products
    (as `models.features` groups them: invoices in their category order)."""
    frame = invoices.copy()
    if invoice_order is not None and INVOICE_RANK not in frame:
        frame[INVOICE_RANK] = invoice_ranks(frame["invoice"], invoice_order)
    frame[CUSTOMER] = frame[CUSTOMER].astype("str")
    order = INVOICE_RANK if invoice_order is not None else "invoice"
    frame = frame.sort_values([CUSTOMER, order], kind="stable")
    per = frame.groupby(CUSTOMER, sort=False)
    out = pd.DataFrame({
        "frequency": per.size(), "first_buy": per["date"].min(), "last_buy": per["date"].max(),
        "gross": per["value"].sum(), "units": per["units"].sum(),
        "products": per["products"].sum()})
    out.index.name = CUSTOMER
    return out.reset_index()


def categories_of(path, columns: list[str]) -> dict[str, pd.Index | None]:
    """The categories pandas gives each column when it reads the file (None: not
    categorical), without building the columns: the dictionaries of the file's blocks,
    unified in block order as pandas does; only the first block's when the file says it
    holds the whole dictionaries (`catalog.BlockWriter`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..catalog import WHOLE_FIRST

    file = pq.ParquetFile(path)
    marked = (file.metadata.metadata or {}).get(WHOLE_FIRST.encode(), b"").decode().split(",")
    if file.metadata.num_row_groups and set(columns) <= set(marked):
        table = file.read_row_group(0, columns=columns)  # BlockWriter: the whole lists
    else:
        table = file.read(columns=columns)
    out: dict[str, pd.Index | None] = {}
    for name in columns:
        column = table.column(name)
        if not pa.types.is_dictionary(column.type):
            out[name] = None
            continue
        chunks = column.chunks
        if chunks and any(not c.dictionary.equals(chunks[0].dictionary) for c in chunks[1:]):
            chunks = column.unify_dictionaries().chunks
        values = chunks[0].dictionary if chunks else pa.array([], column.type.value_type)
        out[name] = pd.Index(values.to_pandas(), dtype="str")
    return out


def _ts(value: pd.Timestamp):
    import ibis

    return ibis.timestamp(pd.Timestamp(value).to_pydatetime())


class Lines:
    """The transactions as an engine table, with the aggregations the models need."""

    def __init__(self, engine: Engine, table, country_order: list[str] | None = None,
                 file_order: list[str] | None = None, invoice_order: list[str] | None = None,
                 memo: dict | None = None) -> None:
        self.engine = engine
        self.raw_table = table
        self.file_order = file_order
        self.invoice_order = invoice_order
        # the Parquet file is read by each query (DuckDB reads only the columns and row
        # groups it needs): a materialized copy scanned faster but held every line in memory
        self.table = table
        if engine.name == "duckdb":
            # one thread: DuckDB's compensated sum (fsum) then adds each group's lines in
            # file order, which is what pandas does: the same floats to the last bit
            engine.con.raw_sql("SET threads TO 1")
        # ties between a customer's countries go to the one seen first in the input, as in
        # the pandas path (categorical order); alphabetical when the order is not known
        self.country_order = country_order
        # what was computed from these lines (plain frames): `memo` shares it with the other
        # `Lines` of the same file, e.g. a forked copy's (pipeline.run_stages), which has an
        # engine connection of its own but need not aggregate again what is known
        self._memo = memo if memo is not None else {}
        self._features: dict[tuple[pd.Timestamp, int], pd.DataFrame] = \
            self._memo.setdefault("features", {})
        self._first: pd.Timestamp | None = None
        self._rows: int | None = None

    @property
    def _invoices(self) -> pd.DataFrame | bool | None:  # False: some invoice spans days
        return self._memo.get("invoices")

    @_invoices.setter
    def _invoices(self, value: pd.DataFrame | bool | None) -> None:
        self._memo["invoices"] = value

    @classmethod
    def from_parquet(cls, engine: Engine, path, memo: dict | None = None) -> Lines:
        """A transactions file as the quality stage writes it; its categories' order (first
        appearance in the input) breaks ties and orders sums exactly as pandas does."""
        memo = memo if memo is not None else {}
        if "order" not in memo:
            memo["order"] = categories_of(path, ["country", "source_file", "invoice"])
        order = memo["order"]
        return cls(engine, engine.read_parquet(path), order["country"], order["source_file"],
                   order["invoice"], memo=memo)

    def __len__(self) -> int:
        if self._rows is None:
            self._rows = int(self.engine.to_pandas(self.table.count().name("n").as_table())
                             ["n"].iloc[0])
        return self._rows

    def first_date(self) -> pd.Timestamp:
        """The earliest line's date (NaT when there are none)."""
        if self._first is None:
            t = self.table
            value = self.engine.to_pandas(t.aggregate(first=t.invoice_date.min()))["first"]
            first = pd.Timestamp(value.iloc[0]) if len(value) else pd.NaT
            # microseconds, as the transactions file stores them (Spark hands back ns)
            self._first = first.as_unit("us") if pd.notna(first) else first
        return self._first

    def last_date(self) -> pd.Timestamp:
        """The latest line's date (NaT when there are none)."""
        t = self.table
        value = self.engine.to_pandas(t.aggregate(last=t.invoice_date.max()))["last"]
        last = pd.Timestamp(value.iloc[0]) if len(value) else pd.NaT
        return last.as_unit("us") if pd.notna(last) else last

    # ------------------------------------------------------------------ features

    def customer_features(self, as_of: pd.Timestamp, lookback_months: int = 12
                          ) -> pd.DataFrame:
        """`models.features.customer_features`, on the engine (cached per date)."""
        key = (pd.Timestamp(as_of), lookback_months)
        if key not in self._features:
            self._features[key] = self._customer_features(*key)
        return self._features[key].copy()

    def _customer_features(self, as_of: pd.Timestamp, lookback_months: int) -> pd.DataFrame:
        import ibis

        t = self.table
        start = feats.period_start(as_of, lookback_months)
        history = t.filter(t.invoice_date < _ts(as_of))
        lines = history.filter(history.invoice_date >= _ts(start))
        buy = (lines.quantity > 0) & ~lines.is_cancellation
        recent = lines.invoice_date >= _ts(as_of - pd.Timedelta(days=90))
        nothing = ibis.null().cast(lines.revenue.type())
        net = lines.group_by(CUSTOMER).aggregate(
            monetary=self._sum(lines.revenue),
            returned=self._sum(ibis.ifelse(buy, nothing, lines.revenue)),
            revenue_90d=self._sum(ibis.ifelse(recent, lines.revenue, nothing)),
        )
        ever = history.filter((history.quantity > 0) & ~history.is_cancellation)
        ever = ever.group_by(CUSTOMER).aggregate(ever_first=ever.invoice_date.min())
        counts = lines.group_by([CUSTOMER, "country"]).aggregate(n=lines.count())
        if self.country_order is not None and len(self.country_order):
            order = self.engine.table(pd.DataFrame({
                "country": pd.Series(self.country_order, dtype="str"),
                "country_rank": np.arange(len(self.country_order), dtype=np.int64)}))
            counts = counts.left_join(order, "country").select(
                CUSTOMER, "country", "n", "country_rank")
            tie = counts.country_rank
        else:
            tie = counts.country
        pick = ibis.window(group_by=counts[CUSTOMER], order_by=[counts.n.desc(), tie])
        main = counts.mutate(r=ibis.row_number().over(pick))
        main = main.filter(main.r == 0).select(CUSTOMER, "country")
        joined = net.left_join(ever, CUSTOMER).select(net, ever.ever_first)
        joined = joined.left_join(main, CUSTOMER).select(joined, main.country)
        frame = self.engine.to_pandas(joined)
        # one row per purchase invoice (a few percent of the lines): summed per customer in
        # pandas in the order pandas sums them, so the averages match to the last bit
        every = self.purchase_invoices()
        if every is not None:  # the same rows the window's own query gives, without it
            dates = every["date"]
            per_invoice = every[(dates >= start) & (dates < as_of)]
        else:
            per_invoice = self._invoice_rows(lines.filter(buy))
        return finish_features(frame, _per_customer(per_invoice, self.invoice_order), as_of,
                               start)

    def _invoice_rows(self, buys) -> pd.DataFrame:
        """Per (customer, invoice) of the given purchase lines: first and last date, value,
        units and distinct products.

        Two queries joined in pandas: the value's compensated sum on one thread (it then
        adds each invoice's lines in file order, pandas' float to the last bit), the
        distinct count, which has no order to keep, on all of the engine's threads. In one
        query DuckDB combines partial sums beside the distinct count (the sum's order is
        lost), and on one thread it took 12-13 s at 50x against 7.6 s so."""
        keys = [CUSTOMER, "invoice"]
        invoices = self.engine.to_pandas(buys.group_by(keys).aggregate(
            date=buys.invoice_date.min(), last=buys.invoice_date.max(),
            value=self._sum(buys.revenue), units=buys.quantity.sum()))
        with self._all_threads():
            products = self.engine.to_pandas(buys.group_by(keys).aggregate(
                products=buys.stock_code.nunique()))
        # both are one row per key (a group-by each): checking it (`validate`) took 1.5 s
        # of the 12 s features stage at 50x
        return invoices.merge(products, on=keys, how="inner")

    @contextmanager
    def _all_threads(self) -> Iterator[None]:
        """A query whose result does not depend on the order of its rows: every thread."""
        if self.engine.name != "duckdb":
            yield
            return
        self.engine.con.raw_sql("RESET threads")
        try:
            yield
        finally:
            self.engine.con.raw_sql("SET threads TO 1")

    def purchase_invoices(self) -> pd.DataFrame | None:
        """Every purchase invoice of every customer (date, value, units, products), once.

        An invoice's figures are those of its own lines, so a window of features holds the
        same row for each invoice inside it: the features at the stability curve's six
        cuts filter this table instead of aggregating the lines six more times. It holds
        only while no invoice has lines on two days (a window starts and ends at
        midnight); when one does, None, and each window aggregates its own lines."""
        if self._invoices is None:
            t = self.table
            every = self._invoice_rows(t.filter((t.quantity > 0) & ~t.is_cancellation))
            first = pd.to_datetime(every["date"]).dt.floor("D")
            last = pd.to_datetime(every["last"]).dt.floor("D")
            if (first != last).any():
                self._invoices = False
            else:
                every = every.drop(columns="last")
                if self.invoice_order is not None:  # once, not at every cut
                    every[INVOICE_RANK] = invoice_ranks(every["invoice"], self.invoice_order)
                self._invoices = every
        return None if self._invoices is False else self._invoices

    def _sum(self, column):
        """A sum as pandas adds (compensated, in line order) on DuckDB; exact elsewhere."""
        if self.engine.name == "duckdb":
            return _fsum(column)
        return column.cast(EXACT).sum().cast("float64")

    # ------------------------------------------------------------------ periods and days

    def future_revenue(self, start: pd.Timestamp, months: int) -> pd.Series:
        """Net revenue per customer in [start, start + months)."""
        t = self.table
        end = pd.Timestamp(start) + pd.DateOffset(months=months)
        lines = t.filter((t.invoice_date >= _ts(start)) & (t.invoice_date < _ts(end)))
        frame = self.engine.to_pandas(lines.group_by(CUSTOMER).aggregate(
            future_revenue=self._sum(lines.revenue)).order_by(CUSTOMER))
        return pd.Series(frame["future_revenue"].to_numpy(dtype=float),
                         index=pd.Index(frame[CUSTOMER].astype("str"), name=CUSTOMER),
                         name="future_revenue")

    def daily_revenue(self, customers: set[str], end: pd.Timestamp) -> pd.Series:
        """Net revenue per day of the given customers before `end` (days without sales 0).

        The group's lines come back (in file order) and are summed per day in pandas as
        `models.forecast` does, bit for bit: Prophet's fit moved 0.3% on sums that differed
        in the 16th digit. A group is a few percent of the customers, not all the lines."""
        t = self.raw_table
        group = self.engine.table(pd.DataFrame(
            {CUSTOMER: pd.Series(sorted(customers), dtype="str")}))
        lines = t.filter(t.invoice_date < _ts(end)).semi_join(group, CUSTOMER)
        order = [lines.source_row]
        if self.file_order is not None and len(self.file_order) > 1:
            files = self.engine.table(pd.DataFrame({
                "source_file": pd.Series(self.file_order, dtype="str"),
                "file_rank": np.arange(len(self.file_order), dtype=np.int64)}))
            lines = lines.inner_join(files, "source_file")
            order = [lines.file_rank, lines.source_row]
        frame = self.engine.to_pandas(lines.order_by(order).select("invoice_date", "revenue"))
        if frame.empty:
            return pd.Series(dtype=float)
        dates = pd.to_datetime(frame["invoice_date"]).astype("datetime64[us]")
        daily = frame["revenue"].astype("float64").groupby(dates.dt.floor("D")).sum()
        first = self.first_date().floor("D")
        index = pd.date_range(first, pd.Timestamp(end) - pd.Timedelta(days=1), freq="D")
        return daily.reindex(index, fill_value=0.0)

    def activity(self, end: pd.Timestamp) -> pd.DataFrame:
        """`models.clv.activity` of the lines before `end`: one row per customer and day
        with a line (net revenue, whether they bought), summed by the engine.

        DuckDB's compensated sum on one thread adds each day's lines in file order, as
        pandas' group-by does: the same floats (tests/test_engine.py)."""
        import ibis

        t = self.table
        lines = t.filter(t.invoice_date < _ts(end))
        day = lines.invoice_date.date().delta(ibis.date(1970, 1, 1), unit="day")
        bought = (lines.quantity > 0) & ~lines.is_cancellation
        per = lines.group_by(customer_id=lines[CUSTOMER], day=day).aggregate(
            net=self._sum(lines.revenue), bought=bought.any())
        frame = self.engine.to_pandas(per.order_by([CUSTOMER, "day"]))
        ids = frame[CUSTOMER].astype("str")
        codes, uniques = pd.factorize(ids, sort=True)
        return pd.DataFrame({
            CUSTOMER: np.asarray(uniques, dtype=object)[codes],
            "code": codes.astype(np.int64), "day": frame["day"].to_numpy(dtype=np.int64),
            "net": frame["net"].to_numpy(dtype=np.float64),
            "bought": frame["bought"].to_numpy(dtype=bool)})

    def cohort_activity(self, as_of: pd.Timestamp, lookback_months: int) -> pd.DataFrame:
        """(cohort month, months since, customers active): the cohorts table's counts."""
        t = self.table
        start = feats.period_start(as_of, lookback_months)
        buys = t.filter((t.quantity > 0) & ~t.is_cancellation & (t.invoice_date < _ts(as_of)))
        months = buys.select(CUSTOMER, month=buys.invoice_date.year() * 12
                             + buys.invoice_date.month() - 1).distinct()
        first = months.group_by(CUSTOMER).aggregate(cohort=months.month.min())
        first = first.filter(first.cohort >= start.year * 12 + start.month - 1)
        joined = months.inner_join(first, CUSTOMER)
        joined = joined.mutate(offset=joined.month - joined.cohort)
        with self._all_threads():  # counts: no order to keep
            return self.engine.to_pandas(joined.group_by(["cohort", "offset"]).aggregate(
                n=joined.count()))


    # ------------------------------------------------------------------ the evaluation's

    def cohort_sums(self, end: pd.Timestamp) -> tuple[pd.Series, pd.Series]:
        """`models.cohort_value.cohort_sums`: customers per cohort month, and net revenue per
        cohort and calendar month of the lines before `end`.

        Each customer's cohort comes back first (one row per customer) and goes back to the
        engine as a small table: joined to the lines as the build side, the lines keep their
        file order, so each cell's compensated sum adds them as pandas does (bit for bit)."""
        t = self.table
        lines = t.filter(t.invoice_date < _ts(end))
        lines = lines.mutate(month=(lines.invoice_date.year() * 12
                                    + lines.invoice_date.month() - 1).cast("int64"))
        buys = lines.filter((lines.quantity > 0) & ~lines.is_cancellation)
        first = self.engine.to_pandas(buys.group_by(CUSTOMER).aggregate(
            cohort=buys.month.min()))
        if first.empty:
            from ..models.cohort_value import empty_sums

            return empty_sums()
        cohorts = first["cohort"].to_numpy(dtype=np.int64)
        sizes = pd.Series(cohorts).value_counts().sort_index()
        known = self.engine.table(pd.DataFrame({
            CUSTOMER: first[CUSTOMER].astype("str"), "cohort": cohorts}))
        joined = lines.inner_join(known, CUSTOMER).select(
            lines.month, lines.revenue, known.cohort)
        joined = joined.filter(joined.month >= joined.cohort)
        per = self.engine.to_pandas(joined.group_by(["cohort", "month"]).aggregate(
            revenue=self._sum(joined.revenue)).order_by(["cohort", "month"]))
        index = pd.MultiIndex.from_arrays(
            [per["cohort"].to_numpy(dtype=np.int64), per["month"].to_numpy(dtype=np.int64)],
            names=["cohort", "month"])
        return sizes, pd.Series(per["revenue"].to_numpy(dtype=np.float64), index=index,
                                name="revenue")

    def hypothesis_sums(self, start: pd.Timestamp, end: pd.Timestamp,
                        autumn_months: tuple[int, ...]) -> pd.DataFrame:
        """Per customer with a line in [start, end), by id: value bought and returned (lines
        by the sign of their quantity), purchases and autumn purchases (NaN without any),
        as `models.hypotheses` sums the lines (zeros added where it adds zeros)."""
        import ibis

        t = self.table
        lines = t.filter((t.invoice_date >= _ts(start)) & (t.invoice_date < _ts(end)))
        revenue = lines.revenue.cast("float64")
        positive = lines.quantity > 0
        buy = positive & ~lines.is_cancellation
        autumn = buy & lines.invoice_date.month().isin(list(autumn_months))
        nothing = ibis.null().cast("float64")
        zero = ibis.literal(0.0, type="float64")
        per = lines.group_by(CUSTOMER).aggregate(
            bought=self._sum(ibis.ifelse(positive, revenue, zero)),
            returned=self._sum(ibis.ifelse(positive, zero, -revenue)),
            total=self._sum(ibis.ifelse(buy, revenue, nothing)),
            autumn=self._sum(ibis.ifelse(autumn, revenue, nothing)))
        frame = self.engine.to_pandas(per.order_by(CUSTOMER))
        frame.index = pd.Index(frame.pop(CUSTOMER).astype("str"), name=CUSTOMER)
        return frame.astype("float64").sort_index()

    def purchase_days(self, end: pd.Timestamp) -> pd.DataFrame:
        """`models.hypotheses.purchase_days` of the lines before `end`."""
        t = self.table
        buys = t.filter((t.quantity > 0) & ~t.is_cancellation & (t.invoice_date < _ts(end)))
        with self._all_threads():  # distinct pairs, in no order the tests rely on
            days = self.engine.to_pandas(buys.select(
                CUSTOMER, day=buys.invoice_date.truncate("D")).distinct())
        return pd.DataFrame({
            CUSTOMER: days[CUSTOMER].astype("str").to_numpy(),
            "day": pd.to_datetime(days["day"]).astype("datetime64[us]").to_numpy()})


def finish_features(frame: pd.DataFrame, per: pd.DataFrame, as_of: pd.Timestamp,
                    start: pd.Timestamp) -> pd.DataFrame:
    """Per-customer sums and dates -> the feature table of `models.features` (same ratios,
    same dtypes, same order)."""
    if frame.empty:
        return feats._empty()
    frame = frame.assign(**{CUSTOMER: frame[CUSTOMER].astype("str")}).merge(
        per, on=CUSTOMER, how="left")
    day = feats.DAY
    out = pd.DataFrame({CUSTOMER: frame[CUSTOMER].astype("str")})
    freq = frame["frequency"]
    has = freq.notna().to_numpy()
    frequency = freq.fillna(0).astype("int64")
    first_buy = pd.to_datetime(frame["first_buy"]).astype("datetime64[us]")
    last_buy = pd.to_datetime(frame["last_buy"]).astype("datetime64[us]")
    gross = frame["gross"].astype("float64").where(has)
    out["country"] = frame["country"].astype("str")
    out["recency_days"] = (as_of - last_buy) / day
    out["frequency"] = frequency
    out["monetary"] = frame["monetary"].astype("float64")
    out["avg_ticket"] = gross / frequency.where(frequency > 0)
    out["basket_size"] = frame["units"].astype("float64").where(has) / freq.where(has)
    out["basket_variety"] = frame["products"].astype("float64").where(has) / freq.where(has)
    span = (last_buy - first_buy) / day
    out["avg_days_between"] = (span / (freq - 1)).where(freq > 1)
    out["tenure_days"] = (as_of - pd.to_datetime(frame["ever_first"]).astype(
        "datetime64[us]")) / day
    months_in_period = np.minimum(
        ((as_of - first_buy) / day).to_numpy(dtype=float, na_value=np.nan),
        (as_of - start) / day) / feats.DAYS_PER_MONTH
    out["purchases_per_month"] = out["frequency"] / np.maximum(months_in_period, 1.0)
    returned = -frame["returned"].astype("float64").fillna(0.0)
    rate = returned / gross
    out["return_rate"] = rate.clip(0, 1).where(gross > 0, 0.0)
    out["revenue_90d"] = frame["revenue_90d"].astype("float64").fillna(0.0)
    out["has_purchase"] = out["frequency"] > 0
    return out[[CUSTOMER, "country", *feats.FEATURES, "has_purchase"]].sort_values(
        CUSTOMER).reset_index(drop=True)
