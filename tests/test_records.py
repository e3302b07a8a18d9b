"""Records: get an item, page through items, change metadata without re-embedding,
delete by filter; on the CLI, over HTTP and on the Python object."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from indexer import BuildOptions, FoodIndex
from indexer.errors import BadInputError, NotFoundError
from search.service import create_app
from tests.conftest import SAMPLE, run, sample_rows
from tests.fakes import FakeEmbedder

# Each test runs on SQLite and on PostgreSQL.
STORES = ("sqlite", "postgres")

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_cli_get_list_update_and_delete_where(built, fakes):
    res = run("get", "k001", "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout) == {
        "id": "k001",
        "text": "시금치: 철분과 엽산 풍부, 혈액 건강 지원",
        "metadata": {"name": "시금치", "category": "채소", "healthy": 1},
    }
    assert run("get", "nope").exit_code == 1
    # list: every item once, in the order they were added; offset and limit cut it
    listed = [json.loads(x)["id"] for x in run("list", "--json").stdout.splitlines()]
    assert listed == [r["id"] for r in sample_rows()]
    part = run("list", "--offset", "5", "--limit", "3", "--json").stdout.splitlines()
    assert [json.loads(x)["id"] for x in part] == listed[5:8]
    veg = run("list", "--where", "category=채소", "--json").stdout.splitlines()
    want = [r["id"] for r in sample_rows() if r["category"] == "채소"]
    assert [json.loads(x)["id"] for x in veg] == want
    # update: metadata only; the model is not asked to embed anything
    encoded = fakes["fake"].texts_encoded
    res = run("update", "k001", "--meta", "kcal=23", "--meta", 'code="007"', "--unset", "healthy")
    assert res.exit_code == 0, res.output
    rec = json.loads(run("get", "k001", "--json").stdout)
    assert rec["metadata"] == {"name": "시금치", "category": "채소", "kcal": 23, "code": "007"}
    assert fakes["fake"].texts_encoded == encoded
    hits = json.loads(run("search", "시금치", "--where", "kcal<30", "--json").stdout)["results"]
    assert [h["id"] for h in hits] == ["k001"]
    assert run("update", "k001", "--meta", "text=x").exit_code == 1
    assert run("update", "zzz", "--meta", "a=1").exit_code == 1
    assert run("update", "k001").exit_code == 1  # nothing to change
    # delete --where: a dry run counts, the real one deletes exactly those
    res = run("delete", "--where", "category=채소", "--dry-run", "--json")
    assert json.loads(res.stdout) == {"would_delete": len(want), "items": 234}
    res = run("delete", "--where", "category=채소", "--json")
    assert json.loads(res.stdout) == {"deleted": len(want), "items": 234 - len(want)}
    assert run("list", "--where", "category=채소").stdout == ""
    assert run("delete", "k002", "--where", "a=1").exit_code == 2  # ids or --where
    assert run("verify").exit_code == 0


def test_renaming_an_item_moves_the_exact_name_rule(built, fakes):
    before = json.loads(run("search", "녹색 잎채소", "--json").stdout)["results"][0]
    assert before["id"] != "k001"
    assert run("update", "k001", "--meta", "name=녹색 잎채소").exit_code == 0
    first = json.loads(run("search", "녹색 잎채소", "--json").stdout)["results"][0]
    assert first["id"] == "k001"
    assert run("verify").exit_code == 0


@pytest.fixture
def client(home):
    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))
    with TestClient(create_app(idx, token=TOKEN, compact_every=0)) as c:
        yield c
    idx.close()


def test_http_records(client):
    assert client.get("/items/k001").json()["metadata"]["name"] == "시금치"
    assert client.get("/items/nope").status_code == 404
    # page through everything with the cursor: each item once, in order
    seen, after = [], None
    while True:
        params = {"limit": 50, **({"after": after} if after else {})}
        page = client.get("/items", params=params).json()
        seen += [r["id"] for r in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == [r["id"] for r in sample_rows()]
    fruit = client.get("/items", params={"where": '{"category": "과일"}', "limit": 1000}).json()
    assert fruit["items"] and all(r["metadata"]["category"] == "과일" for r in fruit["items"])
    assert client.get("/items", params={"where": "{nope"}).status_code == 400
    assert client.get("/items", params={"where": '{"a": {"$x": 1}}'}).status_code == 400
    assert client.get("/items", params={"after": "abc"}).status_code == 400
    # writes need the token
    assert client.patch("/items/k001", json={"metadata": {"kcal": 23}}).status_code == 401
    r = client.patch("/items/k001", json={"metadata": {"kcal": 23}, "unset": ["healthy"]},
                     headers=AUTH)  # fmt: skip
    assert r.status_code == 200 and r.json()["metadata"]["kcal"] == 23
    assert "healthy" not in r.json()["metadata"]
    reserved = client.patch("/items/k001", json={"metadata": {"id": 1}}, headers=AUTH)
    assert reserved.status_code == 400
    unknown = client.patch("/items/zzz", json={"metadata": {"a": 1}}, headers=AUTH)
    assert unknown.status_code == 404
    n_fruit = len(fruit["items"])
    q = {"where": '{"category": "과일"}'}
    r = client.delete("/items", params={**q, "dry_run": "true"}, headers=AUTH)
    assert r.json()["would_delete"] == n_fruit
    assert client.delete("/items", headers=AUTH).status_code == 400  # no filter: refused
    r = client.delete("/items", params=q, headers=AUTH)
    assert r.json()["deleted"] == n_fruit
    assert client.get("/items", params=q).json()["items"] == []
    hits = client.post("/search", json={"query": "사과", "k": 50}).json()["results"]
    assert all(h["metadata"].get("category") != "과일" for h in hits)


def test_python_records_and_their_errors(home):
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert([{"id": f"x{n}", "text": f"음식 {n}", "metadata": {"n": n}} for n in range(30)])
        page, cursor = idx.records({"n": {"$gte": 10}}, limit=7)
        assert [r["id"] for r in page] == [f"x{n}" for n in range(10, 17)] and cursor
        page, cursor = idx.records({"n": {"$gte": 10}}, limit=20, after=cursor)
        assert [r["id"] for r in page] == [f"x{n}" for n in range(17, 30)] and cursor is None
        with pytest.raises(BadInputError):
            idx.records(limit=0)
        with pytest.raises(NotFoundError):
            idx.update("nope", {"a": 1})
        idx.update("x1", {"a": {"b": 1}, "c": float("nan")})
        assert idx.get("x1")["metadata"] == {"n": 1, "a": {"b": 1}, "c": None}  # NaN: null
        deep: dict = {}
        for _ in range(40):
            deep = {"d": deep}
        with pytest.raises(BadInputError, match="x2"):
            idx.update("x2", {"deep": deep})
        assert idx.get("x2")["metadata"] == {"n": 2}  # nothing written
        assert idx.delete_where({"n": {"$lt": 5}}, dry_run=True) == 5
        assert idx.delete_where({"n": {"$lt": 5}}) == 5
        assert idx.count() == 25 and idx.verify() == []
