"""The health head: how healthy a nutrition profile reads, from its embedding alone.

A logistic regression on the model's normalised 384-d vectors, fitted by ``foodvec
train`` on the seed's labelled phrases (``indexer/data/train.csv``) and on the labelled
food descriptions of the demo corpus and of the lookup benchmark's dev half, and saved
beside the model as ``health_head.json`` (weights, bias, and its accuracy on the
held-out phrases of ``indexer/data/heldout.csv`` and on the foods of the lookup test
half, none of which it saw). Phrases alone teach it short profiles, not whole
descriptions: fitted on them only, it labelled held-out foods barely better than a
coin (docs/model.md). Scoring is numpy only, so a search process needs no torch
for it. A score is in [0, 1]: the probability that the text describes a healthy
profile (label 1).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEAD_FILE = "health_head.json"
# L2 strengths tried by cross-validation on the training phrases (never the held-out).
L2_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
FOLDS = 5


@dataclass(frozen=True)
class HealthHead:
    """A fitted head: ``score(v) = sigmoid(v @ weights + bias)``."""

    weights: np.ndarray
    bias: float
    l2: float = 0.0
    heldout_accuracy: float | None = None
    train_rows: int = 0
    foods_accuracy: float | None = None  # on held-out food descriptions

    def score(self, vectors: np.ndarray) -> np.ndarray:
        """Probability of a healthy profile for each row of ``vectors`` (n, dim), or
        for one vector (dim,)."""
        z = np.asarray(vectors, dtype=np.float64) @ self.weights + self.bias
        return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)

    def as_dict(self) -> dict:
        return {
            "weights": [round(float(x), 7) for x in self.weights],
            "bias": float(self.bias),
            "l2": self.l2,
            "heldout_accuracy": self.heldout_accuracy,
            "foods_accuracy": self.foods_accuracy,
            "train_rows": self.train_rows,
        }


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 30) -> tuple:
    """Weights and bias of an L2-regularised logistic regression (Newton's method;
    the bias is not penalised)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    reg = np.full(d + 1, l2 * n)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ w, -50, 50)))
        grad = xa.T @ (p - y) + reg * w
        hess = xa.T @ (xa * (p * (1 - p))[:, None]) + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def _accuracy(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> float:
    return float((((x @ w + b) > 0).astype(int) == y).mean())


def choose_l2(x: np.ndarray, y: np.ndarray, grid: Sequence[float] = L2_GRID) -> float:
    """The L2 strength with the best k-fold accuracy on the training rows (the
    strongest on ties, for the smoothest head)."""
    order = np.random.default_rng(0).permutation(len(y))
    folds = np.array_split(order, FOLDS)
    best, best_acc = grid[-1], -1.0
    for l2 in sorted(grid, reverse=True):
        accs = []
        for k in range(FOLDS):
            test = folds[k]
            train = np.concatenate([f for j, f in enumerate(folds) if j != k])
            w, b = fit_logistic(x[train], y[train], l2)
            accs.append(_accuracy(w, b, x[test], y[test]))
        if np.mean(accs) > best_acc + 1e-9:
            best, best_acc = l2, float(np.mean(accs))
    return best


def train_head(
    encode,
    texts: Sequence[str],
    labels: np.ndarray,
    heldout: tuple | None = None,
    heldout_foods: tuple | None = None,
) -> HealthHead:
    """Fit the head on ``encode(texts)`` and measure it on ``heldout`` phrases and on
    ``heldout_foods`` descriptions (each a pair of texts and labels)."""
    x = encode(list(texts))
    y = np.asarray(labels, dtype=int)
    l2 = choose_l2(x, y)
    w, b = fit_logistic(x, y, l2)

    def accuracy(held: tuple | None) -> float | None:
        if held is None or not len(held[0]):
            return None
        return round(_accuracy(w, b, encode(list(held[0])), np.asarray(held[1], dtype=int)), 4)

    return HealthHead(
        w,
        b,
        l2=l2,
        heldout_accuracy=accuracy(heldout),
        train_rows=len(y),
        foods_accuracy=accuracy(heldout_foods),
    )


def save_head(model_dir: Path | str, head: HealthHead) -> Path:
    path = Path(model_dir) / HEAD_FILE
    path.write_text(json.dumps(head.as_dict(), indent=1), encoding="utf-8")
    return path


def load_head(model_dir: Path | str) -> HealthHead | None:
    """The head saved beside a model, or None when it has none (or an unreadable one)."""
    path = Path(model_dir) / HEAD_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        weights = np.asarray(raw["weights"], dtype=np.float64)
        bias = float(raw["bias"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if weights.ndim != 1 or not np.isfinite(weights).all() or not np.isfinite(bias):
        return None
    try:
        rows = int(raw.get("train_rows") or 0)
        l2 = float(raw.get("l2") or 0.0)
    except (TypeError, ValueError, OverflowError):
        return None
    accuracy, foods = _fraction(raw.get("heldout_accuracy")), _fraction(raw.get("foods_accuracy"))
    if accuracy is _BAD or foods is _BAD:
        return None
    return HealthHead(
        weights, bias, l2=l2, heldout_accuracy=accuracy, train_rows=rows, foods_accuracy=foods
    )


_BAD = object()


def _fraction(value) -> float | None | object:
    """An accuracy read from the file: a number in [0, 1]; None when missing, NaN,
    infinite or out of range (unknown, not shown as a figure); _BAD when unreadable."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return _BAD
    return value if 0.0 <= value <= 1.0 else None


@functools.lru_cache(maxsize=8)
def _cached_head(folder: str, stamp: tuple[float, int]) -> HealthHead | None:
    return load_head(folder)


def head_for(spec: str) -> HealthHead | None:
    """The head of the model ``spec`` (a model folder), cached until its file changes;
    None for a spec that is not a folder or a model without a head."""
    path = Path(spec) / HEAD_FILE
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return _cached_head(str(Path(spec)), (st.st_mtime, st.st_size))
