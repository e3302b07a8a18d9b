"""Writing rows to CSV, TSV, JSONL or Parquet, atomically (a temporary file renamed
into place): exports and mined pairs."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import BadInputError, FoodvecError
from .readers import FORMATS, format_of


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
    path: Path, fmt: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]
) -> int:
    """Write ``rows`` (dicts over ``columns``) as ``fmt``; returns how many. In CSV and
    TSV a value that is a list or an object is written as its JSON text."""
    path = Path(path)
    # A regular file (or a new path) is written whole or not at all: a temporary file
    # renamed into place. Anything else (a device such as /dev/stdout, a FIFO) is
    # written in place: renaming over it would replace it with a regular file.
    in_place = path.exists() and not path.is_file()
    tmp = path if in_place else path.with_name(path.name + ".tmp")
    n = 0
    try:
        n = _write(tmp, fmt, columns, rows)
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
    target: Path, fmt: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]
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
        n = _write_parquet(target, columns, rows)
    else:
        raise BadInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return n


def _flat(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    return v


def _write_parquet(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BadInputError("Parquet needs pyarrow: pip install 'foodvec[parquet]'") from None
    # every row names every column: pyarrow takes the columns from the first row
    got = [{c: r.get(c) for c in columns} for r in rows]
    try:
        table = pa.Table.from_pylist(got) if got else pa.table({c: [] for c in columns})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise BadInputError(
            f"the values do not fit Parquet's one type per column ({exc}); write JSONL instead"
        ) from None
    pq.write_table(table, path)
    return len(got)
