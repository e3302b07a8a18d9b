"""PostgreSQL: one database that several machines share. Readers see one snapshot per
transaction (REPEATABLE READ); writers queue on a transaction-level advisory lock and
run at READ COMMITTED; the metadata is read with jsonb operators."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from .staging import TABLE_COLUMNS, Staging
from .store import Store
from .where import MetadataKey, Params

# The key of the advisory lock that writers hold (any fixed 64-bit number; this one is
# "foodvec" in ASCII).
log = logging.getLogger("foodvec")

WRITE_LOCK_KEY = 0x666F6F64766563
# A connection keeps its staging table after a build of fewer rows than this (emptied);
# a bigger build drops it.
KEEP_TABLE_ROWS = 50_000


class PostgresKey(MetadataKey):
    """A metadata key through jsonb operators, text in code-point order (as SQLite
    compares it)."""

    def __init__(self, key: str, p: Params):
        k = p.add(key)
        self.json = f"(items.metadata::jsonb -> CAST({k} AS TEXT))"
        self.type = f"jsonb_typeof({self.json})"
        self.num = f"(CASE WHEN {self.type} = 'number' THEN ({self.json})::numeric END)"
        self.text = f'((items.metadata::jsonb ->> CAST({k} AS TEXT)) COLLATE "C")'

    def is_num(self) -> str:
        return f"{self.type} = 'number'"

    def is_text(self) -> str:
        return f"{self.type} = 'string'"

    def is_bool(self, b: bool) -> str:
        return f"{self.json} = '{'true' if b else 'false'}'::jsonb"

    def contains(self, mark: str) -> str:
        return f"strpos({self.text}, {mark}) > 0"

    def as_text(self) -> str:
        return (
            f"(CASE WHEN {self.type} = 'boolean' THEN (CASE WHEN {self.is_bool(True)} "
            f"THEN '1' ELSE '0' END) ELSE {self.text} END)"
        )


class PostgresStaging(Staging):
    """A build's table in the session's ``pg_temp`` schema. It stays with the pooled
    connection (a new one per build costs PostgreSQL more catalog work than a build of
    a few rows): emptied at the end, in apply's own commit, or dropped after a big build.

    What the staging steps commit is never an acknowledged write (a staged row, a
    cached vector: ``apply`` embeds again any vector that went missing), so their
    commits need not wait for the disk; ``apply`` commits synchronously."""

    table = "pg_temp.staging"
    apply_cleans_up = True

    def _create_table(self) -> None:
        self.conn.exec_driver_sql("SET synchronous_commit TO OFF")
        if not self.conn.info.get("foodvec_staging"):  # new, or dropped after a big build
            self.conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS staging {TABLE_COLUMNS}")
            self.conn.exec_driver_sql(f"DELETE FROM {self.table}")
            self._setup_made_table = True

    def _table_committed(self) -> None:
        self.conn.info["foodvec_staging"] = True

    def _clean_up(self) -> None:
        """Empty the table and give the pooled connection back as it came."""
        # a few rows: deleted (cheap); many: the table goes (no dead rows kept)
        if self.staged < KEEP_TABLE_ROWS:
            self.conn.exec_driver_sql(f"DELETE FROM {self.table}")
        else:
            self.conn.exec_driver_sql(f"DROP TABLE {self.table}")
            self.conn.info["foodvec_staging"] = False
        self.conn.exec_driver_sql("RESET synchronous_commit")

    def _index_seq(self) -> None:
        self.conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS staging_seq ON {self.table} (seq)")

    def _before_apply(self) -> None:
        self.conn.exec_driver_sql("SET LOCAL synchronous_commit TO ON")

    def _end_apply(self) -> None:
        if self._made:
            self._clean_up()  # in the same commit (undone with it if it fails)


# Searches and catch-ups (the readers) take connections from one pool; writers, who
# may queue on the write lock behind a long build, from another, so that they never
# hold what searches need. A request that finds no connection free within
# POOL_TIMEOUT seconds is answered 503; connecting gives up after CONNECT_TIMEOUT.
POOL_SIZE = 5
POOL_OVERFLOW = 10
WRITE_POOL_SIZE = 2
WRITE_POOL_OVERFLOW = 3
POOL_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5


def pool_warning(most: int, max_connections: int, reserved: int, in_use: int) -> str | None:
    """What to say when one more process with a pool of ``most`` connections may not
    fit in what the server allows beside those ``in_use`` (None: it fits)."""
    free = max_connections - reserved - in_use
    if most <= free:
        return None
    return (
        f"this process may open up to {most} connections to PostgreSQL, and the server "
        f"has {max(free, 0)} free (max_connections {max_connections}, {reserved} reserved, "
        f"{in_use} in use): raise max_connections, or run fewer processes on this database"
    )


# The channel a write's commit notifies, with the generation it made (LISTEN/NOTIFY):
# servers waiting on it catch up at once instead of at their next look.
CHANNEL = "foodvec_generation"


class Listener:
    """A connection of its own (out of the pool) listening on ``CHANNEL``. When it is
    lost (the database away), ``wait`` only waits, and connects again at the next call."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._raw = None

    def _connect(self):
        raw = self._engine.raw_connection()
        conn = raw.driver_connection  # the psycopg connection
        raw.detach()  # never handed back to the pool
        conn.rollback()
        conn.autocommit = True
        conn.execute(f"LISTEN {CHANNEL}")
        self._raw = conn
        return conn

    def wait(self, timeout: float) -> bool:
        started = time.monotonic()
        try:
            conn = self._raw if self._raw is not None else self._connect()
            return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))
        except Exception:  # the database away: wait out the time, connect again next call
            self.close()
            time.sleep(max(0.0, timeout - (time.monotonic() - started)))
            return False

    def close(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            except Exception:
                pass
            self._raw = None


class PostgresStore(Store):
    dialect = "postgresql"
    # Readers see one snapshot per transaction, as SQLite's readers do (the change log
    # and the generation they read belong together); writers switch to READ COMMITTED
    # under their lock (``prepare``).
    # A process holds at most POOL_SIZE + POOL_OVERFLOW connections for readers and
    # WRITE_POOL_SIZE + WRITE_POOL_OVERFLOW for writers; a request that finds none free
    # within POOL_TIMEOUT seconds is answered 503 (search.service.outage).
    engine_options: dict[str, Any] = {
        "pool_pre_ping": True,
        "isolation_level": "REPEATABLE READ",
        "pool_size": POOL_SIZE,
        "max_overflow": POOL_OVERFLOW,
        "pool_timeout": POOL_TIMEOUT,
        "connect_args": {"connect_timeout": CONNECT_TIMEOUT},
    }
    where_key = PostgresKey
    staging_class = PostgresStaging
    seconds_ago_sql = "LOCALTIMESTAMP - (:s * INTERVAL '1 second')"
    now_sql = "CAST(clock_timestamp() AS timestamp)"
    facet_summary_sql = (
        "SELECT j.key, CASE jsonb_typeof(j.value) WHEN 'string' THEN 'text' "
        "WHEN 'number' THEN 'real' ELSE 'true' END AS kind, count(DISTINCT j.value), "
        "min(CASE WHEN jsonb_typeof(j.value) = 'number' THEN j.value::numeric END), "
        "max(CASE WHEN jsonb_typeof(j.value) = 'number' THEN j.value::numeric END) "
        "FROM items, jsonb_each(items.metadata::jsonb) j "
        "WHERE jsonb_typeof(j.value) IN ('string', 'number', 'boolean') "
        'GROUP BY j.key, kind ORDER BY j.key COLLATE "C"'
    )
    facet_values_sql = (
        "SELECT j.value #>> '{}', count(*) FROM items, "
        "jsonb_each(items.metadata::jsonb) j WHERE j.key = :k "
        "AND jsonb_typeof(j.value) = 'string' GROUP BY 1 "
        "ORDER BY 2 DESC, (j.value #>> '{}') COLLATE \"C\""
    )
    # processes that start together migrate one at a time
    migrate_under_lock = True

    def generation_moved(self, conn: Connection, generation: int) -> None:
        conn.exec_driver_sql(f"SELECT pg_notify('{CHANNEL}', '{int(generation)}')")

    def generation_listener(self) -> Listener:
        return Listener(self.engine)

    @classmethod
    def writers_engine(cls, engine: Engine) -> Engine:
        writers = create_engine(
            engine.url,
            **{
                **cls.engine_options,
                "pool_size": WRITE_POOL_SIZE,
                "max_overflow": WRITE_POOL_OVERFLOW,
            },
        )
        cls.prepare(writers)
        return writers

    def __init__(self, engine: Engine, *args: Any, **kwargs: Any):
        super().__init__(engine, *args, **kwargs)
        self._check_pool()

    def _check_pool(self) -> None:
        """Say once, at open, when this process's pool may not fit in the server's
        max_connections beside the connections already open."""
        with self.engine.connect() as conn:
            max_connections = int(conn.exec_driver_sql("SHOW max_connections").scalar_one())
            reserved = int(conn.exec_driver_sql("SHOW superuser_reserved_connections").scalar_one())
            in_use = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            ).scalar_one()
        most = POOL_SIZE + POOL_OVERFLOW + WRITE_POOL_SIZE + WRITE_POOL_OVERFLOW
        said = pool_warning(most, max_connections, reserved, int(in_use))
        if said:
            log.warning(said)

    @classmethod
    def prepare(cls, engine: Engine) -> None:
        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection):
            if conn.info.pop("immediate", False):
                # Writers queue on one advisory lock, held to the end of the transaction,
                # and run at READ COMMITTED: each statement sees what the writer before
                # them committed (the generation they bump is the newest), where a
                # snapshot taken before the lock was granted would not.
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
