"""Operations: /ready, /metrics, JSON logs, and the Python client against a real server
process."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from indexer import BuildOptions, FoodIndex
from indexer.errors import BadInputError, NotFoundError
from search.client import Client
from search.service import create_app
from tests.conftest import SAMPLE
from tests.fakes import FakeEmbedder
from tests.servers import Server


@pytest.fixture
def client(home):
    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))
    with TestClient(create_app(idx, compact_every=0)) as c:
        yield c
    idx.close()


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        lname, _, lab = head.partition("{")
        got = ",".join(sorted(lab.rstrip("}").split(","))) if lab else ""
        if lname == name and got == want:
            return float(value)
    raise AssertionError(f"no {name}{{{want}}} in the metrics")


def test_ready_and_metrics(client):
    r = client.get("/ready")
    assert r.status_code == 200
    assert r.json() == {"ready": True, "index_lag": 0, "behind_s": 0.0, "model_loaded": True}
    for q in ("김치", "우유", "사과"):
        client.post("/search", json={"query": q, "mode": "dense"})
    client.post("/search", json={"queries": ["a", "b"]})
    client.get("/items/nope")
    m = client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert _metric(text, "foodvec_searches_total", mode="dense") == 3
    assert _metric(text, "foodvec_searches_total", mode="hybrid") == 2
    assert _metric(text, "foodvec_requests_total", route="/search", method="POST",
                   status="200") == 4  # fmt: skip
    assert _metric(text, "foodvec_requests_total", route="/items/{item_id:path}",
                   method="GET", status="404") == 1  # fmt: skip
    assert _metric(text, "foodvec_request_seconds_count", route="/search") == 4
    assert _metric(text, "foodvec_items") == 234
    assert _metric(text, "foodvec_index_lag") == 0
    assert _metric(text, "foodvec_mining_jobs_running") == 0


def test_ready_is_503_once_the_index_stays_behind_past_the_stated_lag(home, monkeypatch):
    """Behind the database for moments (a write elsewhere, before the next background
    catch-up) a server stays ready; behind for longer than READY_LAG_S it is not."""
    from search.service import routes_ops

    monkeypatch.setattr(routes_ops, "READY_LAG_S", 0.3)
    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))
    # no background catch-up: the index stays behind until a search
    with TestClient(create_app(idx, compact_every=0, catch_up_every=0)) as c:
        assert c.get("/ready").status_code == 200
        with FoodIndex(home, embedder=FakeEmbedder(64)) as other:  # another process writes
            other.upsert([{"id": "late", "text": "늦게 온 음식"}])
        r = c.get("/ready")
        assert r.status_code == 200 and r.json()["index_lag"] == 1  # within the lag
        time.sleep(0.4)
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["index_lag"] == 1
        assert r.json()["behind_s"] >= 0.3
        c.post("/search", json={"query": "늦게"})  # a search catches the index up
        r = c.get("/ready")
        assert r.status_code == 200 and r.json()["index_lag"] == 0
    idx.close()


def test_client_against_a_real_server_with_json_logs(built, tmp_path):
    log = open(tmp_path / "server.log", "wb")
    server = Server(built, "--log-format", "json", stderr_file=log)
    try:
        with Client(server.url) as fv:
            assert fv.health()["status"] == "ok" and fv.ready()
            assert fv.stats()["items"] == 234
            oat = {"id": "c/1", "text": "귀리 라떼: 베타글루칸", "metadata": {"kcal": 120}}
            got = fv.upsert([oat])
            assert got["new"] == 1
            assert fv.get("c/1")["metadata"] == {"kcal": 120}
            hits = fv.search(["귀리 라떼", "김치"], k=3, where={"kcal": {"$lt": 200}})
            assert [h["id"] for h in hits[0]] == ["c/1"] and hits[1][0]["id"] == "c/1"
            assert fv.update("c/1", {"kcal": 250}) > got["generation"]
            assert fv.search("귀리", where={"kcal": {"$lt": 200}})[0] == []
            assert len(list(fv.iter_records())) == 235
            assert fv.delete_where({"kcal": {"$gte": 250}}, dry_run=True) == 1
            job = fv.mine(threshold=0.95, top_k=3)
            assert job["status"] == "done"
            assert isinstance(fv.job_pairs(job["id"]), list)
            assert fv.delete(["c/1"]) == 1 and fv.get("c/1") is None
            with pytest.raises(NotFoundError):
                fv.delete(["c/1"])
            with pytest.raises(BadInputError, match="unknown operator"):
                fv.search("x", where={"kcal": {"$near": 1}})
    finally:
        server.stop()
        log.close()
    lines = [json.loads(x) for x in (tmp_path / "server.log").read_text().splitlines() if x]
    access = [x for x in lines if x["logger"] == "uvicorn.access"]
    assert any(x["method"] == "POST" and x["path"] == "/search" and x["status"] == 200
               for x in access)  # fmt: skip
    assert any(x["status"] == 404 for x in access)
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)


def test_ready_is_503_when_the_items_move_to_another_model(home):
    """Another process re-embeds the items with another model: this server's searches
    are refused (409), so it is not ready either, and says why."""
    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))
    with TestClient(create_app(idx, compact_every=0)) as c:
        assert c.get("/ready").status_code == 200
        with FoodIndex(home, embedder=FakeEmbedder(64, salt="other")) as other:
            other.build([SAMPLE], BuildOptions(progress=False, reembed=True))
        assert c.post("/search", json={"query": "김치"}).status_code == 409
        r = c.get("/ready")
        assert r.status_code == 503 and "model" in r.json()["model_mismatch"], r.json()
    idx.close()


def test_saves_are_sized_by_the_change_volume():
    from search.service.app import SavePolicy

    policy = SavePolicy(small=1000, share=0.01, max_age=60)
    assert not policy.due(500, 0, 1e9)  # nothing changed: never
    assert policy.due(500, 1, 0)  # a small index: at every look
    assert not policy.due(100_000, 999, 59)  # a large one: 1% of its items...
    assert policy.due(100_000, 1000, 0)
    assert policy.due(100_000, 1, 60)  # ...or the age of its last save
    assert policy.due(100_000, None, 0)  # the log cannot say: save


def test_a_large_index_is_saved_when_enough_changed_or_after_a_while(home):
    """A server whose index counts as large saves it once enough items changed or its
    last save is old enough, not at every look; what it has not saved is in the log."""
    from search.service.app import SavePolicy

    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))

    def published() -> int:
        return json.loads((home / "index" / "index.json").read_text())["generation"]

    start = published()
    policy = SavePolicy(small=0, share=0.02, max_age=3.0)  # 234 items: 5 changes
    app = create_app(idx, compact_every=0.05, catch_up_every=0, saves=policy)
    with TestClient(app) as c:
        body = {"items": [{"id": "n0", "text": "새 음식 0"}]}
        assert c.post("/items", json=body).status_code == 200
        time.sleep(0.5)
        assert published() == start  # one change of 234: not yet
        more = {"items": [{"id": f"n{i}", "text": f"새 음식 {i}"} for i in range(1, 6)]}
        assert c.post("/items", json=more).status_code == 200
        deadline = time.monotonic() + 5
        while published() == start:
            assert time.monotonic() < deadline, "not saved after 6 changes"
            time.sleep(0.05)
        saved = published()
        assert (
            c.post("/items", json={"items": [{"id": "n9", "text": "새 음식 9"}]}).status_code == 200
        )
        deadline = time.monotonic() + 8
        while published() == saved:  # one change: saved once the last save is 3 s old
            assert time.monotonic() < deadline, "not saved after its max age"
            time.sleep(0.1)
    idx.close()
