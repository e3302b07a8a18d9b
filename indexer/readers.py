"""Streaming readers for CSV, TSV, JSONL and Parquet files.

Each reader yields ``RawRow``s one at a time (never the whole file), each knowing
where it came from (file and line, or record number) so that errors can name it.
Bytes are decoded strictly as UTF-8 line by line, so invalid bytes are pinned to a row.
"""

from __future__ import annotations

import codecs
import csv
import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadInputError

FORMATS = ("csv", "tsv", "jsonl", "parquet")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def format_of(path: Path) -> str | None:
    """The format a file name says (its extension), or None."""
    return EXTENSIONS.get(path.suffix.lower())


# The longest line read: a row holds a text of at most 1,000 characters and at most
# 64 KiB of metadata, so a longer line is a broken file (a missing line break, a binary
# file). Reading stops there instead of holding the whole line in memory.
MAX_LINE_BYTES = 1024 * 1024
# Lets an oversized text through the CSV parser so it is reported as too long.
csv.field_size_limit(MAX_LINE_BYTES)


@dataclass
class RawRow:
    where: str
    data: dict[str, Any] | None
    error: str | None = None


@dataclass
class Table:
    path: Path
    format: str
    columns: list[str] | None  # None: JSONL, where each record has its own keys
    rows: Iterator[RawRow]
    approx_rows: int | None


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt != "auto":
        if fmt not in FORMATS:
            raise BadInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        return fmt
    found = EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise BadInputError(
            f"{path}: cannot tell the format from the extension {path.suffix!r}; "
            f"pass --format ({', '.join(FORMATS)})"
        )
    return found


def not_a_file(path: Path) -> str:
    """Why ``path`` is not a regular file to read, in words (for an input that is
    not one): missing, a folder, a named pipe, a device or a socket."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a broken link" if path.is_symlink() else "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    if kind == "a folder":
        return "a folder, not a file"
    return (
        f"{kind}, not a file: the input is read more than once (counted, then "
        "streamed); write it to a file first"
    )


def open_table(path: Path | str, fmt: str = "auto") -> Table:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: {not_a_file(path)}")
    fmt = detect_format(path, fmt)
    if fmt in ("csv", "tsv"):
        return _open_delimited(path, fmt)
    if fmt == "jsonl":
        return Table(path, fmt, None, _jsonl_rows(path), _count_lines(path))
    return _open_parquet(path)


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def _bounded_lines(fh, bad: dict[int, str]) -> Iterator[bytes]:
    """The file's lines, none longer than MAX_LINE_BYTES: a longer one is recorded in
    ``bad``, skipped in chunks (memory stays flat) and stands as a one-field line."""
    lineno = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            size = len(raw)
            while True:
                more = fh.readline(MAX_LINE_BYTES)
                size += len(more)
                if not more or more.endswith(b"\n"):
                    break
            bad[lineno] = (
                f"the line is {size:,} bytes long; a row may take at most "
                f"{MAX_LINE_BYTES:,} (is the file missing its line breaks?)"
            )
            raw = b"-\n"
        yield raw


def _decoded_lines(path: Path, bad: dict[int, str]) -> Iterator[str]:
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(_bounded_lines(fh, bad), 1):
            if lineno in bad:
                yield raw.decode("ascii")
                continue
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad[lineno] = (
                    f"invalid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} "
                    "(is the file in another encoding? save it as UTF-8)"
                )
                yield raw.decode("utf-8", errors="replace")


def _open_delimited(path: Path, fmt: str) -> Table:
    bad: dict[int, str] = {}
    lines = _decoded_lines(path, bad)
    reader = csv.reader(lines, delimiter="\t" if fmt == "tsv" else ",")
    try:
        header = next(reader)
    except StopIteration:
        raise BadInputError(f"{path}: the file is empty (no header row)") from None
    except csv.Error as exc:
        raise BadInputError(f"{path} line 1: cannot parse the header: {exc}") from None
    if 1 in bad:
        raise BadInputError(f"{path} line 1 (header): {bad[1]}")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise BadInputError(f"{path}: the header names a column twice: {', '.join(dup)}")

    def rows() -> Iterator[RawRow]:
        prev = reader.line_num
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise BadInputError(
                    f"{path} line {reader.line_num}: the file cannot be parsed past here: {exc}"
                ) from None
            start, end = prev + 1, reader.line_num
            prev = end
            if not rec:
                continue  # blank line
            where = (
                f"{path.name} line {start}"
                if start == end
                else (f"{path.name} lines {start}-{end}")
            )
            broken = [bad[n] for n in range(start, end + 1) if n in bad]
            if broken:
                yield RawRow(where, None, broken[0])
                continue
            if len(rec) != len(header):
                yield RawRow(
                    where,
                    None,
                    f"has {len(rec)} fields where the header has {len(header)}",
                )
                continue
            yield RawRow(where, dict(zip(header, rec, strict=True)))

    return Table(path, fmt, header, rows(), max(_count_lines(path) - 1, 0))


def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    bad: dict[int, str] = {}
    for lineno, line in enumerate(_decoded_lines(path, bad), 1):
        where = f"{path.name} line {lineno}"
        if lineno in bad:
            yield RawRow(where, None, bad[lineno])
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            yield RawRow(where, None, f"not valid JSON: {exc}")
            continue
        except RecursionError:  # nested deeper than Python's decoder can follow
            yield RawRow(where, None, "not usable JSON: nested too deep")
            continue
        if not isinstance(obj, dict):
            yield RawRow(where, None, f"expected a JSON object, found {type(obj).__name__}")
            continue
        yield RawRow(where, obj)


def _open_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BadInputError(
            "reading Parquet needs pyarrow: pip install 'foodvec[parquet]'"
        ) from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise BadInputError(f"{path}: not a readable Parquet file: {exc}") from None
    columns = list(pf.schema_arrow.names)

    def rows() -> Iterator[RawRow]:
        n = 0
        for batch in pf.iter_batches(batch_size=4096):
            for rec in batch.to_pylist():
                n += 1
                yield RawRow(f"{path.name} row {n}", rec)

    return Table(path, "parquet", columns, rows(), pf.metadata.num_rows)
