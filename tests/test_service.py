"""The HTTP service, in process (TestClient) and fuzzed against its OpenAPI schema."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from indexer import BuildOptions, FoodIndex
from search.cli import cli
from search.service import create_app, is_loopback
from tests.conftest import SAMPLE
from tests.fakes import FakeEmbedder

# Each test runs on SQLite and on PostgreSQL.
STORES = ("sqlite", "postgres")

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def index(home):
    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))
    yield idx
    idx.close()


@pytest.fixture
def client(index):
    with TestClient(create_app(index, token=TOKEN, compact_every=0)) as c:
        yield c


def test_health_stats_and_page(client):
    assert client.get("/health").json()["status"] == "ok"
    s = client.get("/stats").json()
    assert s["items"] == 234 and s["index"]["type"] == "flat"
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text
    # the people's page: no administration on it (that is /admin, behind the token)
    assert "jobs/mine" not in page.text and 'id="mine"' not in page.text
    admin = client.get("/admin")
    assert admin.status_code == 200 and "jobs/mine" in admin.text and 'id="token"' in admin.text
    for html in (page.text, admin.text):  # everything local: the server works offline
        assert "http://" not in html and "https://" not in html
        assert "//" not in html.split("<script>")[0]
    assert client.get("/openapi.json").json()["paths"]["/search"]


def test_search_one_and_many(client):
    r = client.post(
        "/search", json={"query": "두부: 식물성 단백질과 칼슘 풍부, 뼈 건강 지원", "k": 3}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["results"][0]["id"] == "k097" and len(body["results"]) == 3
    r = client.post(
        "/search",
        json={
            "queries": ["두부", "김치"],
            "k": 2,
            "filters": {"category": "유제품"},
            "min_score": -1,
        },
    )
    lists = r.json()["results"]
    assert [x["query"] for x in lists] == ["두부", "김치"]
    assert all(h["metadata"]["category"] == "유제품" for x in lists for h in x["results"])


def test_writes_need_the_token_and_are_visible_to_the_next_search(client):
    item = {"id": "n1", "text": "귀리 라떼: 베타글루칸 함유", "metadata": {"category": "음료"}}
    assert client.post("/items", json={"items": [item]}).status_code == 401
    bad = client.post("/items", json={"items": [item]}, headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    r = client.post("/items", json={"items": [item]}, headers=AUTH)
    assert r.status_code == 200 and r.json()["upserted"] == 1
    hits = client.post("/search", json={"query": item["text"], "k": 1}).json()["results"]
    assert hits[0]["id"] == "n1" and hits[0]["metadata"] == {"category": "음료"}
    assert client.delete("/items/n1").status_code == 401
    r = client.delete("/items/n1", headers=AUTH)
    assert r.json()["deleted"] == 1
    hits = client.post("/search", json={"query": item["text"], "k": 5}).json()["results"]
    assert all(h["id"] != "n1" for h in hits)
    assert client.delete("/items/n1", headers=AUTH).status_code == 404


def test_protect_reads(index):
    with TestClient(create_app(index, token=TOKEN, protect_reads=True, compact_every=0)) as c:
        assert c.post("/search", json={"query": "두부"}).status_code == 401
        assert c.post("/search", json={"query": "두부"}, headers=AUTH).status_code == 200
        assert c.get("/health").status_code == 200


@pytest.mark.parametrize(
    "body,status,fragment",
    [
        (b"{not json", 422, "JSON"),
        (b'{"k": 3}', 422, "exactly one of query"),
        (b'{"query": "x", "k": 0}', 422, "k"),
        (b'{"query": "x", "k": 100000}', 422, "k"),
        (b'{"query": "   "}', 400, "empty"),
        (b'{"query": "x", "extra": 1}', 422, "extra"),
        (('{"query": "' + "가" * 2000 + '"}').encode(), 400, "limit"),
    ],
)
def test_bad_searches_get_4xx_with_a_message(client, body, status, fragment):
    r = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]


def test_bad_writes_get_4xx(client, index):
    before = index.count()
    cases = [
        ({"items": []}, 422),
        ({"items": [{"id": "a"}]}, 422),
        ({"items": [{"id": "a", "text": "x", "metadata": {"text": "y"}}]}, 422),
        ({"items": [{"id": "a", "text": "ë¹„íƒ€ë¯¼ C í’ë¶€"}]}, 400),
        ({"items": [{"id": "a", "text": "ok"}, {"id": "a", "text": "dup"}]}, 400),
        ({"items": [{"id": "a", "text": "   "}]}, 400),
    ]
    for body, status in cases:
        r = client.post("/items", json=body, headers=AUTH)
        assert r.status_code == status, (body, r.text)
        assert r.json()["detail"]
    r = client.post(
        "/items",
        content=b"x" * (5 * 1024 * 1024),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert index.count() == before


def test_mining_job_over_http(client):
    r = client.post("/jobs/mine", json={"threshold": 0.85, "top_k": 5}, headers=AUTH)
    job = r.json()["job"]
    import time

    for _ in range(100):
        status = client.get(f"/jobs/{job}").json()
        if status["status"] != "running":
            break
        time.sleep(0.05)
    assert status["status"] == "done" and status["pair_count"] > 0
    page = client.get(f"/jobs/{job}/pairs", params={"limit": 3}).json()
    assert len(page["pairs"]) == min(3, status["pair_count"]) and page["total"] > 0
    assert client.get("/jobs/999").status_code == 404
    assert client.get(f"/jobs/{job}/pairs", params={"limit": 0}).status_code == 422


def test_refuses_public_address_without_token(home):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    res = CliRunner().invoke(
        cli, ["serve", "--host", "0.0.0.0", "--model", "base"], env={"FOODVEC_TOKEN": ""}
    )
    assert res.exit_code == 1 and "refusing to listen on 0.0.0.0" in res.output


def test_openapi_fuzz_finds_no_server_error(index):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, settings

    app = create_app(index, token=None, compact_every=0)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures, calls = [], []
    for op in schema.get_all_operations():
        operation = op.ok()

        @settings(
            max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case):
            response = case.call()
            calls.append((case.method, case.path, response.status_code))
            if response.status_code >= 500:
                failures.append((case.method, case.path, case.body, response.text))

        strategy = operation.as_strategy()
        from hypothesis import given

        given(strategy)(check)()
    assert failures == []
    assert len(calls) > 100
    assert {m for m, _, _ in calls} >= {"GET", "POST", "DELETE"}
    assert any(c == 200 for _, p, c in calls if p == "/search")
    assert any(400 <= c < 500 for _, p, c in calls if p == "/items")


def test_idle_server_catches_up_in_the_background_and_counts_rebuilds(client, index, home):
    """A write through another process (here another ``FoodIndex`` on the same
    database) is caught up without any search: ``/ready`` turns 200 by itself, and
    ``/metrics`` counts the catch-up and no full rebuild."""
    import time

    rebuilds = index.index_counters()["rebuilds"]
    with FoodIndex(home, embedder=FakeEmbedder(64)) as other:
        other.upsert([{"id": "elsewhere", "text": "다른 곳에서 쓴 두부 요리"}], publish=False)
    deadline = time.monotonic() + 10
    while index.index_lag() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert index.index_lag() == 0  # no search was made: the server's own catch-up
    assert client.get("/ready").status_code == 200
    counters = index.index_counters()
    assert counters["rebuilds"] == rebuilds and counters["catchups"] >= 1
    text = client.get("/metrics").text
    assert "foodvec_index_catchups_total" in text
    assert 'foodvec_index_rebuilds_total{reason="change log does not reach back"}' not in text
    s = client.get("/stats").json()["in_memory"]
    assert s["catchups"] >= 1 and s["generation"] == index.state()[0]


def _fuzz_settings(n: int):
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a run is reproducible, never flaky
        suppress_health_check=list(HealthCheck),
    )


@pytest.mark.hostile
def test_openapi_fuzz_with_the_token_finds_no_server_error(index):
    """Every operation fuzzed with the token on (writes and reads need it) and given:
    requests get past the token check into the handlers; none answers 5xx or more
    than the response limit."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import given

    from search.service.state import Limits

    limit = 2_000_000
    limits = Limits(max_response_bytes=limit, max_queries=20, max_hits=200)
    app = create_app(index, token=TOKEN, protect_reads=True, compact_every=0, limits=limits)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures, calls = [], []
    for op in schema.get_all_operations():

        @_fuzz_settings(25)
        @given(op.ok().as_strategy())
        def check(case):
            response = case.call(headers=AUTH)
            calls.append((case.method, case.path, response.status_code))
            if response.status_code >= 500 or len(response.content) > limit:
                failures.append((case.method, case.path, case.body, response.text[:300]))

        check()
    assert failures == []
    assert not any(c == 401 for _, _, c in calls)  # the token was taken everywhere
    assert any(c == 200 for _, p, c in calls if p == "/search")
    assert any(c == 200 for m, p, c in calls if (m, p) == ("POST", "/items"))


@pytest.mark.hostile
def test_stateful_fuzz_with_the_token_finds_no_server_error(index):
    """Sequences of calls linked by schemathesis (an item written, then read, patched
    and deleted; a job started, then read and deleted), the token on: never a 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    import unittest

    app = create_app(index, token=TOKEN, protect_reads=True, compact_every=0)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    machine = schema.as_state_machine()
    calls, failures = [], []

    class Fuzz(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case):
            return {"headers": AUTH}

        def validate_response(self, response, case, **kw):
            calls.append((case.method, case.path, response.status_code))
            if response.status_code >= 500:
                failures.append((case.method, case.path, case.body, response.text[:300]))

    from hypothesis import settings as hsettings

    Fuzz.TestCase.settings = hsettings(_fuzz_settings(30), stateful_step_count=6)
    result = unittest.TextTestRunner(stream=__import__("io").StringIO()).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(Fuzz.TestCase)
    )
    assert result.wasSuccessful(), result.failures + result.errors
    assert failures == []
    assert len(calls) > 50 and not any(c == 401 for _, _, c in calls)
    assert {m for m, _, _ in calls} >= {"GET", "POST", "DELETE"}
