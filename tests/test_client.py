"""search.client against a real server process (fake embedder): typed results, errors
by HTTP status with the server's message and request id, the async client; and against
small local stub servers: retries on 503 (Retry-After honoured) and on connections
refused or dropped, only for calls safe to repeat, bounded, and timeouts."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from indexer.errors import BadInputError, FoodvecError, ModelMismatchError, NotFoundError
from search.client import (
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    Health,
    Hit,
    Item,
    Job,
    NotFound,
    Pair,
    SearchResult,
    ServerError,
    Stats,
    Timeout,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    UpsertResult,
    error_for,
)
from tests.servers import Server, free_port

OAT = {"id": "c/1", "text": "귀리 라떼: 베타글루칸 함유, 저당", "metadata": {"kcal": 120}}


@pytest.fixture
def server(built):
    s = Server(built)
    yield s
    s.stop()


def test_typed_results_from_a_real_server(server):
    with Client(server.url) as fv:
        health = fv.health()
        assert isinstance(health, Health) and health.status == "ok" and health.model
        stats = fv.stats()
        assert isinstance(stats, Stats) and stats.items == 234 and stats.dim == 64
        got = fv.upsert([OAT])
        assert isinstance(got, UpsertResult) and (got.new, got.updated) == (1, 0)
        assert got.upserted == 1 and got.generation == fv.stats().generation
        item = fv.get("c/1")
        assert item == Item(id="c/1", text=OAT["text"], metadata={"kcal": 120})
        results = fv.search(["귀리 라떼", "김치"], k=3, where={"kcal": {"$lt": 200}})
        assert [type(r) for r in results] == [SearchResult, SearchResult]
        assert [r.query for r in results] == ["귀리 라떼", "김치"]
        top = results[0][0]
        assert isinstance(top, Hit) and top.id == "c/1" and top.metadata == {"kcal": 120}
        assert 0 <= top.score <= 1 and top.dense is not None and top.lexical is not None
        assert isinstance(results[0].parse, dict)
        dense = fv.search("귀리", mode="dense", k=2)[0]
        assert len(dense) == 2 and all(h.lexical is None and h.dense is not None for h in dense)
        page, cursor = fv.records(limit=100)
        assert len(page) == 100 and all(isinstance(i, Item) for i in page) and cursor
        assert len(list(fv.iter_records())) == 235
        assert fv.update("c/1", {"kcal": 250}) > got.generation
        assert fv.get("c/1").metadata == {"kcal": 250}
        assert fv.delete_where({"kcal": {"$gte": 250}}, dry_run=True) == 1
        job = fv.mine(threshold=0.95, top_k=3)
        assert isinstance(job, Job) and job.status == "done" and job.pair_count is not None
        assert fv.job(job.id) == job and job.id in [j.id for j in fv.jobs()]
        pairs = fv.job_pairs(job.id, limit=5)
        assert all(isinstance(p, Pair) and p.score >= 0.95 and p.kind for p in pairs)
        assert len(pairs) == min(5, job.pair_count)
        assert fv.delete_job(job.id) == job.id
        assert fv.delete("c/1") == 1 and fv.get("c/1") is None
        # earlier versions returned dicts and lists: those reads still work
        assert stats["items"] == 234 and top["id"] == "c/1" and item.get("text") == OAT["text"]
        assert fv.search("귀리", where={"kcal": {"$gt": 10**6}})[0] == []
        assert top.to_dict()["metadata"] == {"kcal": 120}


def test_errors_carry_the_status_message_and_request_id(built):
    server = Server(built, "--token", "s3cret")
    try:
        with Client(server.url) as anon, Client(server.url, token="s3cret") as fv:
            with pytest.raises(Unauthorized) as no_token:
                anon.upsert([OAT])
            assert no_token.value.status == 401 and "Bearer" in no_token.value.detail
            with pytest.raises(NotFound) as missing:
                fv.delete(["nope/1"])
            err = missing.value
            assert err.status == 404 and "nope/1" in err.detail and err.method == "DELETE"
            assert err.path == "/items/nope%2F1" and len(err.request_id) == 32
            assert isinstance(err, NotFoundError) and isinstance(err, FoodvecError)
            with pytest.raises(BadRequest, match="unknown operator") as bad:
                fv.search("x", where={"kcal": {"$near": 1}})
            assert bad.value.status == 400 and isinstance(bad.value, BadInputError)
            with pytest.raises(BadRequest) as invalid:
                fv.search("x", k=0)
            assert invalid.value.status == 422 and invalid.value.errors
            assert invalid.value.errors[0]["where"] == "body.k"
            with pytest.raises(NotFound):
                fv.job(999)
    finally:
        server.stop()


def test_each_status_maps_to_its_exception():
    table = {
        400: BadRequest, 413: BadRequest, 422: BadRequest, 401: Unauthorized,
        403: Unauthorized, 404: NotFound, 409: Conflict, 429: TooManyRequests,
        500: ServerError, 502: Unavailable, 503: Unavailable, 504: Unavailable,
    }  # fmt: skip
    for status, cls in table.items():
        err = error_for(status, "why", "GET", "/x", "rid")
        assert type(err) is cls and err.status == status and err.detail == "why"
        assert str(err) == f"GET /x: {status} why" and err.request_id == "rid"
    assert not isinstance(error_for(500, "x"), Unavailable)
    assert isinstance(error_for(503, "x"), ServerError)
    assert isinstance(error_for(409, "x"), ModelMismatchError)
    assert isinstance(error_for(429, "x"), BadInputError)


# -- a stub server that answers from a script ------------------------------------------
class Stub:
    """A local HTTP server answering each request with the next step of ``script``: a
    (status, headers, body) tuple, "drop" (close without answering) or ("sleep", s,
    then answer 200). Records what it was asked."""

    def __init__(self, script, port: int = 0, default=(200, {}, {"status": "ok"})):
        self.script = list(script)
        self.default = default
        self.seen: list[tuple[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                stub.seen.append((self.command, self.path))
                step = stub.script.pop(0) if stub.script else stub.default
                if step == "drop":
                    self.close_connection = True
                    return
                if step[0] == "sleep":
                    time.sleep(step[1])
                    step = stub.default
                status, headers, body = step
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True  # close() does not wait for a sleeping answer
        self.httpd.handle_error = lambda *a: None  # a client that gave up is no news
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


BUSY = (503, {}, {"detail": "busy, come back"})
STATS = (200, {}, {"items": 7, "generation": 3})


def test_503_is_retried_with_backoff_and_retry_after_is_honoured():
    stub = Stub([BUSY, (503, {"Retry-After": "1"}, {"detail": "loading"}), STATS])
    try:
        with Client(stub.url, backoff=0.01) as fv:
            t0 = time.monotonic()
            stats = fv.stats()
            waited = time.monotonic() - t0
        assert stats.items == 7 and stats.generation == 3
        assert stub.seen == [("GET", "/stats")] * 3
        assert 1.0 <= waited < 5  # the server's Retry-After, not the 10 ms backoff
    finally:
        stub.close()


def test_retries_are_bounded_and_the_last_error_carries_the_message():
    stub = Stub([], default=BUSY)
    try:
        with Client(stub.url, retries=2, backoff=0.01) as fv:
            with pytest.raises(Unavailable, match="busy, come back") as err:
                fv.search("김치")
        assert err.value.status == 503 and len(stub.seen) == 3  # 1 + 2 retries
    finally:
        stub.close()


def test_a_retry_after_longer_than_max_wait_is_not_waited_for():
    stub = Stub([(503, {"Retry-After": "120"}, {"detail": "maintenance"})], default=STATS)
    try:
        with Client(stub.url, max_wait=5) as fv:
            t0 = time.monotonic()
            with pytest.raises(Unavailable) as err:
                fv.stats()
            assert time.monotonic() - t0 < 3
        assert err.value.retry_after == 120 and len(stub.seen) == 1
    finally:
        stub.close()


def test_calls_not_safe_to_repeat_are_sent_once():
    stub = Stub([], default=BUSY)
    try:
        with Client(stub.url, retries=3, backoff=0.01) as fv:
            with pytest.raises(Unavailable):
                fv.mine(threshold=0.9)
            with pytest.raises(Unavailable):
                fv.delete(["a"])
            with pytest.raises(Unavailable):
                fv.delete_where({"kcal": 1})
        assert [m for m, _ in stub.seen] == ["POST", "DELETE", "DELETE"]
        assert [p.split("?")[0] for _, p in stub.seen] == ["/jobs/mine", "/items/a", "/items"]
    finally:
        stub.close()


def test_a_dropped_connection_is_retried_only_for_calls_safe_to_repeat():
    ok = (200, {}, {"deleted": 1, "generation": 2})
    stub = Stub(["drop", STATS, "drop"], default=ok)
    try:
        with Client(stub.url, backoff=0.01) as fv:
            assert fv.stats().items == 7  # dropped, then answered
            with pytest.raises(ConnectionFailed) as err:
                fv.delete(["a"])  # may have landed: not repeated
        assert err.value.status is None and err.value.method == "DELETE"
        assert stub.seen == [("GET", "/stats"), ("GET", "/stats"), ("DELETE", "/items/a")]
    finally:
        stub.close()


def _comes_up_later(delay: float, default) -> tuple[str, threading.Timer, list[Stub]]:
    """A URL where nothing listens yet, and a stub that starts there after ``delay``."""
    port = free_port()
    later: list[Stub] = []
    timer = threading.Timer(delay, lambda: later.append(Stub([], port=port, default=default)))
    timer.start()
    return f"http://127.0.0.1:{port}", timer, later


def test_a_refused_connection_is_retried_until_the_server_comes_up():
    deleted = (200, {}, {"deleted": 1, "generation": 2})
    for call, answer, want in (
        (lambda fv: fv.stats().items, STATS, 7),
        # nothing was sent while the connection was refused: even a delete is retried
        (lambda fv: fv.delete(["a"]), deleted, 1),
    ):
        url, timer, later = _comes_up_later(0.5, answer)
        try:
            with Client(url, retries=8, backoff=0.1, max_backoff=0.4) as fv:
                assert call(fv) == want
            assert len(later[0].seen) == 1
        finally:
            timer.join()
            for s in later:
                s.close()
    with Client(f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.01) as fv:
        with pytest.raises(ConnectionFailed) as err:
            fv.stats()
        assert err.value.status is None and err.value.path == "/stats"
        assert isinstance(err.value, Unavailable) and err.value.__cause__ is not None


def test_timeouts_by_default_and_a_slow_answer_is_not_retried():
    with Client("http://127.0.0.1:1") as fv:
        timeout = fv._http.timeout
        assert timeout.connect == 5.0 and timeout.read == 60.0 and timeout.pool == 60.0
    stub = Stub([("sleep", 2.0)], default=STATS)
    try:
        with Client(stub.url, timeout=0.3, backoff=0.01) as fv:
            t0 = time.monotonic()
            with pytest.raises(Timeout):
                fv.stats()
            assert time.monotonic() - t0 < 1.5
        assert len(stub.seen) == 1
    finally:
        stub.close()


def test_a_409_carries_the_server_message():
    stub = Stub([(409, {"X-Request-ID": "r-1"}, {"detail": "job 3 is running, not done"})])
    try:
        with Client(stub.url) as fv:
            with pytest.raises(Conflict, match="job 3 is running") as err:
                fv.job_pairs(3)
        assert err.value.request_id == "r-1" and err.value.status == 409
    finally:
        stub.close()


# -- the async client --------------------------------------------------------------------
def test_the_async_client_has_the_same_methods(server):
    sync_methods = {m for m in dir(Client) if not m.startswith("_")}
    async_methods = {m for m in dir(AsyncClient) if not m.startswith("_")}
    assert sync_methods == async_methods

    async def main():
        async with AsyncClient(server.url) as fv:
            assert (await fv.health()).status == "ok" and await fv.ready()
            got = await fv.upsert([OAT])
            assert got.new == 1
            assert (await fv.get("c/1")).metadata == {"kcal": 120}
            queries = ("귀리 라떼", "김치", "두부")
            many = await asyncio.gather(*(fv.search(q, k=2, where={"kcal": 120}) for q in queries))
            assert [r[0].query for r in many] == list(queries)
            assert many[0][0][0].id == "c/1" and isinstance(many[0][0][0], Hit)
            assert len([i async for i in fv.iter_records()]) == 235
            assert await fv.update("c/1", unset=["kcal"]) > got.generation
            job = await fv.mine(threshold=0.95, top_k=3)
            assert job.status == "done" and isinstance(await fv.job_pairs(job.id), list)
            assert await fv.delete(["c/1"]) == 1 and await fv.get("c/1") is None
            with pytest.raises(NotFound):
                await fv.delete(["c/1"])
            with pytest.raises(BadRequest, match="unknown operator"):
                await fv.search("x", where={"kcal": {"$near": 1}})

    asyncio.run(main())


def test_the_async_client_retries_503():
    stub = Stub([BUSY, BUSY, STATS])

    async def main():
        async with AsyncClient(stub.url, backoff=0.01) as fv:
            return await fv.stats()

    try:
        assert asyncio.run(main()).items == 7 and len(stub.seen) == 3
    finally:
        stub.close()
