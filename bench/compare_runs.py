"""Compare two run folders: the same answers, the same Insiders, the same accounting?

    python bench/compare_runs.py BEFORE_DIR AFTER_DIR

Prints every difference in answers.json (figures compared to 1e-9 relative), in the
Insiders list (insiders.csv) and in the quarantine counts per reason; exits 1 if any.
Used to show that a refactoring changed no figure (docs/architecture.md).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd


def _diff(a: object, b: object, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'after' if key in b else 'before'}")
            else:
                _diff(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items before, {len(b)} after")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{path}[{i}]", out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
            out.append(f"{path}: {a!r} -> {b!r}")
    elif a != b:
        out.append(f"{path}: {str(a)[:120]!r} -> {str(b)[:120]!r}")


def compare(before: Path, after: Path) -> list[str]:
    out: list[str] = []
    a = json.loads((before / "answers.json").read_text())
    b = json.loads((after / "answers.json").read_text())
    _diff(a, b, "answers", out)
    ia, ib = pd.read_csv(before / "insiders.csv"), pd.read_csv(after / "insiders.csv")
    if list(ia["customer_id"].astype(str)) != list(ib["customer_id"].astype(str)):
        out.append(f"insiders.csv: {len(ia)} Insiders before, {len(ib)} after, "
                   f"{len(set(ia['customer_id']) ^ set(ib['customer_id']))} differ")
    elif not ia.equals(ib):
        out.append("insiders.csv: same Insiders, other figures")
    qa = pd.read_csv(before / "quarantine.csv.gz", dtype=str)["reason"].value_counts()
    qb = pd.read_csv(after / "quarantine.csv.gz", dtype=str)["reason"].value_counts()
    if not qa.sort_index().equals(qb.sort_index()):
        out.append(f"quarantine: {qa.to_dict()} -> {qb.to_dict()}")
    return out


def main() -> int:
    before, after = Path(sys.argv[1]), Path(sys.argv[2])
    diffs = compare(before, after)
    answers = json.loads((after / "answers.json").read_text())
    print(f"{before} vs {after}: {answers['how_many']['count']:,} Insiders, "
          f"{answers['data_quality']['rows_in']:,} rows in, "
          f"{answers['data_quality']['rows_kept']:,} kept")
    for line in diffs:
        print("  " + line)
    print("identical" if not diffs else f"{len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
