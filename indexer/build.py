"""The bulk write path: rows -> validated, normalised items -> vectors -> one transaction.

Phase A streams the input: each row is validated and normalised, texts missing from
the vector cache are embedded (each distinct text once) and the cache is committed as
it goes (it is content-addressed, so it never changes what a search sees). Rows are
staged (``storage.Staging``), which then applies them to the items in a single write
transaction that bumps the generation: a build lands whole or not at all. No SQL here.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .embedder import Embedder
from .errors import BadInputError, BadRowError, FoodvecError, ModelMismatchError
from .filters import typed_number
from .readers import RawRow, Table, open_table
from .storage import StagedRow, Staging, Store, canonical_json, slices
from .terms import item_name, name_key
from .text import (
    MAX_TEXT_CHARS,
    clean_metadata,
    content_hash,
    derived_id,
    has_lone_surrogate,
    looks_misdecoded,
    normalize_text,
    repair_encoding,
)

ON_ERROR = ("fail", "skip")
# Ids and names are keys of B-tree indexes (items.ext_id, items.name_key), and
# PostgreSQL's B-tree takes at most about 2.7 KB a row: both are limited here, before
# the database, on every store alike (docs/building.md).
MAX_ID_CHARS = 512
MAX_NAME_CHARS = 200
MAX_NAME_KEY_BYTES = 1000  # the name as compared (``terms.name_key``), which NFKC may widen
# (hash, text) pairs, a sink for (hashes, vectors), a progress callback
RemoteEmbed = Callable[
    [list[tuple[str, str]], Callable[[list[str], np.ndarray], None], Callable[[int], Any]], None
]


@dataclass
class BuildOptions:
    text_column: str = "text"
    id_column: str | None = None  # None: use "id" when the input has it, else derive
    name_column: str | None = None  # None: use "name" when the input has it
    format: str = "auto"
    on_error: str = "fail"
    fix_encoding: bool = False
    # CSV/TSV metadata values that are numerals become numbers, except in these
    # columns ("*": all of them), which stay text (codes with leading zeros stay text
    # anyway: only plain numerals convert).
    keep_text: tuple[str, ...] = ()
    # A column holding each row's vector (from the home's model; e.g. an export made
    # with --vectors): used instead of embedding the text.
    vector_column: str | None = None
    batch_size: int = 2048  # rows validated, embedded and staged together
    report: Path | None = None
    reembed: bool = False
    progress: bool = True
    # A Ray cluster to embed on (an address, or "auto"): the texts are embedded after
    # every input is read and validated, in one Ray Data job.
    ray: str | None = None


@dataclass
class BuildSummary:
    rows_read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    repaired: int = 0
    embedded: int = 0
    cached: int = 0
    given: int = 0  # rows whose vector came with them (--vector-column)
    seconds: float = 0.0
    generation: int = 0
    items: int = 0
    report: str | None = None
    inputs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Valid:
    ext_id: str
    text: str
    hash: str
    meta: str
    where: str
    name: str | None
    vector: np.ndarray | None = None


class _Rejects:
    """Collects rejected rows: raises at once in fail mode, else writes a report."""

    def __init__(self, on_error: str, report: Path | None):
        if on_error not in ON_ERROR:
            raise BadInputError(f"--on-error must be one of {', '.join(ON_ERROR)}")
        self.on_error = on_error
        self.report = report
        self.count = 0
        self._fh = None

    def reject(self, raw: RawRow, reason: str) -> None:
        if self.on_error == "fail":
            raise BadRowError(raw.where, reason)
        self.count += 1
        if self._fh is None:
            if self.report is None:
                raise BadInputError("--on-error skip needs a report file (--report)")
            self.report.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.report, "w", encoding="utf-8")
        rec = {"where": raw.where, "reason": reason, "row": raw.data}
        try:
            line = json.dumps(rec, ensure_ascii=False, default=str)
        except RecursionError:  # a row nested too deep to write back: its place will do
            rec["row"] = None
            line = json.dumps(rec, ensure_ascii=False, default=str)
        if has_lone_surrogate(line):  # the rejected row itself may hold one
            line = json.dumps(rec, ensure_ascii=True, default=str)
        self._fh.write(line + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _validate(
    raw: RawRow,
    text_col: str,
    id_col: str | None,
    fix: bool,
    name_col: str = "name",
    numbers: Callable[[str, Any], Any] | None = None,
    vector: tuple[str, int] | None = None,
) -> tuple[_Valid | None, str | None, bool]:
    """(valid row, None, repaired) or (None, reason, False)."""
    if raw.error:
        return None, raw.error, False
    data = raw.data or {}
    if text_col not in data:
        return None, f"no {text_col!r} field (fields: {', '.join(map(str, data)) or 'none'})", False
    value = data[text_col]
    if value is None:
        return None, "the text is missing (null)", False
    if not isinstance(value, str):
        return None, f"the text is a {type(value).__name__}, not a string", False
    if has_lone_surrogate(value):
        return None, "the text holds a lone surrogate (broken UTF-16 escape)", False
    repaired = False
    if looks_misdecoded(value):
        if not fix:
            return (
                None,
                (
                    f"the text looks mis-decoded (UTF-8 read as Windows-1252 or Latin-1): "
                    f"{_snippet(value)}; --fix-encoding repairs what can be repaired"
                ),
                False,
            )
        fixed = repair_encoding(value)
        if fixed is None:
            return None, f"the text is mis-decoded and cannot be repaired: {_snippet(value)}", False
        value, repaired = fixed, True
    norm = normalize_text(value)
    if not norm:
        return None, "the text is empty", False
    if "\x00" in norm:  # PostgreSQL cannot store it: refused on every store alike
        return None, "the text holds a NUL character", False
    if len(norm) > MAX_TEXT_CHARS:
        return (
            None,
            f"the text is {len(norm)} characters long; the limit is {MAX_TEXT_CHARS}",
            False,
        )
    if id_col is None:
        ext_id = derived_id(norm)
    else:
        if id_col not in data:
            return None, f"no {id_col!r} field (fields: {', '.join(map(str, data))})", False
        ext_id, reason = _check_id(data[id_col])
        if reason:
            return None, reason, False
    vec = None
    if vector is not None:
        vec, reason = _row_vector(data.get(vector[0]), vector)
        if reason:
            return None, reason, False
    skip = {text_col, id_col, vector[0] if vector else None}
    meta = {k: v for k, v in data.items() if k not in skip}
    if fix:
        for k, v in meta.items():
            if isinstance(v, str) and looks_misdecoded(v):
                meta[k] = repair_encoding(v) or v
    if numbers is not None:
        meta = {k: numbers(k, v) for k, v in meta.items()}
    try:
        meta_json = canonical_json(clean_metadata(meta))
    except ValueError as exc:
        return None, str(exc), False
    name = item_name(data.get(name_col), norm)
    reason = name_problem(name)
    if reason:
        return None, reason, False
    valid = _Valid(ext_id, norm, content_hash(norm), meta_json, raw.where, name, vec)
    return valid, None, repaired


def _row_vector(value: Any, vector: tuple[str, int]) -> tuple[np.ndarray | None, str | None]:
    """A row's own vector: a list of numbers (or its JSON text, as a CSV holds it) of
    the model's size, finite and of unit length."""
    col, dim = vector
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None, f"the {col!r} field is not a JSON list of numbers"
    if value is None:
        return None, f"no vector in the {col!r} field"
    try:
        vec = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return None, f"the {col!r} field is not a list of numbers"
    if vec.ndim != 1 or len(vec) != dim:
        return None, f"the {col!r} vector has {vec.size} numbers; the model makes {dim}"
    if not np.all(np.isfinite(vec)):
        return None, f"the {col!r} vector holds NaN or infinity"
    if abs(float(np.linalg.norm(vec)) - 1.0) > 1e-3:
        return None, f"the {col!r} vector is not of unit length (the index is cosine)"
    return vec, None


def _check_id(raw_id: Any) -> tuple[str, str | None]:
    """(the id as text, None) or ("", why it is refused). Whole floats (1.0, as CSV and
    Parquet readers give numbers) become integers; nothing else is changed."""
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        return "", "the id is empty"
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int, float)):
        return "", f"the id is a {type(raw_id).__name__}; ids are text or numbers"
    if isinstance(raw_id, float):
        if not math.isfinite(raw_id):
            return "", f"the id is {raw_id!r}, not a usable id"
        if raw_id.is_integer():
            raw_id = int(raw_id)
    ext_id = str(raw_id)
    if "\x00" in ext_id:
        return "", "the id holds a NUL character"
    if ext_id != ext_id.strip():
        return "", f"the id {ext_id!r} has white space at its ends; ids are kept exactly"
    if has_lone_surrogate(ext_id):
        return "", "the id holds a lone surrogate (broken UTF-16 escape)"
    if len(ext_id) > MAX_ID_CHARS:
        return "", f"the id is {len(ext_id)} characters long; the limit is {MAX_ID_CHARS}"
    return ext_id, None


def name_problem(name: str | None) -> str | None:
    """Why an item's name cannot be stored (too long for the name index), or None."""
    if name is None:
        return None
    if len(name) > MAX_NAME_CHARS:
        return f"the name is {len(name)} characters long; the limit is {MAX_NAME_CHARS}"
    if len(name_key(name).encode("utf-8", "surrogatepass")) > MAX_NAME_KEY_BYTES:
        return (
            f"the name {_snippet(name)} is {MAX_NAME_KEY_BYTES}+ bytes long once folded "
            "(NFKC); shorten it"
        )
    return None


def _snippet(s: str, n: int = 40) -> str:
    return repr(s if len(s) <= n else s[:n] + "…")


def _check_columns(table: Table, opts: BuildOptions) -> str | None:
    """The id column to use for this table, after checking the named columns exist."""
    if table.columns is not None:
        found = ", ".join(table.columns) or "none"
        if opts.text_column not in table.columns:
            raise BadInputError(
                f"{table.path}: no text column {opts.text_column!r} (columns: {found}); "
                "name it with --text-column"
            )
        if opts.name_column is not None and opts.name_column not in table.columns:
            raise BadInputError(
                f"{table.path}: no name column {opts.name_column!r} (columns: {found}); "
                "name it with --name-column"
            )
        if opts.vector_column is not None and opts.vector_column not in table.columns:
            raise BadInputError(
                f"{table.path}: no vector column {opts.vector_column!r} (columns: {found})"
            )
        if opts.id_column is not None and opts.id_column not in table.columns:
            raise BadInputError(
                f"{table.path}: no id column {opts.id_column!r} (columns: {found}); "
                "name it with --id-column, or leave it out to derive ids from the text"
            )
        if opts.id_column is None:
            return "id" if "id" in table.columns else None
        return opts.id_column
    return opts.id_column if opts.id_column is not None else "id"


def build(
    store: Store,
    embedder: Embedder,
    sources: Iterable[Table],
    opts: BuildOptions,
    report_default: Path | None = None,
    remote: RemoteEmbed | None = None,
) -> BuildSummary:
    """Validate, embed and upsert every row of ``sources`` as one write. ``remote``
    embeds the texts elsewhere (``indexer.cluster.embed`` with its cluster and model
    bound), all at once after the inputs are staged."""
    t0 = time.perf_counter()
    summary = BuildSummary()
    report = opts.report or report_default
    rejects = _Rejects(opts.on_error, report)
    active = store.active_model()
    fp = embedder.fingerprint
    if active is not None and active != fp and not opts.reembed and store.count() > 0:
        raise model_mismatch(store, embedder, active)
    try:
        with store.staging() as staging:
            run = _Run(staging, embedder, opts, rejects, summary, {} if remote else None)
            for table in sources:
                summary.inputs.append(str(table.path))
                _phase_a(run, table)
            if opts.reembed:
                _reembed_existing(run)
            if remote is not None and run.pending:
                _embed_remote(run, remote)
            applied = slices.apply(
                staging,
                fp,
                embedder.name,
                int(embedder.dim),
                embedder.encode,
                switch_model=opts.reembed,
                refuse=lambda active: model_mismatch(store, embedder, active),
            )
    finally:
        rejects.close()
    summary.new, summary.updated = applied.new, applied.updated
    summary.unchanged = applied.unchanged
    summary.embedded += applied.embedded
    summary.generation = applied.generation
    summary.rejected = rejects.count
    summary.report = str(report) if rejects.count else None
    summary.items = applied.items
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


@dataclass
class _Run:
    """What every step of one build shares."""

    staging: Staging
    embedder: Embedder
    opts: BuildOptions
    rejects: _Rejects
    summary: BuildSummary
    # texts to embed remotely, by content hash (None: embed each batch here)
    pending: dict[str, str] | None = None


def _batches(rows: Iterator[RawRow], n: int) -> Iterator[list[RawRow]]:
    batch: list[RawRow] = []
    for r in rows:
        batch.append(r)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def _phase_a(run: _Run, table: Table) -> None:
    """Validate, embed and stage one input, batch by batch."""
    opts = run.opts
    id_col = _check_columns(table, opts)
    # JSONL rows without an id get one derived from their text.
    jsonl_derive = table.columns is None and opts.id_column is None
    from tqdm import tqdm  # a build's progress: not loaded by a search

    bar = tqdm(
        total=table.approx_rows,
        unit=" rows",
        desc=table.path.name,
        file=sys.stderr,
        disable=not opts.progress,
        mininterval=0.5,
        dynamic_ncols=True,
    )
    try:
        for batch in _batches(table.rows, opts.batch_size):
            run.summary.rows_read += len(batch)
            valid = _validate_batch(run, batch, id_col, jsonl_derive, table.format)
            if valid:
                valid = _drop_staged_duplicates(run, valid)
            if valid:
                vectors = _embed_missing(run, valid)
                base = run.summary.rows_read
                run.staging.stage(
                    [
                        StagedRow(
                            v.ext_id,
                            v.text,
                            v.hash,
                            v.meta,
                            v.where,
                            base + n,
                            v.name,
                            name_key(v.name) if v.name else None,
                        )
                        for n, v in enumerate(valid)
                    ],
                    vectors,
                )
            bar.update(len(batch))
    finally:
        bar.close()


def _typer(keep_text: tuple[str, ...]) -> Callable[[str, Any], Any] | None:
    """What turns a CSV/TSV metadata value into a number when it is a plain numeral."""
    if "*" in keep_text:
        return None
    keep = frozenset(keep_text)

    def numbers(key: str, value: Any) -> Any:
        return typed_number(value) if isinstance(value, str) and key not in keep else value

    return numbers


def _validate_batch(
    run: _Run, batch: list[RawRow], id_col: str | None, jsonl_derive: bool, table_format: str
) -> list[_Valid]:
    valid: list[_Valid] = []
    seen: dict[str, str] = {}
    opts = run.opts
    numbers = _typer(opts.keep_text) if table_format in ("csv", "tsv") else None
    vector = (opts.vector_column, int(run.embedder.dim)) if opts.vector_column else None
    for raw in batch:
        col = id_col
        if jsonl_derive and raw.data is not None and "id" not in raw.data:
            col = None
        row, reason, repaired = _validate(
            raw,
            opts.text_column,
            col,
            opts.fix_encoding,
            opts.name_column or "name",
            numbers,
            vector,
        )
        if row is None:
            run.rejects.reject(raw, reason or "invalid row")
            continue
        if row.ext_id in seen:
            run.rejects.reject(raw, f"duplicate id {row.ext_id!r}: also at {seen[row.ext_id]}")
            continue
        seen[row.ext_id] = row.where
        run.summary.repaired += repaired
        valid.append(row)
    return valid


def _drop_staged_duplicates(run: _Run, valid: list[_Valid]) -> list[_Valid]:
    earlier = run.staging.staged_where([v.ext_id for v in valid])
    if not earlier:
        return valid
    keep = []
    for v in valid:
        if v.ext_id in earlier:
            run.rejects.reject(
                RawRow(v.where, None), f"duplicate id {v.ext_id!r}: also at {earlier[v.ext_id]}"
            )
        else:
            keep.append(v)
    return keep


def _embed_missing(run: _Run, valid: list[_Valid]) -> list[tuple[str, list[str], np.ndarray]]:
    """Embed the batch's texts that have no cached vector; returns what to cache with
    the batch's rows, as (model fingerprint, content hashes, vectors)."""
    fp = run.embedder.fingerprint
    texts_by_hash = {v.hash: v.text for v in valid}
    cached = run.staging.cached_hashes(fp, list(texts_by_hash))
    missing = [h for h in texts_by_hash if h not in cached]
    run.summary.cached += len(valid) - len(missing)  # rows whose vector was reused
    run.summary.embedded += len(missing)
    given = {v.hash: v.vector for v in valid if v.vector is not None}
    own = [h for h in missing if h in given]
    out = []
    if own:  # rows that bring their vector (--vector-column)
        run.summary.embedded -= len(own)
        run.summary.given += len(own)
        out.append((fp, own, np.vstack([given[h] for h in own])))
    rest = [h for h in missing if h not in given]
    if rest and run.pending is not None:
        again = [h for h in rest if h in run.pending]  # an earlier batch's text
        run.summary.embedded -= len(again)
        run.summary.cached += len(again)
        run.pending.update((h, texts_by_hash[h]) for h in rest)
    elif rest:
        out.append((fp, rest, run.embedder.encode([texts_by_hash[h] for h in rest])))
    return out


def _embed_remote(run: _Run, remote: RemoteEmbed) -> None:
    """Embed every pending text in one remote job, caching the vectors as they come."""
    fp, dim = run.embedder.fingerprint, int(run.embedder.dim)

    def sink(hashes: list[str], vecs: np.ndarray) -> None:
        if vecs.shape != (len(hashes), dim):
            raise FoodvecError(
                f"the cluster returned vectors of shape {vecs.shape}, not ({len(hashes)}, {dim})"
            )
        run.staging.cache_vectors(fp, hashes, vecs)

    from tqdm import tqdm

    with tqdm(
        total=len(run.pending),
        unit=" texts",
        desc="embedding on Ray",
        file=sys.stderr,
        disable=not run.opts.progress,
        mininterval=0.5,
    ) as bar:
        remote(list(run.pending.items()), sink, bar.update)


def _reembed_existing(run: _Run) -> None:
    """With --reembed: make sure every stored text has a vector from the new model."""
    fp = run.embedder.fingerprint
    if run.pending is not None:  # all of them go to the remote job
        rows = run.staging.items_without_vector(fp, 2**62)
        new = {h: t for h, t in rows if h not in run.pending}
        run.summary.embedded += len(new)
        run.pending.update(new)
        return
    while True:
        rows = run.staging.items_without_vector(fp, max(run.opts.batch_size, 64))
        if not rows:
            return
        vecs = run.embedder.encode([r[1] for r in rows])
        run.summary.embedded += len(rows)
        run.staging.cache_vectors(fp, [r[0] for r in rows], vecs)


def open_sources(paths: Iterable[Path | str], fmt: str) -> Iterator[Table]:
    for p in paths:
        yield open_table(p, fmt)


def memory_table(records: list[dict[str, Any]], label: str = "item") -> Table:
    """A table over in-memory records (the ``add`` command and the Python API)."""
    rows = (RawRow(f"{label} {n}", dict(r)) for n, r in enumerate(records, 1))
    return Table(Path(label), "memory", None, rows, len(records))


def model_mismatch(store: Store, embedder: Embedder, active: str) -> ModelMismatchError:
    info = store.model_info(active) or {"name": "?", "dim": "?"}
    dims = ""
    declared = getattr(embedder, "_dim", None)
    if declared is not None and declared != info["dim"]:
        dims = f" (it makes {declared}-dimensional vectors, the index holds {info['dim']})"
    return ModelMismatchError(
        f"this index was built with the model {info['name']} ({active[:12]}), not "
        f"{embedder.name} ({embedder.fingerprint[:12]}){dims}; use that model, or switch "
        "models by re-embedding everything with `foodvec build --reembed`"
    )
