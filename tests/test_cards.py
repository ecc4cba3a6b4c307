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
