"""Big builds land in slices (``indexer.storage.slices``): each part under the write
lock alone, other writers between the parts, and the build still lands whole: one
stopped before its rows are copied lands nothing, one stopped after is finished by
the next process that looks. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

import indexer.storage.slices as slices
from indexer import BuildOptions, FoodIndex
from indexer.errors import FoodvecError
from tests.conftest import run, write_csv

STORES = ("sqlite", "postgres")
ROWS = 25  # three parts of 10


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setattr(slices, "SLICE_ROWS", 10)


def rows(n: int = ROWS, tag: str = "") -> list[dict]:
    return [{"id": f"r{i:03d}", "text": f"음식 {i} {tag}: 나트륨 {i} mg"} for i in range(n)]


def table(db, sql: str) -> list[tuple]:
    with db.read() as conn:
        return [tuple(r) for r in conn.execute(text(sql)).all()]


def test_a_big_build_lands_in_parts_each_its_own_generation(
    fakes, home, tmp_path, small_parts, monkeypatch
):
    f = write_csv(tmp_path / "in.csv", rows())
    real = slices.land_part
    parts = []

    def land_part(store, tx, landing, embed=None):
        b = real(store, tx, landing, embed)
        with store.read() as conn:  # what a reader sees once the part is in
            parts.append((b.generation, conn.execute(text("SELECT count(*) FROM items")).scalar()))
        return b

    monkeypatch.setattr(slices, "land_part", land_part)
    with FoodIndex(home) as idx:
        gen0 = idx.stats()["generation"]
        s = idx.build([f], BuildOptions(progress=False))
        assert (s.new, s.updated, s.unchanged, s.items) == (ROWS, 0, 0, ROWS)
        assert s.generation == gen0 + 3
        assert parts == [(gen0 + 1, 10), (gen0 + 2, 20), (gen0 + 3, 25)]
        db = idx._store
        # input order kept across the parts: ids grow with the rows
        ids = [r[0] for r in table(db, "SELECT ext_id FROM items ORDER BY id")]
        assert ids == [r["id"] for r in rows()]
        assert table(db, "SELECT count(*) FROM landing_rows") == [(0,)]
        landing = idx.stats()["landings"][0]
        assert (landing["state"], landing["parts"], landing["landed"], landing["new"]) == (
            "landed",
            3,
            3,
            ROWS,
        )
        assert idx.verify() == []
        assert idx.searcher().search(rows()[7]["text"], k=1, mode="dense")[0][0].id == "r007"
        again = idx.build([f], BuildOptions(progress=False))
        assert (again.new, again.unchanged, again.generation) == (0, ROWS, s.generation)


def test_other_writers_land_between_the_parts_and_the_later_write_wins(
    fakes, home, tmp_path, small_parts, monkeypatch
):
    f = write_csv(tmp_path / "in.csv", rows())
    other = FoodIndex(home)
    real = slices.land_part
    seen = []

    def land_part(store, tx, landing, embed=None):
        b = real(store, tx, landing, embed)
        if b is not None and b.landed == 1:
            # the build holds no lock between its parts: this write lands now
            later = [{"id": "r001", "text": "나중 글 1"}, {"id": "r020", "text": "나중 글 20"}]
            other.upsert(later)
            seen.append(other.stats()["generation"])
        return b

    monkeypatch.setattr(slices, "land_part", land_part)
    with FoodIndex(home) as idx:
        s = idx.build([f], BuildOptions(progress=False))
        assert seen and seen[0] < s.generation
        # r001 landed in part 0, before the write: the write stays; r020 lands in part
        # 2, after it: the build's row wins
        assert idx.item("r001").text == "나중 글 1"
        assert idx.item("r020").text == rows()[20]["text"]
        assert idx.count() == ROWS
        assert idx.verify() == []
    other.close()


class Stop(Exception):
    pass


@pytest.mark.hostile
def test_a_build_stopped_while_landing_is_finished_by_the_next_look(
    fakes, home, tmp_path, small_parts, monkeypatch
):
    f = write_csv(tmp_path / "in.csv", rows())
    real = slices.land_part
    calls = []

    def land_part(store, tx, landing, embed=None):
        calls.append(landing)
        if len(calls) == 2:
            raise Stop("the process stops here")
        return real(store, tx, landing, embed)

    monkeypatch.setattr(slices, "land_part", land_part)
    with FoodIndex(home) as idx:
        with pytest.raises(Stop):
            idx.build([f], BuildOptions(progress=False))
        monkeypatch.setattr(slices, "land_part", real)
        db = idx._store
        assert idx.count() == 10  # one part landed
        (landing,) = idx.stats()["landings"]
        assert (landing["state"], landing["landed"], landing["parts"]) == ("landing", 1, 3)
        # vacuum keeps the vectors of the rows still to land
        db.collect_vectors()
        assert db.finish_landings() == []  # its process moved it on a moment ago
        monkeypatch.setattr(slices, "STALE_S", 0.0)
        assert db.finish_landings() == [landing["id"]]
        assert idx.count() == ROWS
        assert table(db, "SELECT count(*) FROM landing_rows") == [(0,)]
        assert idx.verify() == []


@pytest.mark.hostile
def test_a_build_stopped_while_copying_lands_nothing(
    fakes, home, tmp_path, small_parts, monkeypatch
):
    f = write_csv(tmp_path / "in.csv", rows())
    real = slices._copy_parts

    def copy_parts(staging, landing):
        real(staging, landing)
        raise Stop("stopped before the landing was marked")

    monkeypatch.setattr(slices, "_copy_parts", copy_parts)
    with FoodIndex(home) as idx:
        with pytest.raises(Stop):
            idx.build([f], BuildOptions(progress=False))
        assert idx.count() == 0
        assert table(idx._store, "SELECT count(*) FROM landing_rows") == [(0,)]
        assert table(idx._store, "SELECT count(*) FROM landings") == [(0,)]


def test_a_model_switch_waits_for_a_landing_of_another_model(
    fakes, home, tmp_path, small_parts, monkeypatch
):
    f = write_csv(tmp_path / "in.csv", rows())
    real = slices.land_part

    def land_part(store, tx, landing, embed=None):
        b = real(store, tx, landing, embed)
        if b is not None and b.landed == 1:
            raise Stop
        return b

    monkeypatch.setattr(slices, "land_part", land_part)
    with FoodIndex(home) as idx:
        with pytest.raises(Stop):
            idx.build([f], BuildOptions(progress=False))
    monkeypatch.setattr(slices, "land_part", real)
    with FoodIndex(home, model="fake-other") as idx:
        g = write_csv(tmp_path / "small.csv", rows(3, "다른"))
        with pytest.raises(FoodvecError, match="another model is landing"):
            idx.build([g], BuildOptions(progress=False, reembed=True))
        assert idx.count() == 10


def test_stats_names_a_landing_that_stopped(fakes, home, tmp_path, small_parts, monkeypatch):
    f = write_csv(tmp_path / "in.csv", rows())

    def land_part(store, tx, landing, embed=None):
        raise Stop

    monkeypatch.setattr(slices, "land_part", land_part)
    with FoodIndex(home) as idx, pytest.raises(Stop):
        idx.build([f], BuildOptions(progress=False))
    res = run("stats")
    assert res.exit_code == 0, res.output
    assert "landing:    build" in res.output and "0 of 3 parts landed" in res.output
    out = json.loads(run("stats", "--json").output)
    assert out["landings"][0]["state"] == "landing"


@pytest.mark.hostile
def test_a_server_finishes_a_landing_whose_build_stopped(
    fakes, home, tmp_path, small_parts, monkeypatch
):
    import time

    from fastapi.testclient import TestClient

    import search.service.app as app_module
    from search.service.app import create_app

    f = write_csv(tmp_path / "in.csv", rows())
    real = slices.land_part

    def land_part(store, tx, landing, embed=None):
        raise Stop

    monkeypatch.setattr(slices, "land_part", land_part)
    with FoodIndex(home) as idx, pytest.raises(Stop):
        idx.build([f], BuildOptions(progress=False))
    monkeypatch.setattr(slices, "land_part", real)
    monkeypatch.setattr(slices, "STALE_S", 0.0)
    monkeypatch.setattr(app_module, "RELAYOUT_EVERY_S", 0.05)
    with FoodIndex(home) as idx, TestClient(create_app(idx, compact_every=0)) as c:
        deadline = time.monotonic() + 30
        while idx.count() < ROWS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert idx.count() == ROWS
        assert idx.stats()["landings"][0]["state"] == "landed"
        while c.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        hits = c.post("/search", json={"query": rows()[24]["text"], "k": 1, "mode": "dense"})
        assert hits.json()["results"][0]["id"] == "r024"


@pytest.mark.hostile
@pytest.mark.parametrize("cleared", ["before the copy", "part of the copy"])
def test_a_copy_cleared_as_abandoned_under_a_live_build_lands_nothing(
    fakes, home, tmp_path, small_parts, monkeypatch, cleared
):
    f = write_csv(tmp_path / "in.csv", rows())
    real = slices._copy_parts

    def copy_parts(staging, landing):
        # another process took the copy for abandoned (a slow copy, a long lock wait)
        if cleared == "before the copy":
            slices._clear(staging.store, landing)
            return real(staging, landing)
        got = real(staging, landing)
        with staging.store.immediate() as conn:
            conn.execute(text("DELETE FROM landing_rows WHERE part = 0"))
        return got

    monkeypatch.setattr(slices, "_copy_parts", copy_parts)
    with FoodIndex(home) as idx:
        with pytest.raises(FoodvecError, match="cleared as abandoned"):
            idx.build([f], BuildOptions(progress=False))
        assert idx.count() == 0
        assert table(idx._store, "SELECT count(*) FROM landing_rows") == [(0,)]
        assert table(idx._store, "SELECT count(*) FROM landings") == [(0,)]


def test_a_copy_its_process_moves_on_is_not_cleared(fakes, home, tmp_path, small_parts):
    with FoodIndex(home) as idx:
        db = idx._store
        with db.immediate() as conn:
            conn.execute(
                text(
                    "INSERT INTO landings(state, model_fp, model_name, dim, rows, parts, landed, "
                    "new, updated, unchanged) VALUES ('copying', 'm', 'm', 4, 0, 0, 0, 0, 0, 0)"
                )
            )
        assert db.finish_landings() == []  # moved a moment ago: left to its process
        assert table(db, "SELECT state FROM landings") == [("copying",)]
