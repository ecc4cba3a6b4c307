"""The architecture holds: small modules, source kinds only in sources/, the environment only
in config.py, and one stage list for the CLI, the backfill and the DAG (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from insiders import stages
from insiders.sources import SOURCES

PACKAGE = Path(__file__).resolve().parents[1] / "plugins" / "insiders"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_no_module_is_over_600_lines():
    sizes = {_relative(p): len(p.read_text().splitlines()) for p in MODULES}
    assert {name: n for name, n in sizes.items() if n > 600} == {}


def test_only_sources_name_a_source_kind():
    """The core never asks which source it has: no string literal naming a registered kind
    outside sources/ (comments and docstrings may mention them)."""
    offenders = []
    for path in MODULES:
        if _relative(path).startswith("sources/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value in SOURCES:
                offenders.append(f"{_relative(path)}:{node.lineno} {node.value!r}")
    assert offenders == []


def test_the_environment_is_read_only_in_config():
    pattern = re.compile(r"\bos\.environ\b|\bgetenv\(")
    readers = [_relative(p) for p in MODULES if pattern.search(p.read_text())]
    assert readers == ["config.py"]


def test_no_third_party_internals_are_patched_or_imported():
    """No private import from another package (`sklearn.tree._tree`) and no assignment to an
    attribute of an imported third-party module (a process-wide monkeypatch)."""
    problems = []
    for path in MODULES:
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module != "__future__":
                if any(part.startswith("_") for part in node.module.split(".")) or any(
                        a.name.startswith("_") for a in node.names):
                    problems.append(f"{_relative(path)}:{node.lineno} from {node.module}")
            if isinstance(node, ast.Import):
                imported |= {a.asname or a.name.split(".")[0] for a in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    root = target
                    while isinstance(root, ast.Attribute):
                        root = root.value
                    if isinstance(target, ast.Attribute) and isinstance(root, ast.Name) \
                            and root.id in imported and root.id not in ("self", "cls"):
                        problems.append(f"{_relative(path)}:{node.lineno} patches {root.id}")
    assert problems == []


def test_one_stage_list():
    names = [s.name for s in stages.MONTHLY]
    assert names[: len(stages.ANALYSIS)] == [s.name for s in stages.ANALYSIS]
    assert names == ["extract", "quality", "features", "segment", "value", "insiders", "forecast",
                     "evaluate", "stability", "report", "write_documents", "sync_sql"]
    assert len(set(names)) == len(names)
