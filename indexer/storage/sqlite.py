"""SQLite: a database file in the home (or anywhere a URL names). WAL journal, one
writer at a time on BEGIN IMMEDIATE, JSON1 for the metadata, online backup, and a
file that cannot be written here read as it is."""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from pathlib import Path

from sqlalchemy import URL, Connection, Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ..errors import ReadOnlyError
from .staging import TABLE_COLUMNS, Staging
from .store import Store
from .where import MetadataKey, Params


class SQLiteKey(MetadataKey):
    """A metadata key through SQLite's JSON1 functions."""

    def __init__(self, key: str, p: Params):
        if '"' in key or "\\" in key or any(ord(ch) < 32 for ch in key):
            # A JSON path cannot quote these; json_each compares the key as a plain string.
            k = p.add(key)
            self.num = self.text = f"(SELECT value FROM json_each(items.metadata) WHERE key = {k})"
            self.type = f"(SELECT type FROM json_each(items.metadata) WHERE key = {k})"
        else:
            path = p.add(f'$."{key}"')
            self.num = self.text = f"json_extract(items.metadata, {path})"
            self.type = f"json_type(items.metadata, {path})"

    def is_num(self) -> str:
        return f"{self.type} IN ('integer','real')"

    def is_text(self) -> str:
        return f"{self.type} = 'text'"

    def is_bool(self, b: bool) -> str:
        return f"{self.type} = '{'true' if b else 'false'}'"

    def contains(self, mark: str) -> str:
        return f"instr({self.text}, {mark}) > 0"

    def as_text(self) -> str:
        return f"CAST({self.num} AS TEXT)"


class SQLiteStaging(Staging):
    """A build's table in the connection's ``temp`` schema, dropped when it ends."""

    table = "temp.staging"

    def _create_table(self) -> None:
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.table}")
        self.conn.exec_driver_sql(f"CREATE TEMP TABLE staging {TABLE_COLUMNS}")
        self._setup_made_table = True

    def _clean_up(self) -> None:
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.table}")

    def _index_seq(self) -> None:
        self.conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS temp.staging_seq ON staging (seq)")


class SQLiteStore(Store):
    dialect = "sqlite"
    where_key = SQLiteKey
    staging_class = SQLiteStaging
    seconds_ago_sql = "datetime('now', '-' || :s || ' seconds')"
    now_sql = "CURRENT_TIMESTAMP"
    facet_summary_sql = (
        "SELECT j.key, j.type, count(DISTINCT j.value), min(j.value), max(j.value) "
        "FROM items, json_each(items.metadata) j "
        "WHERE j.type IN ('text','integer','real','true','false') "
        "GROUP BY j.key, j.type ORDER BY j.key"
    )
    facet_values_sql = (
        "SELECT j.value, count(*) FROM items, json_each(items.metadata) j "
        "WHERE j.key = :k AND j.type = 'text' GROUP BY j.value "
        "ORDER BY count(*) DESC, j.value"
    )
    file_backup_supported = True

    def __init__(self, engine: Engine, *args, **kwargs):
        # A SQLite file that cannot be written here is read as it is (never migrated)
        # and refuses writes with a message that says why.
        self.read_only = _is_read_only(engine)
        self.file = self.file_of(engine.url)
        super().__init__(engine, *args, **kwargs)

    @classmethod
    def engine_url(cls, url: str) -> str | URL:
        return read_only_sqlite_url(url) or url

    @classmethod
    def prepare(cls, engine: Engine) -> None:
        read_only = _is_read_only(engine)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - trivial
            # Take transaction control from the driver so that writers can BEGIN IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                if not read_only:  # a read-only file keeps the journal mode it has
                    cur.execute("PRAGMA journal_mode=WAL")
                else:
                    cur.execute("PRAGMA schema_version")  # reads the schema, as WAL does
            except UnicodeDecodeError:
                # SQLite's message quotes the damaged schema, in bytes that are not UTF-8
                raise sqlite3.DatabaseError(
                    "database disk image is malformed (its schema holds bytes that are not "
                    "UTF-8)"
                ) from None
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

    @classmethod
    def file_of(cls, url: URL) -> Path | None:
        database = url.database or ""
        if database in ("", ":memory:"):
            return None
        if database.startswith("file:"):
            return Path(urllib.parse.unquote(database[len("file:") :]))
        return Path(database).expanduser()

    @classmethod
    def describe(cls, url: URL) -> str:
        return f"SQLite {url.database}"

    def page_problems(self) -> list[str]:
        try:
            with self.engine.connect() as conn:
                found = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check(20)")]
        except DBAPIError as exc:  # too damaged to be checked at all
            found = [str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "?"]
        if found == ["ok"]:
            return []
        shown = "; ".join(str(f).replace("\n", " ") for f in found[:3])
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        return [f"the database fails SQLite's integrity check: {shown}{more}"]

    def reader_place(self) -> str | None:
        if self.file is None:
            return None
        try:
            return str(self.file.resolve())
        except OSError:
            return None

    def backup_to(self, path: Path) -> int:
        """Copy the database to ``path`` with SQLite's online backup (a consistent
        snapshot while writers go on); returns the generation the copy holds."""
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
    if parsed.query or database in (None, "", ":memory:") or database.startswith("file:"):
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
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def _sqlite_readable(uri: str) -> bool:
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
    """Whether the engine reads a file it may not write (``read_only_sqlite_url``)."""
    q = engine.url.query
    return q.get("mode") == "ro" or q.get("immutable") == "1"
