"""The fast encoder: ONNX Runtime on a graph exported from the same model, fed by the
``tokenizers`` library. No torch at query time.

It agrees with sentence-transformers' ``encode`` to cosine >= 0.9999 per vector (a test
checks it) and is batch invariant, bit for bit (a test checks that too): texts are
grouped by exact token length, so no text is ever padded, and no batch has a single row
(ONNX Runtime computes a one-row batch along another path, differing in the last bits
from every larger batch, which all agree).

Because nothing is padded, the graph takes no attention mask: attention runs without
masking operators and the pooling is a plain mean. BERT models export through a
written-out forward pass whose dense layers are single Gemm operators (``bert_forward``).
Batches hold about ``TOKENS_PER_BATCH`` tokens (the fastest size measured on Korean
phrases; larger batches outgrow the caches) and run on one single-threaded session per
core, each taking the next batch as it finishes its last; this beats one session
spreading every operator over all cores, which waits at each operator for the slowest
thread. A lone batch (a query) runs on a session that uses every core, which is what one
batch needs. A session's result for a batch does not depend on its thread count or on
which session runs it (a test checks that too).
The graph is exported once per model fingerprint (that step needs torch) and cached.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .encoder import ProbedDim
from .errors import FoodvecError, require_training_extra

GRAPH = "encoder.onnx"  # inputs input_ids, token_type_ids; output embedding
STALE_GRAPHS = ("model.onnx",)  # earlier exports (with an attention-mask input)
TOKENS_PER_BATCH = 512


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


def worker_count() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def plain_bert(model) -> bool:
    """True for a BERT encoder that ``bert_forward`` writes out exactly."""
    cfg = model.config
    return (
        type(model).__name__ == "BertModel"
        and getattr(cfg, "position_embedding_type", "absolute") == "absolute"
        and not getattr(cfg, "is_decoder", False)
        and not getattr(cfg, "add_cross_attention", False)
    )


def bert_forward(model):
    """BERT's forward pass for unpadded rows, written out for export.

    The same modules and weights as ``BertModel``, in the same order; what differs is
    the shape of the exported graph. Dense layers see (rows x tokens, hidden) matrices,
    so each exports as one Gemm with its bias inside (a 3-D MatMul exports as MatMul
    plus a separate Add), and there is no attention mask to apply.
    """
    import math

    import torch

    cfg = model.config
    hidden, heads = cfg.hidden_size, cfg.num_attention_heads
    size = hidden // heads

    class BertMean(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, token_type_ids):
            batch, tokens = input_ids.shape
            emb = self.m.embeddings
            positions = torch.arange(tokens, device=input_ids.device).unsqueeze(0)
            x = (
                emb.word_embeddings(input_ids)
                + emb.token_type_embeddings(token_type_ids)
                + emb.position_embeddings(positions)
            )
            x = emb.LayerNorm(x).reshape(-1, hidden)
            for layer in self.m.encoder.layer:
                att = layer.attention
                q = att.self.query(x).view(batch, tokens, heads, size).transpose(1, 2)
                k = att.self.key(x).view(batch, tokens, heads, size).permute(0, 2, 3, 1)
                v = att.self.value(x).view(batch, tokens, heads, size).transpose(1, 2)
                weights = torch.softmax(torch.matmul(q, k) / math.sqrt(size), dim=-1)
                ctx = torch.matmul(weights, v).transpose(1, 2).reshape(-1, hidden)
                x = att.output.LayerNorm(att.output.dense(ctx) + x)
                h = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(x))
                x = layer.output.LayerNorm(layer.output.dense(h) + x)
            mean = x.view(batch, tokens, hidden).mean(1)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    return BertMean(model)


def export(model_path: Path, out_dir: Path, generic: bool = False) -> Path:
    """Export Transformer + mean pooling + normalisation to ONNX (needs torch).

    The graph has no attention-mask input: the encoder never pads, so every token of a
    row is a real token and the mean runs over all of them. BERT models (MiniLM among
    them) export through ``bert_forward``; others, or ``generic``, through the model's
    own forward.
    """
    require_training_extra(
        f"{model_path} has no exported ONNX graph, and exporting one",
        "torch",
        "sentence_transformers",
    )
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_path), device="cpu")
    model = st[0].auto_model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, token_type_ids):
            out = self.m(input_ids=input_ids, token_type_ids=token_type_ids).last_hidden_state
            return torch.nn.functional.normalize(out.mean(1), p=2, dim=1)

    body = Encoder(model) if generic or not plain_bert(model) else bert_forward(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (GRAPH + f".{os.getpid()}.tmp")
    example = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            body,
            (example, torch.zeros_like(example)),
            str(tmp),
            input_names=["input_ids", "token_type_ids"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": axes,
                "token_type_ids": axes,
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    os.replace(tmp, out_dir / GRAPH)
    for stale in STALE_GRAPHS:
        (out_dir / stale).unlink(missing_ok=True)
    return out_dir / GRAPH


def graph_path(model: Path, fingerprint: str, cache_dir: Path) -> Path:
    """Where the model's graph is: in the model folder (``foodvec train`` writes it
    there), else in the per-user cache, where it is exported when missing. Both are
    keyed by the model's fingerprint, so a changed model never meets an old graph."""
    shipped = model / "onnx" / fingerprint / GRAPH
    return shipped if shipped.is_file() else cache_dir / fingerprint / GRAPH


class OnnxEmbedder(ProbedDim):
    """Same interface as ``SentenceTransformerEmbedder``; see the module docstring.

    ``batch_size`` caps the rows of a batch, ``tokens_per_batch`` its tokens (a batch
    always has at least two rows); ``workers`` is the number of sessions (default: one
    per core). A session over all cores is made at once and runs any encode that is a
    single batch, such as a query; the single-threaded worker sessions are made by their
    workers on the first encode that has work for them, so a one-query process loads
    the graph once.
    """

    def __init__(
        self,
        path: Path,
        fingerprint: str,
        cache_dir: Path,  # the per-user graph cache (settings: FOODVEC_CACHE/onnx)
        batch_size: int = 64,
        workers: int | None = None,
        tokens_per_batch: int = TOKENS_PER_BATCH,
    ):
        self.path = Path(path)
        self.name = str(self.path)
        self.fingerprint = fingerprint
        self.batch_size = max(2, batch_size)
        self.tokens_per_batch = tokens_per_batch
        self.workers = max(1, workers or worker_count())
        self.graph = graph_path(self.path, fingerprint, cache_dir)
        if not self.graph.exists():
            export(self.path, self.graph.parent)
        from tokenizers import Tokenizer

        # One session over every core for an encode that is a single batch (a query),
        # one single-threaded session per worker for the rest, made when first needed.
        self._single = self._session(threads=self.workers)
        self._sessions: list = []
        self._grow = threading.Lock()
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_seq_length(self.path))
        width = self._single.get_outputs()[0].shape[1]  # a number, or a symbolic name
        self._dim = width if isinstance(width, int) and width > 0 else None

    def _session(self, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if threads > 1:
            # The query session's threads sleep when a query is done instead of spinning
            # for more work: a server answers one query at a time, and spinning threads
            # take the cores from whatever runs next (another replica on the machine).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self.graph), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a broken cache file: say where it is
            raise FoodvecError(
                f"cannot load the ONNX graph {self.graph}: {exc}; delete it to export again"
            ) from None

    def _worker_session(self, k: int):
        """Session ``k``, made on first use (inside the worker, while the others work)."""
        with self._grow:
            if k < len(self._sessions):
                return self._sessions[k]
        session = self._session()
        with self._grow:
            if k < len(self._sessions):  # another encode made it meanwhile
                return self._sessions[k]
            self._sessions.append(session)
            return session

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Row indices grouped by exact token length, then cut to the batch limits."""
        by_len: dict[int, list[int]] = defaultdict(list)
        for i, n in enumerate(lengths):
            by_len[n].append(i)
        out = []
        for length in sorted(by_len, reverse=True):  # longest first: better balance
            idx = by_len[length]
            step = max(2, min(self.batch_size, self.tokens_per_batch // max(length, 1)))
            out.extend(idx[start : start + step] for start in range(0, len(idx), step))
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encs = self.tokenizer.encode_batch(list(texts))
        batches = self.batches([len(e.ids) for e in encs])

        def run(session, rows: list[int]) -> np.ndarray:
            # ONNX Runtime's kernels take another path for a batch of one, whose
            # last bits differ from any larger batch: a lone text is run twice.
            feed = rows if len(rows) > 1 else rows * 2
            ids = np.array([encs[i].ids for i in feed], dtype=np.int64)
            types = np.array([encs[i].type_ids for i in feed], dtype=np.int64)
            return session.run(None, {"input_ids": ids, "token_type_ids": types})[0][: len(rows)]

        if self._dim is None:  # a graph that does not declare its width: look once
            self._dim = int(run(self._single, batches[0]).shape[1])
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        workers = min(self.workers, len(batches))
        if workers == 1:
            for rows in batches:
                out[rows] = run(self._single, rows)
            return out
        claim = threading.Lock()
        next_batch = iter(range(len(batches)))
        failed = threading.Event()

        def worker(k: int) -> None:
            session = self._worker_session(k)
            while not failed.is_set():
                with claim:
                    j = next(next_batch, None)
                if j is None:
                    return
                try:
                    out[batches[j]] = run(session, batches[j])
                except BaseException:
                    failed.set()  # the other workers stop at their next batch
                    raise

        with ThreadPoolExecutor(workers, thread_name_prefix="foodvec-encode") as pool:
            for done in [pool.submit(worker, k) for k in range(workers)]:
                done.result()  # re-raises a worker's error
        return out
