"""Backup of a large home while a writer upserts, then restore and verify.

A thread upserts one new item at a time into --home (acknowledged = committed) while
`FoodIndex.backup` copies it; the backup is restored into a new home, which must pass
`verify` and hold every item acknowledged before the backup began. The items written
are deleted from --home afterwards.

    .venv/bin/python -m bench.backup --home /tmp/usda-home
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

from bench.common import emit, machine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--model", default="base")
    args = ap.parse_args()

    from indexer import FoodIndex

    work = Path(tempfile.mkdtemp())
    acked: list[tuple[float, str]] = []
    stop = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        try:
            with FoodIndex(args.home, model=args.model) as w:
                n = 0
                while not stop.is_set():
                    item = {"id": f"bench-backup-{n}", "text": f"backup test food {n}"}
                    w.upsert([item], publish=False)
                    acked.append((time.monotonic(), f"bench-backup-{n}"))
                    n += 1
        except Exception as exc:  # reported in the output
            errors.append(f"{type(exc).__name__}: {exc}")

    out: dict = {"bench": "backup", "machine": machine()}
    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(acked) < 20 and not errors:
            time.sleep(0.05)
        with FoodIndex(args.home, model=args.model) as idx:
            began = time.monotonic()
            copied = idx.backup(work / "backup")
        after = len(acked)
        time.sleep(1.0)  # the writer goes on after the backup too
    finally:
        stop.set()
        t.join()
    must = [i for at, i in acked if at <= began]
    t0 = time.perf_counter()
    with FoodIndex.restore(work / "backup", work / "restored", model=args.model) as r:
        restore_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        problems = r.verify()
        verify_s = time.perf_counter() - t0
        missing = [i for i in must if r.get(i) is None]
        items = r.count()
    with FoodIndex(args.home, model=args.model) as idx:
        written = [i for _, i in acked]
        idx.delete(written)
    shutil.rmtree(work, ignore_errors=True)
    out.update(
        {
            "items_restored": items,
            "backup_seconds": copied["seconds"],
            "writes_acknowledged_before_backup": len(must),
            "writes_acknowledged_during_backup": after - len(must),
            "writes_total": len(acked),
            "missing_after_restore": len(missing),
            "restore_seconds": round(restore_s, 1),
            "verify_seconds": round(verify_s, 1),
            "verify_problems": problems,
            "writer_errors": errors,
        }
    )
    emit(out)


if __name__ == "__main__":
    main()
