"""The FAISS inner-product index over item vectors, and its atomic publication.

On disk, ``index/`` holds ``faiss-<generation>-<kind>.index`` files and one sidecar,
``index.json``, naming the current file and what it reflects (generation, model
fingerprint, item count, kind and parameters). The sidecar is replaced last, by rename,
so a reader sees either the old pair or the new pair, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

SIDECAR = "index.json"
FORMAT = 1

# Below this many items the index is exact (flat); above it, IVF: on 100,000 USDA food
# names (base model) IVF with nprobe 64 gave recall@10 0.98 against exact search, in
# 0.45 ms a query, builds in 7 s and removes vectors in place, so live deletes and
# updates stay cheap (HNSW: recall 0.99 at efSearch 64 but a 28 s build, and no removal).
AUTO_FLAT_MAX = 50_000
IVF_NPROBE = 64
IVF_TRAIN_PER_LIST = 64
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128
# Query batches this small are searched on one thread (see _one_omp_thread).
FEW_QUERIES = 4
# Vector additions this small are made on one thread (see ``AnnIndex.add``).
SMALL_ADD = 64
# When a filter keeps at most this many items, search exactly over that subset (its
# vectors read from the index in memory, about 1 microsecond an item); above it, the
# approximate index searches with the filter as a selector, probing lists in inverse
# proportion to the share kept, times FILTER_PROBE_FACTOR. On 100,000 USDA names (base
# model) filters keeping 8,500-39,000 items took 9-55 ms exactly and 3.3-4.7 ms through
# IVF at twice the proportional probes, with 0.99-1.0 of the exact top 10.
EXACT_SUBSET_MAX = 3_000
FILTER_PROBE_FACTOR = 2
# Above this many items "auto" picks IVF over 8-bit codes ("ivf-sq8": faiss
# IndexIVFScalarQuantizer, QT_8bit, a code per vector, not per residual), whose best
# RERANK_FACTOR * k candidates are ranked again by their exact inner products with the
# stored float vectors, read from the database (bench/quantized.py). On a million USDA
# foods (384 dimensions) IVF took 1,517 MiB of memory (1,566 bytes an item serialized),
# recall@10 0.979, 1.6 ms a search; ivf-sq8 419 MiB (414 bytes), recall@10 0.984 at
# nprobe 128, 2.6 ms, 0.6 ms of it reading the 20 stored vectors. Up to a million the
# 1.5 GiB is affordable and a search reads nothing from the database; above it a quarter
# of the memory is worth that read (modelled at 10 million: 4.0 GiB against 14.8). 2k
# candidates found what 4k did at every nprobe, at 100,000 and a million items; nprobe
# 128 keeps recall@10 above 0.97 at 100,000 items too (0.982; 64 gave 0.969), and 8-bit
# lists scan about twice as fast as float ones.
AUTO_IVF_MAX = 1_000_000
SQ8_NPROBE = 128
RERANK_FACTOR = 2
FLOAT_FLOOR = float(np.finfo(np.float32).min)  # the score FAISS gives a missing result

KINDS = ("flat", "hnsw", "ivf", "ivf-sq8")
# The kinds whose coarse lists are a trained layout, shared through the database by
# every home on it (``storage.layouts``) so that replicas search the same lists.
IVF_KINDS = ("ivf", "ivf-sq8")
# A shared layout is trained again once the items have grown this many times over the
# count it was trained on (its lists follow 4 * sqrt(n): 4x the items, 2x the lists).
LAYOUT_GROWTH = 4.0
# The queries (vectors of indexed items) that measure a new layout's recall@10 against
# exact search (the same lists, every one probed).
RECALL_QUERIES = 100
# (item ids) -> (item ids, their stored float vectors): what a quantized index's
# candidates are re-scored with.
ExactVectors = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class DamagedIndex(Exception):
    """The published index or its sidecar cannot be used (the reason is the message)."""


class _Source:
    """The published file a loaded index maps its vectors from, kept open so that the
    index can be copied into memory before its first change, even after a newer
    publication has replaced the file."""

    def __init__(self, path: Path):
        self._fh = open(path, "rb")  # noqa: SIM115 - open as long as the index maps it
        self._lock = threading.Lock()

    def crc32(self) -> int:
        with self._lock:
            self._fh.seek(0)
            crc = 0
            for block in iter(lambda: self._fh.read(1 << 20), b""):
                crc = zlib.crc32(block, crc)
            return crc

    def load(self) -> faiss.Index:
        """The whole index, read into memory."""
        with self._lock:
            self._fh.seek(0)
            data = np.frombuffer(self._fh.read(), np.uint8)
        return faiss.deserialize_index(data)

    def close(self) -> None:
        self._fh.close()


def ivf_nlist(n: int) -> int:
    """About 4 * sqrt(n) lists, with at least 39 vectors a list to train on."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), max(n // 39, 1)))


def choose_kind(requested: str, count: int) -> str:
    if requested != "auto":
        return requested
    if count <= AUTO_FLAT_MAX:
        return "flat"
    return "ivf" if count <= AUTO_IVF_MAX else "ivf-sq8"


def default_nprobe(kind: str) -> int:
    """The lists an IVF index of ``kind`` probes for a query."""
    return IVF_NPROBE if kind == "ivf" else SQ8_NPROBE


def training_sample(
    dim: int, batches: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], count: int
) -> np.ndarray:
    """About ``IVF_TRAIN_PER_LIST`` vectors a list, taken evenly from one pass."""
    want = min(count, IVF_TRAIN_PER_LIST * ivf_nlist(count))
    every = max(1, count // max(want, 1))
    parts = [vecs[::every] for _, vecs in batches()]
    return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)


def train_centroids(train: np.ndarray | None, dim: int, nlist: int) -> np.ndarray:
    """``nlist`` coarse centroids (k-means, inner product, a fixed seed) of ``train``,
    on at most ``IVF_TRAIN_PER_LIST`` vectors a list. No training data: one list,
    centred at zero (every vector lands in it; the search is exact)."""
    if train is None or not len(train):
        return np.zeros((1, dim), np.float32)
    nlist = max(1, min(nlist, len(train)))
    sample = train
    if len(train) > IVF_TRAIN_PER_LIST * nlist:
        pick = np.random.default_rng(0).choice(len(train), IVF_TRAIN_PER_LIST * nlist, False)
        sample = train[np.sort(pick)]
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = 1234
    ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
    return ivf.quantizer.reconstruct_n(0, nlist)


def layout_recall(ann: AnnIndex, queries: int = RECALL_QUERIES) -> float | None:
    """recall@10 of an IVF index at its probes against exact search over the same
    vectors (every list probed), for the vectors of up to ``queries`` indexed items
    (None: too few items to say)."""
    if ann.kind not in IVF_KINDS or ann.count < 20:
        return None
    ids = ann.ids()
    pick = np.random.default_rng(0).choice(len(ids), min(queries, len(ids)), replace=False)
    q = ann.reconstruct_many(ids[np.sort(pick)])
    k = min(10, ann.count)
    _, got = ann.index.search(q, k)
    _, exact = ann.index.search(q, k, params=faiss.SearchParametersIVF(nprobe=ann.index.nlist))
    hits = sum(len(set(a[a >= 0]) & set(b[b >= 0])) for a, b in zip(got, exact, strict=True))
    return hits / max(1, int((exact >= 0).sum()))


@dataclass
class AnnIndex:
    """A FAISS index whose ids are the items' integer ids."""

    kind: str
    dim: int
    index: faiss.Index
    params: dict[str, Any] = field(default_factory=dict)
    # A loaded index maps the vectors of its published file (pages shared with the page
    # cache, read only): a one-shot search reads what it probes, not the whole file. Its
    # first change copies it into memory (``_own``); None: it is in memory.
    source: _Source | None = None

    # -- construction -------------------------------------------------------------
    @classmethod
    def empty(
        cls,
        kind: str,
        dim: int,
        train: np.ndarray | None = None,
        nlist: int | None = None,
        centroids: np.ndarray | None = None,
        nprobe: int | None = None,
    ) -> AnnIndex:
        """An empty index of ``kind``. IVF: on ``centroids`` (a trained layout, shared)
        when given, else trained here on ``train``."""
        if kind == "flat":
            return cls("flat", dim, faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), {})
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
            params = {
                "M": HNSW_M,
                "efConstruction": HNSW_EF_CONSTRUCTION,
                "efSearch": HNSW_EF_SEARCH,
            }
            return cls("hnsw", dim, faiss.IndexIDMap2(inner), params)
        if kind in IVF_KINDS:
            if centroids is None:
                n = 0 if train is None else len(train)
                centroids = train_centroids(train, dim, nlist or ivf_nlist(n))
            nlist = len(centroids)
            quantizer = faiss.IndexFlatIP(dim)
            quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
            ivf = _ivf_of(kind, quantizer, dim, nlist)
            if not ivf.is_trained and train is not None and len(train):
                # 8-bit codes: their ranges are trained on the sample (the lists are not:
                # a quantizer that holds its centroids is not trained again)
                ivf.train(np.ascontiguousarray(train, dtype=np.float32))
            ivf.nprobe = min(nlist, nprobe or default_nprobe(kind))
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            params = {"nlist": nlist, "nprobe": ivf.nprobe}
            if kind == "ivf-sq8":
                params["rerank"] = RERANK_FACTOR
            return cls(kind, dim, ivf, params)
        raise ValueError(f"unknown index kind {kind!r} (choose from {', '.join(KINDS)})")

    @classmethod
    def build(
        cls,
        kind: str,
        dim: int,
        batches: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
        count: int,
        layout: Callable[[Callable[[], np.ndarray]], tuple[np.ndarray, int, dict]] | None = None,
    ) -> AnnIndex:
        """Build from ``batches()``, a fresh iterable of (ids, vectors) batches per call,
        adding batch by batch so that memory holds the index and one batch, not a second
        copy of every vector. IVF trains on a sample taken in a separate pass, or, with
        ``layout``, takes its lists from it: ``layout(sample)`` returns (centroids,
        nprobe, params to record), calling ``sample()`` only when it must train."""
        if kind in IVF_KINDS:
            taken: list[np.ndarray] = []

            def sample() -> np.ndarray:
                if not taken:
                    taken.append(training_sample(dim, batches, count))
                return taken[0]

            if layout is None:
                centroids = train_centroids(sample(), dim, ivf_nlist(count))
                nprobe, extra = None, {}
            else:
                centroids, nprobe, extra = layout(sample)
            train = sample() if kind != "ivf" else None  # 8-bit codes train their ranges
            ann = cls.empty(kind, dim, train=train, centroids=centroids, nprobe=nprobe)
            ann.params.update(extra)
        else:
            ann = cls.empty(kind, dim)
        for ids, vecs in batches():
            ann.add(ids, vecs)
        return ann

    # -- updates ------------------------------------------------------------------
    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    @property
    def supports_remove(self) -> bool:
        return self.kind != "hnsw"

    @property
    def quantized(self) -> bool:
        """Whether the index holds codes, not the vectors: its scores are approximate
        and ``reconstruct`` returns the codes decoded."""
        return self.kind == "ivf-sq8"

    @property
    def rerank_factor(self) -> int:
        """How many times k candidates a quantized search re-scores exactly."""
        return int(self.params.get("rerank", RERANK_FACTOR))

    def _own(self) -> None:
        """Copy a mapped index into memory before changing it (its mapped pages are
        read only)."""
        if self.source is not None:
            self.adopt(self.source, self.source.load())

    def adopt(self, source: _Source, index: faiss.Index) -> bool:
        """Use ``index``, an in-memory copy read from ``source``, instead of the pages
        mapped from it; False (nothing done) when this index is no longer mapped from
        that source (it changed, or was replaced, in between)."""
        if self.source is not source:
            return False
        self.index = index
        self.source = None
        self._tune()
        return True

    def _tune(self) -> None:
        """Search parameters that the file does not keep."""
        if self.kind == "hnsw":
            faiss.downcast_index(self.index.index).hnsw.efSearch = self.params.get(
                "efSearch", HNSW_EF_SEARCH
            )

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        if len(ids):
            self._own()
            # A few vectors (a catch-up after one write, under the index lock) are
            # placed on one thread: waking OpenMP's threads cost 4 ms for one vector
            # at 100,000 items, more than the work.
            few = len(ids) <= SMALL_ADD
            with _one_omp_thread() if few else contextlib.nullcontext():
                self.index.add_with_ids(
                    np.ascontiguousarray(vecs, dtype=np.float32),
                    np.ascontiguousarray(ids, dtype=np.int64),
                )

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        if not self.supports_remove:
            raise NotImplementedError("HNSW cannot remove vectors; rebuild instead")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self._own()
        if self.kind in IVF_KINDS:
            # IVF's hashtable direct map removes only through an IDSelectorArray
            # (which must stay alive during the call).
            sel = faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))
            return int(self.index.remove_ids(sel))
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))

    def ids(self) -> np.ndarray:
        if self.kind in IVF_KINDS:
            invlists = self.index.invlists
            parts = []
            for lst in range(invlists.nlist):
                size = invlists.list_size(lst)
                if size:
                    ptr = invlists.get_ids(lst)
                    parts.append(faiss.rev_swig_ptr(ptr, size).copy())
            return np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def clone(self) -> AnnIndex:
        """A copy that later changes to this index do not reach."""
        # A mapped index's clone maps the same pages and copies from the same file.
        return AnnIndex(
            self.kind, self.dim, faiss.clone_index(self.index), dict(self.params), self.source
        )

    def reconstruct(self, item_id: int) -> np.ndarray:
        return self.index.reconstruct(int(item_id))

    def reconstruct_many(self, item_ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, one row each (RuntimeError for an id the
        index does not hold)."""
        ids = np.ascontiguousarray(item_ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        return self.index.reconstruct_batch(ids)

    def held_form(self, vecs: np.ndarray) -> np.ndarray:
        """What ``reconstruct`` returns for an item of these vectors: the vectors, or,
        on a quantized index, their codes decoded (a vector's code depends on nothing
        else, so ``verify`` can compare the two exactly)."""
        if not self.quantized or not len(vecs):
            return vecs
        sq = self.index.sq
        return sq.decode(sq.compute_codes(np.ascontiguousarray(vecs, dtype=np.float32)))

    # -- search -------------------------------------------------------------------
    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        exact: ExactVectors | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k inner products; ``allowed`` restricts the search to those item ids. On
        a quantized index, ``exact`` reads the stored vectors of ``rerank_factor`` * k
        candidates, which rank them by their exact inner products (without it the
        scores are the codes' approximations)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        exact = exact if self.quantized else None
        wide = k * self.rerank_factor if exact is not None else k
        if len(q) <= FEW_QUERIES:
            with _one_omp_thread():
                found = self._search(q, wide, allowed)
        else:
            found = self._search(q, wide, allowed)
        return found if exact is None else rerank(q, found[1], k, exact)

    def _search(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, self.count)) if self.count else 0
        if k == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if allowed is None:
            return self.index.search(q, k)
        if not len(allowed):
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        if self.kind == "flat":
            params = faiss.SearchParameters(sel=sel)
        elif self.kind == "hnsw":
            # Wider beam when the filter keeps a small share, so k matches are reached.
            share = len(allowed) / max(self.count, 1)
            ef = int(min(4096, max(HNSW_EF_SEARCH, 2 * k / max(share, 1e-6))))
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        else:
            # Probe more lists when the filter keeps a small share of the items.
            share = len(allowed) / max(self.count, 1)
            wanted = FILTER_PROBE_FACTOR * self.index.nprobe / share
            nprobe = int(min(self.index.nlist, max(self.index.nprobe, wanted)))
            params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
        return self.index.search(q, min(k, len(allowed)), params=params)

    # -- files --------------------------------------------------------------------
    def save(self, folder: Path, sidecar: dict[str, Any], vectors_changed: bool = True) -> Path:
        """Publish this index and its sidecar atomically; remove superseded files.

        With ``vectors_changed=False`` (only the generation moved on), the current
        index file is kept and only the sidecar is rewritten."""
        folder.mkdir(parents=True, exist_ok=True)
        current = read_sidecar(folder) or {}
        crc = current.get("crc32")
        if (
            not vectors_changed
            and (folder / str(current.get("file"))).is_file()
            and _sidecar_problem(current) is None
        ):
            name = current["file"]
        else:
            name = f"faiss-{sidecar['generation']}-{self.kind}-{os.getpid()}.index"
            tmp = folder / (name + ".tmp")
            crc = _write_index(self.index, tmp)
            os.replace(tmp, folder / name)
        meta = dict(
            sidecar,
            file=name,
            crc32=crc,
            kind=self.kind,
            params=self.params,
            dim=self.dim,
            count=self.count,
            format=FORMAT,
        )
        _write_json_atomic(folder / SIDECAR, meta)
        _fsync_dir(folder)
        for old in folder.glob("faiss-*.index"):
            if old.name != name:
                try:
                    old.unlink()
                except OSError:
                    pass
        return folder / name

    @classmethod
    def load(cls, folder: Path) -> tuple[AnnIndex, dict[str, Any]] | None:
        """The published index and its sidecar; None when there is none. Raises
        DamagedIndex when they are unreadable or disagree (the index is derived data:
        the caller rebuilds it from the database)."""
        sidecar = folder / SIDECAR
        if not sidecar.exists():
            return None
        meta = read_sidecar(folder)
        if meta is None or meta.get("format") != FORMAT:
            raise DamagedIndex(f"{sidecar} is not a foodvec sidecar")
        problem = _sidecar_problem(meta)
        if problem:
            raise DamagedIndex(f"{sidecar} {problem}")
        path = folder / meta["file"]
        kind, dim, params = meta["kind"], meta["dim"], dict(meta.get("params") or {})
        try:
            source = _Source(path)
            if meta.get("crc32") is not None and source.crc32() != meta["crc32"]:
                # Checked before FAISS parses it: damaged bytes never reach its reader.
                source.close()
                raise DamagedIndex(f"{path.name} does not match its checksum (damaged)")
            index, source = _read_mapped(path, source)
        except (RuntimeError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DamagedIndex(f"{path.name} cannot be read ({first[:120]})") from None
        if index.d != dim:
            raise DamagedIndex(f"{path.name} holds {index.d}-dimensional vectors, not {dim}")
        if index.ntotal != meta.get("count", index.ntotal):
            raise DamagedIndex(
                f"{path.name} holds {index.ntotal} vectors; its sidecar says {meta['count']}"
            )
        actual = _kind_of(index)
        if actual != kind:
            raise DamagedIndex(
                f"{path.name} is a {actual or 'foreign'} index; its sidecar says {kind}"
            )
        ann = cls(kind, dim, index, params, source)
        ann._tune()
        return ann, meta


def _whole(v: Any, low: int = 0) -> bool:
    """A JSON integer (not a bool, not a float such as Infinity or NaN) of at least
    ``low`` that fits 64 bits."""
    return isinstance(v, int) and not isinstance(v, bool) and low <= v < 2**63


def _plain_name(v: Any) -> bool:
    """A file name inside the index folder (no folder part)."""
    return isinstance(v, str) and v not in ("", ".", "..") and "/" not in v and "\x00" not in v


def _sidecar_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with a sidecar's fields, or None: every value the loader and the
    catch-up use is checked for its type and range here, so a damaged or hand-edited
    sidecar (``"generation": Infinity``, ``"count": NaN``) is a damaged index."""
    if not _plain_name(meta.get("file")):
        return "lacks or garbles 'file'"
    if meta.get("lexical") is not None and not _plain_name(meta["lexical"]):
        return "garbles 'lexical'"
    if meta.get("kind") not in KINDS:
        return f"names an unknown index kind {meta.get('kind')!r}"
    if meta.get("requested", "auto") not in ("auto", *KINDS):
        return f"names an unknown requested kind {meta.get('requested')!r}"
    for key, low in (("generation", 0), ("dim", 1)):
        if not _whole(meta.get(key), low):
            return f"lacks or garbles {key!r} ({meta.get(key)!r})"
    if "count" in meta and not _whole(meta["count"]):
        return f"garbles 'count' ({meta['count']!r})"
    if meta.get("model") is not None and not isinstance(meta["model"], str):
        return "garbles 'model'"
    if meta.get("crc32") is not None and not (_whole(meta["crc32"]) and meta["crc32"] < 2**32):
        return f"garbles 'crc32' ({meta['crc32']!r})"
    params = meta.get("params")
    if params is not None and not isinstance(params, dict):
        return "garbles 'params'"
    if not all(_whole(v, 1) for v in (params or {}).values()):
        return f"garbles 'params' ({params!r})"
    return None


def _kind_of(index: faiss.Index) -> str | None:
    """Which of ``KINDS`` a FAISS index read from a file is (None: another kind)."""
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        eight_bit = index.sq.qtype == faiss.ScalarQuantizer.QT_8bit
        return "ivf-sq8" if eight_bit and not index.by_residual else None
    if isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSWFlat):
            return "hnsw"
        if isinstance(inner, faiss.IndexFlatIP):
            return "flat"
    return None


@contextmanager
def _one_omp_thread() -> Iterator[None]:
    """Run FAISS on one OpenMP thread (a per-thread setting, so concurrent searches do
    not disturb each other). For a query or two, waking OpenMP's threads while the
    encoder's own thread pool is still spinning costs more than it saves: at 20,000
    items it doubled the search's median time (bench/search.py)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def read_sidecar(folder: Path) -> dict[str, Any] | None:
    """The sidecar as a dict; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads((folder / SIDECAR).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def published_sidecar(folder: Path) -> dict[str, Any]:
    """The sidecar when it is one of this format with sound fields; {} when it is
    missing or damaged (NaN, Infinity, ...): no published index."""
    side = read_sidecar(folder) or {}
    if side and (side.get("format") != FORMAT or _sidecar_problem(side)):
        return {}
    return side


def write_file_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by a synced temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_index(index: faiss.Index, path: Path) -> int:
    """Write a FAISS index to ``path`` (synced); returns the CRC-32 of its bytes,
    computed as they are written."""
    crc = 0
    with open(path, "wb") as fh:

        def write(chunk: bytes) -> int:
            nonlocal crc
            crc = zlib.crc32(chunk, crc)
            fh.write(chunk)
            return len(chunk)

        faiss.write_index(index, faiss.PyCallbackIOWriter(write))
        fh.flush()
        os.fsync(fh.fileno())
    return crc


def _read_mapped(path: Path, source: _Source) -> tuple[faiss.Index, _Source | None]:
    """The index in ``path`` with its vectors mapped from the file; read into memory
    where the file cannot be mapped (then no source is kept)."""
    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC), source
    except RuntimeError:
        source.close()
        return faiss.read_index(str(path)), None


def _ivf_of(kind: str, quantizer: faiss.Index, dim: int, nlist: int) -> faiss.IndexIVF:
    """An untrained inner-product IVF index of ``kind``: lists of the vectors (ivf), or
    of their 8-bit codes (ivf-sq8; coded whole, not as residuals from their list's
    centroid: after re-ranking as exact, and faster to scan)."""
    if kind == "ivf":
        return faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    qt = faiss.ScalarQuantizer.QT_8bit
    return faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, qt, faiss.METRIC_INNER_PRODUCT, False
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def top_k_exact(
    queries: np.ndarray, ids: np.ndarray, vecs: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner product over a small set of vectors (pure; no I/O)."""
    k = min(k, len(ids))
    scores = queries @ vecs.T
    if k < len(ids):
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(len(ids)), (len(queries), 1))
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    cols = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(scores, cols, axis=1), ids[cols]


def rerank(
    queries: np.ndarray, candidates: np.ndarray, k: int, exact: ExactVectors
) -> tuple[np.ndarray, np.ndarray]:
    """The top k of each query's candidates (a row of item ids, -1 for none) by exact
    inner product with their stored vectors, read by ``exact``: (scores, ids), padded
    with FLOAT_FLOOR and -1 as FAISS pads; a candidate without a stored vector (deleted
    in between) is left out."""
    width = min(k, candidates.shape[1])
    scores = np.full((len(queries), width), FLOAT_FLOOR, np.float32)
    ids = np.full((len(queries), width), -1, np.int64)
    wanted = np.unique(candidates[candidates >= 0])
    if not len(wanted):
        return scores, ids
    got, vecs = exact(wanted)
    if not len(got):
        return scores, ids
    order = np.argsort(got, kind="stable")
    got, vecs = got[order], vecs[order]
    pos = np.searchsorted(got, candidates).clip(max=len(got) - 1)
    held = (candidates >= 0) & (got[pos] == candidates)
    exact_scores = np.einsum("qd,qcd->qc", queries, vecs[pos]).astype(np.float32)
    exact_scores[~held] = -np.inf
    top = np.argsort(-exact_scores, axis=1, kind="stable")[:, :width]
    top_scores = np.take_along_axis(exact_scores, top, axis=1)
    found = np.isfinite(top_scores)
    scores[found] = top_scores[found]
    ids[found] = np.take_along_axis(candidates, top, axis=1)[found]
    return scores, ids
