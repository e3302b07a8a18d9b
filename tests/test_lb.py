"""deploy/haproxy.cfg, run: HAProxy (Debian's package) in front of two real `foodvec
serve` replicas, each with its own home, on one SQLite database. The file is used as
shipped, with its addresses and ports rewritten in a temporary copy (and `user` and
`group` left out where the test cannot switch to them).

States a real replica does not hold still for a test (a replica whose `/ready` is 503,
one whose database calls fail with 503) are played by small stand-in servers. The test
skips where HAProxy is not installed, never when FOODVEC_TEST_HAPROXY=required (CI)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from indexer import FoodIndex
from tests.conftest import ROOT, sample_rows
from tests.fakes import FakeEmbedder
from tests.servers import Server, free_port

CONFIG = ROOT / "deploy" / "haproxy.cfg"
# The example's replicas, as the file lists them in each of its two backends.
SERVERS = "    server r1 10.0.0.1:8000 check\n    server r2 10.0.0.2:8000 check\n"
REQUIRED = os.environ.get("FOODVEC_TEST_HAPROXY") == "required"


@pytest.fixture(scope="module")
def haproxy() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if found is None:
        why = "HAProxy is not installed (Debian: apt-get install haproxy)"
        if REQUIRED:
            pytest.fail(f"{why}, and FOODVEC_TEST_HAPROXY=required")
        pytest.skip(why)
    return found


def render(port: int, backends: list[int]) -> str:
    """deploy/haproxy.cfg listening on 127.0.0.1:``port``, with one server per port of
    ``backends`` (on 127.0.0.1) in each backend."""
    text = CONFIG.read_text(encoding="utf-8")
    assert text.count(SERVERS) == 2 and text.count("    bind :8080\n") == 1
    servers = "".join(f"    server r{i} 127.0.0.1:{p} check\n" for i, p in enumerate(backends, 1))
    text = text.replace(SERVERS, servers).replace("bind :8080", f"bind 127.0.0.1:{port}")
    if os.geteuid() != 0 or "haproxy" not in {u.pw_name for u in pwd.getpwall()}:
        # HAProxy could not switch to that user: it would refuse to start
        text = re.sub(r"(?m)^    (user|group) haproxy\n", "", text)
    return text


class Proxy:
    """HAProxy in the foreground on a rendered copy of the example; its log (stdout and
    stderr) in a file."""

    def __init__(self, binary: str, tmp: Path, backends: list[int]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = tmp / f"haproxy-{self.port}.cfg"
        cfg.write_text(render(self.port, backends), encoding="utf-8")
        self.log = tmp / f"haproxy-{self.port}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [binary, "-db", "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, self.text()
            try:
                httpx.get(self.url + "/health", timeout=1)
                return
            except httpx.TransportError:
                assert time.monotonic() < deadline, self.text()
                time.sleep(0.05)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = 10.0) -> None:
        """Wait until HAProxy logs a line matching ``pattern`` (a state change)."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text()):
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.text()}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


class StandIn:
    """A stand-in replica: ``/ready`` answers ``ready``, ``/health`` 200 and every other
    request ``status`` (503 with Retry-After: 2, as a replica whose database is away);
    every answer names the stand-in in X-Replica, and the requests it got are kept."""

    def __init__(self, name: str, ready: int = 200, status: int = 200):
        self.name, self.ready, self.status = name, ready, status
        self.got: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                if path == "/ready":
                    code = stand_in.ready
                elif path == "/health":
                    code = 200
                else:
                    stand_in.got.append(f"{self.command} {path}")
                    code = stand_in.status
                self.send_response(code)
                self.send_header("X-Replica", stand_in.name)
                if code == 503:
                    self.send_header("Retry-After", "2")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None  # HAProxy closing a connection
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_haproxy_accepts_the_example_as_shipped(haproxy):
    res = subprocess.run(
        [haproxy, "-c", "-f", str(CONFIG)], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _home_of(proxy: Proxy) -> str:
    r = httpx.get(proxy.url + "/stats", timeout=10)
    assert r.status_code == 200, r.text
    return Path(r.json()["home"]).name


def test_haproxy_balances_two_replicas_and_routes_around_a_stopped_one(haproxy, tmp_path):
    with FoodIndex(tmp_path / "seed", embedder=FakeEmbedder(64)):
        pass  # the shared database, created before two replicas start on it
    db = f"sqlite:///{tmp_path / 'seed' / 'foodvec.db'}"
    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(Server, tmp_path / f"r{i}", "--db", db) for i in range(2)]
        replicas = [f.result() for f in started]
    proxy = Proxy(haproxy, tmp_path, [r.port for r in replicas])
    try:
        with httpx.Client(base_url=proxy.url, timeout=10) as lb:
            # both replicas answer through the proxy
            assert {_home_of(proxy) for _ in range(8)} == {"r0", "r1"}
            # a write through one replica is read and searched through either
            items = [{"id": r["id"], "text": r["text"]} for r in sample_rows()[:20]]
            wrote = lb.post("/items", json={"items": items})
            assert wrote.status_code == 200
            for item in items[:6]:
                assert lb.get(f"/items/{item['id']}").json()["text"] == item["text"]
                r = lb.post("/search", json={"query": item["text"], "k": 3})
                assert r.status_code == 200 and len(r.json()["results"]) == 3
            # one replica stopped: at once, every request is answered by the other (a
            # refused connection is tried on another replica)
            replicas[0].stop()
            stopped = len(proxy.text())
            assert {_home_of(proxy) for _ in range(6)} == {"r1"}
            for n in range(6):
                one = {"id": f"lb{n}", "text": f"현미밥 {n}: 식이섬유 풍부"}
                assert lb.post("/items", json={"items": [one]}).status_code == 200
                r = lb.post("/search", json={"query": one["text"], "k": 1})
                assert r.status_code == 200, r.text
                assert r.json()["results"][0]["id"] == one["id"]
        # the proxy's log line of a request carries the replica's request id
        assert f"{{{wrote.headers['X-Request-ID']}}}" in proxy.text()
        # unless a check had already left the stopped replica out (a proxy that has
        # just started leaves a replica out at once if its first check fails), requests
        # were sent to it and tried again on the other: their lines count a redispatch
        log = proxy.text()
        first = re.compile(r'"(GET|POST) /').search(log, stopped)
        assert first and (
            "ready/r1 is DOWN" in log[: first.start()] or re.search(r"ready/r2 .*/\+1 ", log)
        ), log[stopped:]
    finally:
        proxy.stop()
        for r in replicas:
            if r.proc.poll() is None:
                r.stop()


def test_haproxy_retries_reads_on_503_but_not_writes_and_skips_a_replica_not_ready(
    haproxy, tmp_path
):
    unready = StandIn("unready", ready=503)
    failing = StandIn("failing", status=503)  # ready, but its database calls fail
    good = StandIn("good")
    proxy = Proxy(haproxy, tmp_path, [unready.port, failing.port, good.port])
    try:
        proxy.wait_for(r"ready/r1 is DOWN")  # the first failed check
        with httpx.Client(base_url=proxy.url, timeout=10) as lb:
            for _ in range(6):  # reads: a 503 is tried on another replica
                r = lb.post("/search", json={"query": "두부"})
                assert (r.status_code, r.headers["X-Replica"]) == (200, "good")
                r = lb.get("/items/k1")
                assert (r.status_code, r.headers["X-Replica"]) == (200, "good")
            writes = [lb.post("/items", json={"items": []}) for _ in range(6)]
        # writes: sent once, a 503 handed back with its Retry-After
        refused = [w for w in writes if w.status_code == 503]
        assert refused and all(w.headers["Retry-After"] == "2" for w in refused)
        assert {w.headers["X-Replica"] for w in refused} == {"failing"}
        assert failing.got.count("POST /items") == len(refused)
        assert good.got.count("POST /items") == len(writes) - len(refused)
        assert "POST /search" in failing.got  # the search was tried there first
        assert unready.got == []  # the replica not ready got nothing
    finally:
        proxy.stop()
        for s in (unready, failing, good):
            s.close()


def test_haproxy_sends_to_replicas_alive_when_none_is_ready(haproxy, tmp_path):
    replicas = [StandIn("a", ready=503), StandIn("b", ready=503)]
    proxy = Proxy(haproxy, tmp_path, [s.port for s in replicas])
    try:
        proxy.wait_for(r"backend ready has no server available")
        with httpx.Client(base_url=proxy.url, timeout=10) as lb:
            answers = [lb.post("/search", json={"query": "두부"}) for _ in range(4)]
            assert {(r.status_code, r.headers["X-Replica"]) for r in answers} == {
                (200, "a"),
                (200, "b"),
            }
            # the database away for all: a replica's own 503 and Retry-After come back
            for s in replicas:
                s.status = 503
            r = lb.post("/search", json={"query": "두부"})
            assert (r.status_code, r.headers["Retry-After"]) == (503, "2")
            assert r.headers["X-Replica"] in {"a", "b"}
    finally:
        proxy.stop()
        for s in replicas:
            s.close()
