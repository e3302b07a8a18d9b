"""The database away under a server: 503 with Retry-After (never 500), one log line per
outage, /health still 200, answers again once it is back, and a server that starts
while it is away waits for it. Run against a PostgreSQL server that is stopped and
started again, and with the failures injected on SQLite."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa

from indexer import BuildOptions, FoodIndex
from search.service.app import _open_waiting, create_app
from search.service.outage import unavailable
from tests.conftest import SAMPLE
from tests.fakes import FakeEmbedder


class _PgError(Exception):
    """Stands for a psycopg error (its module is what ``unavailable`` reads)."""


_PgError.__module__ = "psycopg.errors"
NEW = {"items": [{"id": "new-1", "text": "김치전: 김치를 넣은 전"}]}


def _operational(orig: Exception, invalidated: bool = False) -> sa.OperationalError:
    return sa.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


def test_which_errors_mean_the_database_is_away():
    import sqlite3

    assert unavailable(sa.TimeoutError("QueuePool limit of size 5 overflow 10 reached"))
    assert unavailable(_operational(_PgError("connection refused")))
    assert unavailable(_operational(sqlite3.OperationalError("database is locked")))
    assert unavailable(_operational(sqlite3.OperationalError("x"), invalidated=True))
    assert not unavailable(_operational(sqlite3.OperationalError("no such table: items")))
    assert not unavailable(sa.ProgrammingError("SELECT", {}, Exception("syntax error")))
    assert not unavailable(sa.IntegrityError("INSERT", {}, Exception("UNIQUE failed")))
    assert not unavailable(ValueError("not a database error"))


def _outage_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "database" in r.getMessage()]


def test_an_injected_outage_is_503_logged_once_and_ends(home, monkeypatch, caplog):
    emb = FakeEmbedder(32)
    with FoodIndex(home, embedder=emb) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
        app = create_app(idx, compact_every=0, catch_up_every=0.05)
        real = idx._store.state
        down = threading.Event()

        def state():
            if down.is_set():
                raise _operational(_PgError("server closed the connection unexpectedly"), True)
            return real()

        monkeypatch.setattr(idx._store, "state", state)
        with caplog.at_level("WARNING", logger="foodvec"), TestClient(app) as c:
            assert c.post("/search", json={"query": "김치", "k": 3}).status_code == 200
            down.set()
            for _ in range(5):
                r = c.post("/search", json={"query": "김치", "k": 3})
                assert r.status_code == 503 and r.headers["Retry-After"] == "2", r.text
            assert c.get("/ready").status_code == 503
            health = c.get("/health")
            assert health.status_code == 200 and health.json()["database"] == "unavailable"
            time.sleep(0.3)  # the catch-up thread meets it too: still one line
            down.clear()
            deadline = time.monotonic() + 5
            while "back after" not in " ".join(_outage_lines(caplog)):
                assert time.monotonic() < deadline, _outage_lines(caplog)
                time.sleep(0.05)
            assert c.post("/search", json={"query": "김치", "k": 3}).status_code == 200
        lines = _outage_lines(caplog)
        assert len(lines) == 2, lines
        assert "unavailable" in lines[0] and "back after" in lines[1]


def test_a_database_error_that_is_not_an_outage_stays_a_500(home, monkeypatch):
    with FoodIndex(home, embedder=FakeEmbedder(32)) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))

        def broken():
            raise sa.ProgrammingError("SELECT", {}, Exception("no such column"))

        app = create_app(idx, compact_every=0, catch_up_every=0)
        with TestClient(app, raise_server_exceptions=False) as c:
            monkeypatch.setattr(idx._store, "state", broken)
            r = c.post("/search", json={"query": "김치", "k": 3})
            assert r.status_code == 500 and "Traceback" not in r.text


@pytest.fixture
def own_cluster():
    """A PostgreSQL server of this test's own, to stop and start."""
    from tests import pg

    cluster = pg.cluster_or_skip()
    yield cluster
    cluster.stop()


def test_postgresql_stopped_under_a_server_gives_503_then_answers_again(home, own_cluster, caplog):
    url = own_cluster.new_database()
    with FoodIndex(home, db=url, embedder=FakeEmbedder(32)) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
        app = create_app(idx, compact_every=0, catch_up_every=0.1)
        with (
            caplog.at_level("WARNING", logger="foodvec"),
            TestClient(app, raise_server_exceptions=False) as c,
        ):
            assert c.post("/search", json={"query": "김치", "k": 3}).status_code == 200
            own_cluster.pause()
            ask = {"query": "김치", "k": 3}
            codes = {c.post("/search", json=ask).status_code for _ in range(5)}
            r = c.post("/items", json=NEW)
            assert codes == {503} and r.status_code == 503, (codes, r.text)
            own_cluster.resume()
            back = time.monotonic()
            while c.post("/search", json={"query": "김치", "k": 3}).status_code != 200:
                assert time.monotonic() - back < 2.0, "not answering 2 s after the database"
                time.sleep(0.05)
            assert c.post("/items", json=NEW).status_code == 200
        went = [m for m in _outage_lines(caplog) if "unavailable" in m]
        assert len(went) == 1, _outage_lines(caplog)


def test_a_server_starting_while_postgresql_is_away_waits_for_it(home, own_cluster, caplog):
    url = own_cluster.new_database()
    with FoodIndex(home, db=url, embedder=FakeEmbedder(32)):
        pass  # the schema made
    own_cluster.pause()
    threading.Timer(1.5, own_cluster.resume).start()
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="foodvec"):
        index = _open_waiting(
            lambda: FoodIndex(home, db=url, embedder=FakeEmbedder(32)), wait=30, first_pause=0.1
        )
    with index:
        assert index.count() == 0
    assert time.monotonic() - started >= 1.0
    lines = _outage_lines(caplog)
    assert any("waiting for it" in m for m in lines) and any("reachable" in m for m in lines)
    # a database that stays away: the wait ends with its error
    own_cluster.pause()
    with pytest.raises(sa.OperationalError):
        _open_waiting(lambda: FoodIndex(home, db=url, embedder=FakeEmbedder(32)), wait=0.5)
    own_cluster.resume()
