"""The fast encoder: ONNX Runtime on a graph exported from the same model, fed by the
``tokenizers`` library. No torch at query time.

It agrees with sentence-transformers' ``encode`` to cosine >= 0.9999 per vector (a test
checks it) and is batch invariant, bit for bit (a test checks that too): texts are
grouped by exact token length, so no text is ever padded, and no batch has a single row
(ONNX Runtime computes a one-row batch along another path, differing in the last bits
from every larger batch, which all agree).
The graph is exported once per model fingerprint (that step needs torch) and cached.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .embedder import ProbedDim
from .errors import FoodvecError

GRAPH = "model.onnx"


def supported(path: Path) -> bool:
    """True for Transformer -> mean Pooling (-> Normalize) models, the shape exported."""
    try:
        modules = json.loads((path / "modules.json").read_text())
    except (OSError, ValueError):
        return False
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"]):
        return False
    pool_dir = path / modules[1].get("path", "1_Pooling")
    try:
        pool = json.loads((pool_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    mean = pool.get("pooling_mode") == "mean" or (
        pool.get("pooling_mode_mean_tokens") is True
        and not any(
            pool.get(k)
            for k in (
                "pooling_mode_cls_token",
                "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens",
                "pooling_mode_lasttoken",
            )
        )
    )
    return mean and (path / "tokenizer.json").exists()


def max_seq_length(path: Path) -> int:
    try:
        return int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 256


def export(model_path: Path, out_dir: Path) -> Path:
    """Export Transformer + mean pooling + normalisation to ONNX (needs torch)."""
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_path), device="cpu")
    bert = st[0].auto_model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.m(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(out.dtype)
            emb = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(emb, p=2, dim=1)

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (GRAPH + f".{os.getpid()}.tmp")
    example = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Encoder(bert),
            (example, example, torch.zeros_like(example)),
            str(tmp),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    os.replace(tmp, out_dir / GRAPH)
    return out_dir / GRAPH


class OnnxEmbedder(ProbedDim):
    """Same interface as ``SentenceTransformerEmbedder``; see the module docstring."""

    def __init__(
        self,
        path: Path,
        fingerprint: str,
        cache_dir: Path,
        batch_size: int = 64,
        threads: int | None = None,
    ):
        self.path = Path(path)
        self.name = str(self.path)
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        graph = cache_dir / fingerprint / GRAPH
        if not graph.exists():
            export(self.path, graph.parent)
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(graph), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # a broken cache file: say where it is
            raise FoodvecError(
                f"cannot load the ONNX graph {graph}: {exc}; delete it to export again"
            ) from None
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_seq_length(self.path))
        self._dim = int(self.session.get_outputs()[0].shape[1] or 0) or None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        encs = self.tokenizer.encode_batch(list(texts))
        by_len: dict[int, list[int]] = defaultdict(list)
        for i, e in enumerate(encs):
            by_len[len(e.ids)].append(i)
        out: np.ndarray | None = None
        for length in sorted(by_len):
            idx = by_len[length]
            for start in range(0, len(idx), self.batch_size):
                rows = idx[start : start + self.batch_size]
                # ONNX Runtime's kernels take another path for a batch of one, whose
                # last bits differ from any larger batch: a lone text is run twice.
                feed = rows if len(rows) > 1 else rows * 2
                ids = np.array([encs[i].ids for i in feed], dtype=np.int64)
                types = np.array([encs[i].type_ids for i in feed], dtype=np.int64)
                mask = np.ones_like(ids)
                vecs = self.session.run(
                    None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
                )[0][: len(rows)]
                if out is None:
                    out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
                out[rows] = vecs
        assert out is not None
        return out
