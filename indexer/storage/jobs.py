"""Mining jobs and their pairs: the records of ``foodvec mine`` runs.

Job writes take the write lock but do not bump the generation: they do not change
what a search sees. The limit on jobs running at once is checked in the transaction
that inserts the job (under that lock), so requests that arrive together cannot all
pass it; finished jobs are pruned by age and count when a job finishes.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import numpy as np
from sqlalchemy import text

from ..errors import BusyError
from ..settings import JOBS_KEEP, JOBS_KEEP_DAYS
from .sql import Database, insert_values

_COLUMNS = (
    "id, kind, status, params, model_fp, generation, items, mode, pair_count, left_out, "
    "error, host, pid, started_at, ended_at, seconds"
)
PAIRS_PER_INSERT = 50_000
# A LIMIT that keeps every row (the same on SQLite and PostgreSQL).
NO_LIMIT = 2**63 - 1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


class Jobs:
    """The jobs of one store. Finished jobs kept: the newest ``keep``, none that ended
    more than ``keep_days`` ago (``FOODVEC_JOBS_KEEP`` and ``FOODVEC_JOBS_KEEP_DAYS``,
    which the caller reads)."""

    def __init__(self, store: Database, keep: int = JOBS_KEEP, keep_days: float = JOBS_KEEP_DAYS):
        self.store = store
        self.keep = keep
        self.keep_days = keep_days

    def start(
        self,
        params: dict[str, Any],
        model_fp: str | None,
        generation: int,
        limit: int | None = None,
    ) -> int:
        """Record a new mining job as running by this process; returns its id. With
        ``limit``: refused with ``BusyError`` when that many jobs already run on this
        machine (counted in the same write transaction, so concurrent starts queue on
        the write lock and cannot all pass; a job whose process is gone does not
        count)."""
        host = socket.gethostname()
        with self.store.immediate() as conn:
            if limit is not None:
                rows = conn.execute(
                    text("SELECT pid FROM jobs WHERE status = 'running' AND host = :h"),
                    {"h": host},
                ).all()
                live = sum(1 for (pid,) in rows if pid is not None and _pid_alive(pid))
                if live >= limit:
                    raise BusyError(
                        f"{live} mining jobs are running on this machine (the most at once "
                        f"is {limit}); try again when one has finished"
                    )
            return conn.execute(
                text(
                    "INSERT INTO jobs(kind, status, params, model_fp, generation, host, pid) "
                    "VALUES ('mine', 'running', :p, :m, :g, :h, :pid) RETURNING id"
                ),
                {
                    "p": json.dumps(params),
                    "m": model_fp,
                    "g": generation,
                    "h": host,
                    "pid": os.getpid(),
                },
            ).scalar_one()

    def add_pairs(self, job_id: int, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> None:
        """Store pairs of item ids with their scores, in steps (each its own write)."""
        for start in range(0, len(s), PAIRS_PER_INSERT):
            stop = start + PAIRS_PER_INSERT
            rows = [
                (job_id, x, y, z)
                for x, y, z in zip(
                    a[start:stop].tolist(),
                    b[start:stop].tolist(),
                    s[start:stop].tolist(),
                    strict=True,
                )
            ]
            with self.store.immediate() as conn:
                insert_values(conn, "INSERT INTO job_pairs(job_id, item_a, item_b, score)", rows)

    def drop_pairs(self, job_id: int) -> None:
        with self.store.immediate() as conn:
            conn.execute(text("DELETE FROM job_pairs WHERE job_id = :j"), {"j": job_id})

    def finish(
        self,
        job_id: int,
        status: str,
        seconds: float,
        params: dict[str, Any],
        *,
        mode: str | None = None,
        items: int | None = None,
        pairs: int | None = None,
        left_out: int | None = None,
        error: str | None = None,
    ) -> None:
        with self.store.immediate() as conn:
            conn.execute(
                text(
                    "UPDATE jobs SET status = :st, mode = :mo, items = :it, pair_count = :pc, "
                    "left_out = :lo, seconds = :se, params = :pa, error = :er, "
                    "ended_at = CURRENT_TIMESTAMP WHERE id = :id"
                ),
                {
                    "st": status,
                    "mo": mode,
                    "it": items,
                    "pc": pairs,
                    "lo": left_out,
                    "se": round(seconds, 3),
                    "pa": json.dumps(params),
                    "er": error,
                    "id": job_id,
                },
            )
            self._prune(conn, job_id)

    def _prune(self, conn, current: int) -> list[int]:
        """Delete finished jobs (and their pairs) past the newest ``keep`` or ended more
        than ``keep_days`` ago; running jobs and ``current`` stay. Returns the ids."""
        seconds = int(self.keep_days * 86400)
        old = f"ended_at < {self.store.seconds_ago_sql}"
        gone = (
            conn.execute(
                text(
                    "SELECT id FROM jobs WHERE status != 'running' AND id != :c AND "
                    f"({old} OR id NOT IN (SELECT id FROM jobs WHERE status != 'running' "
                    "ORDER BY id DESC LIMIT :n))"
                ),
                {"s": seconds, "c": current, "n": self.keep},
            )
            .scalars()
            .all()
        )
        for job_id in gone:
            conn.execute(text("DELETE FROM job_pairs WHERE job_id = :j"), {"j": job_id})
            conn.execute(text("DELETE FROM jobs WHERE id = :j"), {"j": job_id})
        return list(gone)

    def delete(self, job_id: int) -> None:
        with self.store.immediate() as conn:
            conn.execute(text("DELETE FROM job_pairs WHERE job_id = :j"), {"j": job_id})
            conn.execute(text("DELETE FROM jobs WHERE id = :j"), {"j": job_id})

    def rows(self, job_id: int | None = None) -> list[dict[str, Any]]:
        """All jobs (or the one given), newest first, params decoded."""
        where = "" if job_id is None else "WHERE id = :j"
        with self.store.read() as conn:
            rows = (
                conn.execute(
                    text(f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY id DESC"), {"j": job_id}
                )
                .mappings()
                .all()
            )
        out = []
        for r in rows:
            job = dict(r)
            job["params"] = json.loads(job["params"])
            out.append(job)
        return out

    def pairs(
        self, job_id: int, of_item: int | None = None, limit: int | None = None, offset: int = 0
    ) -> list[dict[str, Any]]:
        """A job's pairs with ids and texts, best first; with ``of_item`` (an item's
        integer id), only that item's."""
        where = "p.job_id = :j"
        params: dict[str, Any] = {
            "j": job_id,
            "off": offset,
            "lim": NO_LIMIT if limit is None else limit,
        }
        if of_item is not None:
            where += " AND (p.item_a = :x OR p.item_b = :x)"
            params["x"] = of_item
        with self.store.read() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.ext_id, b.ext_id, a.text, b.text, p.score FROM job_pairs p "
                    "JOIN items a ON a.id = p.item_a JOIN items b ON b.id = p.item_b "
                    f"WHERE {where} ORDER BY p.score DESC, p.item_a, p.item_b "
                    "LIMIT :lim OFFSET :off"
                ),
                params,
            ).all()
        return [
            {"id_a": r[0], "id_b": r[1], "text_a": r[2], "text_b": r[3], "score": r[4]}
            for r in rows
        ]

    def pair_ids(self, job_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item a, item b, score) arrays of a job's pairs."""
        with self.store.read() as conn:
            rows = conn.execute(
                text("SELECT item_a, item_b, score FROM job_pairs WHERE job_id = :j"),
                {"j": job_id},
            ).all()
        if not rows:
            e = np.zeros(0, np.int64)
            return e, e, np.zeros(0, np.float32)
        arr = np.array(rows, dtype=np.float64)
        return arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2]

    def latest_done(self) -> int | None:
        with self.store.read() as conn:
            return conn.execute(
                text("SELECT max(id) FROM jobs WHERE kind = 'mine' AND status = 'done'")
            ).scalar()
