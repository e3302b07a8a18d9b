"""Shared layouts of the approximate index: the trained IVF coarse centroids, stored in
the database beside the items so that every home on it (every replica) builds its
index on the same lists, searches them with the same probes and gives the same answers.

A layout is written once and never changed, except for its measured recall. Two homes
that train one at the same moment race on a unique (model, kind, epoch): the first
insert wins and the other home uses the winner's. Layouts are written outside the
writer's lock (they change no item and no generation), so a long build never holds one
back; a write that still fails (the database busy past its timeout, a read-only file)
leaves the home with its own layout, unshared, which the next rebuild tries again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from .sql import Database

log = logging.getLogger("foodvec")

_COLUMNS = "id, epoch, dim, nlist, nprobe, trained_count, generation, centroids, checksum"


@dataclass(frozen=True)
class Layout:
    """One trained layout. ``epoch`` 0: trained here and not (yet) stored."""

    epoch: int
    dim: int
    nlist: int
    nprobe: int
    trained_count: int
    generation: int
    centroids: np.ndarray  # (nlist, dim) float32
    checksum: str
    id: int | None = None

    @classmethod
    def trained(
        cls, centroids: np.ndarray, nprobe: int, trained_count: int, generation: int
    ) -> Layout:
        c = np.ascontiguousarray(centroids, dtype="<f4")
        return cls(0, c.shape[1], c.shape[0], nprobe, trained_count, generation, c, _digest(c))


def _digest(centroids: np.ndarray) -> str:
    h = hashlib.sha256(f"{centroids.shape[0]}x{centroids.shape[1]}:".encode())
    h.update(np.ascontiguousarray(centroids, dtype="<f4").tobytes())
    return h.hexdigest()


def _layout(row) -> Layout | None:
    """A stored layout, checked: its centroids must have the shape and checksum stored
    with them (a damaged row is no layout, and the next training replaces it)."""
    lid, epoch, dim, nlist, nprobe, trained, gen, blob, checksum = row
    if len(blob) != 4 * dim * nlist:
        return None
    c = np.frombuffer(blob, dtype="<f4").reshape(nlist, dim)
    if _digest(c) != checksum:
        return None
    return Layout(epoch, dim, nlist, nprobe, trained, gen, c.astype(np.float32), checksum, lid)


class Layouts:
    """The layouts of one store."""

    def __init__(self, store: Database):
        self.store = store

    def latest(self, model_fp: str, kind: str) -> Layout | None:
        """The layout in force for ``model_fp`` and ``kind`` (the newest epoch), read in
        its own transaction (never a pinned snapshot: a layout stored by another home
        a moment ago counts)."""
        with self.store.engine.connect() as conn, conn.begin():
            row = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM ann_layouts WHERE model_fp = :m AND kind = :k "
                    "ORDER BY epoch DESC LIMIT 1"
                ),
                {"m": model_fp, "k": kind},
            ).first()
        return _layout(row) if row else None

    def latest_epoch(self, model_fp: str, kind: str) -> int:
        """The newest epoch stored (0: none), one small read."""
        with self.store.engine.connect() as conn, conn.begin():
            got = conn.execute(
                text("SELECT max(epoch) FROM ann_layouts WHERE model_fp = :m AND kind = :k"),
                {"m": model_fp, "k": kind},
            ).scalar()
        return int(got or 0)

    def add(self, model_fp: str, kind: str, layout: Layout, after: int) -> Layout:
        """Store ``layout`` as the epoch after ``after``; the layout in force afterwards:
        this one, or the one another home stored first for that epoch. When it cannot
        be written, ``layout`` itself (epoch 0: unshared)."""
        try:
            with self.store.engine.connect() as conn, conn.begin():
                lid = conn.execute(
                    text(
                        "INSERT INTO ann_layouts(model_fp, kind, epoch, dim, nlist, nprobe, "
                        "trained_count, generation, centroids, checksum) VALUES (:m, :k, :e, "
                        ":d, :n, :p, :t, :g, :c, :s) RETURNING id"
                    ),
                    {
                        "m": model_fp,
                        "k": kind,
                        "e": after + 1,
                        "d": layout.dim,
                        "n": layout.nlist,
                        "p": layout.nprobe,
                        "t": layout.trained_count,
                        "g": layout.generation,
                        "c": layout.centroids.astype("<f4").tobytes(),
                        "s": layout.checksum,
                    },
                ).scalar_one()
            return Layout(**{**layout.__dict__, "epoch": after + 1, "id": lid})
        except IntegrityError:
            won = self.latest(model_fp, kind)  # another home stored this epoch first
            if won is not None and won.dim == layout.dim:
                return won
        except OperationalError as exc:
            log.warning("the index layout could not be stored (%s); using it unshared", exc)
        return layout

    def record_recall(self, layout_id: int, recall: float) -> None:
        """Record a layout's measured recall@10 (best effort: a failure only leaves it
        unrecorded)."""
        try:
            with self.store.engine.connect() as conn, conn.begin():
                conn.execute(
                    text("UPDATE ann_layouts SET recall_at_10 = :r WHERE id = :i"),
                    {"r": float(recall), "i": layout_id},
                )
        except OperationalError as exc:
            log.warning("the index layout's recall could not be recorded (%s)", exc)

    def describe(self) -> list[dict]:
        """Every stored layout, newest first, without its centroids (for ``stats``)."""
        with self.store.engine.connect() as conn, conn.begin():
            rows = conn.execute(
                text(
                    "SELECT model_fp, kind, epoch, nlist, nprobe, trained_count, generation, "
                    "recall_at_10, checksum FROM ann_layouts ORDER BY id DESC"
                )
            ).all()
        keys = ("model", "kind", "epoch", "nlist", "nprobe", "trained_count", "generation")
        return [
            {**dict(zip(keys, r[:7], strict=True)), "recall_at_10": r[7], "checksum": r[8][:12]}
            for r in rows
        ]
