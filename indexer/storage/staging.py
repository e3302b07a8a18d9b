"""Staging a build: rows go to a temporary table as they are validated; ``apply`` then
lands them in ``items`` in one write transaction that bumps the generation, so a build
lands whole or not at all. A build of a few rows (an upsert) never makes the table: its
rows stay in memory and ``apply`` reads them from an inline relation, so the whole
write is one transaction.
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
# Up to this many rows, a build's rows wait in memory instead of in a staging table.
INLINE_ROWS = 8
_COLUMNS = ("ext_id", "text", "hash", "meta", "src", "seq", "name", "nkey")
_TYPES = ("TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "INTEGER", "TEXT", "TEXT")


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
        self._setup_made_table = False
        self._emptied = False  # apply emptied the table and restored the session
        self._made = False  # the staging table exists for this build
        # rows (and the vectors to cache with them) not in the table (yet)
        self._rows: list[StagedRow] = []
        self._vectors: list[tuple[str, Sequence[str], np.ndarray]] = []
        # the session's own schema for temporary tables
        self.table = "pg_temp.staging" if store.dialect == "postgresql" else "temp.staging"

    @contextmanager
    def _begin(self, immediate: bool = False) -> Iterator[None]:
        if immediate:
            self.conn.info["immediate"] = True
        self._setup_made_table = False
        try:
            with self.conn.begin():
                yield
        except BaseException:
            if self._setup_made_table:
                self._made = False  # rolled back with the transaction that made it
            raise
        if self._setup_made_table and self.store.dialect == "postgresql":
            self.conn.info["foodvec_staging"] = True  # committed: the table exists

    def __enter__(self) -> Staging:
        return self

    def _make_table(self) -> None:
        """Create (or, on PostgreSQL, take up again) the staging table, inside the
        current transaction."""
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
            # is emptied at the end.
            self.conn.exec_driver_sql("SET synchronous_commit TO OFF")
            if not self.conn.info.get("foodvec_staging"):  # new, or dropped after a big build
                self.conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS staging {columns}")
                self.conn.exec_driver_sql(f"DELETE FROM {self.table}")
                self._setup_made_table = True
        else:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.table}")
            self.conn.exec_driver_sql(f"CREATE TEMP TABLE staging {columns}")
            self._setup_made_table = True
        self._made = True

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
            if self._made and not self._emptied:
                with self._begin():
                    if self.store.dialect == "postgresql":
                        self._empty()
                    else:
                        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.table}")
        finally:
            self._cm.close()

    def staged_where(self, ext_ids: Sequence[str]) -> dict[str, str]:
        """{id: where} of the given ids that an earlier batch of this build staged."""
        wanted = set(ext_ids)
        found = {r.ext_id: r.where for r in self._rows if r.ext_id in wanted}
        if not self._made:
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
        """The hashes with a vector for ``model_fp``: cached in the database, or held
        here with rows not yet written."""
        held = {h for fp, hs, _ in self._vectors if fp == model_fp for h in hs}
        found = {h for h in hashes if h in held}
        rest = [h for h in hashes if h not in held]
        if rest:
            with self._begin():
                found |= self.store.cached_hashes(self.conn, model_fp, rest)
        return found

    def cache_vectors(self, model_fp: str, hashes: Sequence[str], vecs: np.ndarray) -> None:
        """Commit vectors to the content-addressed cache at once (it never changes what a
        search sees, so it needs no generation)."""
        with self._begin(immediate=True):
            put_vectors(self.conn, model_fp, hashes, vecs)

    def stage(
        self,
        rows: Sequence[StagedRow],
        vectors: Sequence[tuple[str, Sequence[str], np.ndarray]] = (),
    ) -> None:
        """Stage a batch's rows with the new vectors to cache ((model fingerprint,
        content hashes, vectors) each). Past ``INLINE_ROWS`` rows they go to the
        staging table, the vectors in the same commit."""
        self.staged += len(rows)
        self._rows.extend(rows)
        self._vectors.extend(vectors)
        if len(self._rows) > INLINE_ROWS:
            with self._begin(immediate=bool(self._vectors)):
                self._write_pending()

    def _write_pending(self) -> None:
        """Move the rows and vectors held in memory into the database (inside the
        current transaction)."""
        if not self._made:
            self._make_table()
        for model_fp, hashes, vecs in self._vectors:
            put_vectors(self.conn, model_fp, hashes, vecs)
        insert_values(
            self.conn,
            f"INSERT INTO {self.table}({', '.join(_COLUMNS)})",
            [(r.ext_id, r.text, r.hash, r.meta, r.where, r.seq, r.name, r.name_key)
             for r in self._rows],
        )  # fmt: skip
        self._rows, self._vectors = [], []

    def _inline(self) -> tuple[str, dict]:
        """The rows held in memory as a relation with the staging table's columns, and
        its parameters."""
        params: dict = {}
        selects = []
        for n, r in enumerate(self._rows):
            values = (r.ext_id, r.text, r.hash, r.meta, r.where, r.seq, r.name, r.name_key)
            cols = []
            for col, kind, value in zip(_COLUMNS, _TYPES, values, strict=True):
                params[f"s{n}_{col}"] = value
                cols.append(f"CAST(:s{n}_{col} AS {kind}) AS {col}")
            selects.append("SELECT " + ", ".join(cols))
        if not selects:  # nothing staged: an empty relation of the same shape
            pairs = zip(_COLUMNS, _TYPES, strict=True)
            cols = [f"CAST(NULL AS {kind}) AS {col}" for col, kind in pairs]
            selects = ["SELECT " + ", ".join(cols) + " WHERE 1 = 0"]
        return "(" + " UNION ALL ".join(selects) + ")", params

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
        conn = self.conn
        with self._begin(immediate=True):
            if self._made:  # the rows still in memory join the others in the table
                if self._rows or self._vectors:
                    self._write_pending()
                t, p = self.table, {}
            else:  # a small build: its rows never left memory
                for fp, hashes, vecs in self._vectors:
                    put_vectors(conn, fp, hashes, vecs)
                t, p = self._inline()
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
                    f"SELECT DISTINCT s.hash, s.text FROM {t} s LEFT JOIN vectors v "
                    "ON v.content_hash = s.hash AND v.model_fp = :m WHERE v.content_hash IS NULL"
                ),
                {"m": model_fp, **p},
            ).all()
            if lost:
                put_vectors(conn, model_fp, [r[0] for r in lost], embed([r[1] for r in lost]))
            gen = Store._get_int(conn, "generation", 0) + 1
            staged = conn.execute(text(f"SELECT count(*) FROM {t} s"), p).scalar_one()
            unchanged = conn.execute(
                text(
                    f"SELECT count(*) FROM {t} s JOIN items i ON i.ext_id = s.ext_id "
                    "WHERE i.content_hash = s.hash AND i.text = s.text AND i.metadata = s.meta "
                    "AND i.name IS NOT DISTINCT FROM s.name"
                ),
                p,
            ).scalar_one()
            # A new name changes what the lexical index holds for an item whose vector stays.
            renamed = self._ids(
                f"SELECT i.id FROM {t} s JOIN items i ON i.ext_id = s.ext_id "
                "WHERE i.content_hash = s.hash AND i.name IS DISTINCT FROM s.name",
                p,
            )
            reembedded = self._ids(
                "UPDATE items SET text = s.text, content_hash = s.hash, metadata = s.meta, "
                "name = s.name, name_key = s.nkey, updated_at = CURRENT_TIMESTAMP "
                f"FROM {t} s WHERE items.ext_id = s.ext_id "
                "AND items.content_hash != s.hash RETURNING items.id",
                p,
            )
            meta_only = self._ids(
                "UPDATE items SET text = s.text, metadata = s.meta, name = s.name, "
                f"name_key = s.nkey, updated_at = CURRENT_TIMESTAMP FROM {t} s "
                "WHERE items.ext_id = s.ext_id AND items.content_hash = s.hash "
                "AND (items.text != s.text OR items.metadata != s.meta "
                "OR items.name IS DISTINCT FROM s.name) RETURNING items.id",
                p,
            )
            new_ids = self._ids(
                "INSERT INTO items(ext_id, text, content_hash, metadata, name, name_key) "
                f"SELECT ext_id, text, hash, meta, name, nkey FROM {t} s "
                "WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.ext_id = s.ext_id) "
                "ORDER BY seq RETURNING id",
                p,
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
            if self._made and self.store.dialect == "postgresql":
                self._empty()  # in the same commit (undone with it if it fails)
        self._emptied = self.store.dialect == "postgresql"
        return Applied(len(new_ids), updated, unchanged, len(lost), gen, items)

    def _ids(self, sql: str, params: dict) -> list[int]:
        return list(self.conn.execute(text(sql), params).scalars().all())
