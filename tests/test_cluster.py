"""Ray on a real local cluster (2 CPUs): a build embedded by Ray Data actors gives the
local build's vectors bit for bit, and mining in Ray tasks gives the local pairs."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import indexer.mining
from indexer import FoodIndex
from tests.conftest import SAMPLE, run, write_csv


def _vectors(idx: FoodIndex) -> tuple[list[str], np.ndarray]:
    ids, vecs = idx.vectors()
    rows = idx.items(ids.tolist())
    return [rows[i].ext_id for i in ids.tolist()], vecs


@pytest.mark.model
def test_ray_build_gives_the_local_vectors_bit_for_bit(ray_cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    res = run("build", SAMPLE, "--home", local, "--model", "base", "-q", "--json")
    assert res.exit_code == 0, res.output
    res = run("build", SAMPLE, "--home", remote, "--model", "base", "--ray", "auto", "-q",
              "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["new"] == 234 and summary["embedded"] == 234
    with FoodIndex(local, model="base") as a, FoodIndex(remote, model="base") as b:
        ids_a, vecs_a = _vectors(a)
        ids_b, vecs_b = _vectors(b)
        assert ids_a == ids_b and len(ids_a) == 234
        assert vecs_a.tobytes() == vecs_b.tobytes()  # bit for bit
        assert a.search(["김치", "칼슘 풍부"], k=5) == b.search(["김치", "칼슘 풍부"], k=5)
        assert b.verify() == []
    # a second Ray build of changed rows embeds only what changed, and a re-embedding
    # build sends every stored text to the cluster
    rows = [{"id": "k131", "text": "김치: 유산균 풍부, 새 설명"}, {"id": "x1", "text": "두유"}]
    res = run("build", write_csv(tmp_path / "more.csv", rows), "--home", remote,
              "--model", "base", "--ray", "auto", "-q", "--json")  # fmt: skip
    summary = json.loads(res.stdout)
    assert (summary["new"], summary["updated"], summary["embedded"]) == (1, 1, 2)


def test_ray_mining_gives_the_local_pairs(ray_cluster, built, fakes, monkeypatch):
    # small steps, so that the 234 rows make several blocks of several steps
    monkeypatch.setattr(indexer.mining, "EXACT_STEP", 16)
    with FoodIndex(built) as idx:
        for mode in ("exact", "approximate"):
            local = idx.mine(threshold=0.5, top_k=5, mode=mode)
            remote = idx.mine(threshold=0.5, top_k=5, mode=mode, ray="auto")
            assert local.pairs > 50 and remote.pairs == local.pairs
            assert idx.job_pairs(remote.job) == idx.job_pairs(local.job)
    res = run("mine", "--threshold", "0.5", "--ray", "auto", "--json")
    assert res.exit_code == 0, res.output
    assert res.stdout == run("mine", "--threshold", "0.5", "--json").stdout


def test_mine_blocks_cover_every_row_once(ray_cluster):
    import faiss

    from indexer.cluster import mine_blocks

    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((1001, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(16)
    flat.add(vecs)
    rows, cols, scores = mine_blocks("auto", flat, vecs, 64, 4, 3, -1.0)
    got = np.concatenate(rows)
    assert np.array_equal(np.unique(got), np.arange(1001))
    assert np.bincount(got).tolist() == [3] * 1001  # every row, top 3, once


def test_ray_flag_without_ray_says_how_to_install_it(built, fakes, monkeypatch):
    import ray as real

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    try:
        res = run("mine", "--ray", "auto")
        assert res.exit_code == 1 and "pip install 'foodvec[cluster]'" in res.output
        res = run("build", SAMPLE, "--ray", "auto")
        assert res.exit_code == 1 and "pip install 'foodvec[cluster]'" in res.output
    finally:
        sys.modules["ray"] = real


def _closed_port() -> int:
    from tests.servers import free_port

    return free_port()  # free: nothing listens there


def test_a_stale_cluster_file_or_a_dead_address_is_refused_within_seconds(tmp_path):
    """A cluster file left by a Ray cluster that has stopped, RAY_ADDRESS naming one,
    and an address nothing answers at: each a one-line error in seconds, from a
    process that is not yet connected (Ray itself would wait, deaf to SIGTERM)."""
    import os
    import subprocess
    import time

    dead = f"127.0.0.1:{_closed_port()}"
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(dead + "\n")
    env = {**os.environ, "RAY_TMPDIR": str(tmp_path), "FOODVEC_HOME": str(tmp_path / "h")}
    env.pop("RAY_ADDRESS", None)
    cases = [
        (["--ray", "auto"], env, "does not answer"),
        (["--ray", "auto"], {**env, "RAY_ADDRESS": dead}, "RAY_ADDRESS names"),
        (["--ray", dead], env, "nothing answers there"),
    ]
    for flags, case_env, words in cases:
        started = time.monotonic()
        res = subprocess.run(
            [sys.executable, "-m", "search.cli", "build", str(SAMPLE), "--model", "base", *flags],
            capture_output=True, text=True, env=case_env, timeout=60,
        )  # fmt: skip
        took = time.monotonic() - started
        assert res.returncode == 1 and words in res.stderr, (flags, res.stderr[-600:])
        assert "Traceback" not in res.stderr and took < 10, took
