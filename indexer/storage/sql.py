"""The SQL that every part of storage shares: rows of items, vectors as bytes, IN lists
and multi-row inserts in batches, the ``state`` table, and the write transaction.

Nothing here depends on the dialect or on the other storage modules: the store, a
build's staging and the jobs all build on it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from sqlalchemy import Connection, CursorResult, Engine, TextClause, text

from ..errors import FoodvecError
from ..filters import Node
from .where import MetadataKey, compile_where

SQL_BATCH = 500  # values in one IN (...) list, well under SQLite's variable limit
SQL_PARAMS = 4000  # parameters in one multi-row INSERT
# The columns of an item as ``ItemRow`` reads them.
ITEM_COLUMNS = "id, ext_id, text, content_hash, metadata"


class Database(Protocol):
    """What a build's staging and the jobs use of a store (``store.Store`` is one)."""

    engine: Engine
    # the engine of writers (a pool of their own on PostgreSQL; else ``engine``)
    write_engine: Engine
    # the filter compiler's reading of a metadata key in this dialect
    where_key: ClassVar[type[MetadataKey]]
    # SQL for "the time :s seconds ago", in the terms of columns set by CURRENT_TIMESTAMP
    seconds_ago_sql: ClassVar[str]
    # SQL for "now", in the same terms, read when the statement runs (not when its
    # transaction began, which may be long before, behind the write lock)
    now_sql: ClassVar[str]

    def read(self) -> AbstractContextManager[Connection]: ...

    def immediate(self) -> AbstractContextManager[Connection]: ...

    def generation_moved(self, conn: Connection, generation: int) -> None: ...


@dataclass(frozen=True)
class ItemRow:
    id: int
    ext_id: str
    text: str
    content_hash: str
    metadata: dict[str, Any]


def item_row(r: Sequence[Any]) -> ItemRow:
    """An ``ItemRow`` from a row of ``ITEM_COLUMNS``."""
    return ItemRow(r[0], r[1], r[2], r[3], json.loads(r[4]))


def item_by_ext_id(conn: Connection, ext_id: str) -> ItemRow | None:
    if "\x00" in ext_id:
        return None  # no stored id holds NUL (PostgreSQL could not even compare it)
    r = conn.execute(
        text(f"SELECT {ITEM_COLUMNS} FROM items WHERE ext_id = :e"), {"e": ext_id}
    ).first()
    return item_row(r) if r else None


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


def chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def in_batches(
    conn: Connection, sql: str, values: Sequence[Any], params: dict[str, Any] | None = None
) -> Iterator[CursorResult]:
    """Run ``sql`` once per ``SQL_BATCH`` of ``values``, its ``{values}`` replaced by
    their bound parameters (as in ``WHERE id IN ({values})``); yields each result."""
    for chunk in chunks(values, SQL_BATCH):
        bound = {f"in{n}": v for n, v in enumerate(chunk)}
        yield conn.execute(_in_list(sql, len(chunk)), {**(params or {}), **bound})


@functools.lru_cache(maxsize=256)
def _in_list(sql: str, n: int) -> TextClause:
    """``sql`` with ``{values}`` replaced by ``n`` bound parameters, parsed once: a
    search's few reads by id (a quantized index's re-ranking) repeat the same shapes,
    and parsing the statement cost as much as running it."""
    return text(sql.replace("{values}", ",".join(f":in{i}" for i in range(n))))


def insert_values(conn: Connection, head: str, rows: Sequence[tuple], tail: str = "") -> None:
    """``head VALUES (...), (...) tail``: many rows in one statement (a round trip and
    a parse per chunk, not per row, which matters most on a network database)."""
    if not rows:
        return
    per = max(1, SQL_PARAMS // len(rows[0]))
    for chunk in chunks(rows, per):
        params: dict[str, Any] = {}
        groups = []
        for r, row in enumerate(chunk):
            names = [f"v{r}_{c}" for c in range(len(row))]
            params.update(zip(names, row, strict=True))
            groups.append("(" + ",".join(":" + n for n in names) + ")")
        conn.execute(text(f"{head} VALUES {','.join(groups)} {tail}"), params)


def put_vectors(conn: Connection, model_fp: str, hashes: Sequence[str], vecs: np.ndarray) -> None:
    """Add vectors to the content-addressed cache (a vector already there is kept)."""
    dim = int(vecs.shape[1])
    insert_values(
        conn,
        "INSERT INTO vectors(content_hash, model_fp, dim, data)",
        [(h, model_fp, dim, pack_vector(v)) for h, v in zip(hashes, vecs, strict=True)],
        "ON CONFLICT DO NOTHING",
    )


def cached_hashes(conn: Connection, model_fp: str, hashes: Sequence[str]) -> set[str]:
    """The hashes among ``hashes`` with a cached vector for ``model_fp``."""
    found: set[str] = set()
    sql = "SELECT content_hash FROM vectors WHERE model_fp = :m AND content_hash IN ({values})"
    for result in in_batches(conn, sql, list(hashes), {"m": model_fp}):
        found.update(result.scalars())
    return found


# -- the state table (generation, active model, log floor, readers) ------------------
def get_state(conn: Connection, key: str) -> str | None:
    row = conn.execute(text("SELECT value FROM state WHERE key = :k"), {"k": key}).first()
    return row[0] if row else None


def get_state_int(conn: Connection, key: str, default: int) -> int:
    value = get_state(conn, key)
    return int(value) if value is not None else default


def set_state(conn: Connection, key: str, value: str) -> None:
    conn.execute(
        text(
            "INSERT INTO state(key, value) VALUES (:k, :v) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        ),
        {"k": key, "v": value},
    )


class WriteTx:
    """An open write transaction (``Store.write``, a build's apply step): what it
    changes is logged under ``generation``, which is committed when anything was."""

    def __init__(self, conn: Connection, generation: int, where_key: type[MetadataKey]):
        self.conn = conn
        self.generation = generation
        self.touched = False
        self._where_key = where_key

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
        set_state(self.conn, "model", fingerprint)
        self.touched = True

    def delete_where(self, where: Node) -> dict[int, str]:
        """Delete the items matching ``where`` (read under this write lock)."""
        cond, params = compile_where(where, self._where_key)
        rows = self.conn.execute(
            text(f"DELETE FROM items WHERE {cond} RETURNING id, ext_id"), params
        ).all()
        deleted = {r[0]: r[1] for r in rows}
        self.log(deleted, "d")
        return deleted

    def item_for_update(self, ext_id: str) -> ItemRow | None:
        return item_by_ext_id(self.conn, ext_id)

    def set_metadata(
        self, item_id: int, metadata: str, name: str | None, name_key: str | None, renamed: bool
    ) -> None:
        """Replace an item's metadata (canonical JSON); its text and vector stay. Logged
        as a change of the item (``u``) when its name changed, since the lexical index
        holds names, else as a change of its metadata alone (``m``: the field index)."""
        self.conn.execute(
            text(
                "UPDATE items SET metadata = :m, name = :n, name_key = :k, "
                "updated_at = CURRENT_TIMESTAMP WHERE id = :i"
            ),
            {"m": metadata, "n": name, "k": name_key, "i": item_id},
        )
        self.log([item_id], "u" if renamed else "m")
        self.mark()

    def delete_ext_ids(self, ext_ids: Sequence[str]) -> dict[int, str]:
        """Delete items by the user's ids; returns {item id: user id} of those deleted."""
        ext_ids = [e for e in ext_ids if "\x00" not in e]  # no stored id holds NUL
        sql = "DELETE FROM items WHERE ext_id IN ({values}) RETURNING id, ext_id"
        deleted: dict[int, str] = {}
        for result in in_batches(self.conn, sql, ext_ids):
            deleted.update((r[0], r[1]) for r in result)
        self.log(deleted, "d")
        return deleted
