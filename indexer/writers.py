"""Writing rows to CSV, TSV, JSONL or Parquet, atomically (a temporary file renamed
into place): exports and mined pairs. Rows are written as they come: Parquet in row
groups of ``ROW_GROUP_ROWS`` once its schema is known (``ParquetSchema``, from a first
pass), so an export never holds more than one group."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from .errors import BadInputError, FoodvecError
from .readers import FORMATS, format_of

ROW_GROUP_ROWS = 5000


def output_format(path: Path, fmt: str | None, allowed: Sequence[str] = FORMATS) -> str:
    """The format to write: ``fmt``, else the file's extension."""
    got = fmt or format_of(path)
    if got not in allowed:
        raise BadInputError(
            f"cannot tell how to write {path}: name it "
            + ", ".join(f".{f}" for f in allowed)
            + " or pass --format"
        )
    return got


def write_rows(
    path: Path,
    fmt: str,
    columns: Sequence[str],
    rows: Iterable[dict[str, Any]],
    schema: Any = None,
) -> int:
    """Write ``rows`` (dicts over ``columns``) as ``fmt``; returns how many. In CSV and
    TSV a value that is a list or an object is written as its JSON text. ``schema``
    (Parquet: a ``pyarrow.Schema``, e.g. from ``ParquetSchema``) lets Parquet stream the
    rows in row groups; without it the rows are read whole to infer the types."""
    path = Path(path)
    # A regular file (or a new path) is written whole or not at all: a temporary file
    # renamed into place. Anything else (a device such as /dev/stdout, a FIFO) is
    # written in place: renaming over it would replace it with a regular file.
    in_place = path.exists() and not path.is_file()
    tmp = path if in_place else path.with_name(path.name + ".tmp")
    n = 0
    try:
        n = _write(tmp, fmt, columns, rows, schema)
        if not in_place:
            os.replace(tmp, path)
    except BrokenPipeError:
        raise  # a reader that stopped early (`| head`): no error of the file's
    except OSError as exc:
        raise FoodvecError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if not in_place:
            tmp.unlink(missing_ok=True)
    return n


def _write(
    target: Path, fmt: str, columns: Sequence[str], rows: Iterable[dict[str, Any]], schema: Any
) -> int:
    n = 0
    if fmt in ("csv", "tsv"):
        with open(target, "w", newline="", encoding="utf-8") as fh:
            sep = "," if fmt == "csv" else "\t"
            w = csv.DictWriter(fh, fieldnames=list(columns), delimiter=sep)
            w.writeheader()
            for r in rows:
                w.writerow({k: _flat(v) for k, v in r.items()})
                n += 1
    elif fmt == "jsonl":
        with open(target, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n")
                n += 1
    elif fmt == "parquet":
        n = _write_parquet(target, columns, rows, schema)
    else:
        raise BadInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return n


def _flat(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    return v


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BadInputError("Parquet needs pyarrow: pip install 'foodvec[parquet]'") from None
    return pa, pq


def _mixed(exc: Exception) -> BadInputError:
    return BadInputError(
        f"the values do not fit Parquet's one type per column ({exc}); write JSONL instead"
    )


class ParquetSchema:
    """The Parquet schema of rows seen a batch at a time: each batch's types as pyarrow
    infers them, merged as it would infer them over all rows at once (a column of
    integers and floats is double, a struct has every field seen), in the order of
    ``columns``. ``add`` each batch, then ``schema``."""

    def __init__(self) -> None:
        self.pa, _ = _pyarrow()
        self.seen: list[Any] = []

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        keys = list(dict.fromkeys(k for r in rows for k in r))
        try:
            batch = self.pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows])
            merged = [*self.seen[-1:], batch.schema]
            self.seen = [self.pa.unify_schemas(merged, promote_options="permissive")]
        except (self.pa.ArrowInvalid, self.pa.ArrowTypeError, OverflowError) as exc:
            raise _mixed(exc) from None

    def schema(self, columns: Sequence[str], extra: dict[str, Any] | None = None) -> Any:
        """The schema over ``columns``; ``extra`` gives the types of columns no batch
        held (the vectors: list<double>). None when no row was added."""
        if not self.seen:
            return None
        known = self.seen[0]
        fields = []
        for c in columns:
            if c in (extra or {}):
                fields.append(self.pa.field(c, extra[c]))  # type: ignore[index]
            elif known.get_field_index(c) >= 0:
                fields.append(known.field(c))
            else:
                fields.append(self.pa.field(c, self.pa.null()))
        return self.pa.schema(fields)


def _write_parquet(
    path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]], schema: Any = None
) -> int:
    pa, pq = _pyarrow()
    it: Iterator[dict[str, Any]] = iter(rows)
    if schema is None:
        # no schema up front: read the rows whole and let pyarrow infer the types
        got = [{c: r.get(c) for c in columns} for r in it]
        try:
            table = pa.Table.from_pylist(got) if got else pa.table({c: [] for c in columns})
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise _mixed(exc) from None
        pq.write_table(table, path)
        return len(got)
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        while batch := list(islice(it, ROW_GROUP_ROWS)):
            try:
                table = pa.Table.from_pylist(
                    [{c: r.get(c) for c in columns} for r in batch], schema=schema
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise _mixed(exc) from None
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            n += len(batch)
    return n
