"""The dashboard as code: `metabase/dashboard.json` plus one SQL file per card.

Open-source Metabase keeps questions and dashboards only in its application database
(serialization to files is a paid feature), so the product keeps them as files instead:
`dashboard.json` lists the cards, their visualisation and their place on Metabase's
24-column grid, and each card is a plain SQL file in `cards/`. Both renderers read them
through `load_definition()`: provisioning (`metabase.py`, `provision.py`) and the static
page (`page.py`). The definition is checked here, so both fail early and the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insiders.errors import InsidersError

GRID_COLUMNS = 24  # Metabase's dashboard grid
# the currency of the latest run's money figures (sql_sync: `runs.currency`), read by both
# renderers to show the money columns of `CardSpec.money` in it
CURRENCY_SQL = "SELECT currency FROM runs WHERE run_id = (SELECT MAX(run_id) FROM runs)"
DISPLAYS = frozenset(
    {"scalar", "smartscalar", "line", "area", "bar", "row", "combo", "pie", "table",
     "scatter", "waterfall", "funnel", "progress", "gauge"}
)


class DefinitionError(InsidersError, ValueError):
    """The dashboard definition files are inconsistent (one line)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class Position:
    """A card's place on Metabase's 24-column dashboard grid."""

    row: int
    col: int
    size_x: int
    size_y: int


@dataclass(frozen=True)
class CardSpec:
    """One card of the dashboard: a SQL file plus how Metabase shows it."""

    name: str
    file: str
    sql: str
    display: str
    visualization_settings: dict
    position: Position
    description: str = ""
    # result columns that hold money: shown in the run's currency (`currency_settings`)
    money: tuple[str, ...] = ()


def column_key(column: str) -> str:
    """Metabase's key for a native query's column in `column_settings`: the JSON text of
    `["name", column]` exactly as its frontend writes it (`JSON.stringify`, no spaces)."""
    return json.dumps(["name", column], separators=(",", ":"), ensure_ascii=False)


def currency_settings(card: CardSpec, currency: str | None) -> dict:
    """The card's visualization settings with its money columns in `currency` (ISO 4217).

    The currency belongs to the data (GBP for Online Retail, BRL for Olist: `runs.currency`),
    not to the files, so both renderers add it when they know the store's: Metabase's own
    column settings (`number_style: currency`, `currency`, `currency_style: code`; in a
    table the code sits in the column heading, `currency_in_header`, Metabase's default).
    Without a currency, or without money columns, the settings are the files' as they are.
    """
    if not currency or not card.money:
        return card.visualization_settings
    settings = dict(card.visualization_settings)
    columns = dict(settings.get("column_settings") or {})
    for column in card.money:
        columns[column_key(column)] = {**columns.get(column_key(column), {}),
                                       "number_style": "currency", "currency": currency,
                                       "currency_style": "code"}
    settings["column_settings"] = columns
    return settings


@dataclass(frozen=True)
class DashboardSpec:
    """The dashboard as code, read from `dashboard.json` and its SQL files."""

    name: str
    collection: str
    description: str
    cards: tuple[CardSpec, ...]
    directory: Path


def default_definition_dir() -> Path:
    """The repository's `metabase/` when the package runs from a checkout, else `./metabase`.

    `INSIDERS_METABASE_DEFINITIONS` overrides this; it is read in `config.py`
    (`Settings.metabase.definitions`) and passed in by the callers.
    """
    in_repo = Path(__file__).resolve().parents[3] / "metabase"
    if (in_repo / "dashboard.json").is_file():
        return in_repo
    return Path.cwd() / "metabase"


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionError(f"{where} must be an integer, got {value!r}")
    return value


def load_definition(definition_dir: Path | None = None) -> DashboardSpec:
    """Read and check the dashboard definition, so both renderers fail early and clearly."""
    directory = Path(definition_dir) if definition_dir else default_definition_dir()
    path = directory / "dashboard.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DefinitionError(f"No dashboard definition at {path}") from None
    except json.JSONDecodeError as exc:
        raise DefinitionError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path} must hold a JSON object")
    for key in ("name", "collection", "cards"):
        if not raw.get(key):
            raise DefinitionError(f"{path} needs a non-empty {key!r}")
    cards: list[CardSpec] = []
    names: set[str] = set()
    for index, item in enumerate(raw["cards"]):
        where = f"{path.name} card {index + 1}"
        if not isinstance(item, dict):
            raise DefinitionError(f"{where} must be an object")
        for key in ("name", "file", "display", "position"):
            if not item.get(key):
                raise DefinitionError(f"{where} needs {key!r}")
        name = str(item["name"])
        where = f"{path.name} card {name!r}"
        if name in names:
            raise DefinitionError(f"{where} appears twice; card names must be unique")
        names.add(name)
        display = str(item["display"])
        if display not in DISPLAYS:
            raise DefinitionError(f"{where} has unknown display {display!r}")
        settings = item.get("visualization_settings") or {}
        if not isinstance(settings, dict):
            raise DefinitionError(f"{where}: visualization_settings must be an object")
        pos = item["position"]
        if not isinstance(pos, dict):
            raise DefinitionError(f"{where}: position must be an object")
        position = Position(
            *(_int(pos.get(k), f"{where} position.{k}") for k in ("row", "col", "size_x", "size_y"))
        )
        if position.row < 0 or position.col < 0 or position.size_x < 1 or position.size_y < 1:
            raise DefinitionError(f"{where} has an invalid position {pos}")
        if position.col + position.size_x > GRID_COLUMNS:
            raise DefinitionError(f"{where} is wider than the {GRID_COLUMNS}-column grid")
        sql_path = directory / str(item["file"])
        try:
            sql = sql_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise DefinitionError(f"{where}: SQL file {item['file']} not found") from None
        if not sql:
            raise DefinitionError(f"{where}: SQL file {item['file']} is empty")
        money = item.get("money") or []
        if not isinstance(money, list) or not all(isinstance(m, str) and m for m in money):
            raise DefinitionError(f"{where}: money must be a list of column names")
        cards.append(
            CardSpec(
                name=name,
                file=str(item["file"]),
                sql=sql,
                display=display,
                visualization_settings=settings,
                position=position,
                description=str(item.get("description") or "").strip(),
                money=tuple(money),
            )
        )
    _check_overlaps(cards, path.name)
    return DashboardSpec(
        name=str(raw["name"]),
        collection=str(raw["collection"]),
        description=str(raw.get("description") or "").strip(),
        cards=tuple(cards),
        directory=directory,
    )


def _check_overlaps(cards: list[CardSpec], where: str) -> None:
    taken: dict[tuple[int, int], str] = {}
    for card in cards:
        p = card.position
        for r in range(p.row, p.row + p.size_y):
            for c in range(p.col, p.col + p.size_x):
                if (r, c) in taken:
                    raise DefinitionError(
                        f"{where}: cards {taken[(r, c)]!r} and {card.name!r} overlap "
                        f"at row {r}, col {c}"
                    )
                taken[(r, c)] = card.name
