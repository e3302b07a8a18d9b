"""PostgreSQL as the store: the migrations, the same answers as SQLite, writers on
several processes queueing on the database's lock, and homes that share one database
each catching up from its change log. (The feature tests of test_build, test_filters,
test_records, test_search, test_mining, test_hybrid, test_service and test_bad_input
run on PostgreSQL too: their modules set STORES.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from indexer import BuildOptions, FoodIndex
from indexer.storage import HEAD_REVISION, Store, current_revision
from indexer.storage.schema import Base
from tests.conftest import ROOT, SAMPLE, run
from tests.fakes import FakeEmbedder

QUERIES = ["김치", "칼슘 풍부", "비타민 C", "달콤한 간식", "저지방 우유"]
WHERES = [
    None,
    {"category": "과일"},
    {"healthy": 1},
    {"$or": [{"category": {"$in": ["과일", "채소"]}}, {"name": {"$contains": "우유"}}]},
    {"category": {"$gt": "과"}},
    {"name": {"$exists": False}},
    {"healthy": {"$ne": 0}},
]


def test_migrations_run_on_postgres_and_match_the_models(pg_url):
    store = Store.open(pg_url)
    assert current_revision(store.engine) == HEAD_REVISION
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ on PostgreSQL: {diff}"
    Store.open(pg_url).close()  # opening again is a no-op
    store.close()


def _answers(idx: FoodIndex) -> dict:
    out: dict = {}
    for w in WHERES:
        hits = idx.search(QUERIES, k=5, where=w)
        out[json.dumps(w, ensure_ascii=False)] = [
            [(h.id, round(h.score, 5), h.metadata) for h in row] for row in hits
        ]
        if w is not None:
            out["count " + json.dumps(w, ensure_ascii=False)] = idx.delete_where(w, dry_run=True)
    out["records"] = idx.records(where={"healthy": 0}, limit=50)
    out["facets"] = idx.facets()
    job = idx.mine(threshold=0.6, top_k=5)
    pairs = idx.job_pairs(job.job)
    out["pairs"] = [(p["id_a"], p["id_b"], round(p["score"], 5)) for p in pairs]
    return out


def test_same_answers_on_sqlite_and_postgres(tmp_path, pg_url):
    emb = FakeEmbedder(64)
    homes = {
        "sqlite": FoodIndex(tmp_path / "s", embedder=emb),
        "postgres": FoodIndex(tmp_path / "p", db=pg_url, embedder=emb),
    }
    answers = {}
    for name, idx in homes.items():
        idx.build([SAMPLE], BuildOptions(progress=False))
        idx.upsert([{"id": "new1", "text": "수제 요거트: 칼슘 풍부", "kcal": 95, "organic": True}])
        idx.update("k131", {"kcal": 15.5})
        idx.delete(["k132"])
        idx.delete_where({"category": "국물요리"})
        assert idx.verify() == []
        answers[name] = _answers(idx)
        idx.close()
    assert answers["sqlite"]["facets"] and answers["sqlite"]["pairs"]
    for key in answers["sqlite"]:
        assert answers["postgres"][key] == answers["sqlite"][key], key


def test_cli_on_postgres_with_db_url(fakes, tmp_path, pg_url):
    res = run("build", SAMPLE, "--db", pg_url, "-q", "--json")
    assert res.exit_code == 0, res.output
    res = run("search", "김치", "--db", pg_url, "--where", "healthy=1", "--json", "-k", "2")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["id"] == "k131"
    # another home on the same database: its index is built from the database
    res = run("search", "김치", "--db", pg_url, "--home", tmp_path / "other", "--json")
    assert json.loads(res.stdout)["results"][0]["id"] == "k131"
    assert run("verify", "--db", pg_url).exit_code == 0
    res = run("backup", tmp_path / "b.db", "--db", pg_url)
    assert res.exit_code != 0 and "its own tools" in res.output


WRITER = """
import sys
import time
from indexer import FoodIndex
from tests.fakes import FakeEmbedder
url, home, tag, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with FoodIndex(home, db=url, embedder=FakeEmbedder(64)) as idx:
    for r in range(rounds):
        idx.upsert([{"id": f"{tag}-{r}-{i}", "text": f"음식 {tag} {r} {i}"} for i in range(5)])
"""


def test_writers_on_two_processes_queue_on_the_database_lock(tmp_path, pg_url):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, pg_url, str(tmp_path / f"h{n}"), f"w{n}", "15"],
            cwd=ROOT,
        )
        for n in range(3)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    store = Store.open(pg_url)
    with store.read() as conn:
        gens = conn.execute(text("SELECT DISTINCT generation FROM changes")).scalars().all()
    # 45 writes, each its own generation, none lost or shared
    assert store.count() == 225 and store.generation() == 45
    assert len(gens) <= 45
    store.close()
    for n in range(3):
        with FoodIndex(tmp_path / f"h{n}", db=pg_url, embedder=FakeEmbedder(64)) as idx:
            assert idx.verify() == []
            assert idx.search("음식 w2 14 4", k=1)[0][0].id == "w2-14-4"


def test_homes_on_one_database_catch_up_from_the_log(tmp_path, pg_url, monkeypatch):
    emb = FakeEmbedder(64)
    a = FoodIndex(tmp_path / "a", db=pg_url, embedder=emb)
    b = FoodIndex(tmp_path / "b", db=pg_url, embedder=emb)
    a.build([SAMPLE], BuildOptions(progress=False))
    assert b.search("김치", k=1)[0][0].id == "k131"  # b builds its index from the database
    b.publish()
    gen_b = b.index_lag()
    assert gen_b == 0
    for n in range(5):
        a.upsert([{"id": f"n{n}", "text": f"새 음식 {n}: 단백질 풍부"}])  # a saves and prunes
    # a's saves did not cut the log that b still needs
    assert a._store.changes_since(a._store.generation() - 5) is not None

    import indexer.ann

    def no_rebuild(*args, **kw):
        raise AssertionError("b rebuilt its index instead of reading the change log")

    monkeypatch.setattr(indexer.ann.AnnIndex, "build", no_rebuild)
    assert b.index_lag() == 5
    assert b.search("새 음식 4: 단백질 풍부", k=1)[0][0].id == "n4"
    assert b.index_lag() == 0
    a.close()
    b.close()


@pytest.mark.parametrize("bad", ["postgresql+psycopg://nobody@127.0.0.1:1/none", "mysql://x/y"])
def test_a_database_that_cannot_be_reached_or_used_is_a_clear_error(fakes, bad):
    res = run("stats", "--db", bad)
    assert res.exit_code != 0
    assert "Traceback" not in res.output and res.output.strip()


def test_staging_table_kept_emptied_or_dropped_between_builds(tmp_path, pg_url, monkeypatch):
    import indexer.storage.postgres as postgres

    rows = [{"id": f"i{n}", "text": f"음식 {n}"} for n in range(300)]
    with FoodIndex(tmp_path / "h", db=pg_url, embedder=FakeEmbedder(64)) as idx:
        idx.upsert(rows[:5])  # a few rows: no table, one transaction
        idx.upsert(rows[5:100])  # a table, kept and emptied
        idx.upsert(rows[100:195])  # the same table again
        monkeypatch.setattr(postgres, "KEEP_TABLE_ROWS", 10)
        idx.upsert(rows[195:290])  # over the limit: dropped
        with pytest.raises(Exception, match="text"):
            idx.upsert([{"id": "bad", "text": ""}])  # a failed build cleans up too
        idx.upsert(rows[290:])  # made again
        assert idx.count() == 300 and idx.verify() == []
        with idx._store.engine.connect() as conn:  # the session is given back as it came
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"


def test_a_pool_that_may_not_fit_in_max_connections_is_said_at_open(pg_url, caplog, monkeypatch):
    from indexer.storage import postgres

    assert postgres.pool_warning(15, 100, 3, 20) is None
    said = postgres.pool_warning(15, 100, 3, 90)
    assert "up to 15 connections" in said and "has 7 free" in said and "max_connections 100" in said
    with caplog.at_level("WARNING", logger="foodvec"):
        FoodIndex(db=pg_url, embedder=FakeEmbedder(16)).close()  # 200 allowed: fits
        assert not [r for r in caplog.records if "connections to PostgreSQL" in r.getMessage()]
        monkeypatch.setattr(postgres, "POOL_OVERFLOW", 500)
        FoodIndex(db=pg_url, embedder=FakeEmbedder(16)).close()
    said_at_open = [r.getMessage() for r in caplog.records]
    warned = [m for m in said_at_open if "connections to PostgreSQL" in m]
    assert len(warned) == 1 and "up to 510 connections" in warned[0], warned


def test_writers_queued_behind_the_write_lock_never_take_the_readers_connections(
    pg_url, monkeypatch
):
    """Writers have a pool of their own: with every writer connection held (one writer
    holding the lock, the others queued behind it), a further writer waits at most the
    pool's timeout, while reads go on at once from the readers' pool."""
    import threading

    from indexer.storage import postgres

    monkeypatch.setattr(postgres, "POOL_TIMEOUT", 1.0)
    monkeypatch.setitem(postgres.PostgresStore.engine_options, "pool_timeout", 1.0)
    idx = FoodIndex(db=pg_url, embedder=FakeEmbedder(16))
    idx.upsert([{"id": "a", "text": "두부"}])
    store = idx._store
    assert store.write_engine is not store.engine
    most = postgres.WRITE_POOL_SIZE + postgres.WRITE_POOL_OVERFLOW
    release, held = threading.Event(), threading.Barrier(2)

    def holder():
        with store.immediate():
            held.wait()
            release.wait(20)

    def queued():
        with store.immediate():
            pass

    threads = [threading.Thread(target=holder)]
    threads += [threading.Thread(target=queued) for _ in range(most - 1)]
    threads[0].start()
    held.wait()
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 10
    while store.write_engine.pool.checkedout() < most and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.write_engine.pool.checkedout() == most  # every writer connection taken
    t0 = time.monotonic()
    for _ in range(20):  # reads answered at once meanwhile
        assert store.count() == 1 and idx.search("두부", k=1)[0][0].id == "a"
    assert time.monotonic() - t0 < 5
    with pytest.raises(Exception, match="QueuePool limit|timed out"):
        with store.immediate():  # one writer more: refused after the pool's wait
            pass
    release.set()
    for t in threads:
        t.join(20)
    idx.upsert([{"id": "b", "text": "김치"}])  # writes go on once the lock is free
    assert idx.count() == 2
    idx.close()


def test_a_server_catches_up_when_postgresql_tells_of_a_write(tmp_path, pg_url):
    """Each write's commit notifies (LISTEN/NOTIFY): a server whose own look comes only
    every 30 s catches up within moments of a write made by another process."""
    from fastapi.testclient import TestClient

    from search.service import create_app

    idx = FoodIndex(tmp_path / "server", db=pg_url, embedder=FakeEmbedder(16))
    idx.upsert([{"id": "first", "text": "두부"}])
    with TestClient(create_app(idx, compact_every=0, catch_up_every=30)) as c:
        time.sleep(1)  # the listener connects
        with FoodIndex(tmp_path / "writer", db=pg_url, embedder=FakeEmbedder(16)) as other:
            for n in range(3):
                other.upsert([{"id": f"w{n}", "text": f"김치 {n}"}], publish=False)
                deadline = time.monotonic() + 5
                while idx.index_lag() and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert idx.index_lag() == 0, "the write was not caught up: no notification"
        assert c.get("/ready").json()["index_lag"] == 0
        assert idx.index_counters()["catchups"] >= 3
    idx.close()
