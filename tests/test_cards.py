"""Every dashboard card's SQL runs and returns rows, on SQLite and on PostgreSQL.

The store comes from each builder in `sqlstore_fixture.STORE_BUILDERS` (the synthetic
one by default; a conftest.py may register one that runs a real backfill), so the same
checks cover the store the pipeline really writes.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from insiders.dashboards.page import run_card_sql
from insiders.dashboards.spec import load_definition
from sqlstore_fixture import STORE_BUILDERS, build_synthetic_store, postgres_schema_url

SPEC = load_definition()
PG_SKIP = (
    "INSIDERS_TEST_PG_URL is not set: run `bash .ci/start-postgres.sh` and export the URL "
    "it prints to run the cards on PostgreSQL"
)


def _store_params() -> list:
    params = []
    for builder in sorted(STORE_BUILDERS):
        params.append(pytest.param(("sqlite", builder), id=f"sqlite-{builder}"))
        params.append(pytest.param(("postgres", builder), id=f"postgres-{builder}",
                                   marks=pytest.mark.postgres))
    return params


def _store_url(backend: str, name: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp(f'store-{name}') / 'insiders.sqlite'}"
    base = os.environ.get("INSIDERS_TEST_PG_URL")
    if not base:
        pytest.skip(PG_SKIP)
    return postgres_schema_url(base, f"cards_{name}")


@pytest.fixture(scope="module", params=_store_params())
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """An engine on a filled SQL store, one per (backend, builder)."""
    backend, builder = request.param
    url = _store_url(backend, builder, tmp_path_factory)
    STORE_BUILDERS[builder](url)
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


def referenced_columns(card) -> list[str]:
    """The result columns the dashboard definition names for this card."""
    settings = card.visualization_settings
    names = list(settings.get("graph.dimensions") or []) + list(settings.get("graph.metrics") or [])
    names += [k for k in settings.get("series_settings") or {} if k not in names]
    if settings.get("scalar.field"):
        names.append(settings["scalar.field"])
    names += [m for m in card.money if m not in names]
    return names


@pytest.mark.parametrize("card", SPEC.cards, ids=lambda c: Path(c.file).stem)
def test_card_sql_returns_rows(store: sa.Engine, card) -> None:
    with store.connect() as conn:
        frame = run_card_sql(conn, card.sql)
    assert len(frame) >= 1, f"{card.file} returned no rows"
    columns = [str(c) for c in frame.columns]
    assert len(set(columns)) == len(columns), f"{card.file} repeats a column name: {columns}"
    split_by_value = len(card.visualization_settings.get("graph.dimensions") or []) > 1
    wanted = [c for c in referenced_columns(card)
              if not (split_by_value and c in (card.visualization_settings.get("series_settings")
                                               or {}))]
    missing = [c for c in wanted if c not in columns]
    assert not missing, f"{card.file} lacks columns {missing} that dashboard.json uses: {columns}"
    if card.display == "scalar":
        assert len(frame) == 1, f"scalar card {card.file} must return one row"


def test_every_sql_file_is_a_card() -> None:
    files = {p.relative_to(SPEC.directory).as_posix()
             for p in (SPEC.directory / "cards").glob("*.sql")}
    assert files == {card.file for card in SPEC.cards}


def _normal(value):
    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if hasattr(value, "item"):
        return _normal(value.item())
    return value


@pytest.mark.postgres
def test_cards_agree_on_sqlite_and_postgres(tmp_path: Path) -> None:
    """The same data gives the same answer on both engines: the SQL really is portable."""
    base = os.environ.get("INSIDERS_TEST_PG_URL")
    if not base:
        pytest.skip(PG_SKIP)
    urls = [f"sqlite:///{tmp_path / 'same.sqlite'}", postgres_schema_url(base, "cards_agree")]
    answers = []
    for url in urls:
        build_synthetic_store(url)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            answers.append({
                card.file: [[_normal(v) for v in row]
                            for row in run_card_sql(conn, card.sql).itertuples(index=False)]
                for card in SPEC.cards
            })
        engine.dispose()
    for card in SPEC.cards:
        assert answers[0][card.file] == answers[1][card.file], card.file


# Setting names and values as Metabase v0.64's frontend defines them (read in its source:
# visualizations/lib/settings/graph.js and series.ts, shared/settings/series.ts,
# lib/settings/column.js; echarts/cartesian/model/stack.ts, option/series.ts). Metabase
# stores any map, so a misspelt key is silently ignored there: this is the check.
CARD_SETTINGS = {"graph.dimensions", "graph.metrics", "graph.x_axis.title_text",
                 "graph.y_axis.title_text", "graph.y_axis.unpin_from_zero",
                 "stackable.stack_type", "series_settings", "column_settings"}
SERIES_SETTINGS = {
    "display": {"line", "area", "bar"}, "line.interpolate": {"linear", "cardinal", "step-after"},
    "line.style": {"solid", "dashed", "dotted"}, "line.size": {"S", "M", "L"},
    "line.marker_enabled": {None, True, False}, "line.missing": {"zero", "none", "interpolate"},
    "axis": {None, "left", "right"}, "color": None, "title": None,
}
COLUMN_SETTINGS = {"number_style": {"decimal", "percent", "scientific", "currency"},
                   "currency": None, "currency_style": {"symbol", "code", "name"},
                   "currency_in_header": {True, False},
                   # NUMBER_COLUMN_SETTINGS.decimals: the number of decimal places shown
                   "decimals": {0, 1, 2, 3, 4}}


def _settings_problems(card, settings: dict) -> list[str]:
    problems = [f"unknown card setting {k}" for k in settings if k not in CARD_SETTINGS]
    if settings.get("stackable.stack_type") not in (None, "stacked", "normalized"):
        problems.append(f"stack type {settings['stackable.stack_type']!r}")
    for name, opts in (settings.get("series_settings") or {}).items():
        for key, value in opts.items():
            allowed = SERIES_SETTINGS.get(key, ())
            if key not in SERIES_SETTINGS or (allowed is not None and value not in allowed):
                problems.append(f"series {name!r}: {key}={value!r}")
    for key, opts in (settings.get("column_settings") or {}).items():
        for k, v in opts.items():
            allowed = COLUMN_SETTINGS.get(k, ())
            if k not in COLUMN_SETTINGS or (allowed is not None and v not in allowed):
                problems.append(f"column {key}: {k}={v!r}")
    return problems


@pytest.mark.parametrize("card", SPEC.cards, ids=lambda c: Path(c.file).stem)
def test_cards_use_only_settings_metabase_has(card) -> None:
    from insiders.dashboards.spec import currency_settings

    assert _settings_problems(card, currency_settings(card, "BRL")) == []
    # no smoothed line anywhere: Metabase's default is straight, and `cardinal` (a spline)
    # can pass below the real points
    for opts in (card.visualization_settings.get("series_settings") or {}).values():
        assert opts.get("line.interpolate", "linear") != "cardinal", card.file


def test_the_checker_of_settings_refuses_made_up_ones() -> None:
    card = SPEC.cards[0]
    assert _settings_problems(card, {"graph.band": True})
    assert _settings_problems(card, {"series_settings": {"A": {"line.interpolate": "spline"}}})
    assert _settings_problems(card, {"column_settings": {'["name","A"]': {"currency": "GBP",
                                                                          "prefix_code": 1}}})


def test_the_forecast_card_shows_the_same_figures_as_the_report(tmp_path: Path) -> None:
    """One actual per month, for the group the forecast is for: the latest run's Insiders,
    month by month equal to answers.json's expected_revenue.history (the report's forecast
    chart), and the forecast with a band from its low to its high end. The backtest's
    different group has its own card."""
    from conftest import _pipeline_store, pipeline_runs

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    _pipeline_store(url)
    latest = max(pipeline_runs())
    expected = pipeline_runs()[latest][0]["answers"]["expected_revenue"]
    card = next(c for c in SPEC.cards if c.file == "cards/10_forecast_vs_actuals.sql")
    backtest = next(c for c in SPEC.cards if c.file == "cards/17_forecast_backtest.sql")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            frame = run_card_sql(conn, card.sql)
            back = run_card_sql(conn, backtest.sql)
    finally:
        engine.dispose()
    months = [str(m)[:10] for m in frame["Month"]]
    assert len(months) == len(set(months)), "a month appears twice"
    actual = {m: v for m, v in zip(months, frame["Actual"], strict=True)
              if v is not None and not math.isnan(v)}
    assert actual == pytest.approx({h["month"]: h["revenue"] for h in expected["history"]})
    rows = {m: r for m, r in zip(months, frame.itertuples(index=False), strict=True)}
    for m in expected["months"]:
        row = rows[m["month"]]
        assert row.Forecast == pytest.approx(m["revenue"])
        assert row[1] == pytest.approx(m["lower"])  # the band's base ...
        assert row[1] + row[2] == pytest.approx(m["upper"])  # ... plus its width: the high end
        assert row.Actual is None or math.isnan(row.Actual)  # no actual for future months
    assert not {"Backtest (actual)", "What that group spent"} & set(frame.columns)
    assert list(back.columns) == ["Month", "What that group spent", "Our forecast then",
                                  "Mean of the 3 months before"]
