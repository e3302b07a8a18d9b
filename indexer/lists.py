"""The lists of the approximate index, shared by every home on one database.

An IVF index searches the lists whose centroids are nearest the query. When each home
(each replica) trained its own centroids, two replicas on one database gave different
answers to the same query. Here a full build takes the layout in force from the
database (``storage.layouts``), and trains and stores one only when there is none for
the model, or when the items have grown ``LAYOUT_GROWTH`` times over the count it was
trained on. The home that trains a layout measures its recall@10 and records it.

``misfit`` says when an index that is still correct is no longer the one the home
should search (the wrong kind for its size, a newer shared layout, a layout outgrown):
a server rebuilds it beside the one it serves (``DerivedIndex.rebuild_aside``); a
one-shot process rebuilds it in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .ann import (
    IVF_KINDS,
    LAYOUT_GROWTH,
    AnnIndex,
    default_nprobe,
    ivf_nlist,
    layout_recall,
    train_centroids,
)
from .storage import Store
from .storage.layouts import Layout

log = logging.getLogger("foodvec")

# Why an index that is correct for its generation is built again (``misfit``).
MISFITS = ("index kind changed", "index layout changed", "index outgrew its layout")


@dataclass
class Built:
    """A full build: the index, and the epoch after which a layout trained here could
    not be stored (None: the index is on the shared layout, or needs none)."""

    ann: AnnIndex
    unshared_after: int | None = None


def build_index(store: Store, want: str, model: str, dim: int, gen: int, count: int) -> Built:
    """The index of kind ``want`` over every vector of ``model`` in the store (``count``
    items, at generation ``gen``), on the shared layout where the kind has one."""
    built = Built(ann=None)  # type: ignore[arg-type]
    trained: list[Layout] = []

    def layout(sample) -> tuple[np.ndarray, int, dict]:
        # the newest epoch stored (a damaged one included: ``latest`` is None for it),
        # read before training: a home that stores that epoch's successor first wins,
        # and the others take its layout (``Layouts.add``)
        after = store.layouts.latest_epoch(model, want)
        got = store.layouts.latest(model, want)
        if got is None or got.dim != dim or count > LAYOUT_GROWTH * max(got.trained_count, 1):
            nlist = ivf_nlist(count)
            mine = Layout.trained(
                train_centroids(sample(), dim, nlist),
                min(nlist, default_nprobe(want)),
                max(count, 1),
                gen,
            )
            stored = store.layouts.add(model, want, mine, after)
            if stored.epoch == 0:
                built.unshared_after = after
            elif stored.checksum == mine.checksum:
                trained.append(stored)
            got = stored
        params = {"trained": got.trained_count}
        if got.epoch:
            params["layout"] = got.epoch
        return got.centroids, got.nprobe, params

    built.ann = AnnIndex.build(
        want,
        dim,
        lambda: store.vectors_for_items(model, dim),
        count,
        layout=layout if want in IVF_KINDS else None,
    )
    if trained:
        recall = layout_recall(built.ann)
        if recall is not None:
            store.layouts.record_recall(trained[0].id, recall)
        log.info(
            "trained the shared index layout %d (%d lists for %d items): recall@10 %s",
            trained[0].epoch,
            trained[0].nlist,
            trained[0].trained_count,
            "unmeasured" if recall is None else f"{recall:.3f}",
        )
    return built


def misfit(store: Store, ann: AnnIndex, want: str, model: str, unshared_after: int | None):
    """Why ``ann`` (correct for its generation) should be built again, or None: the
    wrong kind for the items it holds, a newer layout stored by another home, or its
    layout outgrown."""
    if ann.kind != want:
        return "index kind changed"
    if ann.kind not in IVF_KINDS:
        return None
    have = int(ann.params.get("layout", 0))
    latest = store.layouts.latest_epoch(model, ann.kind)
    if latest > have and latest != unshared_after:
        return "index layout changed"
    trained = ann.params.get("trained")
    if trained and ann.count > LAYOUT_GROWTH * int(trained) and latest == have:
        return "index outgrew its layout"
    return None
