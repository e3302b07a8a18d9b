"""Model quality measures over labelled phrases and graded retrieval (pure functions)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BadInputError, BadRowError


def load_labelled(path: Path | str) -> tuple[list[str], np.ndarray]:
    """Read a CSV with ``text`` and ``label`` (0 or 1) columns."""
    path = Path(path)
    if not path.is_file():
        from .readers import not_a_file

        raise BadInputError(f"{path}: {not_a_file(path)}")
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        if "text" not in cols or "label" not in cols:
            raise BadInputError(
                f"{path}: needs columns text and label (columns: {', '.join(cols)})"
            )
        for n, row in enumerate(reader, 2):
            text = (row.get("text") or "").strip()
            if not text:
                raise BadRowError(f"{path.name} line {n}", "the text is empty")
            if row.get("label") not in ("0", "1"):
                raise BadRowError(
                    f"{path.name} line {n}", f"label must be 0 or 1, not {row.get('label')!r}"
                )
            texts.append(text)
            labels.append(int(row["label"]))
    if len(set(labels)) < 2:
        raise BadInputError(f"{path}: both labels (0 and 1) must occur")
    return texts, np.array(labels)


def label_margin(emb: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine of same-label pairs minus mean cosine of cross-label pairs."""
    sims = emb @ emb.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    return float(sims[same & off].mean() - sims[~same].mean())


def knn_accuracy(emb: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 1-nearest-neighbour label accuracy within one set."""
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    return float((labels[sims.argmax(axis=1)] == labels).mean())


def cross_knn_accuracy(
    ref: np.ndarray, ref_labels: np.ndarray, emb: np.ndarray, labels: np.ndarray
) -> float:
    """Accuracy when each phrase takes the label of its nearest reference phrase."""
    return float((ref_labels[(emb @ ref.T).argmax(axis=1)] == labels).mean())


def ndcg_at_k(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    gains = [relevant.get(doc, 0) for doc in ranked[:k]]
    dcg = sum((2**g - 1) / np.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / np.log2(i + 2) for i, g in enumerate(ideal))
    return float(dcg / idcg) if idcg else 0.0


def retrieval_ndcg(encode, data: dict[str, Any], k: int = 10) -> float:
    """Mean nDCG@k of a query set ``{"corpus": {id: text}, "queries": [...]}``."""
    ids = list(data["corpus"])
    docs = encode([data["corpus"][i] for i in ids])
    qs = encode([q["query"] for q in data["queries"]])
    scores = qs @ docs.T
    out = []
    for q, row in zip(data["queries"], scores, strict=True):
        ranked = [ids[j] for j in np.argsort(-row, kind="stable")[:k]]
        out.append(ndcg_at_k(ranked, q["relevant"], k))
    return float(np.mean(out))


def evaluate_model(
    encode, train_path: Path, heldout_path: Path, english_path: Path | None
) -> dict[str, float]:
    tr_texts, tr_labels = load_labelled(train_path)
    he_texts, he_labels = load_labelled(heldout_path)
    tr = encode(tr_texts)
    he = encode(he_texts)
    out = {
        "heldout_label_margin": label_margin(he, he_labels),
        "heldout_1nn_accuracy": knn_accuracy(he, he_labels),
        "heldout_1nn_from_train_accuracy": cross_knn_accuracy(tr, tr_labels, he, he_labels),
    }
    if english_path is not None and Path(english_path).is_file():
        data = json.loads(Path(english_path).read_text(encoding="utf-8"))
        out["english_ndcg@10"] = retrieval_ndcg(encode, data)
    return {k: round(v, 4) for k, v in out.items()}


def calibrate_threshold(encode, texts: Sequence[str], share: float = 0.005) -> float:
    """The mining threshold a model should use: the cosine that only ``share`` of the
    pairs of distinct foods reach, rounded up to 0.01 (distinct foods are rarely
    near-duplicates, so few of their pairs should be mined)."""
    v = encode(list(texts))
    upper = (v @ v.T)[np.triu_indices(len(texts), k=1)]
    return float(min(0.99, math.ceil(float(np.quantile(upper, 1.0 - share)) * 100) / 100))


def pca_2d(emb: np.ndarray) -> np.ndarray:
    centred = emb - emb.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T
