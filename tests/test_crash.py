"""Kill a build at random moments: the database holds the old state or the new one,
never half, and the index agrees with it once the home is opened again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from indexer import FoodIndex
from tests.conftest import ROOT, write_csv
from tests.fakes import FakeEmbedder

# Each test runs on SQLite and on PostgreSQL (a killed writer on either store).
STORES = ("sqlite", "postgres")


def start_build(path, home, *extra):
    env = {**os.environ, "FOODVEC_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.slow_cli",
            "build",
            str(path),
            "-q",
            "--model",
            "fake",
            "--batch-size",
            "50",
            *extra,
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_build_killed_at_random_points_lands_all_or_nothing(home, tmp_path):
    first = write_csv(
        tmp_path / "first.csv",
        [{"id": f"a{i}", "text": f"첫 음식 {i}: 단백질 풍부"} for i in range(300)],
    )
    proc = start_build(first, home)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    rng = random.Random(7)
    landed = killed = 0
    for attempt in range(6):
        rows = [
            {"id": f"b{attempt}-{i}", "text": f"새 음식 {attempt}-{i}: 칼슘 풍부"}
            for i in range(1500)
        ]
        second = write_csv(tmp_path / f"second{attempt}.csv", rows)
        with FoodIndex(home, embedder=FakeEmbedder(64)) as idx:
            before = idx.count()
        proc = start_build(second, home)
        time.sleep(rng.uniform(0.2, 2.5))
        was_killed = proc.poll() is None
        if was_killed:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        code = proc.wait(timeout=60)
        with FoodIndex(home, embedder=FakeEmbedder(64)) as idx:
            after = idx.count()
            assert after in (before, before + 1500), (before, after)
            last_landed = after == before + 1500
            landed += last_landed
            assert idx.verify() == []
        if not was_killed:  # a build that ran to its end succeeded and landed whole
            assert code == 0 and after == before + 1500, (code, proc.stderr.read())
    assert killed >= 3  # the test must really have interrupted builds
    # Killed builds left nothing behind: the count is the builds that landed, and
    # building the last file again lands it (or changes nothing if it had landed).
    proc = start_build(second, home)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    with FoodIndex(home, embedder=FakeEmbedder(64)) as idx:
        assert idx.count() == 300 + 1500 * (landed + (not last_landed))
        assert idx.verify() == []
