"""The items as records (``{"id", "text", "metadata"}``) outside a build: read one or
a page of them, write them all to a file, change an item's metadata, delete items."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .build import name_problem
from .errors import BadInputError, NotFoundError
from .filters import Node
from .filters import parse as parse_where
from .storage import ItemRow, Store, canonical_json
from .terms import item_name, name_key
from .text import clean_metadata
from .writers import ParquetSchema, output_format, write_rows

MAX_PAGE = 10_000  # items in one page of records
EXPORT_PAGE_ROWS = 5000  # items an export reads at once

# (item ids, their vectors) of the given item ids
Vectors = Callable[[Sequence[int]], tuple[np.ndarray, np.ndarray]]


def record(row: ItemRow) -> dict[str, Any]:
    return {"id": row.ext_id, "text": row.text, "metadata": row.metadata}


def page(
    store: Store,
    where: dict[str, Any] | None = None,
    offset: int = 0,
    limit: int = 100,
    after: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of items in a stable order (by insertion), those matching ``where``:
    (records, the cursor of the next page or None at the end). Page with
    ``after=cursor`` (fast at any depth) or with ``offset``."""
    if not 1 <= limit <= MAX_PAGE:
        raise BadInputError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    if offset < 0:
        raise BadInputError(f"offset must be 0 or more, not {offset}")
    start = 0
    if after is not None:
        try:
            start = int(after)
        except ValueError:
            start = -1
        if not 0 <= start < 2**63:  # item ids are 64-bit; the database takes no more
            raise BadInputError(f"not a cursor: {after!r} (use the `next` of a page)") from None
    node = parse_where(where) if where is not None else None
    rows = store.page(node, after=start, offset=offset, limit=limit)
    cursor = str(rows[-1].id) if len(rows) == limit else None
    return [record(r) for r in rows], cursor


def export(
    store: Store,
    vectors_of: Vectors,
    path: Path | str,
    fmt: str | None = None,
    where: dict[str, Any] | None = None,
    vectors: bool = False,
) -> int:
    """Write the items (those matching ``where``) as rows of id, text and their
    metadata keys (and ``vector`` with ``vectors``, read by ``vectors_of``) to CSV, TSV,
    JSONL or Parquet, in their stable order; ``foodvec build`` reads the file back
    (with ``--vector-column vector`` it takes the vectors instead of embedding)."""
    path = Path(path).expanduser()
    fmt = output_format(path, fmt)
    node = parse_where(where) if where is not None else None
    keys: dict[str, None] = {}
    types = ParquetSchema() if fmt == "parquet" else None
    if fmt != "jsonl":  # the tabular formats need every column up front: one more pass
        for rows in _pages(store, node):
            for r in rows:
                keys.update(dict.fromkeys(r.metadata))
            if types is not None:  # and Parquet the types, a page at a time
                types.add([{"id": r.ext_id, "text": r.text, **r.metadata} for r in rows])
    columns = ["id", "text", *keys] + (["vector"] if vectors else [])
    schema = None
    if types is not None:
        import pyarrow as pa

        schema = types.schema(columns, {"vector": pa.list_(pa.float64())} if vectors else {})

    def records() -> Iterator[dict[str, Any]]:
        for rows in _pages(store, node):
            found = {}
            if vectors:
                ids, vecs = vectors_of([r.id for r in rows])
                found = dict(zip(ids.tolist(), vecs.tolist(), strict=True))
            for r in rows:
                out = {"id": r.ext_id, "text": r.text, **r.metadata}
                if vectors:
                    out["vector"] = found.get(r.id)
                yield out

    return write_rows(path, fmt, columns, records(), schema=schema)


def _pages(store: Store, node: Node | None, size: int | None = None) -> Iterator[list[ItemRow]]:
    """The items matching ``node`` a page of ``size`` (default ``EXPORT_PAGE_ROWS``)
    at a time, by id: an export holds one page, never all."""
    size = size or EXPORT_PAGE_ROWS
    after = 0
    while True:
        rows = store.page(node, after=after, limit=size)
        if rows:
            yield rows
        if len(rows) < size:
            return
        after = rows[-1].id


def delete(store: Store, ext_ids: Sequence[str]) -> tuple[int, int]:
    """Delete items by id, all or none (unknown ids raise NotFoundError): (how many,
    the generation of the write)."""
    ext_ids = [str(e) for e in dict.fromkeys(ext_ids)]
    with store.write() as tx:
        deleted = tx.delete_ext_ids(ext_ids)
        unknown = sorted(set(ext_ids) - set(deleted.values()))
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5])
            raise NotFoundError(
                f"not in the index: {shown}{', …' if len(unknown) > 5 else ''}; nothing was deleted"
            )
    return len(deleted), tx.generation


def delete_where(store: Store, where: dict[str, Any], dry_run: bool = False) -> tuple[int, int]:
    """Delete every item matching a filter (``indexer.filters``), or with ``dry_run``
    only count them: (how many, the generation of the write; 0 for a count)."""
    node = parse_where(where)
    if dry_run:
        return store.count_where(node), 0
    with store.write() as tx:
        deleted = tx.delete_where(node)
    return len(deleted), tx.generation


def update(
    store: Store, ext_id: str, metadata: dict[str, Any] | None = None, unset: Sequence[str] = ()
) -> int:
    """Change an item's metadata alone (no re-embedding): set the keys of
    ``metadata``, remove those in ``unset``. Returns the new generation. A new
    ``name`` renames the item for the exact-name rule and the lexical index."""
    metadata = dict(metadata or {})
    bad = sorted({"id", "text"} & (set(metadata) | set(unset)))
    if bad:
        raise BadInputError(f"the metadata may not use the keys {bad}")
    if not metadata and not unset:
        raise BadInputError("nothing to change: give metadata to set or keys to unset")
    with store.write() as tx:
        row = tx.item_for_update(str(ext_id))
        if row is None:
            raise NotFoundError(f"not in the index: {str(ext_id)!r}")
        merged = {k: v for k, v in row.metadata.items() if k not in set(unset)}
        merged.update(metadata)
        try:
            meta_json = canonical_json(clean_metadata(merged))
        except ValueError as exc:
            raise BadInputError(f"item {ext_id!r}: {exc}") from None
        renamed = "name" in metadata or "name" in unset
        name = item_name(merged.get("name"), row.text)
        reason = name_problem(name)
        if reason:
            raise BadInputError(f"item {ext_id!r}: {reason}")
        tx.set_metadata(row.id, meta_json, name, name_key(name) if name else None, renamed)
    return tx.generation
