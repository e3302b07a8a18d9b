"""The store: items, vectors, the generation counter and the change log.

The database (SQLite, or PostgreSQL shared by several machines) is the source of
truth; the FAISS index is derived from it. Every write transaction bumps
``generation`` and logs the item ids it touched in ``changes``. One writer at a time:
SQLite's write lock (BEGIN IMMEDIATE), or a PostgreSQL transaction-level advisory lock.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import URL, Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ..errors import FoodvecError, ReadOnlyError
from ..filters import Node
from .jobs import Jobs
from .where import compile_where

if TYPE_CHECKING:
    from .staging import Staging

# The newest migration; ``open`` skips Alembic entirely when the database is already
# there (a test checks this constant against the migration scripts).
HEAD_REVISION = "0003"

SQL_BATCH = 500  # ids per IN (...) clause, well under SQLite's variable limit
SQL_PARAMS = 4000  # parameters in one multi-row INSERT
# The key of the PostgreSQL advisory lock that writers hold (any fixed 64-bit number;
# this one is "foodvec" in ASCII).
WRITE_LOCK_KEY = 0x666F6F64766563
# A reader of the change log (an index home) that has not published for this long no
# longer holds the log back; if it returns, it rebuilds its index from the database.
READER_TTL_S = 7 * 24 * 3600
# A reader's time this far in the future is a wrong clock (or a damaged entry), not a
# reader that may pin the log: it is treated as stale.
READER_CLOCK_SLACK_S = 24 * 3600


def canonical_json(meta: dict[str, Any]) -> str:
    """Sorted, compact JSON; never NaN or Infinity, which are not JSON."""
    return json.dumps(
        meta, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )


def pack_vector(vec: np.ndarray) -> bytes:
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def unpack_vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    size = 4 * dim
    bad = next((len(b) for b in blobs if len(b) != size), None)
    if bad is not None:
        raise FoodvecError(
            f"the database holds a damaged vector ({bad} bytes, not {size}); "
            "`foodvec verify` names the items"
        )
    return (
        np.frombuffer(b"".join(blobs), dtype="<f4")
        .reshape(len(blobs), dim)
        .astype(np.float32, copy=False)
    )


@dataclass(frozen=True)
class ItemRow:
    id: int
    ext_id: str
    text: str
    content_hash: str
    metadata: dict[str, Any]


def make_engine(url: str) -> Engine:
    # PostgreSQL: readers see one snapshot per transaction, as SQLite's readers do (the
    # change log and the generation they read belong together); writers switch to READ
    # COMMITTED under their lock (``_postgres_setup``).
    pg = {"pool_pre_ping": True, "isolation_level": "REPEATABLE READ"}
    target: str | URL = read_only_sqlite_url(url) or url
    try:
        engine = create_engine(target, **(pg if url.startswith("postgres") else {}))
    except ModuleNotFoundError as exc:
        raise FoodvecError(
            f"the database driver for {url.split(':', 1)[0]} is not installed ({exc.name}); "
            "for PostgreSQL: pip install 'foodvec[postgres]'"
        ) from None
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise FoodvecError(f"not a database URL: {url!r} ({exc})") from None
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine)
    elif engine.dialect.name == "postgresql":
        _postgres_setup(engine)
    else:
        raise FoodvecError(
            f"foodvec stores its items in SQLite or PostgreSQL, not {engine.dialect.name}"
        )
    return engine


def read_only_sqlite_url(url: str) -> URL | None:
    """For a SQLite file that cannot be written here (the file or its folder: a copy on
    read-only media, another user's home), a URL that reads it without writing
    anything; None when it can be written (or is not a plain SQLite file).

    A WAL database is read with ``mode=ro`` when SQLite can share its log index (the
    ``-shm`` file is there), else with ``immutable=1``, which reads the database file
    alone: right when no write-ahead log holds commits (a home copied while no
    process had it open). A log with commits that cannot be read is an error, never
    an answer that misses them."""
    try:
        parsed = make_url(url)
    except Exception:  # a bad URL: create_engine says what is wrong with it
        return None
    database = parsed.database
    if (
        parsed.get_backend_name() != "sqlite"
        or parsed.query
        or database in (None, "", ":memory:")
        or database.startswith("file:")
    ):
        return None
    path = Path(database).expanduser()
    if not path.is_file():
        return None
    real = path.resolve()
    if os.access(real, os.W_OK) and os.access(real.parent, os.W_OK):
        return None
    uri = "file:" + urllib.parse.quote(str(real))
    ro = parsed.set(database=uri, query={"uri": "true", "mode": "ro"})
    if _sqlite_readable(f"{uri}?mode=ro"):
        return ro
    wal = real.with_name(real.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise ReadOnlyError(
            f"{path} cannot be read here: its folder is not writable and its write-ahead "
            f"log ({wal.name}) holds commits that SQLite reads only with its "
            f"{real.name}-shm; copy the home to a writable folder (or open it once where it "
            "is writable, which folds the log into the database)"
        )
    return parsed.set(database=uri, query={"uri": "true", "immutable": "1"})


def settle_sqlite_file(db: Path) -> None:
    """Fold a SQLite database's write-ahead log into it and remove the log files, so
    that the database is one file that can be moved (no connection may be open)."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def _sqlite_readable(uri: str) -> bool:
    import sqlite3

    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error:
        return False
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _is_read_only(engine: Engine) -> bool:
    """Whether the engine reads a SQLite file it may not write (``read_only_sqlite_url``)."""
    q = engine.url.query
    return engine.dialect.name == "sqlite" and (q.get("mode") == "ro" or q.get("immutable") == "1")


def _sqlite_file(engine: Engine) -> Path | None:
    """The SQLite database file of an engine (None: not a file)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    if database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return Path(urllib.parse.unquote(database[len("file:") :]))
    return Path(database).expanduser()


def _sqlite_setup(engine: Engine) -> None:
    read_only = _is_read_only(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - trivial
        # Take transaction control from the driver so that writers can BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not read_only:  # a read-only file keeps the journal mode it has
            cur.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against a crashed or killed process in WAL mode.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        # A writer takes the write lock at BEGIN, so the generation it reads is the one
        # it will bump, and two writers queue instead of failing with "database is locked".
        if conn.info.pop("immediate", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _postgres_setup(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        if conn.info.pop("immediate", False):
            # Writers queue on one advisory lock, held to the end of the transaction,
            # and run at READ COMMITTED: each statement sees what the writer before
            # them committed (the generation they bump is the newest), where a
            # snapshot taken before the lock was granted would not.
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (``alembic upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    from migrations import SCRIPT_LOCATION

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    # the option is read through configparser, whose interpolation takes % (a home
    # named like `50%` or a URL-quoted path): doubled, it reads back as itself
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
    with engine.connect() as conn:
        # On PostgreSQL, processes that start together migrate one at a time (Alembic
        # reads the revision again under the lock).
        conn.info["immediate"] = engine.dialect.name == "postgresql"
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        except Exception:
            return None
    return row[0] if row else None


class Store:
    """Access to one foodvec database. Takes an engine; knows nothing of files or FAISS."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        # A SQLite file that cannot be written here is read as it is (never migrated)
        # and refuses writes with a message that says why.
        self.read_only = _is_read_only(engine)
        self.file = _sqlite_file(engine)
        self._pinned = threading.local()
        revision = current_revision(engine)
        if revision != HEAD_REVISION:
            if self.read_only:
                raise ReadOnlyError(
                    f"{self.file} is read-only here and holds schema revision {revision}; "
                    f"this foodvec needs {HEAD_REVISION}: open it once where it can be written"
                )
            migrate(engine)
        self.jobs = Jobs(self)

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(make_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    def staging(self) -> Staging:
        """A build's staging table (use as a context manager)."""
        from .staging import Staging

        self.check_writable()
        return Staging(self)

    def check_writable(self) -> None:
        """Refuse a write to a database opened read-only (``read_only_sqlite_url``)."""
        if self.read_only:
            raise ReadOnlyError(
                f"the database {self.file} is read-only here (its file or its folder is not "
                "writable): it can be searched and read, not changed"
            )

    # -- transactions -------------------------------------------------------------
    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Pin one read transaction to this thread: every ``read`` inside shares it (one
        snapshot of the database, one connection; a search's reads take one round of
        BEGIN and COMMIT instead of one each)."""
        if getattr(self._pinned, "conn", None) is not None:
            yield
            return
        with self.engine.connect() as conn:
            conn.begin()
            self._pinned.conn = conn
            try:
                yield
            except BaseException:
                self._pinned.conn = None
                if conn.in_transaction():
                    conn.rollback()
                raise
            self._pinned.conn = None
            if conn.in_transaction():
                conn.commit()

    def renew_snapshot(self) -> bool:
        """End this thread's pinned read transaction and begin another on the same
        connection: the reads after it see every commit made before it. False when
        no snapshot is pinned (each read is its own transaction then)."""
        conn = getattr(self._pinned, "conn", None)
        if conn is None:
            return False
        if conn.in_transaction():
            conn.commit()
        conn.begin()
        return True

    @contextmanager
    def read(self) -> Iterator[Connection]:
        pinned = getattr(self._pinned, "conn", None)
        if pinned is not None:
            yield pinned
            return
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def immediate(self) -> Iterator[Connection]:
        """A write transaction that does not count as a change of the items (jobs,
        bookkeeping): holds the write lock, does not bump the generation."""
        self.check_writable()
        with self.engine.connect() as conn:
            conn.info["immediate"] = True
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        """One write transaction: holds the write lock, bumps the generation on commit."""
        with self.immediate() as conn:
            gen = self._get_int(conn, "generation", 0) + 1
            tx = WriteTx(conn, gen)
            yield tx
            if tx.touched:
                self._set(conn, "generation", str(gen))

    # -- state --------------------------------------------------------------------
    @staticmethod
    def _get(conn: Connection, key: str) -> str | None:
        row = conn.execute(text("SELECT value FROM state WHERE key = :k"), {"k": key}).first()
        return row[0] if row else None

    @classmethod
    def _get_int(cls, conn: Connection, key: str, default: int) -> int:
        value = cls._get(conn, key)
        return int(value) if value is not None else default

    @staticmethod
    def _set(conn: Connection, key: str, value: str) -> None:
        conn.execute(
            text(
                "INSERT INTO state(key, value) VALUES (:k, :v) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            ),
            {"k": key, "v": value},
        )

    def generation(self) -> int:
        with self.read() as conn:
            return self._get_int(conn, "generation", 0)

    def latest_generation(self) -> int:
        """The newest committed generation, outside any snapshot this thread holds."""
        with self.engine.connect() as conn, conn.begin():
            return self._get_int(conn, "generation", 0)

    def state(self) -> tuple[int, str | None]:
        """(generation, active model fingerprint) in one read."""
        with self.read() as conn:
            rows = dict(
                conn.execute(
                    text("SELECT key, value FROM state WHERE key IN ('generation', 'model')")
                ).all()
            )
        return int(rows.get("generation", 0)), rows.get("model")

    def active_model(self) -> str | None:
        with self.read() as conn:
            return self._get(conn, "model")

    def model_info(self, fingerprint: str) -> dict[str, Any] | None:
        with self.read() as conn:
            row = conn.execute(
                text("SELECT fingerprint, name, dim FROM models WHERE fingerprint = :f"),
                {"f": fingerprint},
            ).first()
        return {"fingerprint": row[0], "name": row[1], "dim": row[2]} if row else None

    def count(self) -> int:
        with self.read() as conn:
            return conn.execute(text("SELECT count(*) FROM items")).scalar_one()

    # -- reads --------------------------------------------------------------------
    def items_by_ids(self, ids: Iterable[int]) -> dict[int, ItemRow]:
        ids = [int(i) for i in ids]
        out: dict[int, ItemRow] = {}
        with self.read() as conn:
            for chunk in _chunks(ids, SQL_BATCH):
                rows = conn.execute(
                    text(
                        "SELECT id, ext_id, text, content_hash, metadata FROM items "
                        f"WHERE id IN ({','.join(str(i) for i in chunk)})"
                    )
                )
                for r in rows:
                    out[r[0]] = ItemRow(r[0], r[1], r[2], r[3], json.loads(r[4]))
        return out

    def item_by_ext_id(self, ext_id: str) -> ItemRow | None:
        if "\x00" in ext_id:
            return None  # no stored id holds NUL (PostgreSQL could not even compare it)
        with self.read() as conn:
            r = conn.execute(
                text(
                    "SELECT id, ext_id, text, content_hash, metadata FROM items WHERE ext_id = :e"
                ),
                {"e": ext_id},
            ).first()
        return ItemRow(r[0], r[1], r[2], r[3], json.loads(r[4])) if r else None

    def filtered_ids(self, where: Node) -> np.ndarray:
        """Integer ids of the items whose metadata matches the filter, in id order."""
        sql, params = compile_where(where, self.dialect)
        with self.read() as conn:
            ids = conn.execute(text(f"SELECT id FROM items WHERE {sql} ORDER BY id"), params)
            return np.fromiter(ids.scalars(), dtype=np.int64)

    def page(
        self,
        where: Node | None = None,
        after: int = 0,
        offset: int = 0,
        limit: int = 100,
    ) -> list[ItemRow]:
        """Items in id order (a stable order): those with an id above ``after``, past
        ``offset`` of them, at most ``limit``; only those matching ``where``."""
        cond, params = compile_where(where, self.dialect) if where is not None else ("TRUE", {})
        params = {**params, "after": after, "off": offset, "lim": limit}
        with self.read() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, ext_id, text, content_hash, metadata FROM items "
                    f"WHERE id > :after AND {cond} ORDER BY id LIMIT :lim OFFSET :off"
                ),
                params,
            ).all()
        return [ItemRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def facets(self, max_values: int = 20) -> list[dict[str, Any]]:
        """The top-level metadata keys with their values: a key holding at most
        ``max_values`` distinct text or true/false values lists them with counts; a
        numeric key gives its range."""
        if self.dialect == "postgresql":
            # (key, kind, distinct values, min, max) with SQLite's names for the kinds
            summary = (
                "SELECT j.key, CASE jsonb_typeof(j.value) WHEN 'string' THEN 'text' "
                "WHEN 'number' THEN 'real' ELSE 'true' END AS kind, count(DISTINCT j.value), "
                "min(CASE WHEN jsonb_typeof(j.value) = 'number' THEN j.value::numeric END), "
                "max(CASE WHEN jsonb_typeof(j.value) = 'number' THEN j.value::numeric END) "
                "FROM items, jsonb_each(items.metadata::jsonb) j "
                "WHERE jsonb_typeof(j.value) IN ('string', 'number', 'boolean') "
                'GROUP BY j.key, kind ORDER BY j.key COLLATE "C"'
            )
            values = (
                "SELECT j.value #>> '{}', count(*) FROM items, "
                "jsonb_each(items.metadata::jsonb) j WHERE j.key = :k "
                "AND jsonb_typeof(j.value) = 'string' GROUP BY 1 "
                "ORDER BY 2 DESC, (j.value #>> '{}') COLLATE \"C\""
            )
        else:
            summary = (
                "SELECT j.key, j.type, count(DISTINCT j.value), min(j.value), max(j.value) "
                "FROM items, json_each(items.metadata) j "
                "WHERE j.type IN ('text','integer','real','true','false') "
                "GROUP BY j.key, j.type ORDER BY j.key"
            )
            values = (
                "SELECT j.value, count(*) FROM items, json_each(items.metadata) j "
                "WHERE j.key = :k AND j.type = 'text' GROUP BY j.value "
                "ORDER BY count(*) DESC, j.value"
            )
        with self.read() as conn:
            rows = conn.execute(text(summary)).all()
            out: dict[str, dict[str, Any]] = {}
            for key, kind, distinct, lo, hi in rows:
                entry = out.setdefault(key, {"key": key})
                if kind in ("integer", "real"):
                    lo, hi = _plain_number(lo), _plain_number(hi)
                    entry["min"] = lo if "min" not in entry else min(entry["min"], lo)
                    entry["max"] = hi if "max" not in entry else max(entry["max"], hi)
                elif kind == "text" and distinct <= max_values:
                    found = conn.execute(text(values), {"k": key}).all()
                    entry["values"] = [[v, c] for v, c in found]
                elif kind in ("true", "false"):
                    entry.setdefault("booleans", True)
        return list(out.values())

    def count_where(self, where: Node) -> int:
        cond, params = compile_where(where, self.dialect)
        with self.read() as conn:
            return conn.execute(text(f"SELECT count(*) FROM items WHERE {cond}"), params).scalar()

    def vectors_for_items(
        self, model_fp: str, dim: int, ids: Sequence[int] | None = None, batch: int = 20000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (item ids, vectors) for all items, or the given ones, in batches."""
        base = (
            "SELECT i.id, v.data FROM items i JOIN vectors v "
            "ON v.content_hash = i.content_hash AND v.model_fp = :m"
        )
        with self.read() as conn:
            if ids is None:
                last = -1
                while True:
                    rows = conn.execute(
                        text(base + " WHERE i.id > :last ORDER BY i.id LIMIT :n"),
                        {"m": model_fp, "last": last, "n": batch},
                    ).all()
                    if not rows:
                        return
                    last = rows[-1][0]
                    yield (
                        np.array([r[0] for r in rows], dtype=np.int64),
                        unpack_vectors([r[1] for r in rows], dim),
                    )
            else:
                for chunk in _chunks([int(i) for i in ids], SQL_BATCH):
                    rows = conn.execute(
                        text(base + f" WHERE i.id IN ({','.join(map(str, chunk))})"),
                        {"m": model_fp},
                    ).all()
                    yield (
                        np.array([r[0] for r in rows], dtype=np.int64),
                        unpack_vectors([r[1] for r in rows], dim),
                    )

    def gather_vectors(
        self, model_fp: str, dim: int, ids: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """All of ``vectors_for_items`` in one pair of arrays: (item ids, vectors)."""
        parts = list(self.vectors_for_items(model_fp, dim, ids))
        if not parts:
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def named_docs(
        self, ids: Sequence[int] | None = None, batch: int = 20000
    ) -> Iterator[tuple[int, str | None, str]]:
        """(item id, name, text) of all items, or of the given ones: what the lexical
        index is made of."""
        with self.read() as conn:
            if ids is None:
                last = -1
                while True:
                    rows = conn.execute(
                        text(
                            "SELECT id, name, text FROM items WHERE id > :last ORDER BY id LIMIT :n"
                        ),
                        {"last": last, "n": batch},
                    ).all()
                    if not rows:
                        return
                    last = rows[-1][0]
                    yield from ((r[0], r[1], r[2]) for r in rows)
            else:
                for chunk in _chunks([int(i) for i in ids], SQL_BATCH):
                    rows = conn.execute(
                        text(
                            "SELECT id, name, text FROM items "
                            f"WHERE id IN ({','.join(map(str, chunk))})"
                        )
                    ).all()
                    yield from ((r[0], r[1], r[2]) for r in rows)

    def ids_by_name_keys(self, keys: Sequence[str]) -> dict[str, list[int]]:
        """Item ids whose name key is one of ``keys`` (the exact-name rule)."""
        keys = [k for k in keys if "\x00" not in k]  # no stored name holds NUL
        if not keys:
            return {}
        params = {f"k{n}": k for n, k in enumerate(keys)}
        marks = ",".join(f":k{n}" for n in range(len(keys)))
        out: dict[str, list[int]] = {}
        with self.read() as conn:
            rows = conn.execute(
                text(f"SELECT name_key, id FROM items WHERE name_key IN ({marks}) ORDER BY id"),
                params,
            )
            for key, item_id in rows:
                out.setdefault(key, []).append(item_id)
        return out

    def missing_vectors(self, model_fp: str) -> int:
        """Items that have no vector for this model (should be 0 after any build)."""
        with self.read() as conn:
            return conn.execute(
                text(
                    "SELECT count(*) FROM items i LEFT JOIN vectors v "
                    "ON v.content_hash = i.content_hash AND v.model_fp = :m "
                    "WHERE v.content_hash IS NULL"
                ),
                {"m": model_fp},
            ).scalar_one()

    def integrity_problems(self) -> list[str]:
        """The database's own damage, one line each: SQLite's ``PRAGMA quick_check``
        (pages overwritten or torn) and stored vectors whose length is not their
        model's size. [] when there is none."""
        problems: list[str] = []
        if self.engine.dialect.name == "sqlite":
            try:
                with self.engine.connect() as conn:
                    found = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check(20)")]
            except DBAPIError as exc:  # too damaged to be checked at all
                found = [str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "?"]
            if found != ["ok"]:
                shown = "; ".join(str(f).replace("\n", " ") for f in found[:3])
                more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
                problems.append(f"the database fails SQLite's integrity check: {shown}{more}")
                return problems  # nothing more can be read from it with confidence
        bad = (
            "FROM vectors v JOIN models m ON m.fingerprint = v.model_fp "
            "WHERE v.data IS NULL OR length(v.data) != 4 * m.dim"
        )
        with self.read() as conn:
            n = conn.execute(text(f"SELECT count(*) {bad}")).scalar_one()
            if n:
                users = (
                    conn.execute(
                        text(
                            "SELECT i.id FROM items i WHERE i.content_hash IN "
                            f"(SELECT v.content_hash {bad}) ORDER BY i.id LIMIT 6"
                        )
                    )
                    .scalars()
                    .all()
                )
                used = ", ".join(map(str, users[:5])) + (", …" if len(users) > 5 else "")
                problems.append(
                    f"{n} stored vectors are damaged (not their model's size)"
                    + (f"; items using them: {used}" if users else "")
                )
        return problems

    def cached_hashes(self, conn: Connection, model_fp: str, hashes: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(hashes), SQL_BATCH):
            params = {f"h{n}": h for n, h in enumerate(chunk)}
            marks = ",".join(f":h{n}" for n in range(len(chunk)))
            found.update(
                conn.execute(
                    text(
                        "SELECT content_hash FROM vectors WHERE model_fp = :m "
                        f"AND content_hash IN ({marks})"
                    ),
                    {"m": model_fp, **params},
                ).scalars()
            )
        return found

    def changes_since(self, generation: int) -> tuple[set[int], int] | None:
        """Item ids touched after ``generation`` and the newest generation; None when
        the log no longer reaches back that far (then the index must be rebuilt)."""
        with self.read() as conn:
            marks = dict(
                conn.execute(
                    text("SELECT key, value FROM state WHERE key IN ('log_floor', 'generation')")
                ).all()
            )
            if generation < int(marks.get("log_floor", 0)):
                return None
            ids = conn.execute(
                text("SELECT DISTINCT item_id FROM changes WHERE generation > :g"),
                {"g": generation},
            ).scalars()
            touched = set(ids)
        return touched, int(marks.get("generation", 0))

    def collect_vectors(self) -> int:
        """Delete cached vectors that no item uses (any model); returns how many. Safe
        beside a running build: its apply step re-embeds any of its texts whose vector
        was collected, under the same write lock."""
        with self.immediate() as conn:
            return conn.execute(
                text(
                    "DELETE FROM vectors WHERE NOT EXISTS "
                    "(SELECT 1 FROM items i WHERE i.content_hash = vectors.content_hash)"
                )
            ).rowcount

    def prune_changes(self, upto: int, reader: str = "") -> None:
        """Record that the index home ``reader`` has saved its index at generation
        ``upto``, then forget the change log up to the oldest generation that any home
        seen in the last ``READER_TTL_S`` has saved: replicas that share one database,
        each with its own index files, all catch up from the log instead of rebuilding.

        On SQLite each entry also names the database file its home read: an entry
        naming another file came along with a copy of the database (a restored or
        copied home) and is dropped, since that home never reads this file. An entry
        that cannot be read, or whose time lies in the future (a wrong clock), is stale
        too: no entry pins the log for longer than the TTL."""
        if self.read_only:
            return  # nothing can be recorded, and nothing needs to be
        now = time.time()
        key = "reader:" + hashlib.sha256(reader.encode()).hexdigest()[:32]
        place = self._reader_place()
        with self.immediate() as conn:
            self._set(conn, key, f"{upto} {now:.0f}" + (f" {place}" if place else ""))
            floor_to = upto
            for name, value in conn.execute(
                text("SELECT key, value FROM state WHERE key LIKE 'reader:%'")
            ).all():
                entry = _reader_entry(value)
                if name != key and not _live_reader(entry, now, place):
                    conn.execute(text("DELETE FROM state WHERE key = :k"), {"k": name})
                elif entry is not None:
                    floor_to = min(floor_to, entry[0])
            if floor_to <= self._get_int(conn, "log_floor", 0):
                return
            conn.execute(text("DELETE FROM changes WHERE generation <= :g"), {"g": floor_to})
            self._set(conn, "log_floor", str(floor_to))

    def _reader_place(self) -> str | None:
        """The database file as a reader entry names it (None: not a SQLite file)."""
        if self.file is None:
            return None
        try:
            return str(self.file.resolve())
        except OSError:
            return None

    def readers(self) -> dict[str, str]:
        """The change log's reader entries (key -> value), for ``stats`` and tests."""
        with self.read() as conn:
            rows = conn.execute(text("SELECT key, value FROM state WHERE key LIKE 'reader:%'"))
            return {k: v for k, v in rows.all()}

    def forget_readers(self) -> int:
        """Drop every reader entry (a restored database's belong to the homes of the
        database it was copied from); returns how many."""
        with self.immediate() as conn:
            return conn.execute(text("DELETE FROM state WHERE key LIKE 'reader:%'")).rowcount

    def models(self) -> list[dict[str, Any]]:
        """Every model the database knows: fingerprint, name (a folder or ``base``), dim."""
        with self.read() as conn:
            rows = conn.execute(text("SELECT fingerprint, name, dim FROM models")).all()
        return [{"fingerprint": r[0], "name": r[1], "dim": r[2]} for r in rows]

    def rename_model(self, fingerprint: str, name: str) -> None:
        """Record where a model lives now (a restored home's own copy of it)."""
        with self.immediate() as conn:
            conn.execute(
                text("UPDATE models SET name = :n WHERE fingerprint = :f"),
                {"n": name, "f": fingerprint},
            )

    def backup_to(self, path: Path) -> int:
        """Copy the database to ``path`` with SQLite's online backup (a consistent
        snapshot while writers go on); returns the generation the copy holds."""
        import sqlite3

        if self.engine.dialect.name != "sqlite":
            raise FoodvecError(
                f"foodvec backup copies SQLite databases; back up a {self.engine.dialect.name} "
                "database with its own tools"
            )
        raw = self.engine.raw_connection()
        try:
            dst = sqlite3.connect(path)
            try:
                raw.driver_connection.backup(dst)
                row = dst.execute("SELECT value FROM state WHERE key = 'generation'").fetchone()
            finally:
                dst.close()
        finally:
            raw.close()
        return int(row[0]) if row else 0

    def stats(self) -> dict[str, Any]:
        with self.read() as conn:
            return {
                "items": conn.execute(text("SELECT count(*) FROM items")).scalar_one(),
                "vectors": conn.execute(text("SELECT count(*) FROM vectors")).scalar_one(),
                "generation": self._get_int(conn, "generation", 0),
                "model": self._get(conn, "model"),
            }


class WriteTx:
    """The open write transaction handed out by ``Store.write``."""

    def __init__(self, conn: Connection, generation: int):
        self.conn = conn
        self.generation = generation
        self.touched = False

    def log(self, item_ids: Iterable[int], op: str) -> None:
        rows = [(self.generation, int(i), op) for i in item_ids]
        if rows:
            insert_values(self.conn, "INSERT INTO changes(generation, item_id, op)", rows)
            self.touched = True

    def mark(self) -> None:
        self.touched = True

    def set_model(self, fingerprint: str, name: str, dim: int) -> None:
        self.conn.execute(
            text(
                "INSERT INTO models(fingerprint, name, dim) VALUES (:f, :n, :d) "
                "ON CONFLICT(fingerprint) DO UPDATE SET name = excluded.name"
            ),
            {"f": fingerprint, "n": name, "d": dim},
        )
        Store._set(self.conn, "model", fingerprint)
        self.touched = True

    def delete_where(self, where: Node) -> dict[int, str]:
        """Delete the items matching ``where`` (read under this write lock)."""
        cond, params = compile_where(where, self.conn.dialect.name)
        rows = self.conn.execute(
            text(f"DELETE FROM items WHERE {cond} RETURNING id, ext_id"), params
        ).all()
        deleted = {r[0]: r[1] for r in rows}
        self.log(deleted, "d")
        return deleted

    def item_for_update(self, ext_id: str) -> ItemRow | None:
        if "\x00" in ext_id:
            return None  # no stored id holds NUL
        r = self.conn.execute(
            text("SELECT id, ext_id, text, content_hash, metadata FROM items WHERE ext_id = :e"),
            {"e": ext_id},
        ).first()
        return ItemRow(r[0], r[1], r[2], r[3], json.loads(r[4])) if r else None

    def set_metadata(
        self, item_id: int, metadata: str, name: str | None, name_key: str | None, renamed: bool
    ) -> None:
        """Replace an item's metadata (canonical JSON); its text and vector stay. A new
        name is logged, since the lexical index holds names."""
        self.conn.execute(
            text(
                "UPDATE items SET metadata = :m, name = :n, name_key = :k, "
                "updated_at = CURRENT_TIMESTAMP WHERE id = :i"
            ),
            {"m": metadata, "n": name, "k": name_key, "i": item_id},
        )
        if renamed:
            self.log([item_id], "u")
        self.mark()

    def delete_ext_ids(self, ext_ids: Sequence[str]) -> dict[int, str]:
        """Delete items by the user's ids; returns {item id: user id} of those deleted."""
        deleted: dict[int, str] = {}
        ext_ids = [e for e in ext_ids if "\x00" not in e]  # no stored id holds NUL
        for chunk in _chunks(ext_ids, SQL_BATCH):
            params = {f"e{n}": e for n, e in enumerate(chunk)}
            marks = ",".join(f":e{n}" for n in range(len(chunk)))
            rows = self.conn.execute(
                text(f"DELETE FROM items WHERE ext_id IN ({marks}) RETURNING id, ext_id"), params
            )
            deleted.update((r[0], r[1]) for r in rows)
        self.log(deleted, "d")
        return deleted


def put_vectors(conn: Connection, model_fp: str, hashes: Sequence[str], vecs: np.ndarray) -> None:
    """Add vectors to the content-addressed cache (a vector already there is kept)."""
    dim = int(vecs.shape[1])
    insert_values(
        conn,
        "INSERT INTO vectors(content_hash, model_fp, dim, data)",
        [(h, model_fp, dim, pack_vector(v)) for h, v in zip(hashes, vecs, strict=True)],
        "ON CONFLICT DO NOTHING",
    )


def insert_values(conn: Connection, head: str, rows: Sequence[tuple], tail: str = "") -> None:
    """``head VALUES (...), (...) tail``: many rows in one statement (a round trip and
    a parse per chunk, not per row, which matters most on a network database)."""
    if not rows:
        return
    per = max(1, SQL_PARAMS // len(rows[0]))
    for chunk in _chunks(rows, per):
        params: dict[str, Any] = {}
        groups = []
        for r, row in enumerate(chunk):
            names = [f"v{r}_{c}" for c in range(len(row))]
            params.update(zip(names, row, strict=True))
            groups.append("(" + ",".join(":" + n for n in names) + ")")
        conn.execute(text(f"{head} VALUES {','.join(groups)} {tail}"), params)


ReaderEntry = tuple[int, float, "str | None"]


def _reader_entry(value: Any) -> ReaderEntry | None:
    """A reader entry's (generation, time seen, database file or None); None when it
    cannot be read (a damaged entry)."""
    parts = str(value).split(" ", 2)
    try:
        gen, seen = int(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        return None
    if gen < 0 or not math.isfinite(seen):
        return None
    return gen, seen, (parts[2] if len(parts) > 2 else None)


def _live_reader(entry: ReaderEntry | None, now: float, place: str | None) -> bool:
    """Whether a reader entry may still hold the change log back: readable, seen within
    ``READER_TTL_S`` (and not in the future), and a reader of this database file."""
    if entry is None:
        return False
    _, seen, where = entry
    if now - seen > READER_TTL_S or seen > now + READER_CLOCK_SLACK_S:
        return False
    if place is None or where is None:
        return True  # PostgreSQL, or an entry written before files were recorded
    try:
        return os.path.samefile(where, place)
    except OSError:  # gone: the home it named read another file
        return False


def _plain_number(v: Any) -> int | float:
    """A number as SQLite hands it over (PostgreSQL's numeric arrives as a Decimal)."""
    if isinstance(v, (int, float)):
        return v
    return int(v) if v.as_tuple().exponent >= 0 else float(v)


def _chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


__all__ = [
    "Store",
    "WriteTx",
    "ItemRow",
    "FoodvecError",
    "canonical_json",
    "settle_sqlite_file",
    "HEAD_REVISION",
]
