"""The store: items, vectors, the generation counter and the change log.

The database (SQLite, or PostgreSQL shared by several machines) is the source of
truth; the FAISS index is derived from it. Every write transaction bumps
``generation`` and logs the item ids it touched in ``changes``. One writer at a time:
SQLite's write lock (BEGIN IMMEDIATE), or a PostgreSQL transaction-level advisory lock.

``Store`` holds the SQL both databases share; each dialect is a subclass with small
hooks (``sqlite.SQLiteStore``, ``postgres.PostgresStore``), and ``Store.open`` picks
the one a URL names.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np
from sqlalchemy import URL, Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from ..errors import FoodvecError, ReadOnlyError
from ..filters import Node
from ..settings import JOBS_KEEP, JOBS_KEEP_DAYS
from . import slices
from .jobs import Jobs
from .layouts import Layouts
from .sql import (
    ITEM_COLUMNS,
    ItemRow,
    WriteTx,
    get_state,
    get_state_int,
    in_batches,
    item_by_ext_id,
    item_row,
    set_state,
    unpack_vectors,
)
from .staging import Staging
from .where import MetadataKey, compile_where

# The newest migration; ``open`` skips Alembic entirely when the database is already
# there (a test checks this constant against the migration scripts).
HEAD_REVISION = "0005"

# A reader of the change log (an index home) that has not published for this long no
# longer holds the log back; if it returns, it rebuilds its index from the database.
READER_TTL_S = 7 * 24 * 3600
# A reader's time this far in the future is a wrong clock (or a damaged entry), not a
# reader that may pin the log: it is treated as stale.
READER_CLOCK_SLACK_S = 24 * 3600

# The store class of each dialect, by SQLAlchemy's name (filled as they are defined).
_DIALECTS: dict[str, type[Store]] = {}


def store_class(url: str) -> type[Store]:
    """The store class for a database URL."""
    try:
        backend = make_url(url).get_backend_name()
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise FoodvecError(f"not a database URL: {url!r} ({exc})") from None
    if backend not in _DIALECTS:
        raise FoodvecError(f"foodvec stores its items in SQLite or PostgreSQL, not {backend}")
    return _DIALECTS[backend]


def make_engine(url: str) -> Engine:
    """An engine for the database ``url`` names, set up as its store needs."""
    return store_class(url).engine_for(url)


def database_file(url: str) -> Path | None:
    """The file that holds the database a URL names; None for a server's database, one
    in memory, or a URL that cannot be read."""
    try:
        return store_class(url).file_of(make_url(url))
    except FoodvecError:
        return None


def describe_database(url: str) -> str:
    """The database a URL names, in a few words, its password hidden."""
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy.exc.ArgumentError and friends
        return "database (unreadable URL)"
    return _DIALECTS.get(parsed.get_backend_name(), Store).describe(parsed)


def migrate(engine: Engine, queue: bool = False) -> None:
    """Bring the schema to the newest revision (``alembic upgrade head``). ``queue``:
    under the write lock, so that processes that start together migrate one at a time
    (Alembic reads the revision again under the lock)."""
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
        conn.info["immediate"] = queue
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


class Delta(NamedTuple):
    """What the change log says happened after a generation."""

    touched: set[int]  # items added, changed or deleted (their vector, name or text)
    generation: int  # the newest generation
    metadata: set[int]  # every item whose metadata may have changed (touched included)


class GenerationListener(Protocol):
    def wait(self, timeout: float) -> bool:
        """Until the generation moves on (True) or ``timeout`` seconds pass (False)."""
        ...

    def close(self) -> None: ...


class Store:
    """Access to one foodvec database: the SQL that SQLite and PostgreSQL share. Takes
    an engine; knows nothing of FAISS. A subclass per dialect sets the hooks below."""

    # -- the dialect's hooks ------------------------------------------------------------
    dialect: ClassVar[str] = ""  # SQLAlchemy's name for it
    engine_options: ClassVar[dict[str, Any]] = {}  # create_engine's keyword arguments
    where_key: ClassVar[type[MetadataKey]]  # how a filter reads a metadata key
    staging_class: ClassVar[type[Staging]]  # a build's staging table
    # SQL for "the time :s seconds ago", in the terms of columns set by CURRENT_TIMESTAMP
    seconds_ago_sql: ClassVar[str]
    now_sql: ClassVar[str]  # the time the statement runs (``sql.Database``)
    # the metadata keys: (key, kind, distinct values, min, max) with SQLite's names for
    # the kinds (text, integer, real, true, false); and a text key's values (:k), counted
    facet_summary_sql: ClassVar[str]
    facet_values_sql: ClassVar[str]
    # processes that start together migrate one at a time, under the write lock
    migrate_under_lock: ClassVar[bool] = False
    # ``backup_to`` copies the database (else it is backed up with the database's tools)
    file_backup_supported: ClassVar[bool] = False
    # the database file (None: not a file), and whether it is read here without writing
    file: Path | None = None
    read_only = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.dialect:
            _DIALECTS[cls.dialect] = cls

    @classmethod
    def engine_url(cls, url: str) -> str | URL:
        """What ``create_engine`` is given for ``url``."""
        return url

    @classmethod
    def prepare(cls, engine: Engine) -> None:
        """Set up a new engine (its connections, its BEGIN)."""

    @classmethod
    def file_of(cls, url: URL) -> Path | None:
        """The database file a URL names (None: not a file)."""
        return None

    @classmethod
    def describe(cls, url: URL) -> str:
        return f"{url.get_backend_name()} {url.render_as_string(hide_password=True)}"

    def page_problems(self) -> list[str]:
        """The database's own check of its pages, one line a problem ([]: none, or not
        checked)."""
        return []

    def reader_place(self) -> str | None:
        """The database file as a change-log reader entry names it (None: not a file)."""
        return None

    def backup_to(self, path: Path) -> int:
        """Copy the database to ``path`` (a consistent snapshot while writers go on);
        returns the generation the copy holds."""
        raise FoodvecError(
            f"foodvec backup copies SQLite databases; back up a {self.dialect} "
            "database with its own tools"
        )

    # -----------------------------------------------------------------------------------
    def __init__(
        self, engine: Engine, jobs_keep: int = JOBS_KEEP, jobs_keep_days: float = JOBS_KEEP_DAYS
    ):
        """``jobs_keep`` and ``jobs_keep_days``: the finished mining jobs kept (``Jobs``)."""
        self.engine = engine
        # Writers take their connections from a pool of their own where the dialect has
        # one (PostgreSQL): writers queued on the write lock never take the connections
        # that searches need.
        self.write_engine = self.writers_engine(engine)
        self._pinned = threading.local()
        revision = current_revision(engine)
        if revision != HEAD_REVISION:
            if self.read_only:
                raise ReadOnlyError(
                    f"{self.file} is read-only here and holds schema revision {revision}; "
                    f"this foodvec needs {HEAD_REVISION}: open it once where it can be written"
                )
            migrate(engine, queue=self.migrate_under_lock)
        self.jobs = Jobs(self, jobs_keep, jobs_keep_days)
        self.layouts = Layouts(self)

    @classmethod
    def open(
        cls, url: str, jobs_keep: int = JOBS_KEEP, jobs_keep_days: float = JOBS_KEEP_DAYS
    ) -> Store:
        """The store of the database ``url`` names, of its dialect's class."""
        kind = store_class(url)
        return kind(kind.engine_for(url), jobs_keep, jobs_keep_days)

    @classmethod
    def engine_for(cls, url: str) -> Engine:
        target = cls.engine_url(url)
        try:
            engine = create_engine(target, **cls.engine_options)
        except ModuleNotFoundError as exc:
            raise FoodvecError(
                f"the database driver for {url.split(':', 1)[0]} is not installed "
                f"({exc.name}); for PostgreSQL: pip install 'foodvec[postgres]'"
            ) from None
        except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
            raise FoodvecError(f"not a database URL: {url!r} ({exc})") from None
        cls.prepare(engine)
        return engine

    @classmethod
    def writers_engine(cls, engine: Engine) -> Engine:
        """The engine writers use (``immediate``, a build's staging): ``engine`` itself,
        unless the dialect gives writers a pool of their own."""
        return engine

    def close(self) -> None:
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
        self.engine.dispose()

    def staging(self) -> Staging:
        """A build's staging table (use as a context manager)."""
        self.check_writable()
        return self.staging_class(self)

    def check_writable(self) -> None:
        """Refuse a write to a database opened read-only (``read_only``)."""
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
            self._pinned.state = None
            try:
                yield
            except BaseException:
                self._pinned.conn = self._pinned.state = None
                if conn.in_transaction():
                    conn.rollback()
                raise
            self._pinned.conn = self._pinned.state = None
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
        self._pinned.state = None
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
        with self.write_engine.connect() as conn:
            conn.info["immediate"] = True
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        """One write transaction: holds the write lock, bumps the generation on commit."""
        with self.immediate() as conn:
            tx = WriteTx(conn, get_state_int(conn, "generation", 0) + 1, self.where_key)
            yield tx
            if tx.touched:
                set_state(conn, "generation", str(tx.generation))
                self.generation_moved(conn, tx.generation)

    def generation_moved(self, conn: Connection, generation: int) -> None:
        """In a write transaction that moves the generation on: tell the other
        processes on this database, where the dialect can (delivered at commit)."""

    def generation_listener(self) -> GenerationListener | None:
        """Something to wait on for the generation to move (``wait(timeout)``), where
        the dialect can tell; None: look every so often instead."""
        return None

    # -- state --------------------------------------------------------------------
    _set = staticmethod(set_state)  # the name callers know

    def generation(self) -> int:
        return self.state()[0]

    def latest_generation(self) -> int:
        """The newest committed generation, outside any snapshot this thread holds."""
        with self.engine.connect() as conn, conn.begin():
            return get_state_int(conn, "generation", 0)

    def state(self) -> tuple[int, str | None]:
        """(generation, active model fingerprint) in one read: once per snapshot
        (``snapshot``), whose reads all see the same state."""
        pinned = getattr(self._pinned, "conn", None) is not None
        if pinned and self._pinned.state is not None:
            return self._pinned.state
        with self.read() as conn:
            rows = dict(
                conn.execute(
                    text("SELECT key, value FROM state WHERE key IN ('generation', 'model')")
                ).all()
            )
        got = int(rows.get("generation", 0)), rows.get("model")
        if pinned:
            self._pinned.state = got
        return got

    def active_model(self) -> str | None:
        return self.state()[1]

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
    def _where(self, where: Node) -> tuple[str, dict[str, Any]]:
        return compile_where(where, self.where_key)

    def items_by_ids(self, ids: Iterable[int]) -> dict[int, ItemRow]:
        sql = f"SELECT {ITEM_COLUMNS} FROM items WHERE id IN ({{values}})"
        out: dict[int, ItemRow] = {}
        with self.read() as conn:
            for result in in_batches(conn, sql, [int(i) for i in ids]):
                out.update((r[0], item_row(r)) for r in result)
        return out

    def item_by_ext_id(self, ext_id: str) -> ItemRow | None:
        with self.read() as conn:
            return item_by_ext_id(conn, ext_id)

    def filtered_ids(self, where: Node) -> np.ndarray:
        """Integer ids of the items whose metadata matches the filter, in id order."""
        sql, params = self._where(where)
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
        cond, params = self._where(where) if where is not None else ("TRUE", {})
        params = {**params, "after": after, "off": offset, "lim": limit}
        with self.read() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {ITEM_COLUMNS} FROM items "
                    f"WHERE id > :after AND {cond} ORDER BY id LIMIT :lim OFFSET :off"
                ),
                params,
            ).all()
        return [item_row(r) for r in rows]

    def facets(self, max_values: int = 20) -> list[dict[str, Any]]:
        """The top-level metadata keys with their values: a key holding at most
        ``max_values`` distinct text or true/false values lists them with counts; a
        numeric key gives its range."""
        with self.read() as conn:
            rows = conn.execute(text(self.facet_summary_sql)).all()
            out: dict[str, dict[str, Any]] = {}
            for key, kind, distinct, lo, hi in rows:
                entry = out.setdefault(key, {"key": key})
                if kind in ("integer", "real"):
                    lo, hi = _plain_number(lo), _plain_number(hi)
                    entry["min"] = lo if "min" not in entry else min(entry["min"], lo)
                    entry["max"] = hi if "max" not in entry else max(entry["max"], hi)
                elif kind == "text" and distinct <= max_values:
                    found = conn.execute(text(self.facet_values_sql), {"k": key}).all()
                    entry["values"] = [[v, c] for v, c in found]
                elif kind in ("true", "false"):
                    entry.setdefault("booleans", True)
        return list(out.values())

    def count_where(self, where: Node) -> int:
        cond, params = self._where(where)
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
                parts = _id_order(conn, base, "i.id", batch, {"m": model_fp})
            else:
                sql, ids = base + " WHERE i.id IN ({values})", [int(i) for i in ids]
                parts = (r.all() for r in in_batches(conn, sql, ids, {"m": model_fp}))
            for rows in parts:
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
        base = "SELECT id, name, text FROM items"
        with self.read() as conn:
            if ids is None:
                parts = _id_order(conn, base, "id", batch)
            else:
                sql = base + " WHERE id IN ({values})"
                parts = (r.all() for r in in_batches(conn, sql, [int(i) for i in ids]))
            for rows in parts:
                yield from ((r[0], r[1], r[2]) for r in rows)

    def ids_by_name_keys(self, keys: Sequence[str]) -> dict[str, list[int]]:
        """Item ids whose name key is one of ``keys`` (the exact-name rule)."""
        keys = [k for k in keys if "\x00" not in k]  # no stored name holds NUL
        sql = "SELECT name_key, id FROM items WHERE name_key IN ({values}) ORDER BY id"
        out: dict[str, list[int]] = {}
        with self.read() as conn:
            for result in in_batches(conn, sql, keys):
                for key, item_id in result:
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
        """The database's own damage, one line each: its check of its pages (SQLite's
        ``PRAGMA quick_check``: pages overwritten or torn) and stored vectors whose
        length is not their model's size. [] when there is none."""
        problems = self.page_problems()
        if problems:
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

    def changes_at_least(self, generation: int, n: int) -> bool:
        """Whether the change log holds ``n`` or more entries after ``generation`` (or
        no longer reaches back that far): a cheap look before a big catch-up."""
        with self.read() as conn:
            floor = conn.execute(text("SELECT value FROM state WHERE key = 'log_floor'")).first()
            if floor is not None and generation < int(floor[0]):
                return True
            found = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT 1 FROM changes WHERE generation > :g LIMIT :n) c"
                ),
                {"g": generation, "n": n},
            ).scalar_one()
        return found >= n

    def changes_since(self, generation: int, most: int | None = None) -> Delta | None:
        """What changed after ``generation`` (``Delta``); None when the log no longer
        reaches back that far (then the indexes must be rebuilt). ``most``: only the
        generations after it whose entries add up to at most that many (at least one
        generation), the Delta's generation the last of them."""
        with self.read() as conn:
            marks = dict(
                conn.execute(
                    text("SELECT key, value FROM state WHERE key IN ('log_floor', 'generation')")
                ).all()
            )
            if generation < int(marks.get("log_floor", 0)):
                return None
            upto = int(marks.get("generation", 0))
            if most is not None:
                upto = _stretch(conn, generation, most, upto)
            rows = conn.execute(
                text(
                    "SELECT DISTINCT item_id, op FROM changes WHERE generation > :g "
                    "AND generation <= :u"
                ),
                {"g": generation, "u": upto},
            ).all()
        touched = {i for i, op in rows if op != "m"}
        return Delta(touched, upto, {i for i, _ in rows})

    def collect_vectors(self) -> int:
        """Delete cached vectors that no item uses (any model); returns how many. Safe
        beside a running build: its apply step re-embeds any of its texts whose vector
        was collected, under the same write lock; the rows of a build landing in slices
        keep theirs."""
        with self.immediate() as conn:
            return conn.execute(
                text(
                    "DELETE FROM vectors WHERE NOT EXISTS "
                    "(SELECT 1 FROM items i WHERE i.content_hash = vectors.content_hash) "
                    "AND NOT EXISTS "
                    "(SELECT 1 FROM landing_rows b WHERE b.hash = vectors.content_hash)"
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
        place = self.reader_place()
        with self.immediate() as conn:
            set_state(conn, key, f"{upto} {now:.0f}" + (f" {place}" if place else ""))
            floor_to = upto
            for name, value in conn.execute(
                text("SELECT key, value FROM state WHERE key LIKE 'reader:%'")
            ).all():
                entry = _reader_entry(value)
                if name != key and not _live_reader(entry, now, place):
                    conn.execute(text("DELETE FROM state WHERE key = :k"), {"k": name})
                elif entry is not None:
                    floor_to = min(floor_to, entry[0])
            if floor_to <= get_state_int(conn, "log_floor", 0):
                return
            conn.execute(text("DELETE FROM changes WHERE generation <= :g"), {"g": floor_to})
            set_state(conn, "log_floor", str(floor_to))

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

    def finish_landings(self) -> list[int]:
        """Finish the big builds that stopped while landing in slices (``slices``);
        the landings finished. Nothing on a read-only database."""
        return [] if self.read_only else slices.finish_stale(self)

    def landings(self) -> list[dict[str, Any]]:
        """The big builds landing in slices, or landed within the hour, newest first."""
        return slices.describe(self)

    def stats(self) -> dict[str, Any]:
        with self.read() as conn:
            return {
                "items": conn.execute(text("SELECT count(*) FROM items")).scalar_one(),
                "vectors": conn.execute(text("SELECT count(*) FROM vectors")).scalar_one(),
                "generation": get_state_int(conn, "generation", 0),
                "model": get_state(conn, "model"),
            }


def _stretch(conn: Connection, generation: int, most: int, upto: int) -> int:
    """The last generation after ``generation`` (at most ``upto``) up to which the
    change log holds at most ``most`` entries (at least the first one with any)."""
    counts = conn.execute(
        text(
            "SELECT generation, count(*) FROM changes WHERE generation > :g "
            "AND generation <= :u GROUP BY generation ORDER BY generation"
        ),
        {"g": generation, "u": upto},
    ).all()
    total, last = 0, None
    for gen, n in counts:
        if last is not None and total + n > most:
            return last
        total, last = total + n, gen
    return upto


def _id_order(
    conn: Connection, select: str, id_column: str, batch: int, params: dict | None = None
) -> Iterator[list[Any]]:
    """The rows of ``select`` (whose first column is ``id_column``) in id order,
    ``batch`` at a time."""
    sql = text(f"{select} WHERE {id_column} > :last ORDER BY {id_column} LIMIT :n")
    last = -1
    while True:
        rows = conn.execute(sql, {**(params or {}), "last": last, "n": batch}).all()
        if not rows:
            return
        last = rows[-1][0]
        yield rows


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


__all__ = [
    "HEAD_REVISION",
    "Delta",
    "READER_TTL_S",
    "Store",
    "current_revision",
    "database_file",
    "describe_database",
    "make_engine",
    "migrate",
    "store_class",
]
