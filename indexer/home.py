"""An index home: one folder with the database, the FAISS index and the models.

``FoodIndex`` is the library's entry point for writes (build, upsert, delete) and
keeps the FAISS index in step with the database (README, "Consistency").
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from filelock import FileLock

from . import ann as ann_mod
from .ann import EXACT_SUBSET_MAX, AnnIndex, choose_kind, top_k_exact
from .build import (
    BuildOptions,
    BuildSummary,
    build,
    memory_table,
    model_mismatch,
    name_problem,
    open_sources,
)
from .embedder import Embedder, load_embedder
from .errors import (
    BadInputError,
    FoodvecError,
    IndexNotSavedError,
    ModelMismatchError,
    ModelNotFoundError,
    NotFoundError,
)
from .filters import Node
from .filters import parse as parse_where
from .lexical import LexicalIndex
from .mining import MineResult, run_mining_job
from .retrieval import Hit, Searcher
from .settings import Layout, settings
from .storage import ItemRow, Jobs, Store, canonical_json, settle_sqlite_file
from .terms import item_name, name_key
from .text import clean_metadata
from .writers import ParquetSchema, output_format, write_rows

log = logging.getLogger("foodvec")

MAX_PAGE = 10_000  # items in one page of records
EXPORT_PAGE_ROWS = 5000  # items an export reads at once
FILTER_CACHE_ENTRIES = 64
FILTER_CACHE_IDS = 4_000_000  # 32 MB of ids at most
# Mining threshold for a model that was not calibrated when trained (the base model).
DEFAULT_MINE_THRESHOLD = 0.9
MODEL_SETTINGS = "foodvec_model.json"
# What a home that cannot be written answers to a write into its index folder.
READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
# A backup's record of what it holds and where it came from (``backup``, ``restore``).
MANIFEST = "foodvec_backup.json"


class FoodIndex:
    """One index home. Pass ``embedder`` to use a model object instead of a folder."""

    def __init__(
        self,
        home: Path | str | None = None,
        model: str | None = None,
        db: str | None = None,
        embedder: Embedder | None = None,
    ):
        cfg = settings()
        self.home = Path(home).expanduser() if home else cfg.home
        self.home.mkdir(parents=True, exist_ok=True)
        self.layout = Layout(self.home)
        self.index_dir = self.layout.index_dir
        self.models_dir = self.layout.models_dir
        url = db or cfg.db or self.layout.db_url
        if url == self.layout.db_url:
            _refuse_an_emptied_database(self.layout)
        self._store = Store.open(url)
        self._model_spec = model or cfg.model
        self._embedder = embedder
        self._ann: AnnIndex | None = None
        self._ann_meta: dict[str, Any] | None = None
        self._published_gen: int | None = None
        # The lexical (BM25) index: derived like the FAISS one, kept at the same generation.
        self._lex: LexicalIndex | None = None
        self._mutex = threading.RLock()
        # Searches read the in-memory indexes at one generation, the one of their
        # database snapshot (``_reading``): while any does, no catch-up moves the
        # indexes on (a catch-up waits on ``_gate`` until ``_readers`` is 0), so a search
        # never finds them past its snapshot, and never rebuilds because of that.
        self._gate = threading.Condition(self._mutex)
        self._readers = 0
        self._local = threading.local()  # .reading: this thread's search depth
        # Since this object was opened: full rebuilds of the FAISS index (by reason)
        # and catch-ups from the change log (``index_counters``, ``/metrics``).
        self._rebuilds: dict[str, int] = {}
        self._catchups = 0
        # The generation of in-memory indexes that could not be published because the
        # index folder cannot be written (a read-only home): searches and verify use
        # them as they are (None: nothing unsaved).
        self._unsaved: int | None = None
        self._warned: set[str] = set()
        # filter (repr of its tree) -> (generation, matching item ids), least recent first
        self._filter_cache: OrderedDict[str, tuple[int, np.ndarray]] = OrderedDict()

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> FoodIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the model ----------------------------------------------------------------
    @property
    def default_model_path(self) -> Path:
        return self.layout.default_model

    def model_spec(self) -> str:
        """Which model to use: --model/FOODVEC_MODEL, else the one this index was built
        with, else the trained default in ``models/default``."""
        if self._model_spec:
            return self._model_spec
        active = self._store.active_model()
        if active:
            info = self._store.model_info(active)
            if info and (info["name"] == "base" or Path(info["name"]).is_dir()):
                return info["name"]
        if self.default_model_path.is_dir():
            return str(self.default_model_path)
        raise ModelNotFoundError(
            f"no model: the default model is not trained yet ({self.default_model_path} is "
            "missing). Train it with `foodvec train` (about 5 minutes on 2 cores), or pass "
            "--model PATH (a sentence-transformers folder, or `base` for the untuned "
            "all-MiniLM-L6-v2)"
        )

    def model_loaded(self) -> bool:
        return self._embedder is not None

    def index_lag(self) -> int:
        """Generations the in-memory indexes are behind the database (0: caught up;
        the database's generation when they are not loaded yet)."""
        gen, model = self._store.state()
        with self._mutex:
            have = (self._ann_meta or {}).get("generation") if self._ann is not None else None
        if have is None:
            return gen if model else 0
        return max(0, gen - int(have))

    @property
    def rebuilds(self) -> int:
        """Full rebuilds of the FAISS index since this object was opened (the first
        build of an index that had none included)."""
        with self._mutex:
            return sum(self._rebuilds.values())

    @property
    def catchups(self) -> int:
        """Catch-ups from the change log since this object was opened."""
        return self._catchups

    def index_counters(self) -> dict[str, Any]:
        """What this object did to its in-memory indexes since it was opened: full
        rebuilds (in all and by reason) and catch-ups from the change log."""
        with self._mutex:
            return {
                "rebuilds": sum(self._rebuilds.values()),
                "rebuild_reasons": dict(self._rebuilds),
                "catchups": self._catchups,
            }

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.model_spec(), cache_dir=self.models_dir)
        return self._embedder

    def mining_threshold(self) -> float:
        """The model's calibrated mining threshold (written by ``foodvec train``), else
        ``DEFAULT_MINE_THRESHOLD``."""
        try:
            spec = self.model_spec()
        except ModelNotFoundError:
            return DEFAULT_MINE_THRESHOLD
        try:
            settings = json.loads((Path(spec) / MODEL_SETTINGS).read_text())
            value = float(settings["mine_threshold"])
        except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError):
            return DEFAULT_MINE_THRESHOLD
        if not math.isfinite(value) or not -1.0 <= value <= 1.0:  # a cosine, or damage
            self._warn_once(
                "threshold",
                "%s holds no usable mine_threshold (%r); using %s",
                Path(spec) / MODEL_SETTINGS,
                value,
                DEFAULT_MINE_THRESHOLD,
            )
            return DEFAULT_MINE_THRESHOLD
        return value

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        """A warning this object gives once (a server would repeat it per request)."""
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    def check_model(self) -> None:
        """Refuse to search or extend an index with a model it was not built with."""
        active = self._store.active_model()
        if active is None or active == self.embedder.fingerprint:
            return
        if self._store.count():
            raise model_mismatch(self._store, self.embedder, active)

    # -- writes -------------------------------------------------------------------
    def build(
        self,
        paths: Sequence[Path | str],
        opts: BuildOptions | None = None,
        index_kind: str = "auto",
    ) -> BuildSummary:
        opts = opts or BuildOptions()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        summary = build(
            self._store,
            self.embedder,
            open_sources(paths, opts.format),
            opts,
            report_default=self.layout.reject_report(stamp),
            remote=self._remote_embed(opts.ray) if opts.ray else None,
        )
        self._sync_after_write(
            summary.generation, publish=True, kind=index_kind, force_rebuild=opts.reembed
        )
        return summary

    def _remote_embed(self, address: str):
        """Embedding on a Ray cluster with this home's model (its actors load the same
        model folder and check its fingerprint)."""
        from functools import partial

        from . import cluster

        if self._embedder is not None and self._model_spec is None:
            raise BadInputError("--ray needs a model folder (or `base`) that Ray's actors can load")
        cluster.connect(address)  # a clear error now, before any input is read
        return partial(
            cluster.embed, address, self.model_spec(), self.embedder.fingerprint, self.models_dir
        )

    def upsert(
        self,
        records: Iterable[dict[str, Any]],
        opts: BuildOptions | None = None,
        publish: bool = True,
    ) -> BuildSummary:
        """Insert or update items given as dicts with ``id``, ``text`` and metadata keys
        (or ``metadata``: a dict). The write is durable when this returns; with
        ``publish=False`` the FAISS file is left for a later ``publish()`` (the
        database and its change log are enough to bring it up to date)."""
        flat = []
        for r in records:
            r = dict(r)
            meta = r.pop("metadata", None) or {}
            flat.append({**meta, **r})
        opts = opts or BuildOptions(progress=False)
        summary = build(self._store, self.embedder, [memory_table(flat)], opts)
        self._sync_after_write(summary.generation, publish=publish)
        return summary

    def delete(self, ext_ids: Sequence[str], publish: bool = True) -> int:
        """Delete items by id, all or none: unknown ids raise NotFoundError."""
        ext_ids = [str(e) for e in dict.fromkeys(ext_ids)]
        with self._store.write() as tx:
            deleted = tx.delete_ext_ids(ext_ids)
            unknown = sorted(set(ext_ids) - set(deleted.values()))
            if unknown:
                shown = ", ".join(repr(u) for u in unknown[:5])
                raise NotFoundError(
                    f"not in the index: {shown}{', …' if len(unknown) > 5 else ''}; "
                    "nothing was deleted"
                )
        self._sync_after_write(tx.generation, publish=publish)
        return len(deleted)

    def update(
        self,
        ext_id: str,
        metadata: dict[str, Any] | None = None,
        unset: Sequence[str] = (),
        publish: bool = True,
    ) -> int:
        """Change an item's metadata alone (no re-embedding): set the keys of
        ``metadata``, remove those in ``unset``. Returns the new generation. A new
        ``name`` renames the item for the exact-name rule and the lexical index."""
        metadata = dict(metadata or {})
        bad = sorted({"id", "text"} & (set(metadata) | set(unset)))
        if bad:
            raise BadInputError(f"the metadata may not use the keys {bad}")
        if not metadata and not unset:
            raise BadInputError("nothing to change: give metadata to set or keys to unset")
        with self._store.write() as tx:
            row = tx.item_for_update(str(ext_id))
            if row is None:
                raise NotFoundError(f"not in the index: {str(ext_id)!r}")
            merged = {k: v for k, v in row.metadata.items() if k not in set(unset)}
            merged.update(metadata)
            try:
                meta_json = canonical_json(clean_metadata(merged))
            except ValueError as exc:
                raise BadInputError(f"item {ext_id!r}: {exc}") from None
            renamed = "name" in metadata or "name" in unset
            name = item_name(merged.get("name"), row.text)
            reason = name_problem(name)
            if reason:
                raise BadInputError(f"item {ext_id!r}: {reason}")
            tx.set_metadata(row.id, meta_json, name, name_key(name) if name else None, renamed)
        self._sync_after_write(tx.generation, publish=publish)
        return tx.generation

    def delete_where(
        self, where: dict[str, Any], dry_run: bool = False, publish: bool = True
    ) -> int:
        """Delete every item matching a filter (``indexer.filters``); with ``dry_run``,
        only count them."""
        node = parse_where(where)
        if dry_run:
            return self._store.count_where(node)
        with self._store.write() as tx:
            deleted = tx.delete_where(node)
        if deleted:
            self._sync_after_write(tx.generation, publish=publish)
        return len(deleted)

    def _sync_after_write(self, generation: int, **kw) -> None:
        """Bring the indexes up to a committed write; if saving them fails, say that
        the write itself is committed (the database is the source of truth and the
        indexes catch up on the next open)."""
        try:
            self.sync(**kw)
        except OSError as exc:
            raise IndexNotSavedError(
                f"the write is committed (generation {generation}), but the index could "
                f"not be saved ({exc.strerror or exc}); it catches up on the next open"
            ) from None

    # -- the FAISS index ------------------------------------------------------------
    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """The index lock, between processes (and threads): one publisher of the index
        files at a time. ``filelock`` takes it (flock on POSIX, LockFileEx on Windows);
        a folder that cannot be written raises OSError (PermissionError)."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(self.layout.lock_file, poll_interval=0.005):
            yield

    def sync(
        self, publish: bool | None = None, kind: str | None = None, force_rebuild: bool = False
    ) -> AnnIndex | None:
        """Bring the in-memory FAISS index up to the database's generation.

        Loads the published index, applies the change log since its generation (or
        rebuilds when the log does not reach back, the model changed, or the index kind
        must change). ``publish=True`` saves the result atomically; ``None`` (the
        default) saves it only when the published index was found behind the database,
        which is how a crash between a commit and its index write is repaired on open.
        Thread-safe: mutations and searches of the index hold ``self._mutex``.
        """
        with self._mutex:
            if self._reading_here():
                # Inside this thread's search the indexes are at its snapshot's
                # generation (``_reading``), and stay there until it ends.
                return self._ann
            while True:
                with self._store.snapshot():  # one snapshot of the database
                    # Searches read the indexes at their generation: a change waits
                    # for them to end (a look, or a save, does not).
                    if not self._readers or not self._must_change(kind, force_rebuild):
                        return self._sync(publish, kind, force_rebuild)
                self._gate.wait()

    def _must_change(self, kind: str | None, force_rebuild: bool) -> bool:
        """Whether ``_sync`` would change the in-memory indexes (under the index lock,
        in a snapshot)."""
        gen, model = self._store.state()
        meta = self._ann_meta or {}
        if self._ann is not None and int(meta["generation"]) > gen:
            self._store.renew_snapshot()  # an outer snapshot older than the indexes
            gen, model = self._store.state()
        if model is None and self._ann is None:
            return False
        return (
            force_rebuild
            or self._ann is None
            or self._lex is None
            or model != meta.get("model")
            or gen != meta.get("generation")
            or kind not in (None, meta.get("requested"))
        )

    def _current(self) -> AnnIndex | None:
        """The in-memory FAISS index for a read (under ``self._mutex``): at this thread's
        search generation, else caught up with the database now."""
        if self._reading_here():
            return self._ann
        return self.sync()

    def _reading_here(self) -> bool:
        return getattr(self._local, "reading", 0) > 0

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """One search: a snapshot of the database and the in-memory indexes at its
        generation, for the whole search. The snapshot is taken under the index lock,
        the indexes caught up to it from the change log if they are behind; if they
        are ahead (another thread caught them up while this one waited) the snapshot
        is taken again, newer: never a rebuild for that. While it lasts, catch-ups wait
        (a search takes milliseconds)."""
        if self._reading_here():
            self._local.reading += 1
            try:
                yield
            finally:
                self._local.reading -= 1
            return
        with self._store.snapshot():
            with self._mutex:
                self._pin_generation()
                self._readers += 1
            self._local.reading = 1
            try:
                yield
            finally:
                self._local.reading = 0
                with self._mutex:
                    self._readers -= 1
                    if not self._readers:
                        self._gate.notify_all()

    def _pin_generation(self) -> None:
        """Under the index lock, inside this thread's snapshot: bring the indexes and
        the snapshot to one generation."""
        renewed = False
        while True:
            gen, model = self._store.state()  # the first read fixes the snapshot
            meta = self._ann_meta or {}
            have = int(meta["generation"]) if self._ann is not None else None
            if have is not None and have > gen and not renewed:
                # Caught up by another thread past this snapshot: read a newer one.
                self._store.renew_snapshot()
                renewed = True
                continue
            if model is None and self._ann is None:
                return  # nothing indexed yet
            if (
                model is not None
                and have == gen
                and meta.get("model") == model
                and self._lex is not None
            ):
                return  # the common case: nothing changed since the last look
            if self._readers:  # others read the indexes at their generation: wait
                self._gate.wait()
                renewed = False
                continue
            self._sync(None, None, False)
            return

    def _sync(self, publish, kind, force_rebuild) -> AnnIndex | None:
        gen_now, model = self._store.state()
        if model is None:
            self._ann, self._ann_meta, self._lex = None, None, None
            return None
        from_disk = self._ann is None
        if from_disk:
            self._load_published()
        if self._ann is not None and int((self._ann_meta or {})["generation"]) > gen_now:
            # An outer snapshot older than the indexes (another thread or process moved
            # them on since it was taken): read the database again, newer.
            if self._store.renew_snapshot():
                gen_now, model = self._store.state()
                if model is None:
                    self._ann, self._ann_meta, self._lex = None, None, None
                    return None
        meta = self._ann_meta or {}
        if (
            self._ann is not None
            and not publish
            and not force_rebuild
            and kind in (None, meta.get("requested"))
            and meta.get("generation") == gen_now
            and meta.get("model") == model
            and self._lex is not None
            and not from_disk
        ):
            return self._ann  # the common case: nothing changed since the last look
        if not from_disk and meta.get("model") == model and "dim" in meta:
            dim = int(meta["dim"])  # checked when this index was loaded: no read
        else:
            info = self._store.model_info(model)
            dim = int(info["dim"]) if info else 0
        requested = kind or meta.get("requested", "auto")
        want = choose_kind(requested, self._store.count())
        old_gen = int(meta.get("generation", -1))
        changes = (
            "forced" if force_rebuild else self._apply_log(model, dim, want, from_disk, gen_now)
        )
        if isinstance(changes, str):  # a full rebuild, and why
            self._rebuilds[changes] = self._rebuilds.get(changes, 0) + 1
            log.info("rebuilding the index from the database (%s)", changes)
            gen = self._store.generation()
            self._ann = AnnIndex.build(
                want, dim, lambda: self._store.vectors_for_items(model, dim), self._store.count()
            )
            self._lex = None
            changes = _Changes(vectors=True, lexical=False, generation=gen)
        if self._lex is None:
            self._lex = LexicalIndex.build(self._store.named_docs())
            changes.lexical = True
        ann, gen = self._ann, changes.generation
        self._ann_meta = {
            **(self._ann_meta or {}),
            "generation": gen,
            "model": model,
            "dim": dim,
            "requested": requested,
            "kind": ann.kind,
            "count": ann.count,
        }
        advanced = changes.vectors or gen != old_gen
        repair = publish is None
        if repair:  # repair on open: save what was found behind the database
            publish = from_disk and (advanced or changes.lexical)
        if publish and (advanced or changes.lexical or self._published_gen != gen):
            if repair:
                # A search or verify: what it needs is in memory now, saved or not.
                self._save_if_possible(ann, gen, model, requested, changes.vectors)
            else:
                self._save(ann, gen, model, requested, changes.vectors, self._lex.to_bytes())
        return ann

    def _save_if_possible(
        self, ann: AnnIndex, gen: int, model: str, requested: str, vectors_changed: bool
    ) -> bool:
        """Publish the caught-up indexes, or, when the index folder cannot be written
        (a read-only home, a full disk), keep them in memory and say so once."""
        try:
            self._save(ann, gen, model, requested, vectors_changed, self._lex.to_bytes())
            return True
        except OSError as exc:
            if self._unsaved is None:
                log.warning(
                    "the index folder %s cannot be written (%s): the index is caught up "
                    "in memory to generation %s and searched from there, not saved",
                    self.index_dir,
                    exc.strerror or exc,
                    gen,
                )
            self._unsaved = gen
            return False

    def _stale(self, model: str, dim: int, want: str, gen: int) -> str | None:
        """Why the in-memory index cannot be caught up and must be built again (None:
        it can be)."""
        meta = self._ann_meta or {}
        if self._ann is None:
            return "no index"
        if meta.get("model") != model or int(meta.get("dim", -1)) != dim:
            return "model changed"
        if self._ann.kind != want:
            return "index kind changed"
        if int(meta.get("generation", -1)) > gen:
            return "database behind the index"
        return None

    def _apply_log(
        self, model: str, dim: int, want: str, from_disk: bool, gen: int
    ) -> _Changes | str:
        """Catch the in-memory indexes up from the change log to generation ``gen`` (read
        in the same snapshot); why not when they must be rebuilt instead (wrong model
        or kind, or the log does not reach back)."""
        why = self._stale(model, dim, want, gen)
        if why:
            return why
        old_gen = int((self._ann_meta or {})["generation"])
        if old_gen == gen:
            return _Changes(vectors=False, lexical=False, generation=gen)
        reloaded = False
        delta = self._store.changes_since(old_gen)
        if delta is None and not from_disk and self._load_published(newer_than=old_gen):
            # Another process published a newer index and pruned the log behind it.
            why = self._stale(model, dim, want, gen)
            if why:
                return why
            delta = self._store.changes_since(int((self._ann_meta or {})["generation"]))
            reloaded = True
        if delta is None:
            return "change log does not reach back"
        touched, gen = delta
        ann = self._ann
        ids = np.fromiter(touched, dtype=np.int64, count=len(touched))
        if not ann.supports_remove and np.isin(ids, ann.ids()).any():
            return "index cannot remove"  # it must be rebuilt to change an item
        self._catchups += 1
        changes = _Changes(vectors=reloaded, lexical=False, generation=gen)
        if len(ids):
            if ann.supports_remove:
                ann.remove(ids)
            for got_ids, vecs in self._store.vectors_for_items(model, dim, ids):
                ann.add(got_ids, vecs)
            changes.vectors = True
            if self._lex is not None:
                self._lex.update(ids.tolist(), self._store.named_docs(ids))
                changes.lexical = True
        return changes

    def _load_published(self, newer_than: int = -1) -> bool:
        try:
            loaded = AnnIndex.load(self.index_dir)
        except ann_mod.DamagedIndex as exc:
            log.warning("the published index is damaged: %s; rebuilding it from the database", exc)
            return False
        if loaded is None or int(loaded[1].get("generation", -1)) <= newer_than:
            return False
        self._ann, self._ann_meta = loaded
        self._published_gen = int(loaded[1]["generation"])
        name = loaded[1].get("lexical")
        # A missing or unreadable lexical file is rebuilt from the database by _sync.
        self._lex = LexicalIndex.load(self.index_dir / name) if name else None
        if name and self._lex is None:
            log.warning(
                "the published lexical index %s is missing or damaged; rebuilding it from "
                "the database",
                name,
            )
        return True

    def _save(
        self,
        ann: AnnIndex,
        gen: int,
        model: str,
        requested: str,
        vectors_changed: bool,
        lexical: bytes,
    ) -> None:
        sidecar = {
            "generation": gen,
            "model": model,
            "requested": requested,
            "saved_at": time.time(),
        }
        with self._file_lock():
            on_disk = ann_mod.read_sidecar(self.index_dir) or {}
            if on_disk.get("format") != ann_mod.FORMAT or ann_mod._sidecar_problem(on_disk):
                on_disk = {}  # damaged: replaced, never taken for a newer index
            on_disk_gen = on_disk.get("generation")
            if (
                on_disk.get("model") == model
                and isinstance(on_disk_gen, int)
                and gen < on_disk_gen <= self._store.latest_generation()
            ):
                # Another process already published a newer index (one past the
                # database's generation is no index of it: damaged, replaced).
                return
            # Temporary files of a save that was killed half-way (saves hold this lock,
            # so none is being written now).
            for stale in self.index_dir.glob("*.tmp"):
                stale.unlink(missing_ok=True)
            # The lexical file goes first; the sidecar that names it is replaced last.
            name = f"lexical-{gen}-{os.getpid()}.npz"
            ann_mod.write_file_atomic(self.index_dir / name, lexical)
            ann.save(self.index_dir, {**sidecar, "lexical": name}, vectors_changed=vectors_changed)
            for old in self.index_dir.glob("lexical-*.npz"):
                if old.name != name:
                    old.unlink(missing_ok=True)
        self._published_gen = gen
        self._unsaved = None
        self._store.prune_changes(gen, reader=f"{socket.gethostname()}:{self.home.resolve()}")

    def publish(self) -> bool:
        """Save the in-memory index if it is newer than the published one (the server's
        periodic compaction). The copy is taken under the lock, written outside it."""
        with self._mutex:
            if self._ann is None or self._ann_meta is None:
                return False
            meta = dict(self._ann_meta)
            if meta["generation"] == self._published_gen:
                return False
            copy = AnnIndex(
                self._ann.kind,
                self._ann.dim,
                faiss.clone_index(self._ann.index),
                dict(self._ann.params),
            )
            lexical = self._lex.to_bytes() if self._lex is not None else b""
        try:
            self._save(copy, meta["generation"], meta["model"], meta["requested"], True, lexical)
        except OSError as exc:
            if exc.errno not in READ_ONLY_ERRNOS:
                raise  # a full disk: the compactor says so and retries
            if self._unsaved is None:
                log.warning(
                    "the index folder %s cannot be written (%s): the index stays in memory",
                    self.index_dir,
                    exc.strerror or exc,
                )
            self._unsaved = meta["generation"]
            return False
        return True

    def warm_lexical(self) -> None:
        """Load the Korean analyzer now (about 2.5 s), for a server to call at start: it
        is otherwise loaded by the first write or catch-up that indexes an item (never
        by a search that needs no catch-up)."""
        from . import korean

        korean.warm()

    def lexical_scores(
        self, query: str, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """BM25 of every item sharing a term with ``query`` (restricted to ``allowed``),
        as (item ids, scores, the score of a full match); at the database's generation."""
        with self._mutex:
            self._current()
            lex = self._lex
            if lex is None:
                return np.zeros(0, np.int64), np.zeros(0, np.float32), 0.0
            ids, scores = lex.score(query, allowed=allowed)
            return ids, scores, lex.full_score(query)

    def lexical_read(
        self, queries: Sequence[str], facts: Sequence[str] = (), allowed: np.ndarray | None = None
    ) -> tuple[list[tuple[np.ndarray, np.ndarray, float]], dict[str, np.ndarray]]:
        """Several keyword scorings (as ``lexical_scores``) and the items stating each
        of ``facts`` (``need:bones:help``; restricted to ``allowed``), all at one
        generation of the database."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32), 0.0)
        with self._mutex:
            self._current()
            lex = self._lex
            if lex is None:
                return [empty for _ in queries], {f: empty[0] for f in facts}
            scored = []
            for q in queries:
                ids, scores = lex.score(q, allowed=allowed)
                scored.append((ids, scores, lex.full_score(q)))
            holders = {}
            for f in facts:
                ids = lex.items_with(f)
                holders[f] = ids[np.isin(ids, allowed)] if allowed is not None else ids
            return scored, holders

    def fact_balance(self, ids: np.ndarray, goodness) -> tuple[np.ndarray, np.ndarray]:
        """(good facts, bad facts) each item states (``LexicalIndex.fact_balance``)."""
        with self._mutex:
            lex = self._lex
            if lex is None:
                return np.zeros(len(ids)), np.zeros(len(ids))
            return lex.fact_balance(ids, goodness)

    def dense_search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k inner product of query vectors, at the database's generation: (scores,
        item ids), one row per query, -1 where fewer than k items exist. ``allowed``
        restricts the search to those item ids (inside the search, never after it)."""
        with self._mutex:
            ann = self._current()
            empty = (np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64))
            if ann is None or ann.count == 0:
                return empty
            if queries.shape[1] != ann.dim:
                raise ModelMismatchError(
                    f"the model makes {queries.shape[1]}-dimensional vectors; the index "
                    f"holds {ann.dim}"
                )
            exact_subset = (
                allowed is not None and ann.kind != "flat" and len(allowed) <= EXACT_SUBSET_MAX
            )
            if exact_subset:
                # A narrow filter: exact search over that subset beats a walk of the
                # approximate index that skips most of what it visits.
                try:
                    return top_k_exact(queries, allowed, ann.reconstruct_many(allowed), k)
                except RuntimeError:
                    pass  # an id the index lacks (a write in between): use the selector
            return ann.search(queries, k, allowed)

    # -- reads of the items ---------------------------------------------------------
    def filtered_ids(self, where: Node) -> np.ndarray:
        """Item ids whose metadata matches the filter (``indexer.filters``). The answer
        is kept for the database's generation (every write bumps it), so a filter that
        an app sends again and again is evaluated once per change of the items."""
        key = repr(where)
        gen = self._store.generation()
        with self._mutex:
            hit = self._filter_cache.get(key)
            if hit is not None and hit[0] == gen:
                self._filter_cache.move_to_end(key)
                return hit[1]
        ids = self._store.filtered_ids(where)
        ids.setflags(write=False)
        with self._mutex:
            self._filter_cache[key] = (gen, ids)
            while len(self._filter_cache) > FILTER_CACHE_ENTRIES or (
                sum(len(v[1]) for v in self._filter_cache.values()) > FILTER_CACHE_IDS
                and len(self._filter_cache) > 1
            ):
                self._filter_cache.popitem(last=False)
        return ids

    def items(self, ids: Iterable[int]) -> dict[int, ItemRow]:
        """The rows of the given item ids (those that exist)."""
        return self._store.items_by_ids(ids)

    def item(self, ext_id: str) -> ItemRow | None:
        """The row of the item with this id, or None."""
        return self._store.item_by_ext_id(ext_id)

    def get(self, ext_id: str) -> dict[str, Any] | None:
        """One item as a record: {"id", "text", "metadata"}; None when unknown."""
        row = self._store.item_by_ext_id(str(ext_id))
        return _record(row) if row else None

    def records(
        self,
        where: dict[str, Any] | None = None,
        offset: int = 0,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of items in a stable order (by insertion), those matching ``where``:
        (records, the cursor of the next page or None at the end). Page with
        ``after=cursor`` (fast at any depth) or with ``offset``."""
        if not 1 <= limit <= MAX_PAGE:
            raise BadInputError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
        if offset < 0:
            raise BadInputError(f"offset must be 0 or more, not {offset}")
        start = 0
        if after is not None:
            try:
                start = int(after)
            except ValueError:
                start = -1
            if not 0 <= start < 2**63:  # item ids are 64-bit; the database takes no more
                raise BadInputError(f"not a cursor: {after!r} (use the `next` of a page)") from None
        node = parse_where(where) if where is not None else None
        rows = self._store.page(node, after=start, offset=offset, limit=limit)
        cursor = str(rows[-1].id) if len(rows) == limit else None
        return [_record(r) for r in rows], cursor

    def facets(self, max_values: int = 20) -> list[dict[str, Any]]:
        """What the metadata holds, for offering filters: per top-level key, its text
        values with counts (when few), or its numeric range."""
        return self._store.facets(max_values)

    def vectors(self, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, stored vectors) of the given items (all when None), for the
        home's model; empty when the home has none."""
        model = self._store.active_model()
        meta = self._ann_meta or {}
        if model is not None and meta.get("model") == model:
            dim = int(meta["dim"])  # the loaded index knows it: no second read (hot path)
        else:
            info = self._store.model_info(model) if model else None
            if info is None:
                return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
            dim = int(info["dim"])
        return self._store.gather_vectors(model, dim, ids)

    def index_vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, vectors) of the given items from the in-memory index (caught up
        by the search that asks), else from the database: a search reads no vectors
        from the database."""
        want = np.asarray(list(ids), dtype=np.int64)
        with self._mutex:
            ann = self._ann
            if ann is not None and len(want):
                try:
                    return want, ann.reconstruct_many(want)
                except RuntimeError:
                    pass  # an id the index lacks, or a kind that cannot reconstruct
        return self.vectors(want.tolist())

    def ids_by_name_keys(self, keys: Sequence[str]) -> dict[str, list[int]]:
        """Item ids whose name key is one of ``keys`` (the exact-name rule)."""
        return self._store.ids_by_name_keys(keys)

    def state(self) -> tuple[int, str | None]:
        """(generation, model fingerprint) of the database, in one read."""
        return self._store.state()

    def count(self) -> int:
        return self._store.count()

    @property
    def jobs(self) -> Jobs:
        """The records of mining jobs and their pairs."""
        return self._store.jobs

    def collect_vectors(self) -> tuple[int, int]:
        """Delete cached vectors that no item uses: (deleted, left)."""
        deleted = self._store.collect_vectors()
        return deleted, self._store.stats()["vectors"]

    # -- the jobs, through their modules ----------------------------------------------
    def search(self, queries: str | Sequence[str], **kw: Any) -> list[list[Hit]]:
        """Food lookup (``indexer.retrieval.Searcher.search``): one list of hits per query,
        all read from one snapshot of the database."""
        with self._reading():
            return Searcher(self).search(queries, **kw)

    def mine(self, **kw: Any) -> MineResult:
        """Paraphrase mining as a recorded job (``indexer.mining.run_mining_job``)."""
        return run_mining_job(self, **kw)

    # -- export ---------------------------------------------------------------------
    def export(
        self,
        path: Path | str,
        fmt: str | None = None,
        where: dict[str, Any] | None = None,
        vectors: bool = False,
    ) -> int:
        """Write the items (those matching ``where``) as rows of id, text and their
        metadata keys (and ``vector`` with ``vectors``) to CSV, TSV, JSONL or Parquet,
        in their stable order; ``foodvec build`` reads the file back (with
        ``--vector-column vector`` it takes the vectors instead of embedding)."""
        path = Path(path).expanduser()
        fmt = output_format(path, fmt)
        node = parse_where(where) if where is not None else None
        keys: dict[str, None] = {}
        types = ParquetSchema() if fmt == "parquet" else None
        if fmt != "jsonl":  # the tabular formats need every column up front: one more pass
            for rows in self._pages(node):
                for r in rows:
                    keys.update(dict.fromkeys(r.metadata))
                if types is not None:  # and Parquet the types, a page at a time
                    types.add([{"id": r.ext_id, "text": r.text, **r.metadata} for r in rows])
        columns = ["id", "text", *keys] + (["vector"] if vectors else [])
        schema = None
        if types is not None:
            import pyarrow as pa

            schema = types.schema(columns, {"vector": pa.list_(pa.float64())} if vectors else {})

        def records() -> Iterator[dict[str, Any]]:
            for rows in self._pages(node):
                found = {}
                if vectors:
                    ids, vecs = self.vectors([r.id for r in rows])
                    found = dict(zip(ids.tolist(), vecs.tolist(), strict=True))
                for r in rows:
                    out = {"id": r.ext_id, "text": r.text, **r.metadata}
                    if vectors:
                        out["vector"] = found.get(r.id)
                    yield out

        return write_rows(path, fmt, columns, records(), schema=schema)

    def _pages(self, node: Node | None, size: int | None = None) -> Iterator[list[ItemRow]]:
        """The items matching ``node`` a page of ``size`` (default ``EXPORT_PAGE_ROWS``)
        at a time, by id: an export holds one page, never all."""
        size = size or EXPORT_PAGE_ROWS
        after = 0
        while True:
            rows = self._store.page(node, after=after, limit=size)
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = rows[-1].id

    # -- backup ---------------------------------------------------------------------
    def backup(self, dest: Path | str, with_model: bool = False) -> dict[str, Any]:
        """Copy this home into the empty folder ``dest`` while writers go on: the
        database through SQLite's online backup (every write committed before the
        backup began is in it), the published index files as they stood then (a
        restored home catches them up from the change log), and the trained default
        model, hard-linked (no space taken) or, where links cannot be made (another
        file system), referenced by its path; ``with_model`` copies it instead. A
        manifest (``MANIFEST``) records where the home was and how the model was kept.
        Nothing is written before every check has passed, and a backup that fails
        half-way is removed. Returns what was done."""
        dest = Path(dest).expanduser()
        if self._store.dialect != "sqlite":
            raise BadInputError(
                f"foodvec backup copies SQLite databases; back up a {self._store.dialect} "
                "database with its own tools (pg_dump), and rebuild a home's index from it"
            )
        inside, home = dest.resolve(), self.home.resolve()
        if inside == home or home in inside.parents or inside in home.parents:
            raise BadInputError(
                f"{dest} is inside the home {self.home} (or holds it); back up elsewhere"
            )
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise BadInputError(f"{dest} is not empty; back up into a new folder")
        made = not dest.exists()
        target = Layout(dest)
        t0 = time.perf_counter()
        try:
            target.index_dir.mkdir(parents=True, exist_ok=True)
            # Under the file lock no process publishes (or prunes the log past) the index
            # being copied, so the copied database's log reaches back to it.
            with self._lock_unless_read_only():
                side = ann_mod.read_sidecar(self.index_dir) or {}
                for name in (side.get("file"), side.get("lexical")):
                    if _file_name(name) and (self.index_dir / name).is_file():
                        shutil.copy2(self.index_dir / name, target.index_dir / name)
                if side:
                    shutil.copy2(
                        self.index_dir / ann_mod.SIDECAR, target.index_dir / ann_mod.SIDECAR
                    )
                generation = self._store.backup_to(target.database)
            kept = self._back_up_model(target.default_model, with_model)
            active = self._store.active_model()
            manifest = {
                "format": 1,
                "home": str(home),
                "generation": generation,
                "model": {
                    "kept": kept,  # linked, copied, referenced, or None (no trained model)
                    "path": str(self.default_model_path.resolve()) if kept else None,
                    "active": active,
                },
            }
            (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        except BaseException:
            _remove_made(dest, made)
            raise
        return {
            "backup": str(dest),
            "generation": generation,
            "index_generation": side.get("generation"),
            "model": kept,
            "model_copied": kept in ("linked", "copied"),
            "seconds": round(time.perf_counter() - t0, 3),
        }

    @contextmanager
    def _lock_unless_read_only(self) -> Iterator[None]:
        """The index lock; in a home whose index folder cannot be written, none (no
        process that cannot write it publishes there, and a restore catches up from
        the change log or rebuilds when the copied files are not the log's)."""
        try:
            lock = FileLock(self.layout.lock_file, poll_interval=0.005)
            lock.acquire()
        except OSError as exc:
            if exc.errno not in READ_ONLY_ERRNOS:
                raise
            yield
            return
        try:
            yield
        finally:
            lock.release()

    def _back_up_model(self, dest: Path, copy: bool) -> str | None:
        """Keep the trained default model in a backup: ``copied``, ``linked`` (its files
        hard-linked: a backup costs no model's worth of space) or ``referenced`` (no
        link across file systems: the manifest names the folder). None: no model."""
        src = self.default_model_path
        if not src.is_dir():
            return None
        if copy:
            shutil.copytree(src, dest)
            return "copied"
        try:
            shutil.copytree(src, dest, copy_function=os.link)
            return "linked"
        except (OSError, shutil.Error):
            shutil.rmtree(dest, ignore_errors=True)
            return "referenced"

    @classmethod
    def restore(cls, src: Path | str, home: Path | str | None = None, **kw: Any) -> FoodIndex:
        """A home made from a backup folder (``backup``), all or nothing: the backup is
        restored into a temporary folder beside the home, its indexes caught up and
        verified there against its own database (whatever ``FOODVEC_DB`` says), and
        only then moved into place, the database last. A backup that does not verify
        leaves nothing behind, so a retry works. Refuses a home that already holds a
        database. The restored home has its own copy of the model (the backup's, or
        the one its manifest references), recorded under the home's path, and none of
        the original home's change-log readers."""
        if kw.pop("db", None):
            raise BadInputError("restore makes a SQLite home; a database URL does not apply")
        src = Path(src).expanduser()
        source = Layout(src)
        if not source.database.is_file():
            raise BadInputError(f"{src} is not a foodvec backup: it has no {source.database.name}")
        home_path = Path(home).expanduser() if home else settings().home
        target = Layout(home_path)
        if target.database.exists():
            raise BadInputError(
                f"{home_path} already holds a database; restore into a new or empty home"
            )
        if home_path.exists() and not home_path.is_dir():
            raise BadInputError(f"{home_path} is not a folder")
        manifest = _read_manifest(src / MANIFEST)
        model_from = _backed_up_model(source, manifest)
        parent = home_path.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        for left in parent.glob(f".{home_path.name}.restoring-*"):
            shutil.rmtree(left, ignore_errors=True)  # a restore killed half-way
        work = Path(tempfile.mkdtemp(prefix=f".{home_path.name}.restoring-", dir=parent))
        try:
            stage = Layout(work)
            shutil.copy2(source.database, stage.database)
            if source.index_dir.is_dir():
                shutil.copytree(
                    source.index_dir, stage.index_dir, ignore=shutil.ignore_patterns(".lock")
                )
            own_model = model_from is not None and not target.default_model.exists()
            if own_model:
                shutil.copytree(model_from, stage.default_model)  # its own: never links
            problems = _check_restored(cls, src, stage, target, manifest, own_model, kw)
            if problems:
                shown = "; ".join(problems[:3]) + ("; …" if len(problems) > 3 else "")
                raise BadInputError(
                    f"{src} does not restore ({shown}); nothing was restored into {home_path}"
                )
            settle_sqlite_file(stage.database)  # one file to move: no -wal, no -shm
            _move_into(work, home_path, target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return cls(home_path, db=target.db_url, **kw)

    def _adopt_model(self, manifest: dict[str, Any], now_at: Path, copied: Path) -> None:
        """Record the restored home's own model folder as the model of the items that
        were embedded with the backed-up one (its fingerprint must match)."""
        from .embedder import model_fingerprint

        was = (manifest.get("model") or {}).get("path")
        for info in self._store.models():
            name = str(info["name"])
            ours = name == was or (was is None and Path(name).parts[-2:] == ("models", "default"))
            if not ours:
                continue
            try:
                fp = model_fingerprint(copied)
            except OSError as exc:
                log.warning("the restored model at %s cannot be read: %s", copied, exc)
                return
            if fp != info["fingerprint"]:
                log.warning(
                    "the backup's model (from %s) is not the one the items were embedded "
                    "with (fingerprint %s, not %s): it changed after the backup; search "
                    "needs that model (--model) or a rebuild",
                    name,
                    fp[:12],
                    str(info["fingerprint"])[:12],
                )
                continue
            self._store.rename_model(info["fingerprint"], str(now_at))

    # -- reports ------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        s = self._store.stats()
        model = s["model"]
        info = self._store.model_info(model) if model else None
        side = ann_mod.read_sidecar(self.index_dir) or {}
        if side and (side.get("format") != ann_mod.FORMAT or ann_mod._sidecar_problem(side)):
            side = {}  # damaged (NaN, Infinity, ...): shown as no published index
        return {
            "home": str(self.home),
            "items": s["items"],
            "generation": s["generation"],
            "model": model,
            "model_name": info["name"] if info else None,
            "dim": info["dim"] if info else None,
            "vectors_cached": s["vectors"],
            "mine_threshold": self.mining_threshold(),
            "health_head": self._health_head_info(),
            "index": {
                "type": side.get("kind"),
                "params": side.get("params"),
                "requested": side.get("requested"),
                "count": side.get("count"),
                "generation": side.get("generation"),
            },
            # What this object (a server: since it started) did to its in-memory index.
            "in_memory": {
                "generation": self._memory_generation(),
                **self.index_counters(),
            },
        }

    def _health_head_info(self) -> dict[str, Any] | None:
        """The model's health head (``indexer.health``): its accuracy on the held-out
        phrases and how many labelled phrases fitted it; None when the model has none."""
        from .health import head_for

        try:
            head = head_for(self.model_spec())
        except ModelNotFoundError:
            return None
        if head is None:
            return None
        return {"heldout_accuracy": head.heldout_accuracy, "train_rows": head.train_rows}

    def _memory_generation(self) -> int | None:
        with self._mutex:
            return (self._ann_meta or {}).get("generation") if self._ann is not None else None

    def verify(self) -> list[str]:
        """Compare the published FAISS index with the database; [] when they agree."""
        problems = self._store.integrity_problems()
        if problems:  # a damaged database: the indexes cannot be checked against it
            return problems
        self.sync()  # an index left behind by a crashed writer is caught up first
        model = self._store.active_model()
        count = self._store.count()
        lex: LexicalIndex | None = None
        with self._mutex:
            in_memory = self._unsaved is not None and self._ann is not None
            if in_memory:
                # The index folder cannot be written (a read-only home): the indexes
                # searches use are the published ones caught up in memory; check those.
                loaded = (self._ann, dict(self._ann_meta or {}))
                lex = self._lex
        if not in_memory:
            try:
                loaded = AnnIndex.load(self.index_dir)
            except ann_mod.DamagedIndex as exc:
                return [f"the published index is damaged: {exc}"]
        if model is None:
            if count:
                problems.append(f"the database holds {count} items but no model")
            return problems
        if loaded is None:
            return [f"no readable FAISS index in {self.index_dir} for {count} items"]
        ann, meta = loaded
        gen = self._store.generation()
        if meta.get("generation") != gen:
            problems.append(f"index generation {meta.get('generation')} != database {gen}")
        if meta.get("model") != model:
            problems.append(f"index model {str(meta.get('model'))[:12]} != database {model[:12]}")
        if ann.count != count:
            problems.append(f"index holds {ann.count} vectors, database {count} items")
        missing_vec = self._store.missing_vectors(model)
        if missing_vec:
            problems.append(f"{missing_vec} items have no stored vector for the model")
        index_ids = ann.ids()
        if len(np.unique(index_ids)) != len(index_ids):
            problems.append("the index holds some ids more than once")
        info = self._store.model_info(model)
        dim = int(info["dim"]) if info else ann.dim
        db_ids_parts = []
        differ: list[int] = []
        index_set = set(index_ids.tolist())
        for ids, vecs in self._store.vectors_for_items(model, dim):
            db_ids_parts.append(ids)
            present = np.array([i in index_set for i in ids.tolist()], dtype=bool)
            if present.any():
                got = np.vstack([ann.reconstruct(i) for i in ids[present]])
                # NaN compares false with everything, so "not close" catches it too.
                bad = ~np.all(np.abs(got - vecs[present]) <= 1e-5, axis=1)
                differ.extend(ids[present][bad].tolist())
        db_ids = np.concatenate(db_ids_parts) if db_ids_parts else np.zeros(0, np.int64)
        only_db = np.setdiff1d(db_ids, index_ids)
        only_index = np.setdiff1d(index_ids, db_ids)
        if len(only_db):
            problems.append(
                f"{len(only_db)} items are missing from the index (item ids {_few(only_db)})"
            )
        if len(only_index):
            problems.append(
                f"the index holds {len(only_index)} ids that the database does "
                f"not (ids {_few(only_index)})"
            )
        if differ:
            problems.append(
                f"{len(differ)} index vectors differ from the stored ones "
                f"(item ids {_few(np.array(differ))})"
            )
        problems.extend(self._verify_lexical(meta, lex))
        return problems

    def _verify_lexical(self, meta: dict[str, Any], lex: LexicalIndex | None = None) -> list[str]:
        """The published lexical index (or ``lex``, the one in memory) holds exactly
        the items' terms."""
        name = meta.get("lexical")
        if lex is None:
            lex = LexicalIndex.load(self.index_dir / name) if name else None
        if lex is None:
            return [f"no readable lexical index in {self.index_dir} (sidecar names {name!r})"]
        wrong, extra = lex.mismatches(self._store.named_docs())
        problems = []
        if wrong:
            problems.append(
                f"{len(wrong)} items are missing from the lexical index or indexed with "
                f"other terms (item ids {_few(np.array(wrong))})"
            )
        if extra:
            problems.append(
                f"the lexical index holds {len(extra)} ids that the database does not "
                f"(ids {_few(np.array(extra))})"
            )
        return problems


@dataclass
class _Changes:
    """What a catch-up changed: the vectors, the lexical index, and the generation
    the indexes now reflect."""

    vectors: bool
    lexical: bool
    generation: int


def _file_name(name: Any) -> bool:
    """A name of a file inside the index folder (a sidecar may be damaged or hostile:
    no folder part, nothing outside the folder)."""
    return isinstance(name, str) and name not in ("", ".", "..") and not set("/\\\x00") & set(name)


def _refuse_an_emptied_database(layout: Layout) -> None:
    """A home's SQLite file of 0 bytes is a new database to SQLite, which would answer
    every search with nothing (and a write would start it afresh): refused when the
    home's index shows that it held items."""
    try:
        empty = layout.database.stat().st_size == 0
    except OSError:
        return  # no database yet: a new home
    side = ann_mod.read_sidecar(layout.index_dir) if empty else None
    generation = (side or {}).get("generation")
    if empty and isinstance(generation, int) and generation > 0:
        raise FoodvecError(
            f"the database {layout.database} is empty (0 bytes), but the index in "
            f"{layout.index_dir} was built from one of generation {generation}: it was "
            "emptied or cut short; restore it from a backup (`foodvec restore`), or "
            f"delete {layout.index_dir} to start this home anew"
        )


def _remove_made(dest: Path, made: bool) -> None:
    """Undo a failed backup: the folder it made, or what it put into an empty one."""
    if made:
        shutil.rmtree(dest, ignore_errors=True)
    elif dest.is_dir():
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def _read_manifest(path: Path) -> dict[str, Any]:
    """A backup's manifest ({} for a backup made before manifests, or a damaged one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _backed_up_model(source: Layout, manifest: dict[str, Any]) -> Path | None:
    """The model folder a restore takes: the backup's own (copied or linked), else
    the one its manifest references, when it is still there."""
    if source.default_model.is_dir():
        return source.default_model
    model = manifest.get("model")
    path = model.get("path") if isinstance(model, dict) else None
    if isinstance(path, str) and path and Path(path).is_dir():
        return Path(path)
    if isinstance(path, str) and path:
        log.warning("the backup references the model at %s, which is gone", path)
    return None


def _check_restored(
    cls: type[FoodIndex],
    src: Path,
    stage: Layout,
    target: Layout,
    manifest: dict[str, Any],
    own_model: bool,
    kw: dict[str, Any],
) -> list[str]:
    """Open the restored home where it is staged (its own database, never
    ``FOODVEC_DB``'s), catch its indexes up and verify them: the problems found."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with cls(stage.home, db=stage.db_url, **kw) as idx:
            idx._store.forget_readers()  # the original home's: they would pin the log
            if own_model:
                idx._adopt_model(manifest, target.default_model, stage.default_model)
            problems = idx.verify()
            idx._store.forget_readers()  # the staging folder's own, from the catch-up
            return problems
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        return [f"its database cannot be read: {type(cause).__name__}: {first}"]


def _move_into(work: Path, home: Path, target: Layout) -> None:
    """Move a staged home into place. A new or empty home is the staged folder,
    renamed; into a folder that holds other things (but no database) the staged
    folders move first and the database last, so a half move is still no home."""
    if home.is_dir() and not any(home.iterdir()):
        home.rmdir()
    if not home.exists():
        os.rename(work, home)
        return
    stage = Layout(work)
    if target.index_dir.exists():  # derived files without a database: stale
        shutil.rmtree(target.index_dir)
    for child in work.iterdir():
        if child != stage.database:
            _merge_move(child, home / child.name)
    os.replace(stage.database, target.database)
    shutil.rmtree(work, ignore_errors=True)


def _merge_move(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest``; into a folder already there, what it lacks (what the
    home holds already is kept)."""
    if not dest.exists():
        os.rename(src, dest)
    elif src.is_dir() and dest.is_dir():
        for child in src.iterdir():
            _merge_move(child, dest / child.name)


def _record(row: ItemRow) -> dict[str, Any]:
    return {"id": row.ext_id, "text": row.text, "metadata": row.metadata}


def _few(ids: np.ndarray, n: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:n])
    return shown + (", …" if len(ids) > n else "")


__all__ = ["FoodIndex", "FoodvecError"]
