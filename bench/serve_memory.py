"""The memory of one serving replica at a size, with the IVF index and with the
quantized one (``ivf-sq8``), side by side on copies of one home.

For each kind: a copy of ``--home`` whose index is made that kind (a full build of it,
published), then ``foodvec serve --model MODEL`` on the copy; once ready, 200 searches
(hybrid, then dense); the server's resident memory then (VmRSS) and at its peak
(VmHWM), and the search latency.

    python -m bench.serve_memory --home /tmp/million-home > bench/results/serve-memory.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import ROOT, emit, machine
from bench.http import free_port
from bench.search import pct

QUERIES = ["apple pie", "grilled chicken breast", "low fat milk", "spinach", "brown rice",
           "cheddar cheese", "tomato soup", "oatmeal", "salmon fillet", "orange juice"]  # fmt: skip


def _status_mib(pid: int) -> dict[str, float]:
    got = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            got[key] = round(int(value.split()[0]) / 1024, 1)
    return got


def _make_kind(home: Path, kind: str, model: str) -> float:
    """Make the copy's index ``kind`` (a full build, published); seconds it took."""
    from indexer import FoodIndex

    t0 = time.perf_counter()
    with FoodIndex(home, model=model) as idx:
        if idx.stats()["index"]["type"] != kind:
            idx.sync(publish=True, kind=kind)
    return round(time.perf_counter() - t0, 1)


def _serve(home: Path, model: str) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "search.cli", "serve", "--home", str(home), "--model", model,
           "--port", str(port)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    t0 = time.monotonic()
    try:
        while True:
            try:
                if httpx.get(url + "/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() - t0 > 1800:
                raise SystemExit("the server did not start")
            time.sleep(0.5)
        ready_s = time.monotonic() - t0
        lat: dict[str, list[float]] = {"hybrid": [], "dense": []}
        with httpx.Client(base_url=url, timeout=60) as c:
            for mode in lat:
                for n in range(100):
                    t1 = time.perf_counter()
                    body = {"query": QUERIES[n % len(QUERIES)], "k": 10, "mode": mode}
                    c.post("/search", json=body).raise_for_status()
                    lat[mode].append((time.perf_counter() - t1) * 1000)
            stats = c.get("/stats").json()
        mem = _status_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    return {
        "ready_s": round(ready_s, 1),
        "rss_mib": mem["VmRSS"],
        "peak_rss_mib": mem["VmHWM"],
        "search_ms": {m: {"p50": pct(v, 50), "p99": pct(v, 99)} for m, v in lat.items()},
        "index": stats["in_memory"].get("kind"),
        "params": stats["in_memory"].get("params"),
        "items": stats["items"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--model", default="base")
    ap.add_argument("--kinds", default="ivf,ivf-sq8")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="foodvec-mem-"))
    result: dict = {"machine": machine(), "home": str(args.home), "kinds": {}}
    try:
        for kind in args.kinds.split(","):
            home = work / kind
            shutil.copytree(args.home, home)
            made = _make_kind(home, kind, args.model)
            result["kinds"][kind] = {"made_s": made, **_serve(home, args.model)}
            shutil.rmtree(home)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit(result)


if __name__ == "__main__":
    main()
