"""Unique short Korean food phrases for benchmarks: every sample food's name joined to
other foods' nutrition profiles (indexer/data/sample_foods.csv), in a fixed shuffled order."""

from __future__ import annotations

import csv
import random

from bench.common import ROOT


def korean_phrases(n: int, seed: int = 0) -> list[str]:
    with open(ROOT / "indexer" / "data" / "sample_foods.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = [r["name"] for r in rows]
    profiles = [r["text"].split(": ", 1)[1] for r in rows]
    combos = [f"{a}: {p}" for a in names for p in profiles]
    random.Random(seed).shuffle(combos)
    if n > len(combos):
        raise SystemExit(f"at most {len(combos)} phrases")
    return combos[:n]


def write_korean_csv(path, n: int, duplicate_share: float = 0.0, seed: int = 0):
    """n rows; with duplicate_share, that share of the rows repeats earlier texts."""
    unique = korean_phrases(int(round(n * (1 - duplicate_share))), seed)
    rng = random.Random(seed + 1)
    texts = unique + [rng.choice(unique) for _ in range(n - len(unique))]
    rng.shuffle(texts)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        for i, t in enumerate(texts):
            w.writerow([f"p{i}", t])
    return path
