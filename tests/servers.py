"""A foodvec server process on loopback, with the fake embedder, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, home, *extra: str, stderr_file=None):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "FOODVEC_HOME": str(home),
            "FOODVEC_MODEL": "fake",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("FOODVEC_TOKEN", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.serve_fake",
                "serve",
                "--port",
                str(self.port),
                "--compact-every",
                "1",
                *extra,
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr_file or subprocess.PIPE,
        )
        wait_healthy(
            self.proc,
            self.url,
            lambda: self.proc.stderr.read().decode() if self.proc.stderr else "",
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def kill_under_load(
    victim: Server,
    make_items,
    acked: dict[str, str],
    delay: float,
    reader: Server | None = None,
    readers: int = 1,
    query: str = "단백질 풍부",
) -> int:
    """One writer posting batches (``make_items(n)``: the batch starting at n) to
    ``victim`` and ``readers`` threads searching ``reader`` (default: the victim);
    SIGKILL of the victim after ``delay``. Returns how many writes it acknowledged;
    fails on any error but those of requests to the killed server."""
    reader = reader or victim
    stop = threading.Event()
    errors: list[str] = []
    before = len(acked)

    def writer():
        n = 0
        with httpx.Client(base_url=victim.url, timeout=10) as c:
            while not stop.is_set():
                items = make_items(n)
                try:
                    r = c.post("/items", json={"items": items})
                except httpx.HTTPError:
                    return  # the server is gone: unacknowledged, may or may not land
                if r.status_code == 200:
                    acked.update({it["id"]: it["text"] for it in items})
                else:
                    errors.append(f"write {r.status_code} {r.text[:200]}")
                n += len(items)

    def search():
        with httpx.Client(base_url=reader.url, timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.post("/search", json={"query": query, "k": 5})
                except httpx.HTTPError as exc:
                    if reader is victim:
                        return
                    errors.append(f"search {exc!r}")
                    return
                if r.status_code != 200:
                    errors.append(f"search {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=search) for _ in range(readers)]
    for t in threads:
        t.start()
    time.sleep(delay)
    victim.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    return len(acked) - before


def wait_healthy(proc, url: str, why, timeout: float = 60.0) -> None:
    """Wait until the server ``proc`` at ``url`` answers /health; RuntimeError with
    ``why()`` (its error output) when it exits first, or when it never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(why())
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")
