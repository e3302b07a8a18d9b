"""Writes beside searches on one ``FoodIndex``: the index is caught up from the change
log, never rebuilt because a write ran beside a search (issue 24, item 1), and every
search reads the index and the rows it joins at one generation."""

from __future__ import annotations

import threading
import time

import numpy as np

import indexer.ann
from indexer import BuildOptions, FoodIndex
from indexer.text import normalize_text
from tests.conftest import SAMPLE
from tests.fakes import FakeEmbedder

SECONDS = 3.0
QUERIES = ["두부 단백질", "김치찌개", "칼슘 풍부한 우유", "저염 간식", "현미밥", "사과"]


def test_writes_beside_searches_never_rebuild_and_stay_consistent(home, monkeypatch):
    emb = FakeEmbedder(64)
    idx = FoodIndex(home, embedder=emb)
    idx.build([SAMPLE], BuildOptions(progress=False))
    idx.search("두부", k=3)  # the first build and a first look are done

    builds = []
    real_build = indexer.ann.AnnIndex.build

    def counted(*args, **kw):
        builds.append(threading.current_thread().name)
        return real_build(*args, **kw)

    monkeypatch.setattr(indexer.ann.AnnIndex, "build", counted)
    rebuilds_before = idx.index_counters()["rebuilds"]

    stop = threading.Event()
    failures: list[str] = []
    searches = [0]
    writes = [0]
    rewritten_hits = [0]  # hits of the items rewritten again and again: checked too
    lock = threading.Lock()

    def writer(n: int) -> None:
        i = 0
        try:
            while not stop.is_set():
                # new items, and the same few items rewritten again and again (a new
                # text each time, so a vector and a row of different generations differ)
                idx.upsert(
                    [
                        {"id": f"w{n}-{i}", "text": f"새 음식 {n} {i}: 두부 단백질 {i * 7}"},
                        {"id": f"hot{n}", "text": f"자주 바뀌는 음식 {n}: 칼슘 {i} 김치 {i % 5}"},
                    ],
                    publish=False,
                )
                i += 1
                with lock:
                    writes[0] += 1
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(f"writer {n}: {type(exc).__name__}: {exc}")

    def searcher(n: int) -> None:
        rng = np.random.default_rng(n)
        try:
            while not stop.is_set():
                q = QUERIES[int(rng.integers(len(QUERIES)))]
                mode = ("dense", "hybrid")[n % 2]
                hits = idx.search(q, k=8, mode=mode)[0]
                if not hits:
                    failures.append(f"search {q!r} ({mode}) found nothing")
                qv = emb.encode([normalize_text(q)])[0]
                for h in hits:
                    # The vector the index scored and the row joined to it belong to
                    # one generation: the score is the cosine of the row's own text.
                    want = float(emb.encode([h.text])[0] @ qv)
                    if h.dense is not None and abs(h.dense - want) > 1e-4:
                        failures.append(
                            f"{h.id}: index score {h.dense:.5f} is not that of its text "
                            f"{h.text!r} ({want:.5f})"
                        )
                with lock:
                    searches[0] += 1
                    rewritten_hits[0] += sum(h.id.startswith("hot") for h in hits)
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(f"searcher {n}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer, args=(n,), name=f"writer{n}") for n in range(2)]
    threads += [threading.Thread(target=searcher, args=(n,), name=f"searcher{n}") for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), f"{t.name} is stuck"

    assert failures[:5] == []
    assert writes[0] >= 10 and searches[0] >= 20, (writes, searches)
    assert rewritten_hits[0] > 0
    assert builds == [], f"{len(builds)} full rebuilds beside {writes[0]} writes"
    counters = idx.index_counters()
    assert counters["rebuilds"] == rebuilds_before
    assert counters["catchups"] > 0
    # The writes left the files for a later publish (as the server does): published
    # now, the index agrees with the database, item by item.
    assert idx.publish()
    assert idx.verify() == []
    idx.close()
