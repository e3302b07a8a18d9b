"""Reduced precision, measured before it is offered: bf16 matrix products against
foodvec's full-precision encoder, in the same run.

The bf16 encoder is the same model under torch's CPU autocast (oneDNN bf16 kernels),
fed the same exact-length batches. Reported: phrases/s of both on unique short Korean
phrases; per-vector cosine to sentence-transformers' `encode` (the reference) for
both; and the quality gate, top-10 neighbour overlap on a real corpus: distinct USDA
food names encoded both ways, searched exactly with queries (other USDA names) encoded
at full precision, as the query path does.

    .venv/bin/python -m bench.precision [--corpus 20000] [--korean 3000] [--queries 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import emit, machine
from bench.korean import korean_phrases
from bench.usda import sample_rows


def bf16_encoder(fast, st_model):
    """``texts -> vectors`` with bf16 products, batched exactly as ``fast`` batches."""
    import torch

    bert = st_model[0].auto_model.eval()

    def encode(texts: list[str]) -> np.ndarray:
        encs = fast.tokenizer.encode_batch(texts)
        out = np.empty((len(texts), fast.dim), dtype=np.float32)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            for rows in fast.batches([len(e.ids) for e in encs]):
                ids = torch.tensor([encs[i].ids for i in rows])
                types = torch.tensor([encs[i].type_ids for i in rows])
                h = bert(input_ids=ids, token_type_ids=types).last_hidden_state.float()
                out[rows] = torch.nn.functional.normalize(h.mean(1), dim=1).numpy()
        return out

    return encode


def timed(fn, texts):
    fn(texts[:64])
    t0 = time.perf_counter()
    out = fn(texts)
    return out, time.perf_counter() - t0


def cosine_summary(a: np.ndarray, b: np.ndarray) -> dict:
    cos = (a * b).sum(axis=1)
    return {
        "min": round(float(cos.min()), 7),
        "mean": round(float(cos.mean()), 7),
        "share_below_0.9999": round(float(np.mean(cos < 0.9999)), 4),
    }


def top_k(queries: np.ndarray, corpus: np.ndarray, k: int) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(corpus)
    return index.search(queries, k)[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", type=int, default=20000, help="distinct USDA names")
    ap.add_argument("--korean", type=int, default=3000, help="unique Korean phrases")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()

    from indexer import load_embedder

    rows = sample_rows(args.corpus + args.queries, seed=3)
    names = [r["text"] for r in rows]
    corpus_texts, query_texts = names[args.queries :], names[: args.queries]
    korean = korean_phrases(args.korean)
    with tempfile.TemporaryDirectory() as cache:
        fast = load_embedder("base", encoder="onnx", cache_dir=Path(cache))
        ref = load_embedder("base", encoder="torch")
        bf16 = bf16_encoder(fast, ref.model)
        k_fast, s_fast = timed(fast.encode, korean)
        k_bf16, s_bf16 = timed(bf16, korean)
        k_ref = ref.encode(korean)
        c_fast = fast.encode(corpus_texts)
        c_bf16 = bf16(corpus_texts)
        queries = fast.encode(query_texts)
    full = top_k(queries, c_fast, args.k)
    reduced = top_k(queries, c_bf16, args.k)
    overlap = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(full, reduced, strict=True)])
    emit(
        {
            "bench": "precision",
            "korean_phrases": len(korean),
            "phrases_per_s": {
                "foodvec_fp32": round(len(korean) / s_fast, 1),
                "bf16_autocast": round(len(korean) / s_bf16, 1),
            },
            "cosine_to_reference_korean": {
                "foodvec_fp32": cosine_summary(k_ref, k_fast),
                "bf16_autocast": cosine_summary(k_ref, k_bf16),
            },
            "cosine_bf16_to_fp32_usda": cosine_summary(c_fast, c_bf16),
            "usda_corpus": len(corpus_texts),
            "queries": len(query_texts),
            f"top{args.k}_overlap_bf16_vs_fp32": round(float(overlap), 4),
            "gate": "default only with overlap >= 0.99; offered only with every vector "
            "within cosine 0.9999 of the reference",
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
