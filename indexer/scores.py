"""One score in [0, 1] for every search mode.

Each mode ranks by its own raw number (a cosine, a keyword coverage, their fusion, or
the judged score of a query that names needs). None of these means the same across
modes, so each is mapped through a logistic curve fitted on the dev half of the Korean
lookup benchmark: the score is the estimated chance that the hit is relevant (graded
1 or 2 there). ``--min-score 0.5`` therefore keeps, in every mode, the hits judged
more likely relevant than not. The curves are data (``calibration.json``), refitted
by ``python -m bench.lookup --calibrate`` for the default model; the map is monotone,
so it never changes an order.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from .settings import DATA_DIR

CALIBRATION_PATH = DATA_DIR / "calibration.json"
# The raw scales, named for the curves: "judged" is a hybrid or lexical query that
# names a need or nutrient (indexer.ranking).
SCALES = ("dense", "lexical", "hybrid", "judged")
# Off only while the curves themselves are fitted (bench.lookup --calibrate): scores
# are then the raw numbers.
ENABLED = True


@lru_cache(maxsize=4)
def curves(path: Path = CALIBRATION_PATH) -> dict[str, tuple[float, float]]:
    """(slope, intercept) per scale; the identity-like (1, 0) curve clipped when the
    file is missing."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for scale in SCALES:
        c = data.get("curves", {}).get(scale)
        if c is not None:
            out[scale] = (float(c["slope"]), float(c["intercept"]))
    return out


def calibrated(scale: str, raw: float, path: Path = CALIBRATION_PATH) -> float:
    """The chance that a hit with this raw score is relevant, in [0, 1]."""
    if not ENABLED:
        return raw
    c = curves(path).get(scale)
    if c is None:
        return min(max(raw, 0.0), 1.0)
    z = c[0] * raw + c[1]
    if z < -60:
        return 0.0
    return round(1.0 / (1.0 + math.exp(-z)), 6)


def fit_curve(raw: list[float], relevant: list[bool]) -> tuple[float, float]:
    """A logistic curve (slope, intercept) fitted by Newton's method on the log loss,
    with a small ridge so that a perfectly separated sample still gives a finite curve."""
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(relevant, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("nothing to fit")
    design = np.stack([x, np.ones_like(x)], axis=1)
    w = np.zeros(2)
    ridge = 1e-3 * np.eye(2)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -60, 60)))
        grad = design.T @ (p - y) + ridge @ w
        hess = (design * (p * (1 - p))[:, None]).T @ design + ridge
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])
