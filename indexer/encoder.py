"""The encoder interface: text in, normalised float32 vectors out. Both encoders
(sentence-transformers in ``embedder.py``, ONNX Runtime in ``onnx_encoder.py``) follow
it; ``embedder.load_embedder`` chooses between them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str
    fingerprint: str

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class ProbedDim:
    """``dim`` for encoders whose output size is not declared: encode once and look."""

    _dim: int | None = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.encode(["dimension probe"]).shape[1])
        return self._dim
