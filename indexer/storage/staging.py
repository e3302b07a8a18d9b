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
from .sql import (
    Database,
    WriteTx,
    cached_hashes,
    get_state,
    get_state_int,
    in_batches,
    insert_values,
    put_vectors,
    set_state,
)

Embed = Callable[[list[str]], np.ndarray]
# Up to this many rows, a build's rows wait in memory instead of in a staging table.
INLINE_ROWS = 8
_COLUMNS = ("ext_id", "text", "hash", "meta", "src", "seq", "name", "nkey")
_TYPES = ("TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "INTEGER", "TEXT", "TEXT")
# The staging table's columns, as CREATE TABLE takes them.
TABLE_COLUMNS = (
    "(ext_id TEXT PRIMARY KEY, text TEXT NOT NULL, hash TEXT NOT NULL, "
    "meta TEXT NOT NULL, src TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT, nkey TEXT)"
)


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
    in a connection). Use as a context manager; the table is dropped on exit. Each
    dialect's store names its subclass (``Store.staging_class``), which makes the
    table and cleans it up."""

    table: str  # the staging table, in the session's own schema for temporary tables
    # apply's commit leaves the table as the next build finds it (nothing to clean up)
    apply_cleans_up = False

    def __init__(self, store: Database):
        self.store = store
        self._cm = store.write_engine.connect()
        self.conn: Connection = self._cm
        self.staged = 0  # rows staged
        self._setup_made_table = False
        self._emptied = False  # apply cleaned the table up in its own commit
        self._made = False  # the staging table exists for this build
        # rows (and the vectors to cache with them) not in the table (yet)
        self._rows: list[StagedRow] = []
        self._vectors: list[tuple[str, Sequence[str], np.ndarray]] = []

    # -- the dialect's hooks ------------------------------------------------------------
    def _create_table(self) -> None:
        """Make the table (``TABLE_COLUMNS``) inside the current transaction; set
        ``_setup_made_table`` when this transaction created it."""
        raise NotImplementedError

    def _table_committed(self) -> None:
        """The transaction that created the table has committed."""

    def _clean_up(self) -> None:
        """Remove the build's rows from the connection (inside a transaction)."""
        raise NotImplementedError

    def _index_seq(self) -> None:
        """Index the table by input order (a big build copies it out in that order)."""
        raise NotImplementedError

    def _before_apply(self) -> None:
        """The first step of apply's write transaction."""

    def _end_apply(self) -> None:
        """The last step of apply's write transaction."""

    # -----------------------------------------------------------------------------------
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
        if self._setup_made_table:
            self._table_committed()

    def __enter__(self) -> Staging:
        return self

    def _make_table(self) -> None:
        """Create (or take up again) the staging table, inside the current transaction."""
        self._create_table()
        self._made = True

    def __exit__(self, *exc) -> None:
        try:
            if self.conn.in_transaction():
                self.conn.rollback()
            if self._made and not self._emptied:
                with self._begin():
                    self._clean_up()
        finally:
            self._cm.close()

    def staged_where(self, ext_ids: Sequence[str]) -> dict[str, str]:
        """{id: where} of the given ids that an earlier batch of this build staged."""
        wanted = set(ext_ids)
        found = {r.ext_id: r.where for r in self._rows if r.ext_id in wanted}
        if not self._made:
            return found
        sql = f"SELECT ext_id, src FROM {self.table} WHERE ext_id IN ({{values}})"
        with self._begin():
            for result in in_batches(self.conn, sql, ext_ids):
                found.update(result.all())
        return found

    def cached_hashes(self, model_fp: str, hashes: Sequence[str]) -> set[str]:
        """The hashes with a vector for ``model_fp``: cached in the database, or held
        here with rows not yet written."""
        held = {h for fp, hs, _ in self._vectors if fp == model_fp for h in hs}
        found = {h for h in hashes if h in held}
        rest = [h for h in hashes if h not in held]
        if rest:
            with self._begin():
                found |= cached_hashes(self.conn, model_fp, rest)
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
        """Land the staged rows in one write transaction (``slices.apply`` lands a big
        build in parts instead).

        ``switch_model``: make ``model_fp`` the home's model (a re-embedding build).
        ``refuse(active)`` is raised when another model is active and items exist (the
        check is repeated here, under the write lock). ``embed`` re-embeds texts whose
        vector was collected (``foodvec vacuum``) since they were staged."""
        conn = self.conn
        with self._begin(immediate=True):
            t, p = self._relation()
            self._before_apply()
            switch = self._takes_model(model_fp, switch_model, refuse)
            lost = embed_lost(conn, t, p, model_fp, embed)
            tx = WriteTx(conn, get_state_int(conn, "generation", 0) + 1, self.store.where_key)
            if switch:
                tx.set_model(model_fp, model_name, dim)
            landed = land(tx, t, p)
            gen = commit_generation(tx, self.store)
            items = conn.execute(text("SELECT count(*) FROM items")).scalar_one()
            self._end_apply()
        self._emptied = self.apply_cleans_up
        return Applied(landed.new, landed.updated, landed.unchanged, len(lost), gen, items)

    def _relation(self) -> tuple[str, dict]:
        """The staged rows as a relation (the table, or the rows held in memory) and its
        parameters; the vectors held in memory are written."""
        if self._made:  # the rows still in memory join the others in the table
            if self._rows or self._vectors:
                self._write_pending()
            return self.table, {}
        for fp, hashes, vecs in self._vectors:  # a small build: its rows never left memory
            put_vectors(self.conn, fp, hashes, vecs)
        return self._inline()

    def _takes_model(
        self, model_fp: str, switch_model: bool, refuse: Callable[[str], Exception]
    ) -> bool:
        """Whether the build makes ``model_fp`` the home's model; ``refuse(active)`` is
        raised when another model is active and items exist."""
        active = get_state(self.conn, "model")
        if active == model_fp and not switch_model:
            return False
        if active is not None and not switch_model:
            if self.conn.execute(text("SELECT count(*) FROM items")).scalar_one():
                raise refuse(active)
        # the home takes the model (again): not while a build of another lands in slices
        landing = self.conn.execute(
            text(
                "SELECT id, landed, parts FROM landings "
                "WHERE state IN ('copying', 'landing') AND model_fp != :m"
            ),
            {"m": model_fp},
        ).first()
        if landing is not None:
            raise FoodvecError(
                f"a build with another model is landing (landing {landing[0]}: "
                f"{landing[1]} of {landing[2]} parts); nothing was written: run this "
                "again once it has landed (`foodvec stats` shows it)"
            )
        return True


@dataclass
class Landed:
    """What landing a relation of staged rows did."""

    new: int
    updated: int
    unchanged: int


def embed_lost(conn: Connection, t: str, p: dict, model_fp: str, embed: Embed | None) -> list:
    """Embed again the texts of relation ``t`` whose vector was collected since they
    were staged (``embed`` None: refuse, naming how many)."""
    lost = conn.execute(
        text(
            f"SELECT DISTINCT s.hash, s.text FROM {t} s LEFT JOIN vectors v "
            "ON v.content_hash = s.hash AND v.model_fp = :m WHERE v.content_hash IS NULL"
        ),
        {"m": model_fp, **p},
    ).all()
    if lost and embed is None:
        raise FoodvecError(
            f"{len(lost)} staged texts have no vector for the build's model; nothing of "
            "them was written: run the build again"
        )
    if lost:
        put_vectors(conn, model_fp, [r[0] for r in lost], embed([r[1] for r in lost]))
    return lost


def land(tx: WriteTx, t: str, p: dict) -> Landed:
    """Write the staged rows of relation ``t`` (parameters ``p``) into ``items`` and
    log them under ``tx``'s generation, inside its write transaction."""
    conn = tx.conn
    staged = conn.execute(text(f"SELECT count(*) FROM {t} s"), p).scalar_one()
    unchanged = conn.execute(
        text(
            f"SELECT count(*) FROM {t} s JOIN items i ON i.ext_id = s.ext_id "
            "WHERE i.content_hash = s.hash AND i.text = s.text AND i.metadata = s.meta "
            "AND i.name IS NOT DISTINCT FROM s.name"
        ),
        p,
    ).scalar_one()
    renamed, reembedded, meta_only, new_ids = _land(conn, t, p)
    updated = len(reembedded) + len(meta_only)
    if len(new_ids) + updated + unchanged != staged:
        raise FoodvecError(
            f"internal error: {staged} staged rows but {len(new_ids)} new, "
            f"{updated} updated, {unchanged} unchanged; nothing was written"
        )
    tx.log(reembedded + new_ids + renamed, "u")
    tx.log(sorted(set(meta_only) - set(renamed)), "m")
    if updated:
        tx.mark()
    return Landed(len(new_ids), updated, unchanged)


def commit_generation(tx: WriteTx, store: Database) -> int:
    """Record ``tx``'s generation when it changed anything (announced to the other
    processes at commit); the generation the database is at after it."""
    if not tx.touched:
        return tx.generation - 1
    set_state(tx.conn, "generation", str(tx.generation))
    store.generation_moved(tx.conn, tx.generation)
    return tx.generation


def _land(conn: Connection, t: str, p: dict) -> tuple[list[int], list[int], list[int], list[int]]:
    """Write the staged rows into ``items``: (ids renamed with their vector kept, ids
    re-embedded, ids whose vector stays (metadata, name or text's form changed), ids
    of the new items)."""

    def ids(sql: str) -> list[int]:
        return list(conn.execute(text(sql), p).scalars().all())

    # A new name changes what the lexical index holds for an item whose vector stays.
    renamed = ids(
        f"SELECT i.id FROM {t} s JOIN items i ON i.ext_id = s.ext_id "
        "WHERE i.content_hash = s.hash AND i.name IS DISTINCT FROM s.name"
    )
    reembedded = ids(
        "UPDATE items SET text = s.text, content_hash = s.hash, metadata = s.meta, "
        "name = s.name, name_key = s.nkey, updated_at = CURRENT_TIMESTAMP "
        f"FROM {t} s WHERE items.ext_id = s.ext_id "
        "AND items.content_hash != s.hash RETURNING items.id"
    )
    meta_only = ids(
        "UPDATE items SET text = s.text, metadata = s.meta, name = s.name, "
        f"name_key = s.nkey, updated_at = CURRENT_TIMESTAMP FROM {t} s "
        "WHERE items.ext_id = s.ext_id AND items.content_hash = s.hash "
        "AND (items.text != s.text OR items.metadata != s.meta "
        "OR items.name IS DISTINCT FROM s.name) RETURNING items.id"
    )
    new_ids = ids(
        "INSERT INTO items(ext_id, text, content_hash, metadata, name, name_key) "
        f"SELECT ext_id, text, hash, meta, name, nkey FROM {t} s "
        "WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.ext_id = s.ext_id) "
        "ORDER BY seq RETURNING id"
    )
    return renamed, reembedded, meta_only, new_ids
