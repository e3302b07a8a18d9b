"""Serving replicas on one PostgreSQL database under load, across the IVF switch and
through an outage: what an operator running N replicas behind a balancer sees.

A private PostgreSQL cluster (tests/pg.py) is seeded with ``--below`` items fewer than
the flat index's limit (50,000), vectors included (from ``--export``, a JSONL export
with vectors of a home embedded with the base model: no embedding at seed time). Three
`foodvec serve --model base` replicas start on it: A and B take searches, C none.

1. Load: 4 search clients (2 on A, 2 on B) and writes through A (one item at a time,
   ``--writes-per-s``) for ``--seconds``; the writes take the items past 50,000, so each
   replica switches to IVF during the load. Search p50/p99 on each; for probe writes
   (one in five), the time from A's acknowledgement until a search on B returns the
   item first, and until C (no searches) reports ``index_lag`` 0 on ``/ready``.
2. Agreement: when the writes stop and every replica serves IVF, the top 10 of 200
   queries on A, B and C compared (ids in order): the share identical, and the IVF
   layout each serves.
3. Outage: under 2 search clients and writes through A, PostgreSQL is stopped for
   ``--outage`` seconds, then started: responses by status while it is up, down, and
   after; the first 200 on each replica after it returns; every acknowledged write
   then looked up on B (lost: acknowledged but absent).

    .venv/bin/python -m bench.replicas --export /tmp/st/export.jsonl > bench/results/replicas.json

4. With ``--big-build N``: a build of N more rows (vectors included) by another process
   while A and B answer searches; search latency during the build and after it, while
   the replicas catch up with every row it added.

``--code DIR`` serves the replicas from another checkout, for a before/after.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.common import ROOT, emit, machine
from bench.http import free_port
from bench.search import pct

FLAT_MAX = 50_000


class Replica:
    def __init__(self, name: str, home: Path, db: str, code: Path):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(home.parent / f"{name}.log", "wb")  # noqa: SIM115
        cmd = [sys.executable, "-m", "search.cli", "serve", "--home", str(home), "--db", db,
               "--model", "base", "--port", str(self.port)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(cmd, cwd=code, stdout=self.log, stderr=self.log, env=env)

    def wait_ready(self, timeout: float = 900) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"replica {self.name} exited")
            time.sleep(0.2)
        raise SystemExit(f"replica {self.name} not ready after {timeout} s")

    def memory(self) -> dict:
        s = httpx.get(self.url + "/stats", timeout=60).json()
        return s["in_memory"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def seed(pg, export: Path, work: Path, below: int, extra: int) -> tuple[str, list[dict]]:
    """A database of FLAT_MAX - below items with their vectors; the next ``extra``
    items of the export (text only) for the writes."""
    from indexer import BuildOptions, FoodIndex

    n = FLAT_MAX - below
    rows, later = work / "seed.jsonl", []
    with open(export, encoding="utf-8") as src, open(rows, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i < n:
                dst.write(line)
            elif i < n + extra:
                r = json.loads(line)
                later.append({"id": r["id"], "text": r["text"]})
            else:
                break
    url = pg.new_database()
    with FoodIndex(work / "seed", db=url, model="base") as idx:
        idx.build([rows], BuildOptions(progress=False, vector_column="vector"))
    return url, later


def _rows_after(export: Path, work: Path, skip: int, n: int) -> Path:
    """The ``n`` export rows after the first ``skip``, vectors included, as a file."""
    path = work / "big.jsonl"
    with open(export, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for line in itertools.islice(src, skip, skip + n):
            dst.write(line)
    return path


def _searchers(urls: list[str], queries: list[str], stop, lat: dict, codes: dict):
    def run(url: str, offset: int):
        with httpx.Client(base_url=url, timeout=60) as c:
            for q in itertools.islice(itertools.cycle(queries), offset, None):
                if stop.is_set():
                    return
                t0 = time.perf_counter()
                try:
                    code = c.post("/search", json={"query": q, "k": 10}).status_code
                except httpx.HTTPError:
                    code = 0
                lat[url].append((time.perf_counter() - t0) * 1000)
                codes.setdefault(code, []).append(time.monotonic())

    return [threading.Thread(target=run, args=(u, 7 * n)) for n, u in enumerate(urls)]


def _writes(a: str, items: list[dict], per_s: float, stop, acked: list, codes: dict):
    """One item at a time through A at ``per_s``; acknowledged ids kept."""
    period, nxt = 1.0 / per_s, time.monotonic()
    with httpx.Client(base_url=a, timeout=60) as c:
        for item in items:
            if stop.is_set():
                return
            try:
                code = c.post("/items", json={"items": [item]}).status_code
            except httpx.HTTPError:
                code = 0
            codes.setdefault(code, []).append(time.monotonic())
            if code == 200:
                acked.append(item["id"])
            nxt += period
            time.sleep(max(0.0, nxt - time.monotonic()))


def _probe(a: str, b: str, c: str, item: dict) -> tuple[float, float]:
    """Write ``item`` through A; (ms until a search on B returns it first, ms until C
    reports itself caught up without any search)."""
    with httpx.Client(timeout=60) as h:
        h.post(a + "/items", json={"items": [item]}).raise_for_status()
        t0 = time.perf_counter()
        seen_b = seen_c = None
        while seen_b is None or seen_c is None:
            now = (time.perf_counter() - t0) * 1000
            if now > 30_000:
                raise SystemExit(f"probe {item['id']} not seen in 30 s")
            if seen_c is None and h.get(c + "/ready").json().get("index_lag") == 0:
                seen_c = (time.perf_counter() - t0) * 1000
            if seen_b is None:
                r = h.post(b + "/search", json={"query": item["text"], "k": 1, "mode": "dense"})
                hits = r.json().get("results", [])
                if hits and hits[0]["id"] == item["id"]:
                    seen_b = (time.perf_counter() - t0) * 1000
            time.sleep(0.005)
        return seen_b, seen_c


def load(reps: dict[str, Replica], later: list[dict], queries: list[str], args) -> dict:
    """Phase 1: searches on A and B, writes through A that cross the flat limit, probes."""
    a, b, c = (reps[k].url for k in "abc")
    stop = threading.Event()
    lat: dict = {a: [], b: []}
    codes: dict = {}
    acked: list = []
    probes = later[: len(later) // 5]
    plain = later[len(probes) :]
    threads = _searchers([a, a, b, b], queries, stop, lat, codes)
    threads.append(
        threading.Thread(target=_writes, args=(a, plain, args.writes_per_s * 0.8, stop, acked, {}))
    )
    for t in threads:
        t.start()
    seen_b, seen_c = [], []
    t0 = time.monotonic()
    for item in probes:
        if time.monotonic() - t0 > args.seconds:
            break
        sb, sc = _probe(a, b, c, {**item, "text": f"{item['text']} zz{item['id']}"})
        seen_b.append(sb)
        seen_c.append(sc)
        time.sleep(max(0.0, 5 / args.writes_per_s - sb / 1000))
    stop.set()
    for t in threads:
        t.join()
    return {
        "seconds": round(time.monotonic() - t0, 1),
        "writes_acknowledged": len(acked) + len(seen_b),
        "search_ms": {
            name: {"n": len(lat[u]), "p50": pct(lat[u], 50), "p99": pct(lat[u], 99)}
            for name, u in (("a", a), ("b", b))
        },
        "search_status": {str(k): len(v) for k, v in codes.items()},
        "probes": len(seen_b),
        "visible_on_b_ms": {"p50": pct(seen_b, 50), "p99": pct(seen_b, 99), "max": max(seen_b)},
        "idle_c_caught_up_ms": {
            "p50": pct(seen_c, 50),
            "p99": pct(seen_c, 99),
            "max": max(seen_c),
        },
    }


def settle(reps: dict[str, Replica], timeout: float = 900) -> dict:
    """Wait until every replica serves IVF at the database's generation; what each serves."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        mem = {k: r.memory() for k, r in reps.items()}
        lags = [httpx.get(r.url + "/ready", timeout=30).json()["index_lag"] for r in reps.values()]
        if all(m.get("kind") == "ivf" for m in mem.values()) and not any(lags):
            return {"waited_s": round(time.monotonic() - t0, 1), "served": mem}
        time.sleep(1)
    raise SystemExit(f"replicas did not settle on IVF: {mem}")


def agreement(reps: dict[str, Replica], queries: list[str]) -> dict:
    """Phase 2: the top 10 of each query on every replica, compared in order."""
    got = {}
    for k, r in reps.items():
        with httpx.Client(base_url=r.url, timeout=60) as c:
            got[k] = [
                [h["id"] for h in c.post("/search", json={"query": q, "k": 10}).json()["results"]]
                for q in queries
            ]
    same = sum(got["a"][i] == got["b"][i] == got["c"][i] for i in range(len(queries)))
    same_dense = 0
    for q in queries:
        tops = [
            [h["id"] for h in httpx.post(r.url + "/search", timeout=60,
                json={"query": q, "k": 10, "mode": "dense"}).json()["results"]]
            for r in reps.values()
        ]  # fmt: skip
        same_dense += tops[0] == tops[1] == tops[2]
    return {
        "queries": len(queries),
        "identical_top10_hybrid": same,
        "identical_top10_dense": same_dense,
    }


def _record(url: str, path: str, bodies, stop, out: list) -> None:
    """Requests to ``url + path`` (POST of each body in turn) until ``stop``; (url,
    start, end, status, body) appended to ``out`` (status 0: no answer)."""
    with httpx.Client(base_url=url, timeout=60) as c:
        for body in bodies:
            if stop.is_set():
                return
            t0 = time.monotonic()
            try:
                code = c.post(path, json=body).status_code
            except httpx.HTTPError:
                code = 0
            out.append((url, t0, time.monotonic(), code, body))
            time.sleep(0.02 if path == "/search" else 0.1)


def outage(pg, reps: dict[str, Replica], items: list[dict], queries: list[str], args) -> dict:
    """Phase 3: PostgreSQL stopped for ``args.outage`` s under searches on A and B and
    writes through A."""
    a, b = reps["a"].url, reps["b"].url
    stop, out = threading.Event(), []

    def searches():
        return ({"query": q, "k": 10} for q in itertools.cycle(queries))

    writes = ({"items": [it]} for it in items)
    threads = [
        threading.Thread(target=_record, args=(a, "/search", searches(), stop, out)),
        threading.Thread(target=_record, args=(b, "/search", searches(), stop, out)),
        threading.Thread(target=_record, args=(a, "/items", writes, stop, out)),
    ]
    for t in threads:
        t.start()
    time.sleep(5)
    down = time.monotonic()
    pg.pause()
    stopped = time.monotonic()
    time.sleep(args.outage)
    pg.resume()
    back = time.monotonic()
    time.sleep(10)
    stop.set()
    for t in threads:
        t.join()
    return _judge(out, down, stopped, back, b)


def _judge(out: list, down: float, stopped: float, back: float, b: str) -> dict:
    """The outage's responses by status and by phase, recovery times, lost writes."""
    phases = {"up": {}, "down": {}, "recovering": {}}
    for _, t0, t1, code, _ in out:
        phase = "up" if t1 < down or t0 > back + 2 else "down" if t0 < back else "recovering"
        phases[phase][str(code)] = phases[phase].get(str(code), 0) + 1
    first_ok = {}
    for url, t0, t1, code, _ in out:
        if code == 200 and t0 >= back and url not in first_ok:
            first_ok[url] = round(t1 - back, 2)
    acked = [
        body["items"][0]["id"] for _, _, _, code, body in out if "items" in body and code == 200
    ]
    with httpx.Client(base_url=b, timeout=60) as c:
        lost = [i for i in acked if c.get(f"/items/{i}").status_code != 200]
    return {
        "down_s": round(back - down, 1),
        "stop_took_s": round(stopped - down, 1),
        "responses_by_phase": phases,
        "status_500": sum(1 for *_, code, _ in out if code == 500),
        "first_200_after_return_s": {("a" if u != b else "b"): s for u, s in first_ok.items()},
        "writes_acknowledged": len(acked),
        "acknowledged_writes_lost": len(lost),
    }


def big_build(reps: dict[str, Replica], url: str, rows: Path, work: Path, code: Path) -> dict:
    """Phase 4: a build of ``rows`` (with their vectors) by another process while A and
    B answer 2 search clients each; search latency during the build and after it (the
    replicas catching up with every row it added), and when each was caught up."""
    a, b = reps["a"].url, reps["b"].url
    queries = ["apple pie", "grilled chicken", "low fat milk", "spinach", "tofu", "rice"]
    stop, out = threading.Event(), []
    threads = [
        threading.Thread(
            target=_record,
            args=(
                u,
                "/search",
                ({"query": q, "k": 10} for q in itertools.cycle(queries)),
                stop,
                out,
            ),
        )
        for u in (a, a, b, b)
    ]
    for t in threads:
        t.start()
    time.sleep(3)
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "search.cli", "build", str(rows), "--home", str(work / "big"),
           "--db", url, "--model", "base", "--vector-column", "vector", "-q"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
    subprocess.run(cmd, cwd=code, env=env, check=True, capture_output=True)
    built = time.monotonic()
    caught = {}
    while len(caught) < 2 and time.monotonic() - built < 600:
        for k, u in (("a", a), ("b", b)):
            if k not in caught and httpx.get(u + "/ready", timeout=60).json()["index_lag"] == 0:
                caught[k] = round(time.monotonic() - built, 1)
        time.sleep(0.2)
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()
    during = [(t1 - s0) * 1000 for _, s0, t1, code, _ in out if t0 <= s0 < built]
    after = [(t1 - s0) * 1000 for _, s0, t1, code, _ in out if s0 >= built]
    return {
        "build_s": round(built - t0, 1),
        "search_ms_during_build": {
            "n": len(during),
            "p50": pct(during, 50),
            "p99": pct(during, 99),
        },
        "search_ms_after_build": {
            "n": len(after),
            "p50": pct(after, 50),
            "p99": pct(after, 99),
            "max": round(max(after), 1) if after else None,
        },
        "caught_up_after_build_s": caught,
        "status": {str(c): sum(1 for *_, code, _ in out if code == c) for c in {o[3] for o in out}},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--export", type=Path, required=True, help="JSONL with vectors (base model)")
    ap.add_argument("--below", type=int, default=100, help="seeded items under the flat limit")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--writes-per-s", type=float, default=10.0)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--outage", type=float, default=10.0)
    ap.add_argument("--code", type=Path, default=ROOT)
    ap.add_argument("--big-build", type=int, default=0, help="rows of phase 4 (0: no phase 4)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.usda import sample_rows
    from tests.pg import Cluster

    queries = [r["text"] for r in sample_rows(args.queries, seed=99)]
    work = Path(tempfile.mkdtemp(prefix="foodvec-replicas-"))
    pg = Cluster()
    result: dict = {"machine": machine(), "code": str(args.code), "postgres": "private, loopback"}
    reps: dict[str, Replica] = {}
    try:
        extra = int(args.seconds * args.writes_per_s * 1.5) + 400
        url, later = seed(pg, args.export, work, args.below, extra)
        result["seeded_items"] = FLAT_MAX - args.below
        for k in "abc":
            reps[k] = Replica(k, work / k, url, args.code.resolve())
        result["start_s"] = {k: round(r.wait_ready(), 1) for k, r in reps.items()}
        result["load"] = load(reps, later[: int(args.seconds * args.writes_per_s)], queries, args)
        result["settle"] = settle(reps)
        result["agreement"] = agreement(reps, queries)
        result["outage"] = outage(pg, reps, later[-400:], queries, args)
        if args.big_build:
            rows = _rows_after(args.export, work, FLAT_MAX - args.below + extra, args.big_build)
            result["big_build"] = big_build(reps, url, rows, work, args.code.resolve())
            result["big_build"]["rows"] = args.big_build
    finally:
        for r in reps.values():
            r.stop()
        pg.stop()
    emit(result)


if __name__ == "__main__":
    main()
