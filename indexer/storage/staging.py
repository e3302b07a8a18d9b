"""Staging a build: rows go to a temporary table as they are validated; ``apply`` then
lands them in ``items`` in one write transaction that bumps the generation, so a build
lands whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, text

from ..errors import FoodvecError
from .store import SQL_BATCH, Store, WriteTx, insert_values, put_vectors

Embed = Callable[[list[str]], np.ndarray]
# PostgreSQL keeps a connection's staging table after a build of fewer rows than this
# (emptied); a bigger build drops it.
KEEP_TABLE_ROWS = 50_000


@dataclass(frozen=True)
class StagedRow:
    ext_id: str
    text: str
    hash: str
    meta: str  # canonical JSON
    where: str  # the row's place in its input, for messages
    seq: int  # input order, which new items keep
    name: str | None
    name_key: str | None


@dataclass
class Applied:
    new: int
    updated: int
    unchanged: int
    embedded: int  # texts whose vector was collected since staging and embedded again
    generation: int  # the generation the build produced (the old one if nothing changed)
    items: int  # items in the database after it


class Staging:
    """One build's staging table, on a connection of its own (temporary tables live
    in a connection). Use as a context manager; the table is dropped on exit."""

    def __init__(self, store: Store):
        self.store = store
        self._cm = store.engine.connect()
        self.conn: Connection = self._cm
        self.staged = 0  # rows staged
        self._setup: list[str] = []  # run at the start of the next transaction
        self._emptied = False  # apply emptied the table and restored the session
        # the session's own schema for temporary tables
        self.table = "pg_temp.staging" if store.dialect == "postgresql" else "temp.staging"

    @contextmanager
    def _begin(self, immediate: bool = False) -> Iterator[None]:
        if immediate:
            self.conn.info["immediate"] = True
        setup, self._setup = self._setup, []
        with self.conn.begin():
            for sql in setup:
                self.conn.exec_driver_sql(sql)
            yield
        if any(sql.startswith("CREATE") for sql in setup):
            self.conn.info["foodvec_staging"] = True  # committed: the table exists

    def __enter__(self) -> Staging:
        columns = (
            "(ext_id TEXT PRIMARY KEY, text TEXT NOT NULL, hash TEXT NOT NULL, "
            "meta TEXT NOT NULL, src TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT, nkey TEXT)"
        )
        if self.store.dialect == "postgresql":
            # What the staging steps commit is never an acknowledged write (a staged
            # row, a cached vector: ``apply`` embeds again any vector that went
            # missing), so their commits need not wait for the disk; ``apply`` commits
            # synchronously. The table stays with the pooled connection (a new one per
            # build costs PostgreSQL more catalog work than a build of a few rows); it
            # is emptied at the end. All of it rides on the build's first transaction.
            self._setup = ["SET synchronous_commit TO OFF"]
            if not self.conn.info.get("foodvec_staging"):  # new, or dropped after a big build
                self._setup += [
                    f"CREATE TEMP TABLE IF NOT EXISTS staging {columns}",
                    f"DELETE FROM {self.table}",
                ]
        else:
            with self._begin():
                self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.table}")
                self.conn.exec_driver_sql(f"CREATE TEMP TABLE staging {columns}")
        return self

    def _empty(self) -> None:
        """Empty the table and give the pooled connection back as it came (PostgreSQL)."""
        # a few rows: deleted (cheap); many: the table goes (no dead rows kept)
        if self.staged < KEEP_TABLE_ROWS:
            self.conn.exec_driver_sql(f"DELETE FROM {self.table}")
        else:
            self.conn.exec_driver_sql(f"DROP TABLE {self.table}")
            self.conn.info["foodvec_staging"] = False
        self.conn.exec_driver_sql("RESET synchronous_commit")

    def __exit__(self, *exc) -> None:
        try:
            if self.conn.in_transaction():
                self.conn.rollback()
            if self.store.dialect != "postgresql":
                with self._begin():
                    self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.table}")
            elif not self._emptied:
                self._setup = []  # nothing ran: the session was never changed
                if self.conn.info.get("foodvec_staging"):
                    with self._begin():
                        self._empty()
        finally:
            self._cm.close()

    def staged_where(self, ext_ids: Sequence[str]) -> dict[str, str]:
        """{id: where} of the given ids that an earlier batch of this build staged."""
        found: dict[str, str] = {}
        if not self.staged:
            return found
        with self._begin():
            for start in range(0, len(ext_ids), SQL_BATCH):
                chunk = ext_ids[start : start + SQL_BATCH]
                params = {f"e{n}": e for n, e in enumerate(chunk)}
                marks = ",".join(f":e{n}" for n in range(len(chunk)))
                found.update(
                    self.conn.execute(
                        text(f"SELECT ext_id, src FROM {self.table} WHERE ext_id IN ({marks})"),
                        params,
                    ).all()
                )
        return found

    def cached_hashes(self, model_fp: str, hashes: Sequence[str]) -> set[str]:
        with self._begin():
            return self.store.cached_hashes(self.conn, model_fp, hashes)

    def cache_vectors(self, model_fp: str, hashes: Sequence[str], vecs: np.ndarray) -> None:
        """Commit vectors to the content-addressed cache at once (it never changes what a
        search sees, so it needs no generation)."""
        with self._begin(immediate=True):
            put_vectors(self.conn, model_fp, hashes, vecs)

    def stage(self, rows: Sequence[StagedRow]) -> None:
        self.staged += len(rows)
        with self._begin():
            insert_values(
                self.conn,
                f"INSERT INTO {self.table}(ext_id, text, hash, meta, src, seq, name, nkey)",
                [
                    (r.ext_id, r.text, r.hash, r.meta, r.where, r.seq, r.name, r.name_key)
                    for r in rows
                ],
            )

    def items_without_vector(self, model_fp: str, limit: int) -> list[tuple[str, str]]:
        """(content hash, text) of stored items that have no vector for ``model_fp``."""
        with self._begin():
            rows = self.conn.execute(
                text(
                    "SELECT DISTINCT i.content_hash, i.text FROM items i "
                    "LEFT JOIN vectors v ON v.content_hash = i.content_hash "
                    "AND v.model_fp = :m WHERE v.content_hash IS NULL LIMIT :n"
                ),
                {"m": model_fp, "n": limit},
            ).all()
        return [(r[0], r[1]) for r in rows]

    def apply(
        self,
        model_fp: str,
        model_name: str,
        dim: int,
        embed: Embed,
        switch_model: bool,
        refuse: Callable[[str], Exception],
    ) -> Applied:
        """Land the staged rows in one write transaction.

        ``switch_model``: make ``model_fp`` the home's model (a re-embedding build).
        ``refuse(active)`` is raised when another model is active and items exist (the
        check is repeated here, under the write lock). ``embed`` re-embeds texts whose
        vector was collected (``foodvec vacuum``) since they were staged."""
        conn, t = self.conn, self.table
        with self._begin(immediate=True):
            if self.store.dialect == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO ON")
            active = Store._get(conn, "model")
            switch = active is None or switch_model
            if active is not None and active != model_fp and not switch_model:
                if conn.execute(text("SELECT count(*) FROM items")).scalar_one():
                    raise refuse(active)
                switch = True  # no items left: the home takes the new model
            lost = conn.execute(
                text(
                    f"SELECT DISTINCT s.hash, s.text FROM {self.table} s LEFT JOIN vectors v "
                    "ON v.content_hash = s.hash AND v.model_fp = :m WHERE v.content_hash IS NULL"
                ),
                {"m": model_fp},
            ).all()
            if lost:
                put_vectors(conn, model_fp, [r[0] for r in lost], embed([r[1] for r in lost]))
            gen = Store._get_int(conn, "generation", 0) + 1
            staged = conn.execute(text(f"SELECT count(*) FROM {self.table}")).scalar_one()
            unchanged = conn.execute(
                text(
                    f"SELECT count(*) FROM {t} s JOIN items i ON i.ext_id = s.ext_id "
                    "WHERE i.content_hash = s.hash AND i.text = s.text AND i.metadata = s.meta "
                    "AND i.name IS NOT DISTINCT FROM s.name"
                )
            ).scalar_one()
            # A new name changes what the lexical index holds for an item whose vector stays.
            renamed = self._ids(
                f"SELECT i.id FROM {t} s JOIN items i ON i.ext_id = s.ext_id "
                "WHERE i.content_hash = s.hash AND i.name IS DISTINCT FROM s.name"
            )
            reembedded = self._ids(
                "UPDATE items SET text = s.text, content_hash = s.hash, metadata = s.meta, "
                "name = s.name, name_key = s.nkey, updated_at = CURRENT_TIMESTAMP "
                f"FROM {t} s WHERE items.ext_id = s.ext_id "
                "AND items.content_hash != s.hash RETURNING items.id"
            )
            meta_only = self._ids(
                "UPDATE items SET text = s.text, metadata = s.meta, name = s.name, "
                f"name_key = s.nkey, updated_at = CURRENT_TIMESTAMP FROM {t} s "
                "WHERE items.ext_id = s.ext_id AND items.content_hash = s.hash "
                "AND (items.text != s.text OR items.metadata != s.meta "
                "OR items.name IS DISTINCT FROM s.name) RETURNING items.id"
            )
            new_ids = self._ids(
                "INSERT INTO items(ext_id, text, content_hash, metadata, name, name_key) "
                f"SELECT ext_id, text, hash, meta, name, nkey FROM {t} s "
                "WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.ext_id = s.ext_id) "
                "ORDER BY seq RETURNING id"
            )
            updated = len(reembedded) + len(meta_only)
            if len(new_ids) + updated + unchanged != staged:
                raise FoodvecError(
                    f"internal error: {staged} staged rows but {len(new_ids)} new, "
                    f"{updated} updated, {unchanged} unchanged; nothing was written"
                )
            tx = WriteTx(conn, gen)
            tx.log(reembedded + new_ids + renamed, "u")
            if switch:
                tx.set_model(model_fp, model_name, dim)
            if updated:
                tx.mark()
            if tx.touched:
                Store._set(conn, "generation", str(gen))
            else:
                gen -= 1
            items = conn.execute(text("SELECT count(*) FROM items")).scalar_one()
            if self.store.dialect == "postgresql":
                self._empty()  # in the same commit (undone with it if it fails)
        self._emptied = self.store.dialect == "postgresql"
        return Applied(len(new_ids), updated, unchanged, len(lost), gen, items)

    def _ids(self, sql: str) -> list[int]:
        return list(self.conn.execute(text(sql)).scalars().all())
