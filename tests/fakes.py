"""A deterministic stand-in for a sentence-transformers model (no torch, instant)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


class FakeEmbedder:
    """Hashes character bigrams into a fixed number of dimensions, then normalises.

    Texts sharing many bigrams get close vectors, which is enough for search tests.
    It counts calls and texts so tests can check batching and caching.
    """

    def __init__(self, dim: int = 64, salt: str = ""):
        self._dim = dim
        self.salt = salt
        self.name = f"fake{dim}{salt}"
        self.fingerprint = hashlib.sha256(self.name.encode()).hexdigest()
        self.calls = 0
        self.texts_encoded = 0

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, t in enumerate(texts):
            padded = f" {t} "
            for a, b in zip(padded, padded[1:], strict=False):
                h = hashlib.blake2b((self.salt + a + b).encode(), digest_size=8).digest()
                out[row, int.from_bytes(h[:4], "little") % self._dim] += 1.0
                out[row, int.from_bytes(h[4:], "little") % self._dim] += 0.5
        out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
        return out
