"""A cold `foodvec search`: process start to answer, on a ready home, against the same
command from another checkout of foodvec (the baseline: an earlier commit), runs
alternated A B A B so that both see the same machine; medians and peak memory, and
where this checkout's time goes (imports, opening the indexes, the model, the search)
from one instrumented run.

    git worktree add /tmp/foodvec-base REV
    .venv/bin/python -m bench.cold --home H --baseline /tmp/foodvec-base [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from bench.common import ROOT, emit, machine, run_measured

QUERIES = ("chicken soup low sodium", "혈압에 좋은 음식", "greek yogurt plain")

# One search in this checkout with the time of each step (the same steps as the CLI).
_PHASES = """
import json, sys, time
t0 = time.perf_counter()
import search.cli  # noqa: F401
t1 = time.perf_counter()
from indexer import FoodIndex
with FoodIndex(sys.argv[1]) as idx:
    t2 = time.perf_counter()
    idx.prefetch_model()
    with idx.derived.reading():
        pass
    t3 = time.perf_counter()
    idx.model.embedder
    t4 = time.perf_counter()
    idx.search([sys.argv[2]], k=5)
    t5 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "indexes": t3 - t2,
                  "model_after_indexes": t4 - t3, "search": t5 - t4}))
"""


def _cmd(code_dir: Path, home: Path, query: str) -> list[str]:
    """`foodvec search` run from ``code_dir``'s modules (not the installed ones)."""
    launcher = (
        f"import sys; sys.path.insert(0, {str(code_dir)!r}); sys.argv = sys.argv[1:]; "
        "from search.cli import main; main()"
    )
    return [sys.executable, "-c", launcher, "foodvec", "search", "--home", str(home),
            query, "-k", "5"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", type=Path, required=True, help="a ready home (not changed)")
    ap.add_argument("--baseline", type=Path, required=True, help="another foodvec checkout")
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()

    times: dict[str, list[float]] = {"foodvec": [], "baseline": []}
    rss: dict[str, list[float]] = {"foodvec": [], "baseline": []}
    answers: dict[str, list[str]] = {"foodvec": [], "baseline": []}
    for n in range(args.runs + 1):  # the first pair warms the page cache, not counted
        query = QUERIES[n % len(QUERIES)]
        for name, code in (("foodvec", ROOT), ("baseline", args.baseline)):
            got = run_measured(_cmd(code, args.home, query))
            if n:
                times[name].append(got["seconds"])
                rss[name].append(got["peak_rss_mib"])
                answers[name].append(got["stdout"])
    phases = subprocess.run(
        [sys.executable, "-c", _PHASES, str(args.home), QUERIES[0]],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    emit(
        {
            "bench": "cold",
            "home": str(args.home),
            "runs": args.runs,
            "cold_search_s": {k: {"median": med[k], "runs": v} for k, v in times.items()},
            "peak_rss_mib": {k: statistics.median(v) for k, v in rss.items()},
            "baseline_over_foodvec": round(med["baseline"] / med["foodvec"], 2),
            "same_answers": answers["foodvec"] == answers["baseline"],
            "foodvec_steps_s": {
                k: round(v, 3) for k, v in json.loads(phases.stdout.strip()).items()
            },
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
