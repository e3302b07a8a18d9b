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
   while A and B answer searches (2 clients each) and a small writer adds one new item
   at a time through A (about 2 a second); search and write latency during the build
   and after it, while the replicas catch up with every row it added, and A and B's
   ``/ready`` every 0.5 s (generation moves, index_lag). The rows are a Parquet file
   written beforehand (not timed with the build): past the export's end its rows come
   again with new ids and texts (vectors repeated), so N may be a million.
   ``--only-big-build`` runs this phase alone after seeding and starting the replicas:

    .venv/bin/python -m bench.replicas --export /tmp/st/export.jsonl --only-big-build \\
        --big-build 1000000 > bench/results/replicas-big-build.json

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
import numpy as np

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


def _load_export(export: Path, limit: int) -> tuple[list[dict], np.ndarray]:
    """The first ``limit`` rows of the export: each row's fields but its vector, and the
    vectors (float32, one row each)."""
    meta, vecs = [], []
    with open(export, encoding="utf-8") as src:
        for line in itertools.islice(src, limit):
            r = json.loads(line)
            vecs.append(np.asarray(r.pop("vector"), dtype=np.float32))
            meta.append(r)
    return meta, np.stack(vecs)


def _lot(row: dict, lot: int) -> dict:
    """The export row as it is (lot 0), or its copy in lot ``lot``: a new id and text."""
    if lot == 0:
        return row
    return {**row, "id": f"{row['id']}-lot{lot}", "text": f"{row['text']} (lot {lot})"}


def _cell(value, numeric: bool):
    if numeric:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else None  # the export writes an unknown number as ""
    return None if value is None else str(value)


def _batch(meta: list[dict], vecs: np.ndarray, picks: list[tuple[int, int]], schema):
    """A Parquet batch of the (export row, lot) ``picks``."""
    import pyarrow as pa

    rows = [_lot(meta[i], lot) for i, lot in picks]
    cols = [
        pa.array([_cell(r.get(f.name), pa.types.is_floating(f.type)) for r in rows], f.type)
        for f in schema
        if f.name != "vector"
    ]
    flat = pa.array(vecs[[i for i, _ in picks]].ravel())
    offsets = pa.array(np.arange(len(picks) + 1, dtype=np.int32) * vecs.shape[1])
    cols.append(pa.ListArray.from_arrays(offsets, flat))
    return pa.Table.from_arrays(cols, schema=schema)


def _rows_after(export: Path, work: Path, skip: int, n: int) -> tuple[Path, dict]:
    """``n`` rows for the big build, vectors included, as a Parquet file (the vector a
    list<float32> column), written a batch at a time: first the export rows after the
    first ``skip`` as they are; past the export's end, all its rows again, lot after
    lot: lot k gives each row the id ``<id>-lot<k>`` and the text ``<text> (lot <k>)``
    and keeps its vector. So texts and ids are distinct (none clashes with a seeded or
    written item) but vectors repeat, each about n / (export rows) times. The export is
    read once (its vectors held as one float32 array, never the n rows). (the file,
    how long writing it took and its size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.usda import NUTRIENTS

    t0 = time.monotonic()
    meta, vecs = _load_export(export, skip + n)
    first = ((i, 0) for i in range(skip, len(meta)))
    again = ((i, lot) for lot in itertools.count(1) for i in range(len(meta)))
    picks = itertools.islice(itertools.chain(first, again), n)
    numbers = set(NUTRIENTS.values())
    schema = pa.schema(
        [(k, pa.float64() if k in numbers else pa.string()) for k in meta[0]]
        + [("vector", pa.list_(pa.float32()))]
    )
    path = work / "big.parquet"
    with pq.ParquetWriter(path, schema) as w:
        while batch := list(itertools.islice(picks, 8192)):
            w.write_table(_batch(meta, vecs, batch, schema))
    return path, {
        "format": "parquet",
        "rows": n,
        "lots": max(0, -(-(n - max(0, len(meta) - skip)) // len(meta))),
        "write_s": round(time.monotonic() - t0, 1),
        "mb": round(path.stat().st_size / 2**20),
    }


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


def _small_writes(a: str, texts: list[str], stop, out: list) -> None:
    """New items through A one at a time, about 2 a second (each after the last one's
    answer, however long it waited); (start, end, status) appended to ``out`` (status
    0: no answer in 30 minutes)."""
    with httpx.Client(base_url=a, timeout=1800) as c:
        for i, text in enumerate(itertools.cycle(texts)):
            if stop.is_set():
                return
            item = {"id": f"small-write-{i}", "text": f"{text} (small write {i})"}
            t0 = time.monotonic()
            try:
                code = c.post("/items", json={"items": [item]}).status_code
            except httpx.HTTPError:
                code = 0
            out.append((t0, time.monotonic(), code))
            stop.wait(max(0.0, 0.5 - (time.monotonic() - t0)))


def _sample_ready(name: str, url: str, stop, out: list) -> None:
    """Every 0.5 s until ``stop``: (name, time, /ready status, index_lag, behind_s,
    database generation from /health, ms /ready took) appended to ``out``."""
    with httpx.Client(base_url=url, timeout=30) as c:
        while not stop.wait(0.5):
            t0 = time.monotonic()
            try:
                gen = c.get("/health").json().get("generation")
                t1 = time.monotonic()
                r = c.get("/ready")
                body, code = r.json(), r.status_code
            except (httpx.HTTPError, ValueError):
                gen, t1, body, code = None, t0, {}, 0
            ms = round((time.monotonic() - t1) * 1000, 1)
            out.append((name, t0, code, body.get("index_lag"), body.get("behind_s"), gen, ms))


def _ms(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50": pct(xs, 50), "p99": pct(xs, 99), "max": round(max(xs), 1)}


def _slow(spans: list[tuple[float, float]], t0: float, over_ms: float = 1000) -> dict:
    """How many of the (start, end) ``spans`` took over ``over_ms``, and when the first
    and the last of them started (seconds after ``t0``)."""
    at = sorted(s0 - t0 for s0, s1 in spans if (s1 - s0) * 1000 > over_ms)
    return (
        {"n": len(at), "first_s": round(at[0], 1), "last_s": round(at[-1], 1)} if at else {"n": 0}
    )


def _upserts(out: list, lo: float, hi: float) -> dict:
    """The small writes started in [lo, hi): latency, statuses, and how many were
    still waiting at ``hi``."""
    mine = [(t0, t1, code) for t0, t1, code in out if lo <= t0 < hi]
    codes = sorted({code for *_, code in mine})
    return {
        **_ms([(t1 - t0) * 1000 for t0, t1, _ in mine]),
        "status": {str(c): sum(1 for *_, code in mine if code == c) for c in codes},
        "answered_after_window": sum(1 for _, t1, _ in mine if t1 >= hi),
        "over_1s": _slow([(t0, t1) for t0, t1, _ in mine], lo),
    }


def _readiness(samples: list, name: str, lo: float, hi: float) -> dict:
    """One replica's /ready samples in [lo, hi), compactly: how often the database's
    generation moved (the small writes) and how often the replica's own did (about:
    the database's less index_lag, from two requests), its worst lag."""
    mine = [s for s in samples if s[0] == name and lo <= s[1] < hi]
    ok = [s for s in mine if s[2] != 0 and s[3] is not None and s[5] is not None]
    db = [s[5] for s in ok]
    own = [s[5] - s[3] for s in ok]
    return {
        "samples": len(mine),
        "not_ready": sum(1 for s in mine if s[2] != 200),
        "no_answer": len(mine) - len(ok),
        "db_generation_moves": sum(y > x for x, y in itertools.pairwise(db)),
        "served_generation_moves": sum(y > x for x, y in itertools.pairwise(own)),
        "lag_0_samples": sum(1 for s in ok if s[3] == 0),
        "index_lag_max": max((s[3] for s in ok), default=None),
        "behind_s_max": max((s[4] for s in ok if s[4] is not None), default=None),
        "ready_ms_max": max((s[6] for s in ok), default=None),
    }


def _build_load(reps: dict[str, Replica], texts: list[str], stop) -> tuple[list, dict]:
    """The load around the big build (threads not started): 2 search clients on each
    of A and B, the small writer through A, a /ready sampler on each of A and B."""
    a, b = reps["a"].url, reps["b"].url
    queries = ["apple pie", "grilled chicken", "low fat milk", "spinach", "tofu", "rice"]
    got: dict = {"search": [], "upsert": [], "ready": []}
    threads = [
        threading.Thread(
            target=_record,
            args=(
                u,
                "/search",
                ({"query": q, "k": 10} for q in itertools.cycle(queries)),
                stop,
                got["search"],
            ),
        )
        for u in (a, a, b, b)
    ]
    threads.append(threading.Thread(target=_small_writes, args=(a, texts, stop, got["upsert"])))
    threads += [
        threading.Thread(target=_sample_ready, args=(k, reps[k].url, stop, got["ready"]))
        for k in "ab"
    ]
    return threads, got


def _caught_up(reps: dict[str, Replica], since: float, timeout: float = 1800) -> dict:
    """Seconds after ``since`` until each of A and B first reports index_lag 0."""
    caught: dict = {}
    while len(caught) < 2 and time.monotonic() - since < timeout:
        for k in "ab":
            r = httpx.get(reps[k].url + "/ready", timeout=60).json()
            if k not in caught and r["index_lag"] == 0:
                caught[k] = round(time.monotonic() - since, 1)
        time.sleep(0.2)
    return caught


def big_build(
    reps: dict[str, Replica], url: str, rows: Path, work: Path, code: Path, texts: list[str]
) -> dict:
    """Phase 4: a build of ``rows`` (with their vectors) by another process while A and
    B answer 2 search clients each and a small writer adds one item at a time through
    A (``texts``); search and write latency during the build and after it (the replicas
    catching up with every row it added), when each was caught up, and what A and B's
    /ready said every 0.5 s meanwhile."""
    served = {k: reps[k].memory().get("kind") for k in "ab"}
    stop = threading.Event()
    threads, got = _build_load(reps, texts, stop)
    for t in threads:
        t.start()
    time.sleep(3)
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "search.cli", "build", str(rows), "--home", str(work / "big"),
           "--db", url, "--model", "base", "--vector-column", "vector", "-q"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    built = time.monotonic()
    caught = _caught_up(reps, built) if done.returncode == 0 else {}
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()
    if done.returncode != 0:
        raise SystemExit(f"the big build failed ({done.returncode}): {done.stderr[-2000:]}")
    search = got["search"]
    return {
        "build_s": round(built - t0, 1),
        "served_before": served,
        "served_at_end": {k: reps[k].memory().get("kind") for k in "ab"},
        "search_ms_during_build": _ms(
            [(t1 - s0) * 1000 for _, s0, t1, _, _ in search if t0 <= s0 < built]
        ),
        "search_over_1s_during_build": _slow(
            [(s0, t1) for _, s0, t1, _, _ in search if t0 <= s0 < built], t0
        ),
        "search_ms_after_build": _ms(
            [(t1 - s0) * 1000 for _, s0, t1, _, _ in search if s0 >= built]
        ),
        "caught_up_after_build_s": caught,
        "status": {str(c): sum(1 for *_, k, _ in search if k == c) for c in {o[3] for o in search}},
        "upsert_ms_during_build": _upserts(got["upsert"], t0, built),
        "upsert_ms_after_build": _upserts(got["upsert"], built, float("inf")),
        "ready_during_build": {k: _readiness(got["ready"], k, t0, built) for k in "ab"},
        "ready_after_build": {k: _readiness(got["ready"], k, built, float("inf")) for k in "ab"},
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
    ap.add_argument(
        "--only-big-build", action="store_true", help="phase 4 alone, after seeding (no 1-3)"
    )
    args = ap.parse_args()
    if args.only_big_build and not args.big_build:
        ap.error("--only-big-build needs --big-build N")
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
        if not args.only_big_build:
            result["load"] = load(
                reps, later[: int(args.seconds * args.writes_per_s)], queries, args
            )
            result["settle"] = settle(reps)
            result["agreement"] = agreement(reps, queries)
            result["outage"] = outage(pg, reps, later[-400:], queries, args)
        if args.big_build:
            skip = FLAT_MAX - args.below + extra
            rows, result["big_build_rows_file"] = _rows_after(
                args.export, work, skip, args.big_build
            )
            result["big_build"] = big_build(reps, url, rows, work, args.code.resolve(), queries)
            result["big_build"]["rows"] = args.big_build
            rows.unlink()
    finally:
        for r in reps.values():
            r.stop()
        pg.stop()
    emit(result)


if __name__ == "__main__":
    main()
