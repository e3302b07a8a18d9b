"""The derived indexes of a home: the FAISS and the lexical (BM25) index, kept at one
generation of the database (docs/serving.md, "Consistency").

``DerivedIndex`` loads the published files, catches them up from the change log (or
rebuilds them from the database when it cannot), publishes them atomically under the
index file lock, verifies them against the database, and answers the reads a search
needs (dense search, keyword scores, vectors, filtered ids) at one generation.

It is the one owner of the order of the locks. A search takes its database snapshot
first, then the index mutex (``reading``): the indexes are caught up to that
snapshot, never past it, for as long as the search lasts. A catch-up (``sync``) holds
the mutex and reads the database in one snapshot taken inside it; it waits on the
mutex's condition while searches read the indexes. The file lock (between processes)
is taken only to publish (by a catch-up under the mutex, or by ``publish`` with a copy
taken under it), and nothing that holds the file lock waits for the mutex.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from filelock import FileLock

from . import korean
from .ann import (
    EXACT_SUBSET_MAX,
    AnnIndex,
    DamagedIndex,
    choose_kind,
    published_sidecar,
    read_sidecar,
    rerank,
    top_k_exact,
    write_file_atomic,
)
from .errors import FoodvecError, ModelMismatchError
from .fields import FieldIndex
from .filters import Node
from .lexical import LexicalIndex
from .lists import MISFITS, build_index, misfit
from .settings import Layout
from .storage import Delta, ItemRow, Store

log = logging.getLogger("foodvec")

FILTER_CACHE_ENTRIES = 64
# An index rebuilt beside the served one is caught up without the index lock for up to
# ASIDE_ROUNDS rounds while ASIDE_FEW or more items changed since its last round.
ASIDE_ROUNDS = 10
ASIDE_FEW = 1000
# A server's catch-up thread applies a catch-up read ahead in slices of about this many
# items (the vectors' read batches), letting searches in between (``_apply_ahead``).
SLICE_ITEMS = 500
# A server analyses ahead (``analyse_ahead``) the texts of a catch-up this big or bigger.
AHEAD_MIN = 200
FILTER_CACHE_IDS = 4_000_000  # 32 MB of ids at most
# What a home that cannot be written answers to a write into its index folder.
READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def _no_scores() -> tuple[np.ndarray, np.ndarray, float]:
    return np.zeros(0, np.int64), np.zeros(0, np.float32), 0.0


@dataclass
class _Ahead:
    """A catch-up read ahead of the index lock (``read_ahead``): the change log from
    generation ``since`` to ``delta.generation`` and what applying it reads, all from
    one snapshot of the database."""

    model: str
    since: int
    delta: Delta
    vectors: list[tuple[np.ndarray, np.ndarray]]
    docs: list[tuple[int, str | None, str]]
    rows: dict[int, ItemRow] | None  # the metadata of the field index's items


@dataclass
class _Changes:
    """What a catch-up changed: the vectors, the lexical index, and the generation
    the indexes now reflect."""

    vectors: bool
    lexical: bool
    generation: int


class DerivedIndex:
    """The FAISS and lexical indexes of one home, in memory and published in its
    ``index/`` folder. Thread-safe: every change and read holds ``self._mutex``."""

    def __init__(self, store: Store, layout: Layout):
        self._store = store
        self.layout = layout
        self.index_dir = layout.index_dir
        self._ann: AnnIndex | None = None
        self._ann_meta: dict[str, Any] | None = None
        self._published_gen: int | None = None
        # The lexical (BM25) index: derived like the FAISS one, kept at the same generation.
        self._lex: LexicalIndex | None = None
        # The field index (the items' metadata in columns, for filters): built only by
        # ``warm_fields`` (a server), then kept at the generation of the indexes above
        # (``_fields_gen``); None: filters are answered by the database.
        self._fields: FieldIndex | None = None
        self._fields_gen: int | None = None
        self._fields_wanted = False
        self._mutex = threading.RLock()
        # Searches read the in-memory indexes at one generation, the one of their
        # database snapshot (``reading``): while any does, no catch-up moves the
        # indexes on (a catch-up waits on ``_gate`` until ``_readers`` is 0), so a search
        # never finds them past its snapshot, and never rebuilds because of that.
        self._gate = threading.Condition(self._mutex)
        self._readers = 0
        self._local = threading.local()  # .reading: this thread's search depth
        # Since this object was opened: full rebuilds of the FAISS index (by reason)
        # and catch-ups from the change log (``counters``, ``/metrics``).
        self._rebuilds: dict[str, int] = {}
        self._catchups = 0
        # A server rebuilds an index that is still correct but no longer the one to
        # search (its kind, its shared layout: ``lists.misfit``) beside the one it
        # serves (``rebuild_aside``); a one-shot process (False) rebuilds it in place.
        self.aside = False
        # The epoch after which a layout trained here could not be stored (``lists``).
        self._unshared_after: int | None = None
        # When the in-memory indexes were last seen at the database's generation
        # (monotonic seconds; None: never), for how far behind a server is (``behind``).
        self._fresh_at: float | None = None
        # The generation of in-memory indexes that could not be published because the
        # index folder cannot be written (a read-only home): searches and verify use
        # them as they are (None: nothing unsaved).
        self._unsaved: int | None = None
        # filter (repr of its tree) -> (generation, matching item ids), least recent first
        self._filter_cache: OrderedDict[str, tuple[int, np.ndarray]] = OrderedDict()
        # The next catch-up, read ahead by a server's catch-up thread (``read_ahead``).
        self._ahead: _Ahead | None = None
        # The thread applying a catch-up read ahead, a slice at a time (``_apply_ahead``):
        # the lock is let go between slices, and no other thread changes the indexes.
        self._applying: int | None = None
        self._catching = threading.Lock()  # one ``catch_up`` at a time
        # Set while a catch-up applied in slices waits for the searches under way to end
        # before its next slice: new searches wait too, so that it is never starved.
        self._draining = False

    # -- the locks --------------------------------------------------------------------
    @contextmanager
    def file_lock(self) -> Iterator[None]:
        """The index lock, between processes (and threads): one publisher of the index
        files at a time. ``filelock`` takes it (flock on POSIX, LockFileEx on Windows);
        a folder that cannot be written raises OSError (PermissionError)."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(self.layout.lock_file, poll_interval=0.005):
            yield

    @contextmanager
    def lock_unless_read_only(self) -> Iterator[None]:
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

    @contextmanager
    def reading(self) -> Iterator[None]:
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
                while self._draining:  # a catch-up waits for the searches under way
                    self._gate.wait()
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

    def _reading_here(self) -> bool:
        return getattr(self._local, "reading", 0) > 0

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
            if self._behind_is_fine(have, model):
                return
            if self._readers or self._applying_elsewhere():
                self._gate.wait()  # others read (or change) the indexes: wait
                renewed = False
                continue
            self._sync(None, None, False)
            return

    def _behind_is_fine(self, have: int | None, model: str | None) -> bool:
        """In a server (``aside``): whether a search reads the indexes as they are,
        behind its snapshot, instead of catching them up first. So it does when the
        catch-up is a big one (``AHEAD_MIN`` changes or more, a big build's part), which
        the catch-up thread reads ahead and applies a slice at a time meanwhile: a
        search never waits for it. Its answer then lacks the newest items (a hit whose
        item is gone is left out); ``/ready`` says how far behind the indexes are."""
        meta = self._ann_meta or {}
        if not self.aside or have is None or self._lex is None or meta.get("model") != model:
            return False
        return self._applying is not None or self._store.changes_at_least(have, AHEAD_MIN)

    # -- what the in-memory indexes are -------------------------------------------------
    def lag(self) -> int:
        """Generations the in-memory indexes are behind the database (0: caught up;
        the database's generation when they are not loaded yet)."""
        gen, model = self._store.state()
        have = self.memory_generation()
        if have is None:
            return gen if model else 0
        return max(0, gen - int(have))

    def behind(self) -> tuple[int, float]:
        """(generations behind the database, seconds since the indexes were last seen
        caught up: 0 when they are now, infinity when never). A server with writes
        arriving elsewhere is behind for moments at a time; these seconds say how stale
        its answers can be."""
        gens = self.lag()
        now = time.monotonic()
        if gens == 0:
            self._fresh_at = now
            return 0, 0.0
        return gens, float("inf") if self._fresh_at is None else now - self._fresh_at

    def memory_generation(self) -> int | None:
        """The generation of the in-memory indexes (None: not loaded). Read without the
        index lock, so that ``/ready`` never waits for a catch-up."""
        ann, meta = self._ann, self._ann_meta
        return (meta or {}).get("generation") if ann is not None else None

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

    def counters(self) -> dict[str, Any]:
        """What this object did to its in-memory indexes since it was opened: full
        rebuilds (in all and by reason) and catch-ups from the change log."""
        with self._mutex:
            return {
                "rebuilds": sum(self._rebuilds.values()),
                "rebuild_reasons": dict(self._rebuilds),
                "catchups": self._catchups,
            }

    def _memory_kind(self) -> dict[str, Any]:
        with self._mutex:
            ann = self._ann
            return {"kind": ann.kind, "params": dict(ann.params)} if ann is not None else {}

    def describe(self) -> dict[str, Any]:
        """The published index (its sidecar: nothing when damaged) and what this object
        holds in memory, for ``stats``."""
        side = published_sidecar(self.index_dir)
        return {
            "index": {
                "type": side.get("kind"),
                "params": side.get("params"),
                "requested": side.get("requested"),
                "count": side.get("count"),
                "generation": side.get("generation"),
            },
            # What this object (a server: since it started) did to its in-memory index.
            "in_memory": {
                "generation": self.memory_generation(),
                **self._memory_kind(),
                **self.counters(),
            },
            # The shared IVF layouts stored in the database, newest first (``lists``).
            "layouts": self._store.layouts.describe()[:5],
        }

    # -- catching up --------------------------------------------------------------------
    def sync(
        self, publish: bool | None = None, kind: str | None = None, force_rebuild: bool = False
    ) -> AnnIndex | None:
        """Bring the in-memory FAISS index up to the database's generation.

        Loads the published index, applies the change log since its generation (or
        rebuilds when the log does not reach back, the model changed, or the index kind
        must change). ``publish=True`` saves the result atomically; ``None`` (the
        default) saves it only when the published index was found behind the database,
        which is how a crash between a commit and its index write is repaired on open.
        """
        with self._mutex:
            if self._reading_here():
                # Inside this thread's search the indexes are at its snapshot's
                # generation (``reading``), and stay there until it ends.
                return self._ann
            while True:
                with self._store.snapshot():  # one snapshot of the database
                    # Searches read the indexes at their generation: a change waits
                    # for them to end (a look, or a save, does not).
                    if not self._applying_elsewhere() and (
                        not self._readers or not self._must_change(kind, force_rebuild)
                    ):
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

    def _sync(self, publish: bool | None, kind: str | None, force_rebuild: bool) -> AnnIndex | None:
        """``sync``'s work, under the index lock and in one snapshot (its callers wait
        for the searches under way and for a catch-up applied in slices elsewhere)."""
        gen_now, model = self._store.state()
        from_disk = model is not None and self._ann is None
        if from_disk:
            self._load_published()
        if (
            model is not None
            and self._ann is not None
            and int((self._ann_meta or {})["generation"]) > gen_now
            and self._store.renew_snapshot()
        ):
            # An outer snapshot older than the indexes (another thread or process moved
            # them on since it was taken): read the database again, newer.
            gen_now, model = self._store.state()
        if model is None:
            self._ann, self._ann_meta, self._lex = None, None, None
            self._fields = None
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
            self._fresh_at = time.monotonic()
            return self._ann  # the common case: nothing changed since the last look
        if not from_disk and meta.get("model") == model and "dim" in meta:
            dim = int(meta["dim"])  # checked when this index was loaded: no read
        else:
            info = self._store.model_info(model)
            dim = int(info["dim"]) if info else 0
        requested = kind or meta.get("requested", "auto")
        want = choose_kind(requested, self._store.count())
        old_gen = int(meta.get("generation", -1))
        changes = self._advance(model, dim, want, from_disk, gen_now, force_rebuild)
        ann = self._ann
        self._ann_meta = {
            **(self._ann_meta or {}),
            "generation": changes.generation,
            "model": model,
            "dim": dim,
            "requested": requested,
            "kind": ann.kind,
            "count": ann.count,
        }
        advanced = changes.vectors or changes.generation != old_gen
        self._publish_after(publish, from_disk, advanced, changes, model, requested)
        if changes.generation == gen_now:
            self._fresh_at = time.monotonic()
        return ann

    def _advance(
        self, model: str, dim: int, want: str, from_disk: bool, gen: int, force_rebuild: bool
    ) -> _Changes:
        """Catch the indexes up from the change log, or rebuild them from the database
        when that cannot be done (or ``force_rebuild``); a missing lexical index is
        built from the database."""
        changes = "forced" if force_rebuild else self._apply_log(model, dim, want, from_disk, gen)
        if isinstance(changes, str):  # a full rebuild, and why
            self._rebuilds[changes] = self._rebuilds.get(changes, 0) + 1
            log.info("rebuilding the index from the database (%s)", changes)
            gen = self._store.generation()
            built = build_index(self._store, want, model, dim, gen, self._store.count())
            self._ann, self._unshared_after = built.ann, built.unshared_after
            if changes not in MISFITS:  # a misfit's other indexes are caught up already
                self._lex = None
                self._fields = None
            changes = _Changes(vectors=True, lexical=True, generation=gen)
        if self._lex is None:
            self._lex = LexicalIndex.build(self._store.named_docs())
            changes.lexical = True
        if self._fields is not None and self._fields_gen != changes.generation:
            self._fields = None  # not caught up with the others (never expected)
        if self._fields is None and self._fields_wanted:
            self._build_fields(changes.generation)
        return changes

    def _publish_after(
        self,
        publish: bool | None,
        from_disk: bool,
        advanced: bool,
        changes: _Changes,
        model: str,
        requested: str,
    ) -> None:
        """Save the caught-up indexes as ``sync``'s ``publish`` says; ``None`` repairs
        on open (saves what was found behind the database), where it can."""
        gen = changes.generation
        repair = publish is None
        if repair:
            publish = from_disk and (advanced or changes.lexical)
        if not publish or not (advanced or changes.lexical or self._published_gen != gen):
            return
        if repair:
            # A search or verify: what it needs is in memory now, saved or not.
            self._save_if_possible(self._ann, gen, model, requested, changes.vectors)
        else:
            self._save(self._ann, gen, model, requested, changes.vectors, self._lex.to_bytes())

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
        if int(meta.get("generation", -1)) > gen:
            return "database behind the index"
        return None

    def _fits(self, model: str, want: str, changes: _Changes) -> _Changes | str:
        """``changes``, or why the caught-up FAISS index must be built again because it
        no longer fits its items (``lists.misfit``): at once in a one-shot process; in
        a server (``aside``) later, beside the one it serves (``rebuild_aside``)."""
        if self.aside:
            return changes
        return misfit(self._store, self._ann, want, model, self._unshared_after) or changes

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
            return self._fits(model, want, _Changes(vectors=False, lexical=False, generation=gen))
        prior = None
        ahead = self._ahead
        if ahead is not None and (ahead.since, ahead.model) == (old_gen, model):
            if ahead.delta.generation <= gen:  # read at a generation this one reaches
                self._ahead = None  # taken (one that does not fit waits for its thread)
                prior = self._apply_delta(model, dim, ahead.delta, False, ahead)
                if isinstance(prior, str):
                    return prior
                old_gen = prior.generation
                if old_gen == gen or self._store.changes_at_least(old_gen, AHEAD_MIN):
                    # the rest is big too: the catch-up thread's next look reads it ahead
                    return self._fits(model, want, prior)
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
        changes = self._apply_delta(model, dim, delta, reloaded, None)
        if isinstance(changes, str):
            return changes
        if prior is not None:
            changes.vectors |= prior.vectors
            changes.lexical |= prior.lexical
        return self._fits(model, want, changes)

    def _apply_delta(
        self, model: str, dim: int, delta: Delta, reloaded: bool, ahead: _Ahead | None
    ) -> _Changes | str:
        """Apply one stretch of the change log to the in-memory indexes, reading what
        it needs now or taking what ``ahead`` read; why not (the index must be rebuilt)."""
        touched, gen, metadata = delta
        ann = self._ann
        ids = np.fromiter(touched, dtype=np.int64, count=len(touched))
        if not ann.supports_remove and np.isin(ids, ann.ids()).any():
            return "index cannot remove"  # it must be rebuilt to change an item
        self._catchups += 1
        changes = _Changes(vectors=reloaded, lexical=False, generation=gen)
        if ahead is not None and self.aside and ann.supports_remove and len(ids) > SLICE_ITEMS:
            self._apply_ahead(ann, ids, ahead)
            changes.vectors = True
            changes.lexical = self._lex is not None
        elif len(ids):
            if ann.supports_remove:
                ann.remove(ids)
            vectors = ahead.vectors if ahead else self._store.vectors_for_items(model, dim, ids)
            for got_ids, vecs in vectors:
                ann.add(got_ids, vecs)
            changes.vectors = True
            if self._lex is not None:
                docs = ahead.docs if ahead else self._store.named_docs(ids)
                self._lex.update(ids.tolist(), docs)
                changes.lexical = True
        meta_ids = np.fromiter(metadata, np.int64, len(metadata))
        self._catch_up_fields(meta_ids, gen, reloaded, ahead.rows if ahead else None)
        return changes

    def _apply_ahead(self, ann: AnnIndex, ids: np.ndarray, ahead: _Ahead) -> None:
        """Apply a big catch-up read ahead to the indexes in slices of about
        ``SLICE_ITEMS``, letting the index lock go between them (searches read the
        indexes as they are meanwhile: ``_behind_is_fine``); no other thread changes
        them until it is done (``_applying_elsewhere``)."""
        docs = {d[0]: d for d in ahead.docs}
        with_vector = set()
        self._applying = threading.get_ident()
        try:
            for got_ids, vecs in ahead.vectors:
                with_vector.update(got_ids.tolist())
                ann.remove(got_ids)
                ann.add(got_ids, vecs)
                if self._lex is not None:
                    part = got_ids.tolist()
                    self._lex.update(part, [docs[i] for i in part if i in docs])
                self._let_searches_in()
            gone = np.array([i for i in ids.tolist() if i not in with_vector], np.int64)
            if len(gone):  # deleted, or without a vector: out of the indexes
                ann.remove(gone)
                if self._lex is not None:
                    self._lex.update(gone.tolist(), [docs[i] for i in gone.tolist() if i in docs])
        finally:
            self._applying = None
            self._gate.notify_all()

    def _let_searches_in(self) -> None:
        """Under the index lock: let it go a moment for the searches waiting for it,
        then take it back once none of them reads the indexes."""
        self._gate.notify_all()  # the searches waiting since the last slice go in now
        self._gate.wait(0.002)
        self._draining = True  # searches that come now wait for the next slice's end
        try:
            while self._readers:
                self._gate.wait()
        finally:
            self._draining = False

    def _applying_elsewhere(self) -> bool:
        """Whether another thread applies a catch-up a slice at a time (``_apply_ahead``):
        the indexes are its until it is done."""
        return self._applying is not None and self._applying != threading.get_ident()

    def _catch_up_fields(
        self, ids: np.ndarray, gen: int, reloaded: bool, rows: dict[int, ItemRow] | None = None
    ) -> None:
        """Bring the field index to generation ``gen`` with the items whose metadata
        the change log names (``ids``; ``rows``: theirs, read ahead)."""
        if self._fields is None or self._fields_gen == gen:
            return
        if reloaded:
            self._fields = None  # behind the reloaded indexes, past the log: built again
            return
        if len(ids):
            rows = self._store.items_by_ids(ids.tolist()) if rows is None else rows
            self._fields.update(ids.tolist(), {i: r.metadata for i, r in rows.items()})
        self._fields_gen = gen

    # -- the published files ------------------------------------------------------------
    def _load_published(self, newer_than: int = -1) -> bool:
        try:
            loaded = AnnIndex.load(self.index_dir)
        except DamagedIndex as exc:
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
        with self.file_lock():
            on_disk = published_sidecar(self.index_dir)  # damaged: replaced, never newer
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
            write_file_atomic(self.index_dir / name, lexical)
            ann.save(self.index_dir, {**sidecar, "lexical": name}, vectors_changed=vectors_changed)
            for old in self.index_dir.glob("lexical-*.npz"):
                if old.name != name:
                    old.unlink(missing_ok=True)
        self._published_gen = gen
        self._unsaved = None
        home = self.layout.home.resolve()
        self._store.prune_changes(gen, reader=f"{socket.gethostname()}:{home}")

    def publish(self) -> bool:
        """Save the in-memory index if it is newer than the published one (the server's
        periodic compaction). The copy is taken as a reader: catch-ups wait for it, and
        so does a search that must catch up first; others read beside it."""
        with self._mutex:
            while self._applying_elsewhere():
                self._gate.wait()
            if self._ann is None or self._ann_meta is None:
                return False
            meta = dict(self._ann_meta)
            if meta["generation"] == self._published_gen:
                return False
            ann, lex = self._ann, self._lex
            self._readers += 1  # catch-ups wait for the copy; searches read beside it
        try:
            copy = ann.clone()
            lexical = lex.to_bytes() if lex is not None else b""
        finally:
            with self._mutex:
                self._readers -= 1
                if not self._readers:
                    self._gate.notify_all()
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

    def unpublished(self) -> tuple[int, int | None]:
        """(items in the in-memory index, items changed since the published generation;
        None when the change log cannot say), for a server to size its saves by."""
        with self._mutex:
            if self._ann is None or self._ann_meta is None:
                return 0, 0
            gen, published = int(self._ann_meta["generation"]), self._published_gen
            count = self._ann.count
        if published is None:
            return count, None
        if gen == published:
            return count, 0
        delta = self._store.changes_since(published)
        return count, None if delta is None else len(delta.metadata)

    def catch_up(self) -> None:
        """For a server: catch the indexes up to the database a stretch at a time, each
        read ahead without the index lock (``read_ahead``) and then applied in slices
        (``sync``), so that no search waits for a big change; one thread at a time (the
        catch-up thread, a write through this server waiting for its own generation)."""
        with self._catching:
            lag = self.behind()[0]  # at 0 it marks the indexes fresh now (``/ready``)
            while lag:
                self.read_ahead()
                self.sync()
                now = self.behind()[0]
                if now >= lag:  # no nearer (writes go on meanwhile): the next look
                    return
                lag = now

    def read_ahead(self) -> int:
        """For a server's catch-up thread, before ``sync``: read what the next catch-up
        needs (the change log, the vectors, the texts, analysed for the lexical index)
        from one snapshot now, without the index lock, which searches wait for; the
        catch-up then applies it (and whatever landed after it). Only for catch-ups of
        ``AHEAD_MIN`` to ``korean.AHEAD_MAX`` items; returns how many were read."""
        meta, lex = self._ann_meta, self._lex
        if meta is None or lex is None or "dim" not in meta:
            return 0
        since, model, dim = int(meta["generation"]), meta["model"], int(meta["dim"])
        with self._store.snapshot():
            gen, now_model = self._store.state()
            if now_model != model or gen <= since:
                return 0
            delta = self._store.changes_since(since, most=korean.AHEAD_MAX)
            if delta is None or not AHEAD_MIN <= len(delta.touched) <= 2 * korean.AHEAD_MAX:
                return 0  # small: caught up inline; one huge generation: caught up as before
            ids = np.fromiter(delta.touched, dtype=np.int64, count=len(delta.touched))
            vectors = list(self._store.vectors_for_items(model, dim, ids))
            docs = list(self._store.named_docs(ids))
            fields = self._fields is not None and bool(delta.metadata)
            rows = self._store.items_by_ids(sorted(delta.metadata)) if fields else None
        korean.analyse_ahead((n, t) for _, n, t in docs)
        self._ahead = _Ahead(model, since, delta, vectors, docs, rows)
        return len(ids)

    # -- rebuilding beside the served index -------------------------------------------
    def rebuild_aside(self) -> str | None:
        """For a server (``aside``): when the in-memory index is correct but no longer
        the one to search (``lists.misfit``: its kind for the items it holds, a newer
        shared layout, a layout outgrown), build the right one from a snapshot of the
        database without the index lock, while searches go on against the old one;
        then, under the lock, catch it up from the change log and put it in place.
        Returns why it rebuilt (None: nothing to do, or the model changed meanwhile)."""
        with self._mutex:
            if self._ann is None or self._ann_meta is None or self._reading_here():
                return None
            meta = dict(self._ann_meta)
            want = choose_kind(meta.get("requested", "auto"), self._ann.count)
            why = misfit(self._store, self._ann, want, meta["model"], self._unshared_after)
        if why is None:
            return None
        model, dim = meta["model"], int(meta["dim"])
        with self._store.snapshot():
            gen, now_model = self._store.state()
            if now_model != model:
                return None  # a model change is rebuilt by the next catch-up
            count = self._store.count()
            want = choose_kind(meta.get("requested", "auto"), count)
            started = time.perf_counter()
            built = build_index(self._store, want, model, dim, gen, count)
        log.info(
            "rebuilt the index beside the one served (%s): %s, %d items, %.1f s",
            why,
            built.ann.kind,
            built.ann.count,
            time.perf_counter() - started,
        )
        return why if self._swap_in(built, gen, model, dim, why) else None

    def _catch_up_aside(self, new: AnnIndex, gen: int, model: str, dim: int) -> int | None:
        """Catch an index built aside at generation ``gen`` up from the change log
        without the lock (nobody searches it yet), round after round while many items
        changed meanwhile, leaving the last few to ``_swap_in``; its generation (None:
        the model changed, or the log no longer reaches back)."""
        for _ in range(ASIDE_ROUNDS):
            with self._store.snapshot():
                now, now_model = self._store.state()
                if now_model != model:
                    return None
                if now <= gen:
                    return gen
                delta = self._store.changes_since(gen)
                if delta is None:
                    return None
                if len(delta.touched) < ASIDE_FEW:
                    return gen
                ids = np.fromiter(delta.touched, np.int64, len(delta.touched))
                new.remove(ids)
                for got_ids, vecs in self._store.vectors_for_items(model, dim, ids):
                    new.add(got_ids, vecs)
                gen = delta.generation
        return gen

    def _swap_in(self, built, gen: int, model: str, dim: int, why: str) -> bool:
        """Put an index built aside at generation ``gen`` in place of the served one,
        both caught up to one newer snapshot first (most of it without the lock:
        ``_catch_up_aside``; the rest under it, no search reading)."""
        new = built.ann
        self.catch_up()  # the served index first, a big change in slices, before the lock
        caught = self._catch_up_aside(new, gen, model, dim)
        if caught is None:
            return False
        gen = caught
        with self._mutex:
            while True:
                with self._store.snapshot():
                    if self._readers or self._applying_elsewhere():
                        self._gate.wait()
                        continue
                    self._sync(None, None, False)
                    meta = self._ann_meta or {}
                    now = int(meta.get("generation", -1))
                    if self._ann is None or meta.get("model") != model or now < gen:
                        return False
                    if now > gen:
                        delta = self._store.changes_since(gen)
                        if delta is None:
                            return False  # the log no longer reaches back: next tick
                        ids = np.fromiter(delta.touched, np.int64, len(delta.touched))
                        new.remove(ids)
                        for got_ids, vecs in self._store.vectors_for_items(model, dim, ids):
                            new.add(got_ids, vecs)
                    self._ann, self._unshared_after = new, built.unshared_after
                    self._ann_meta = {**meta, "kind": new.kind, "count": new.count}
                    self._rebuilds[why] = self._rebuilds.get(why, 0) + 1
                    self._published_gen = None  # the next look saves it
                    return True

    # -- the reads a search needs ---------------------------------------------------------
    def warm_index(self) -> None:
        """Copy a FAISS index mapped from its file into memory now, for a server to call
        at start: its first catch-up then changes it in place without that copy inside
        the lock (searches go on meanwhile; a one-shot search never pays it)."""
        with self._mutex:
            ann = self._ann
            source = ann.source if ann is not None else None
        if source is None:
            return
        copy = source.load()
        with self._mutex:
            if self._ann is ann:
                ann.adopt(source, copy)

    def warm_lexical(self) -> None:
        """Load the Korean analyzer now (about 2.5 s), for a server to call at start: it
        is otherwise loaded by the first write or catch-up that indexes an item (never
        by a search that needs no catch-up)."""
        from . import korean

        korean.warm()

    def warm_fields(self) -> bool:
        """Build the field index now (for a server to call at start), and keep it
        caught up from then on: filters are answered from memory, a first use
        included. False when the home holds no index yet. A one-shot process never
        builds it (one scan of the database answers its filter for less)."""
        with self._mutex:
            if self._reading_here():
                return self._fields is not None  # a search does not build it
            self._fields_wanted = True
            while True:
                with self._store.snapshot():
                    busy = self._readers and self._must_change(None, False)
                    if not busy and not self._applying_elsewhere():
                        self._sync(None, None, False)
                        meta = self._ann_meta or {}
                        if self._ann is None:
                            return False
                        gen = int(meta["generation"])
                        if self._fields is None or self._fields_gen != gen:
                            self._build_fields(gen)
                        return True
                self._gate.wait()

    def _build_fields(self, gen: int) -> None:
        """The field index from the database (under the index lock, in the snapshot
        of generation ``gen``)."""
        started = time.perf_counter()
        self._fields = FieldIndex.build(self._metadata_pages())
        self._fields_gen = gen
        log.info(
            "field index: %d items, %d keys, %.1f MB, built in %.2f s",
            len(self._fields),
            len(self._fields.keys()),
            self._fields.nbytes() / 2**20,
            time.perf_counter() - started,
        )

    def _metadata_pages(self, batch: int = 20000) -> Iterator[tuple[int, dict[str, Any]]]:
        """(item id, metadata) of every item, in id order, a page at a time."""
        after = -1
        while True:
            rows = self._store.page(after=after, limit=batch)
            yield from ((r.id, r.metadata) for r in rows)
            if len(rows) < batch:
                return
            after = rows[-1].id

    def lexical_scores(
        self, query: str, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """BM25 of every item sharing a term with ``query`` (restricted to ``allowed``),
        as (item ids, scores, the score of a full match); at the database's generation."""
        with self._mutex:
            self._current()
            lex = self._lex
            if lex is None:
                return _no_scores()
            ids, scores = lex.score(query, allowed=allowed)
            return ids, scores, lex.full_score(query)

    def lexical_read(
        self, queries: Sequence[str], facts: Sequence[str] = (), allowed: np.ndarray | None = None
    ) -> tuple[list[tuple[np.ndarray, np.ndarray, float]], dict[str, np.ndarray]]:
        """Several keyword scorings (as ``lexical_scores``) and the items stating each
        of ``facts`` (``need:bones:help``; restricted to ``allowed``), all at one
        generation of the database."""
        empty = _no_scores()
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
            # A quantized index's candidates are ranked by their stored vectors.
            exact = self._stored_vectors if ann.quantized else None
            exact_subset = (
                allowed is not None and ann.kind != "flat" and len(allowed) <= EXACT_SUBSET_MAX
            )
            if exact_subset:
                # A narrow filter: exact search over that subset beats a walk of the
                # approximate index that skips most of what it visits.
                try:
                    held = ann.reconstruct_many(allowed)
                except RuntimeError:
                    held = None  # an id the index lacks (a write in between): the selector
                if held is not None and exact is None:
                    return top_k_exact(queries, allowed, held, k)
                if held is not None:
                    near = top_k_exact(queries, allowed, held, k * ann.rerank_factor)[1]
                    return rerank(queries, near, k, exact)
            return ann.search(queries, k, allowed, exact=exact)

    def _stored_vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, stored vectors) of these items for the index's model, read from the
        database in this search's snapshot (under the index lock)."""
        meta = self._ann_meta or {}
        return self._store.gather_vectors(meta["model"], int(meta["dim"]), ids.tolist())

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
            ids = self._fields_answer(where, gen)
        if ids is None:
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

    def _fields_answer(self, where: Node, gen: int) -> np.ndarray | None:
        """The filter's ids from the field index (under the index lock) when it is
        loaded and at ``gen``, the generation of the database this read sees, as the
        other indexes are; None: the database answers."""
        if self._fields is None or self._fields_gen != gen or self.memory_generation() != gen:
            return None
        return self._fields.evaluate(where)

    def vectors(self, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, stored vectors) of the given items (all when None), for the
        home's model, read from the database; empty when the home has none."""
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
        from the database, unless the index is quantized (it holds codes, not vectors)."""
        want = np.asarray(list(ids), dtype=np.int64)
        with self._mutex:
            ann = self._ann
            if ann is not None and len(want) and not ann.quantized:
                try:
                    return want, ann.reconstruct_many(want)
                except RuntimeError:
                    pass  # an id the index lacks, or a kind that cannot reconstruct
        return self.vectors(want.tolist())

    # -- verify -------------------------------------------------------------------------
    def verify(self) -> list[str]:
        """Compare the published indexes (or, in a home whose index folder cannot be
        written, the ones in memory) with the database; [] when they agree."""
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
            except DamagedIndex as exc:
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
        problems.extend(self._vector_problems(ann, model))
        problems.extend(self._lexical_problems(meta, lex))
        return problems

    def _vector_problems(self, ann: AnnIndex, model: str) -> list[str]:
        """The index holds each item once, no other ids, and the stored vectors."""
        problems = []
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
                held = ann.held_form(vecs[present])
                bad = ~np.all(np.abs(got - held) <= 1e-5, axis=1)
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
        return problems

    def _lexical_problems(self, meta: dict[str, Any], lex: LexicalIndex | None) -> list[str]:
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


def refuse_an_emptied_database(layout: Layout) -> None:
    """A home's SQLite file of 0 bytes is a new database to SQLite, which would answer
    every search with nothing (and a write would start it afresh): refused when the
    home's index shows that it held items."""
    try:
        empty = layout.database.stat().st_size == 0
    except OSError:
        return  # no database yet: a new home
    side = read_sidecar(layout.index_dir) if empty else None
    generation = (side or {}).get("generation")
    if empty and isinstance(generation, int) and generation > 0:
        raise FoodvecError(
            f"the database {layout.database} is empty (0 bytes), but the index in "
            f"{layout.index_dir} was built from one of generation {generation}: it was "
            "emptied or cut short; restore it from a backup (`foodvec restore`), or "
            f"delete {layout.index_dir} to start this home anew"
        )


def _few(ids: np.ndarray, n: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:n])
    return shown + (", …" if len(ids) > n else "")
