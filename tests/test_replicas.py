"""Serving replicas: `foodvec serve` processes, each with its own home, on one
PostgreSQL database. A write acknowledged by one is found by searches on the others;
kill -9 of any replica loses no acknowledged write; a new replica starting with an
empty home builds its index from the database."""

from __future__ import annotations

import random
import time

import httpx

from indexer import BuildOptions, FoodIndex
from tests.conftest import SAMPLE
from tests.fakes import FakeEmbedder
from tests.servers import Server, kill_under_load


def _found(client: httpx.Client, ext_id: str, text: str) -> bool:
    r = client.post("/search", json={"query": text, "k": 10})
    r.raise_for_status()
    hits = r.json()["results"]
    # the fake embedder hashes character pairs, so "1161" and "1611" embed alike: the
    # item must be among the hits that share the top score
    return ext_id in {h["id"] for h in hits if h["score"] >= hits[0]["score"] - 1e-6}


def _round(victim: Server, other: Server, n: int, delay: float, acked: dict[str, str]) -> int:
    """A writer posting to ``victim`` and a reader searching ``other``; ``victim`` is
    killed with SIGKILL after ``delay``. Returns the writes acknowledged."""

    def items(k: int) -> list[dict]:
        return [
            {"id": f"r{n}-{k + i}", "text": f"요리 {n}-{k + i}: 칼슘 {k + i}"} for i in range(10)
        ]

    return kill_under_load(victim, items, acked, delay, reader=other, query="칼슘")


def test_replicas_share_writes_and_survive_kill_minus_9(tmp_path, pg_url):
    with FoodIndex(tmp_path / "seed", db=pg_url, embedder=FakeEmbedder(64)) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
    homes = [tmp_path / "r0", tmp_path / "r1"]
    servers = [Server(h, "--db", pg_url) for h in homes]
    try:
        # a write through one replica is found on the other
        with httpx.Client(base_url=servers[0].url, timeout=10) as a, httpx.Client(
            base_url=servers[1].url, timeout=10
        ) as b:
            for n in range(5):
                text = f"새 메뉴 {n}: 두부 샐러드"
                assert a.post("/items", json={"items": [{"id": f"v{n}", "text": text}]}).is_success
                deadline = time.monotonic() + 10
                while not _found(b, f"v{n}", text):
                    assert time.monotonic() < deadline, "replica 1 never saw the write"
                    time.sleep(0.02)
        # five kill points, each replica in turn, restarted on its own home
        rng = random.Random(5)
        acked: dict[str, str] = {}
        for n in range(5):
            v = n % 2
            wrote = _round(servers[v], servers[1 - v], n, rng.uniform(0.4, 1.5), acked)
            assert wrote > 0  # the kill hit a live write stream
            servers[v] = Server(homes[v], "--db", pg_url)
        # a cold replica with an empty home, and both restarted ones, find everything
        servers.append(Server(tmp_path / "r2", "--db", pg_url))
        sample = random.Random(1).sample(sorted(acked), min(20, len(acked)))
        for s in servers:
            with httpx.Client(base_url=s.url, timeout=10) as c:
                assert all(_found(c, i, acked[i]) for i in sample)
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.stop()
    for h in [*homes, tmp_path / "r2"]:
        with FoodIndex(h, db=pg_url, embedder=FakeEmbedder(64)) as idx:
            assert [i for i in acked if idx.item(i) is None] == []
            assert idx.verify() == []
