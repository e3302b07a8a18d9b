"""What `foodvec serve` tells its user: the start-up block (URL, home, store, items,
model, mode), one access line per request with its status, duration and request id
(returned in X-Request-ID), and /docs and /redoc that load nothing from a CDN."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from html.parser import HTMLParser

import httpx
from fastapi.testclient import TestClient

from indexer import BuildOptions, FoodIndex
from search.service.app import create_app
from search.service.logs import request_id_of
from tests.conftest import ROOT, SAMPLE
from tests.fakes import FakeEmbedder
from tests.servers import free_port, wait_healthy

HEX_ID = re.compile(r"[0-9a-f]{32}")


class Serving:
    """`foodvec serve` (fake embedder) with its stdout and stderr in files."""

    def __init__(self, home, tmp_path, *extra: str, token: str | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out_path, self.err_path = tmp_path / "out.log", tmp_path / "err.log"
        env = {**os.environ, "FOODVEC_HOME": str(home), "FOODVEC_MODEL": "fake"}
        env["PYTHONPATH"] = str(ROOT)
        env.pop("FOODVEC_TOKEN", None)
        if token:
            env["FOODVEC_TOKEN"] = token
        cmd = [sys.executable, "-m", "tests.serve_fake", "serve", "--port", str(self.port)]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*cmd, *extra], env=env, cwd=ROOT, stdout=out, stderr=err)
        wait_healthy(self.proc, self.url, self.err_path.read_text)

    def stop(self) -> tuple[str, str]:
        """Stop it; (stdout, stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        return self.out_path.read_text(), self.err_path.read_text()


def _built(home):
    with FoodIndex(home, embedder=FakeEmbedder(64)) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
    return home


def test_serve_says_where_it_serves_and_logs_each_request_once_with_duration(home, tmp_path):
    _built(home)
    server = Serving(home, tmp_path)
    try:
        r = httpx.get(server.url + "/items/no-such-item", headers={"X-Request-ID": "trace-42"})
        assert r.status_code == 404 and r.headers["x-request-id"] == "trace-42"
        r = httpx.post(server.url + "/search", json={"query": "김치", "k": 3})
        assert r.status_code == 200 and HEX_ID.fullmatch(r.headers["x-request-id"])
        search_id = r.headers["x-request-id"]
    finally:
        out, err = server.stop()
    block = err.split("\n")
    start = next(i for i, line in enumerate(block) if line.startswith("foodvec serving"))
    assert block[start] == f"foodvec serving {server.url}  (API docs: {server.url}/docs)"
    assert block[start + 1] == f"  home   {home}"
    assert block[start + 2] == f"  store  SQLite {home / 'foodvec.db'}"
    assert block[start + 3].startswith("  items  234 (generation ")
    assert block[start + 4].startswith("  model  fake (fingerprint ")
    assert block[start + 5] == (
        "  mode   no token: anyone who can reach it reads and writes; loopback only"
    )
    # text access lines (stdout, as uvicorn's): status, duration, id; uvicorn's own
    # line (which has neither) is not written besides ours
    missing = [line for line in out.splitlines() if "/items/no-such-item" in line]
    assert len(missing) == 1, out
    assert re.search(r'"GET /items/no-such-item HTTP/1.1" 404 Not Found \d+\.\d ms id=trace-42$',
                     missing[0]), missing[0]  # fmt: skip
    searched = [line for line in out.splitlines() if '"POST /search' in line]
    assert len(searched) == 1 and searched[0].endswith(f" ms id={search_id}"), out


def test_json_logs_carry_duration_status_and_request_id(home, tmp_path):
    _built(home)
    server = Serving(home, tmp_path, "--log-format", "json", token="s3cret")
    try:
        given = httpx.get(server.url + "/stats", headers={"X-Request-ID": "abc.DEF-123"})
        bad = httpx.get(server.url + "/stats", headers={"X-Request-ID": "no spaces please"})
        refused = httpx.post(server.url + "/items", json={"items": [{"id": "a", "text": "b"}]})
    finally:
        _, err = server.stop()
    assert given.headers["x-request-id"] == "abc.DEF-123"
    assert HEX_ID.fullmatch(bad.headers["x-request-id"])  # an insane id is replaced
    assert refused.status_code == 401 and HEX_ID.fullmatch(refused.headers["x-request-id"])
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    start = records[0]  # the start-up block is the first record, as JSON
    assert start["logger"] == "foodvec" and start["message"] == f"foodvec serving {server.url}"
    assert start["url"] == server.url and start["home"] == str(home)
    assert start["items"] == 234 and start["model"] == "fake"
    assert start["mode"] == "writes need the token, reads are open; loopback only"
    access = [x for x in records if x["logger"] == "uvicorn.access"]
    by_id = {x["request_id"]: x for x in access}
    # one line per request (the start-up probes of /health too), uvicorn's own dropped
    assert len(access) == len(by_id) >= 3
    assert all(x["path"] == "/health" for x in access if x["path"] not in ("/stats", "/items"))
    for resp, method, path in ((given, "GET", "/stats"), (bad, "GET", "/stats"),
                               (refused, "POST", "/items")):  # fmt: skip
        line = by_id[resp.headers["x-request-id"]]
        assert (line["method"], line["path"], line["status"]) == (method, path, resp.status_code)
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


def test_request_ids_sane_ones_kept_others_replaced():
    def rid(value: bytes) -> str:
        return request_id_of({"headers": [(b"x-request-id", value)]})

    assert rid(b"req-1:a/b+c=d@e_f.g") == "req-1:a/b+c=d@e_f.g"
    assert rid(b"x" * 128) == "x" * 128
    for bad in (b"x" * 129, b"", b"has space", b'quote"', b"\xed\x95\x9c", b"a\nb"):
        assert HEX_ID.fullmatch(rid(bad)), bad
    assert HEX_ID.fullmatch(request_id_of({"headers": []}))


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def test_docs_and_redoc_load_their_assets_from_the_server_not_a_cdn(home):
    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    with TestClient(create_app(idx, compact_every=0)) as c:
        for page, needs in (("/docs", "SwaggerUIBundle"), ("/redoc", "Redoc")):
            r = c.get(page)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            assert "http://" not in r.text and "https://" not in r.text, r.text
            parser = _Assets()
            parser.feed(r.text)
            scripts = [u for u in parser.urls if u.endswith(".js")]
            assert scripts and all(u.startswith("/docs-assets/") for u in parser.urls)
            for url in parser.urls:
                asset = c.get(url)
                assert asset.status_code == 200 and len(asset.content) > 1000, url
            assert needs in c.get(scripts[0]).text
            assert "/openapi.json" in r.text
        assert c.get("/openapi.json").json()["info"]["title"] == "foodvec"
        # the assets are not API routes
        assert not any(p.startswith("/docs") for p in c.get("/openapi.json").json()["paths"])
    idx.close()
