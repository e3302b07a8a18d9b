"""Backup while a writer runs, and restore into a new home."""

from __future__ import annotations

import json
import threading
import time

import pytest

from indexer import FoodIndex
from indexer.errors import BadInputError
from tests.conftest import run
from tests.fakes import FakeEmbedder


def test_backup_and_restore_round_trip_on_the_cli(built, fakes, tmp_path):
    before = json.loads(run("search", "칼슘", "-k", "5", "--json").stdout)
    res = run("backup", tmp_path / "bk", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["generation"] >= 1 and out["index_generation"] == out["generation"]
    assert run("backup", tmp_path / "bk").exit_code == 1  # not an empty folder: refused
    new = tmp_path / "new-home"
    res = run("restore", tmp_path / "bk", "--home", new, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["items"] == 234 and json.loads(res.stdout)["problems"] == []
    after = json.loads(run("search", "칼슘", "-k", "5", "--json", "--home", new).stdout)
    assert after == before
    # a home that holds a database is never overwritten; a folder without one is no backup
    res = run("restore", tmp_path / "bk", "--home", new)
    assert res.exit_code == 1 and "already holds a database" in res.output
    (tmp_path / "empty").mkdir()
    res = run("restore", tmp_path / "empty", "--home", tmp_path / "other")
    assert res.exit_code == 1 and "not a foodvec backup" in res.output


def test_backup_while_a_writer_upserts_keeps_every_acknowledged_write(home, tmp_path):
    embedder = FakeEmbedder(32)
    with FoodIndex(home, embedder=embedder) as idx:
        idx.upsert([{"id": f"base{n}", "text": f"기본 음식 {n}"} for n in range(200)])
    acked: list[tuple[float, str]] = []
    stop = threading.Event()

    def writer() -> None:
        with FoodIndex(home, embedder=embedder) as w:
            n = 0
            while not stop.is_set():
                w.upsert([{"id": f"w{n}", "text": f"새 음식 {n}"}], publish=n % 5 == 0)
                acked.append((time.monotonic(), f"w{n}"))  # acknowledged: committed
                n += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(acked) < 20:
            time.sleep(0.01)
        with FoodIndex(home, embedder=embedder) as idx:
            began = time.monotonic()
            idx.backup(tmp_path / "bk")
        while len(acked) < len([a for a in acked if a[0] <= began]) + 10:
            time.sleep(0.01)  # the writer went on during and after the backup
    finally:
        stop.set()
        t.join()
    must = {i for at, i in acked if at <= began}
    with FoodIndex.restore(tmp_path / "bk", tmp_path / "restored", embedder=embedder) as r:
        assert r.verify() == []
        missing = [i for i in must if r.get(i) is None]
        assert not missing and len(must) >= 20
        assert r.count() >= 200 + len(must)


def test_backup_refuses_a_non_empty_folder_and_restore_keeps_a_home(home, tmp_path):
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert([{"id": "a", "text": "사과"}])
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("x")
        with pytest.raises(BadInputError, match="not empty"):
            idx.backup(tmp_path / "full")
        idx.backup(tmp_path / "bk")
    with pytest.raises(BadInputError, match="already holds"):
        FoodIndex.restore(tmp_path / "bk", home)
