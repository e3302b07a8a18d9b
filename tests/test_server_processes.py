"""Real server processes on loopback: kill -9 under load loses nothing acknowledged,
and a CLI build against the same home neither fails nor stalls the server."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time

import httpx
import pytest

from indexer import BuildOptions, FoodIndex
from tests.conftest import ROOT, SAMPLE, write_csv
from tests.fakes import FakeEmbedder
from tests.servers import Server, kill_under_load


@pytest.fixture
def built_home(home):
    with FoodIndex(home, embedder=FakeEmbedder(64)) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
    return home


def load_then_kill(home, round_no: int, delay: float, acked: dict[str, str]) -> int:
    """One writer posting batches and three readers searching; SIGKILL after ``delay``.
    Returns how many writes this round acknowledged."""

    def items(n: int) -> list[dict]:
        return [
            {"id": f"r{round_no}-{n + i}", "text": f"음식 {round_no}-{n + i}: 단백질 {n + i} 풍부"}
            for i in range(20)
        ]

    return kill_under_load(Server(home), items, acked, delay, readers=3)


def test_kill_minus_9_under_load_loses_no_acknowledged_write(built_home):
    rng = random.Random(11)
    acked: dict[str, str] = {}
    per_round = [load_then_kill(built_home, n, rng.uniform(0.5, 2.5), acked) for n in range(3)]
    assert all(n > 0 for n in per_round), per_round  # each kill hit a live write stream
    assert len(acked) > 0
    server = Server(built_home)  # the restart
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            for ext_id in random.Random(1).sample(sorted(acked), min(25, len(acked))):
                r = c.post("/search", json={"query": acked[ext_id], "k": 10})
                hits = r.json()["results"]
                # the fake embedder hashes character pairs, so "1161" and "1611" embed
                # alike: the item must be among the hits that share the top score
                assert ext_id in {h["id"] for h in hits if h["score"] >= hits[0]["score"] - 1e-6}
    finally:
        server.stop()
    with FoodIndex(built_home, embedder=FakeEmbedder(64)) as idx:
        missing = [i for i in acked if idx.item(i) is None]
        assert missing == []
        assert idx.verify() == []


def test_cli_build_while_the_server_serves(built_home, tmp_path):
    server = Server(built_home)
    rows = [{"id": f"c{i}", "text": f"새 카탈로그 음식 {i}: 칼슘 풍부"} for i in range(1500)]
    f = write_csv(tmp_path / "more.csv", rows)
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[str] = []

    def reader():
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                r = c.post("/search", json={"query": "칼슘 풍부", "k": 3})
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors.append(r.text)

    try:
        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        env = {**os.environ, "FOODVEC_HOME": str(built_home), "PYTHONPATH": str(ROOT)}
        build = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.slow_cli",
                "build",
                str(f),
                "-q",
                "--model",
                "fake",
                "--batch-size",
                "100",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert build.returncode == 0, build.stderr
        assert errors == [] and latencies
        assert max(latencies) < 5.0
        with httpx.Client(base_url=server.url, timeout=30) as c:
            r = c.post("/search", json={"query": rows[777]["text"], "k": 1})
            assert r.json()["results"][0]["id"] == "c777"
            assert c.get("/stats").json()["items"] == 234 + 1500
    finally:
        server.stop()
    with FoodIndex(built_home, embedder=FakeEmbedder(64)) as idx:
        assert idx.verify() == []
