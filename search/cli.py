"""The ``foodvec`` command line: each command parses, calls the library, reports.

Exit codes: 0 success, 1 a runtime error (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from indexer.ann import KINDS
from indexer.build import ON_ERROR, BuildOptions
from indexer.errors import FoodvecError
from indexer.home import FoodIndex
from indexer.readers import FORMATS
from indexer.settings import settings
from indexer.text import has_lone_surrogate, normalize_text
from indexer.train import RECIPES, TrainConfig
from indexer.understand import describe_parse, parse_query

PAIR_FORMATS = ("csv", "jsonl", "parquet")  # what `mine --output` writes
INPUT_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUTPUT_FILE = click.Path(dir_okay=False, path_type=Path)
FOLDER = click.Path(file_okay=False, path_type=Path)


def _per_recipe(key: str) -> str:
    """A training option's value in each recipe, for --help (read from RECIPES)."""
    return "[" + ", ".join(f"{name} {values[key]}" for name, values in RECIPES.items()) + "]"


WHERE_HELP = (
    "Only items whose metadata satisfies EXPR: kcal<200, 'category in (과일,채소)', "
    "'note ~ 저염', brand? (has it), or a JSON filter; repeatable, all must hold "
    '(README, "Filters").'
)


def _where_option(help_text: str) -> Callable:
    """--where EXPR (repeatable), the filter language's short form or JSON."""
    return click.option("--where", "where", multiple=True, metavar="EXPR", help=help_text)


def _common(f: Callable) -> Callable:
    """--home, --model and --db, accepted by every command."""
    f = click.option(
        "--db",
        metavar="URL",
        help="SQLAlchemy URL of the database (default: $FOODVEC_DB, else SQLite in the home).",
    )(f)
    f = click.option(
        "--model",
        "model",
        metavar="PATH",
        help="A sentence-transformers model folder, or `base` for the untuned "
        "all-MiniLM-L6-v2. Default: $FOODVEC_MODEL, else the model the index was built with, "
        "else the trained default in HOME/models/default.",
    )(f)
    f = click.option(
        "--home",
        metavar="DIR",
        type=FOLDER,
        help="Folder holding the database, index and models "
        "(default: $FOODVEC_HOME or ~/.local/share/foodvec).",
    )(f)
    return f


def _friendly(f: Callable) -> Callable:
    """Turn library errors into one-line messages with exit code 1."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except FoodvecError as exc:
            raise click.ClickException(str(exc)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # click exits quietly on a closed pipe (`foodvec list | head`)
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; nothing was written") from None
        except sqlalchemy_error() as exc:
            # one line: the driver's message, without SQLAlchemy's statement and parameters
            cause = getattr(exc, "orig", None) or exc
            first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
            raise click.ClickException(
                f"database error: {type(cause).__name__}: {first}"
            ) from None
        except OSError as exc:  # a path the system refused (too long, not a folder, ...)
            name = str(exc.filename or "")
            shown = f": {name[:120]}{'…' if len(name) > 120 else ''}" if name else ""
            raise click.ClickException(f"{exc.strerror or exc}{shown}") from None
        except Exception as exc:  # the last line of defence: no traceback for users
            if isinstance(exc, RuntimeError) and _from_expanduser(exc):
                raise click.ClickException(
                    "a path starts with ~ and a user this machine does not know (--home, "
                    "--model, --db, a file or FOODVEC_HOME); write the folder out"
                ) from None
            if settings().debug:
                raise
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {exc} (FOODVEC_DEBUG=1 shows the traceback)"
            ) from None

    return wrapper


def _from_expanduser(exc: BaseException) -> bool:
    """Raised by ``Path.expanduser`` (``~name`` of no user here)?"""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "expanduser":
            return True
        tb = tb.tb_next
    return False


def sqlalchemy_error() -> type[Exception]:
    from sqlalchemy.exc import SQLAlchemyError

    return SQLAlchemyError


def _open(home: Path | None, model: str | None, db: str | None, read: bool = False) -> FoodIndex:
    """The home; a reading command (``read``) never creates one: a mistyped --home is
    an error naming the path, not a new empty home that answers nothing."""
    if read:
        _require_database(home, db)
    return FoodIndex(home=home, model=model, db=db)


def _require_database(home: Path | None, db: str | None) -> None:
    from indexer.settings import Layout

    cfg = settings()
    home_path = Path(home or cfg.home).expanduser()
    url = db or cfg.db
    if url is None:
        path = Layout(home_path).database
    else:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError:
            return  # opening it says what is wrong
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return
        path = Path(parsed.database).expanduser()
    if not path.is_file():
        where = f"no foodvec home at {home_path}" if url is None else "no database"
        raise click.ClickException(
            f"{where}: {path} does not exist (check --home, FOODVEC_HOME or --db; "
            "`foodvec init` or `foodvec build` makes one)"
        )


def _parse_where(exprs: tuple[str, ...], hint: str = "--where") -> dict[str, Any] | None:
    """--where expressions (short form or JSON) as one JSON filter; bad ones exit 2."""
    from indexer.filters import FilterError, parse, parse_short

    if not exprs:
        return None
    try:
        parts = [parse_short(e) for e in exprs]
        cond = parts[0] if len(parts) == 1 else {"$and": parts}
        parse(cond)  # checked here, so a bad filter is a usage error
    except FilterError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None
    return cond


def _emit(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


META_HELP = (
    "A plain numeral becomes a number (as in CSV files, so "
    "--where 'kcal<200' finds it); true, false and quoted values are taken as JSON."
)


def _parse_meta(pairs: tuple[str, ...]) -> dict[str, Any]:
    """--meta KEY=VALUE of add and update, typed as the short filter form types values."""
    from indexer.filters import parse_value

    return {k: parse_value(v) for k, v in _parse_pairs(pairs, "--meta").items()}


def _parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{p!r} is not key=value", param_hint=what)
        out[key.strip()] = value
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="foodvec")
def cli() -> None:
    """foodvec: semantic search over food descriptions.

    Index a file of foods with `foodvec build`, look foods up with `foodvec search`.
    Everything of one index lives in one folder (--home / FOODVEC_HOME).
    """
    _log_to_stderr()


def _log_to_stderr() -> None:
    """The library's warnings (a damaged index being rebuilt) as one line on stderr."""
    logger = logging.getLogger("foodvec")
    for handler in list(logger.handlers):
        if getattr(handler, "foodvec_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.foodvec_cli = True
    handler.setFormatter(logging.Formatter("foodvec: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False


@cli.command()
@_common
@_friendly
def init(home, model, db) -> None:
    """Create the database, or migrate it to the newest schema."""
    with _open(home, model, db) as idx:
        click.echo(f"database ready in {idx.home} (schema up to date)")


def _ray_option(what: str):
    return click.option(
        "--ray",
        "ray_address",
        metavar="ADDRESS",
        help=f"{what} on a Ray cluster: `auto` joins the one running on this machine or "
        "starts one; else the head's address (HOST:PORT or ray://HOST:PORT). Needs "
        "`pip install 'foodvec[cluster]'`; every node needs the model folder.",
    )


@cli.command()
@click.argument("files", nargs=-1, required=True, type=INPUT_FILE)
@click.option(
    "--text-column", default="text", show_default=True, help="Column holding the food description."
)
@click.option(
    "--id-column",
    default=None,
    help="Column holding each row's id. Default: `id` if the file has it, else "
    "an id derived from the text (t- and 16 hex digits of its SHA-256).",
)
@click.option(
    "--name-column",
    default=None,
    help="Column holding each food's name, for the exact-name rule of search. Default: "
    "`name` if the file has it, else the text's leading label before a colon.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("auto",) + FORMATS),
    default="auto",
    show_default=True,
    help="Input format; auto reads the file extension.",
)
@click.option(
    "--index",
    "index_kind",
    type=click.Choice(("auto",) + KINDS),
    default="auto",
    show_default=True,
    help="FAISS index: flat (exact), hnsw or ivf; auto is flat up to 50,000 items.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=2048,
    show_default=True,
    help="Rows embedded and written per batch.",
)
@click.option(
    "--on-error",
    type=click.Choice(ON_ERROR),
    default="fail",
    show_default=True,
    help="fail: a bad row stops the build and nothing lands. skip: good rows land "
    "and bad ones go to a report file.",
)
@click.option(
    "--report",
    type=OUTPUT_FILE,
    help="Where --on-error skip writes rejected rows (JSONL). "
    "Default: HOME/reports/rejected-<time>.jsonl.",
)
@click.option(
    "--fix-encoding",
    is_flag=True,
    help="Repair mis-decoded text (UTF-8 read as Windows-1252/Latin-1) with ftfy.",
)
@click.option(
    "--keep-text",
    multiple=True,
    metavar="COLUMN",
    help="Keep this CSV/TSV column's values as text (repeatable; '*' for every column). "
    "Otherwise plain numerals (12, -3.5, 1e3; not 007 or +1) become numbers, so "
    "--where 'kcal<200' works.",
)
@click.option(
    "--vector-column",
    metavar="COLUMN",
    help="Take each row's vector from COLUMN (a list of numbers of the model's size, "
    "unit length; e.g. `foodvec export --vectors`) instead of embedding its text.",
)
@click.option(
    "--reembed",
    is_flag=True,
    help="Switch the index to the given model, re-embedding every stored text.",
)
@_ray_option(
    "Embed the texts (after every row is read and validated, in one Ray Data job; the "
    "vectors are bit for bit a local build's)"
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_common
@_friendly
def build(
    files,
    text_column,
    id_column,
    name_column,
    fmt,
    index_kind,
    batch_size,
    on_error,
    report,
    fix_encoding,
    keep_text,
    vector_column,
    reembed,
    ray_address,
    quiet,
    as_json,
    home,
    model,
    db,
) -> None:
    """Index FILE... (CSV, TSV, JSONL or Parquet), upserting by id.

    Unchanged rows are skipped, changed rows re-embedded, identical texts embedded
    once. Columns other than the id and text columns become metadata. A bad row
    stops the build and nothing lands, unless --on-error skip.
    """
    opts = BuildOptions(
        text_column=text_column,
        id_column=id_column,
        name_column=name_column,
        format=fmt,
        on_error=on_error,
        fix_encoding=fix_encoding,
        keep_text=tuple(keep_text),
        vector_column=vector_column,
        batch_size=batch_size,
        report=report,
        reembed=reembed,
        progress=not quiet,
        ray=ray_address,
    )
    with _open(home, model, db) as idx:
        summary = idx.build(files, opts, index_kind=index_kind)
        stats = idx.stats()
    if as_json:
        _emit({**summary.as_dict(), "index": stats["index"]})
        return
    s = summary
    rate = s.rows_read / s.seconds if s.seconds else 0.0
    click.echo(
        f"rows read {s.rows_read}: new {s.new}, updated {s.updated}, "
        f"unchanged {s.unchanged}, rejected {s.rejected}"
        + (f", repaired {s.repaired}" if s.repaired else "")
    )
    click.echo(
        f"embedded {s.embedded}, from cache {s.cached}; {s.seconds:.1f} s ({rate:.0f} rows/s)"
    )
    ix = stats["index"]
    click.echo(f"index: {ix['type']} with {stats['items']} items, generation {s.generation}")
    if s.report:
        click.echo(f"rejected rows and reasons: {s.report}", err=True)


@cli.command()
@click.argument("text")
@click.option("--id", "ext_id", help="The item's id (default: derived from the text).")
@click.option(
    "--meta", multiple=True, metavar="KEY=VALUE", help="Metadata; repeatable. " + META_HELP
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_common
@_friendly
def add(text, ext_id, meta, as_json, home, model, db) -> None:
    """Insert or update one item."""
    record = {**_parse_meta(meta), "text": text}
    if ext_id is not None:
        record["id"] = ext_id
    with _open(home, model, db) as idx:
        s = idx.upsert([record])
    what = "added" if s.new else ("updated" if s.updated else "unchanged")
    if as_json:
        _emit({"status": what, "generation": s.generation, "items": s.items})
    else:
        click.echo(f"{what}; {s.items} items, generation {s.generation}")


@cli.command()
@click.argument("ids", nargs=-1)
@_where_option("Delete every item matching EXPR (the --where of search; repeatable, all hold).")
@click.option("--dry-run", is_flag=True, help="With --where: count the items, delete none.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_common
@_friendly
def delete(ids, where, dry_run, as_json, home, model, db) -> None:
    """Delete items by id (all of them, or none if any id is unknown), or every item
    matching --where."""
    if bool(ids) == bool(where):
        raise click.UsageError("give item ids or --where, not both and not neither")
    if dry_run and not where:
        raise click.UsageError("--dry-run goes with --where")
    cond = _parse_where(where)
    with _open(home, model, db) as idx:
        if cond is not None:
            n = idx.delete_where(cond, dry_run=dry_run)
        else:
            n = idx.delete(list(ids))
        left = idx.count()
    if as_json:
        _emit({("would_delete" if dry_run else "deleted"): n, "items": left})
    elif dry_run:
        click.echo(f"would delete {n} of {left} items")
    else:
        click.echo(f"deleted {n}; {left} items left")


@cli.command()
@click.argument("item_id")
@click.option("--json", "as_json", is_flag=True, help="Print the item as JSON.")
@_common
@_friendly
def get(item_id, as_json, home, model, db) -> None:
    """Show one item: its id, text and metadata."""
    with _open(home, model, db, read=True) as idx:
        rec = idx.get(item_id)
    if rec is None:
        raise click.ClickException(f"not in the index: {item_id!r}")
    if as_json:
        _emit(rec)
        return
    click.echo(_record_line(rec))


def _record_line(rec: dict[str, Any]) -> str:
    meta = ", ".join(f"{k}={v}" for k, v in rec["metadata"].items())
    return f"{rec['id']}  {rec['text']}" + (f"  [{meta}]" if meta else "")


@cli.command("list")
@_where_option("Only items matching EXPR (the --where of search; repeatable).")
@click.option(
    "--offset", type=click.IntRange(0, 2**63 - 1), default=0, help="Skip this many items first."
)
@click.option(
    "--limit", type=click.IntRange(1, 2**63 - 1), help="At most this many items (default: all)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per item.")
@_common
@_friendly
def list_items(where, offset, limit, as_json, home, model, db) -> None:
    """List items in a stable order (the order they were added), streaming."""
    cond = _parse_where(where)
    left = limit
    cursor = None
    with _open(home, model, db, read=True) as idx:
        while left is None or left > 0:
            size = 5000 if left is None else min(5000, left)
            recs, cursor = idx.records(cond, offset=offset, limit=size, after=cursor)
            offset = 0  # the offset applies once; the cursor carries on from there
            for rec in recs:
                click.echo(json.dumps(rec, ensure_ascii=False) if as_json else _record_line(rec))
            if left is not None:
                left -= len(recs)
            if cursor is None:
                break


@cli.command()
@click.argument("item_id")
@click.option(
    "--meta",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set KEY (repeatable). " + META_HELP,
)
@click.option("--unset", multiple=True, metavar="KEY", help="Remove KEY (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the updated item as JSON.")
@_common
@_friendly
def update(item_id, meta, unset, as_json, home, model, db) -> None:
    """Change an item's metadata without re-embedding its text."""
    values = _parse_meta(meta)
    with _open(home, model, db) as idx:
        gen = idx.update(item_id, values, unset=list(unset))
        rec = idx.get(item_id)
    if as_json:
        _emit({**rec, "generation": gen})
    else:
        click.echo(f"updated; generation {gen}\n{_record_line(rec)}")


@cli.command()
@click.argument("queries", nargs=-1, required=True)
@click.option(
    "-k",
    "k",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Results per query.",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only items whose metadata KEY equals VALUE (as text); repeatable.",
)
@_where_option(WHERE_HELP)
@click.option(
    "--mode",
    type=click.Choice(("hybrid", "dense", "lexical")),
    default="hybrid",
    show_default=True,
    help="hybrid: meaning and keywords fused, an exact name first. dense: cosine of "
    "the model's vectors only. lexical: Korean-aware keyword (BM25) search only.",
)
@click.option(
    "--min-score",
    type=float,
    help="Drop results whose score is below this (cosine in dense mode; see --mode).",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Show how each query was read: the needs and nutrients it names and which "
    "way it wants them (also in --json as \"parse\").",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per query.")
@_common
@_friendly
def search(queries, k, filters, where, mode, min_score, explain, as_json, home, model, db) -> None:
    """Find the foods that best answer each QUERY.

    The default hybrid mode fuses the model's cosine similarity with a Korean-aware
    keyword search, so names, spellings and nutrients match as typed (spacing and
    particles do not matter) while needs said in other words still find their foods.
    """
    flt = _parse_pairs(filters, "--filter")
    cond = _parse_where(where)
    with _open(home, model, db, read=True) as idx:
        results = idx.search(
            list(queries), k=k, filters=flt or None, where=cond, min_score=min_score, mode=mode
        )
    for q, hits in zip(queries, results, strict=True):
        parse = parse_query(normalize_text(q))
        if as_json:
            _emit({"query": q, "parse": parse.as_dict(), "results": [h.as_dict() for h in hits]})
            continue
        click.echo(f"{q}")
        if explain:
            click.echo(f"  read as: {describe_parse(parse)}")
        if not hits:
            click.echo("  (no results)")
        for n, h in enumerate(hits, 1):
            meta = ", ".join(f"{k_}={v}" for k_, v in h.metadata.items())
            click.echo(
                f"  {n:2d}. {h.score:.4f}  {h.id}  {h.text}" + (f"  [{meta}]" if meta else "")
            )
            health = f"(health {h.health:.2f})" if h.health is not None else ""
            if h.why:
                click.echo(f"      why: {' · '.join(h.why)}  {health}".rstrip())
            elif explain and health:
                click.echo(f"      {health}")


@cli.command()
@_common
@_friendly
def vacuum(home, model, db) -> None:
    """Delete cached vectors that no item uses any more (after rewrites and deletes).

    Safe while a build runs: a build re-embeds any of its texts whose vector was
    collected before it applies its rows.
    """
    with _open(home, model, db) as idx:
        n, left = idx.collect_vectors()
    click.echo(f"deleted {n} unused vectors; {left} left")


@cli.command()
@click.argument("file", type=OUTPUT_FILE)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="csv, tsv, jsonl or parquet (default: from FILE's extension).",
)
@_where_option("Only items matching EXPR (the --where of search; repeatable).")
@click.option(
    "--vectors",
    is_flag=True,
    help="Add each item's vector as a `vector` column (build reads it back with "
    "--vector-column vector, embedding nothing).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_common
@_friendly
def export(file, fmt, where, vectors, as_json, home, model, db) -> None:
    """Write the items to FILE: id, text and one column per metadata key.

    `foodvec build FILE` reads it back into the same items. JSONL and Parquet keep
    every value's type; CSV and TSV write nested values as JSON text, and a text that
    reads as a number comes back a number unless built with --keep-text.
    """
    cond = _parse_where(where)
    with _open(home, model, db, read=True) as idx:
        n = idx.export(file, fmt, where=cond, vectors=vectors)
    if as_json:
        _emit({"file": str(file), "items": n})
    else:
        click.echo(f"wrote {n} items to {file}")


@cli.command()
@click.argument("dest", type=FOLDER)
@click.option(
    "--with-model",
    is_flag=True,
    help="Copy the trained model into the backup (default: hard-link its files, or "
    "reference its folder where links cannot be made).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_common
@_friendly
def backup(dest, with_model, as_json, home, model, db) -> None:
    """Copy the home into the new folder DEST, safely while writers run.

    The database is copied with SQLite's online backup (it holds every write committed
    before the backup began), with the index files of that moment; the trained default
    model is hard-linked (or copied with --with-model). `foodvec restore DEST --home NEW`
    makes a home of it again.
    """
    with _open(home, model, db) as idx:
        out = idx.backup(dest, with_model=with_model)
    if as_json:
        _emit(out)
    else:
        click.echo(
            f"backed up generation {out['generation']} to {out['backup']} "
            f"in {out['seconds']} s"
        )


@cli.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_common
@_friendly
def restore(src, as_json, home, model, db) -> None:
    """Make the home (--home, which must hold no database yet) from a backup folder,
    then check it as `verify` does."""
    from indexer.home import FoodIndex

    if db:
        raise click.UsageError("restore makes a SQLite home; --db does not apply")
    with FoodIndex.restore(src, home, model=model) as idx:
        problems = idx.verify()
        s = idx.stats()
    if as_json:
        keys = ("home", "items", "generation")
        _emit({**{k: s[k] for k in keys}, "problems": problems})
    else:
        click.echo(f"restored {s['items']} items (generation {s['generation']}) into {s['home']}")
        for p in problems:
            click.echo(f"MISMATCH: {p}", err=True)
    if problems:
        raise click.exceptions.Exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_common
@_friendly
def stats(as_json, home, model, db) -> None:
    """How many items, which model, which index."""
    with _open(home, model, db, read=True) as idx:
        s = idx.stats()
    if as_json:
        _emit(s)
        return
    click.echo(f"home:       {s['home']}")
    click.echo(f"items:      {s['items']}")
    click.echo(f"generation: {s['generation']}")
    click.echo(f"model:      {s['model_name'] or '-'} ({(s['model'] or '-')[:12]}, dim {s['dim']})")
    ix = s["index"]
    click.echo(
        f"index:      {ix['type'] or '-'} {ix['params'] or ''} "
        f"(generation {ix['generation']}, {ix['count']} vectors)"
    )
    click.echo(f"mining:     default threshold {s['mine_threshold']}")
    head = s.get("health_head")
    click.echo(
        f"health:     head accuracy {head['heldout_accuracy']} on held-out phrases"
        if head
        else "health:     the model has no health head (scores from stated facts only)"
    )


@cli.command()
@_common
@_friendly
def verify(home, model, db) -> None:
    """Check that the FAISS index and the database agree (ids, count, vectors)."""
    with _open(home, model, db, read=True) as idx:
        problems = idx.verify()
        s = idx.stats()
    if problems:
        for p in problems:
            click.echo(f"MISMATCH: {p}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"ok: index and database agree ({s['items']} items, generation {s['generation']})")


@cli.command()
@click.option(
    "--data",
    type=INPUT_FILE,
    help="Training CSV with text and label (0/1) columns. Default: indexer/data/train.csv.",
)
@click.option(
    "--output",
    type=FOLDER,
    help="Where to save the model. Default: HOME/models/default.",
)
@click.option(
    "--base",
    default="base",
    show_default=True,
    help="Model to fine-tune: a folder, or `base` (all-MiniLM-L6-v2).",
)
@click.option(
    "--recipe",
    type=click.Choice(tuple(RECIPES)),
    default=TrainConfig.recipe,
    show_default=True,
    help="foodvec: a search model that also knows health (Hangul jamo added to the "
    "vocabulary; ranking loss on query/description pairs; triplet loss on cosine "
    "distance; English names kept). card: the seed card exactly (BatchHardTripletLoss, "
    "margin 5 on Euclidean distance). The options below override either.",
)
@click.option("--epochs", type=click.IntRange(1, 1000), help=f"Epochs {_per_recipe('epochs')}.")
@click.option(
    "--batch-size", type=click.IntRange(2, 4096), help=f"Batch size {_per_recipe('batch_size')}."
)
@click.option(
    "--lr",
    type=click.FloatRange(0, 1, min_open=True),
    help=f"Learning rate {_per_recipe('lr')}.",
)
@click.option("--seed", type=int, help=f"Random seed [default: {TrainConfig.seed}].")
@click.option(
    "--max-seq-length",
    type=click.IntRange(8, 512),
    help=f"Longest input in tokens [default: {TrainConfig.max_seq_length}].",
)
@click.option(
    "--warmup-ratio",
    type=click.FloatRange(0, 1),
    help=f"Share of steps warming up [default: {TrainConfig.warmup_ratio}].",
)
@click.option(
    "--scheduler",
    help="Learning-rate schedule (transformers' lr_scheduler_type) "
    f"[default: {TrainConfig.scheduler}].",
)
@click.option(
    "--margin",
    type=float,
    help=f"BatchHardTripletLoss margin {_per_recipe('margin')} (cosine distance for "
    "foodvec, Euclidean for card).",
)
@click.option("--no-eval", is_flag=True, help="Skip the held-out evaluation in the model card.")
@click.option(
    "--no-cache",
    is_flag=True,
    help="Train even when the per-user cache holds this model (FOODVEC_CACHE/models; used "
    "only for the default output and recipe, with no other training option).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_common
@_friendly
def train(
    data,
    output,
    base,
    recipe,
    epochs,
    batch_size,
    lr,
    seed,
    max_seq_length,
    warmup_ratio,
    scheduler,
    margin,
    no_eval,
    no_cache,
    quiet,
    as_json,
    home,
    model,
    db,
) -> None:
    """Fine-tune all-MiniLM-L6-v2 into the default model (or the seed card's).

    The default recipe (foodvec) trains a search model that also separates healthy from
    unhealthy profiles; --recipe card reproduces the seed model card. The result is a
    sentence-transformers folder with a model card; without --output it becomes the
    default model of this home. Without training options, the model is copied from the
    per-user cache when an earlier training of the same recipe, settings, data, base model
    and training code put it there (--no-cache trains all the same).
    """
    from indexer import model_cache
    from indexer.errors import require_training_extra
    from indexer.settings import DATA_DIR, Layout
    from indexer.train import evaluate_pair, write_model_card
    from indexer.train import train as run_train

    require_training_extra("foodvec train")
    tuned = (epochs, batch_size, lr, seed, max_seq_length, warmup_ratio, scheduler, margin)
    cached = not no_cache and not no_eval and output is None and data is None
    cached = cached and base == "base" and recipe == TrainConfig.recipe
    cached = cached and all(v is None for v in tuned)

    out = output or Layout(home or settings().home).default_model
    cfg = TrainConfig.for_recipe(
        recipe,
        data=data or DATA_DIR / "train.csv",
        output=out,
        base=base,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        max_seq_length=max_seq_length,
        warmup_ratio=warmup_ratio,
        scheduler=scheduler,
        margin=margin,
    )
    entry = model_cache.entry_for(cfg) if cached else None
    if entry is not None:
        record, why = model_cache.fetch(entry, out)
        if record is not None:
            info, figures = record.get("info") or {}, record.get("evaluation")
            if as_json:
                _emit({"output": str(out), **info, "evaluation": figures, "cache": str(entry.path)})
                return
            click.echo(
                f"copied the trained {recipe} model from the cache {entry.path} -> {out} "
                "(no training; --no-cache trains anew)"
            )
            return
        if why and not as_json:
            click.echo(f"the cached model {entry.path} is damaged ({why}): training", err=True)
    if not quiet and not as_json:
        click.echo(f"training the {recipe} recipe -> {out}", err=True)
    info = run_train(cfg, progress=not quiet)
    figures = None
    if not no_eval and (DATA_DIR / "heldout.csv").exists():
        if not quiet and not as_json:
            click.echo("evaluating the trained model against the base model ...", err=True)
        figures = evaluate_pair(out, base=base)
    write_model_card(out, info, figures or {"base": {}, "tuned": {}})
    stored = None
    if entry is not None:
        try:
            stored = model_cache.store(entry, out, {"info": info, "evaluation": figures})
        except OSError as exc:  # the model is trained all the same
            click.echo(f"could not cache the model in {entry.path}: {exc}", err=True)
    if as_json:
        cache = str(stored) if stored else None
        _emit({"output": str(out), **info, "evaluation": figures, "cache": cache})
        return
    click.echo(
        f"saved {out} ({info['steps']} steps, {info['seconds']:.1f} s, "
        f"final loss {info['train_loss']})"
    )
    if stored is not None:
        click.echo(f"cached it for other homes: {stored}")
    if figures:
        _print_figures(figures)


def _print_figures(figures: dict[str, dict[str, float]]) -> None:
    click.echo(f"{'figure':34s} {'base':>8s} {'tuned':>8s}")
    for name in figures["tuned"]:
        click.echo(f"{name:34s} {figures['base'][name]:8.4g} {figures['tuned'][name]:8.4g}")


class _Stages:
    """Progress of a command made of a few long stages, on stderr: ``[1/2] label ...``
    when a stage starts and ``[1/2] label: done in 41.2 s`` (or ``failed after``) when
    it ends; on a terminal one line per stage whose seconds count up while it runs."""

    TICK_SECONDS = 1.0

    def __init__(self, total: int, quiet: bool = False):
        self.total = total
        self.quiet = quiet
        self.n = 0

    def stage(self, label: str):
        import contextlib
        import threading
        import time

        self.n += 1
        head = f"[{self.n}/{self.total}] {label}"

        @contextlib.contextmanager
        def running():
            if self.quiet:
                yield
                return
            t0 = time.monotonic()
            tty = sys.stderr.isatty()
            stop = threading.Event()
            ticker = None
            if tty:

                def tick() -> None:
                    while not stop.wait(self.TICK_SECONDS):
                        secs = time.monotonic() - t0
                        click.echo(f"\r{head} ... {secs:.0f} s", err=True, nl=False)

                click.echo(f"{head} ...", err=True, nl=False)
                ticker = threading.Thread(target=tick, name="foodvec-stage", daemon=True)
                ticker.start()
            else:
                click.echo(f"{head} ...", err=True)
            outcome = "failed after"
            try:
                yield
                outcome = "done in"
            finally:
                stop.set()
                if ticker is not None:
                    ticker.join()
                secs = time.monotonic() - t0
                start = "\r" if tty else ""
                click.echo(f"{start}{head}: {outcome} {secs:.1f} s", err=True)

        return running()


@cli.command("eval-model")
@click.option("--base", default="base", show_default=True, help="The model to compare with.")
@click.option(
    "--heldout",
    type=INPUT_FILE,
    help="Held-out CSV (text, label) for --plot. Default: indexer/data/heldout.csv.",
)
@click.option(
    "--plot",
    type=OUTPUT_FILE,
    help="Draw the held-out phrases in 2-D (PCA), base and tuned, to this PNG.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines (--json has none either).")
@_common
@_friendly
def eval_model(base, heldout, plot, as_json, quiet, home, model, db) -> None:
    """Compare a model with the base model on foodvec's jobs.

    Korean lookup (dense only, the benchmark's test half): mean nDCG@10, names found
    first, needs said in other words. Health: held-out label margin and 1-NN accuracy.
    English food retrieval nDCG@10. [UNK] rate on Hangul words. Mining: the model's
    threshold, the share of sample-corpus pairs above it, and the average precision of
    planted near-duplicates in the mined list. Each stage (about 45 s a model on 2
    cores) is a line on stderr.
    """
    from indexer.quality import model_report
    from indexer.settings import DATA_DIR

    tuned = model
    if tuned is None:
        with _open(home, None, db) as idx:
            tuned = str(idx.default_model_path)
    heldout = heldout or DATA_DIR / "heldout.csv"
    stages = _Stages(3 if plot else 2, quiet=quiet or as_json)
    what = "lookup, health, English, [UNK] and mining figures"
    with stages.stage(f"base model ({base}): {what}"):
        figures = {"base": model_report(base)}
    with stages.stage(f"model ({tuned}): {what}"):
        figures["tuned"] = model_report(tuned)
    if plot:
        from indexer.plot import plot_pair

        with stages.stage(f"plot of the held-out phrases -> {plot}"):
            plot_pair(tuned, base, heldout, plot)
    if as_json:
        _emit({"model": tuned, "base": base, **figures, "plot": str(plot) if plot else None})
        return
    click.echo(f"model: {tuned}")
    _print_figures(figures)
    if plot:
        click.echo(f"plot: {plot}")


@cli.command()
@click.option(
    "--threshold",
    type=click.FloatRange(-1, 1),
    help="Keep pairs whose cosine is at least this. Default: the threshold calibrated "
    "for the model when it was trained (`stats` shows it), else 0.9.",
)
@click.option(
    "--top-k",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Neighbours looked at per item (a pair counts when either item has the "
    "other among its top k).",
)
@click.option(
    "--exact", "mode", flag_value="exact", help="Exact mining (compares every pair, in chunks)."
)
@click.option(
    "--approximate",
    "mode",
    flag_value="approximate",
    help="Approximate kNN (an IVF index built for the job).",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Mine only items whose metadata KEY equals VALUE; repeatable.",
)
@_where_option(WHERE_HELP)
@click.option(
    "--max-pairs",
    type=click.IntRange(1),
    help="Keep at most this many pairs (the best; default 1,000,000); the number left "
    "out is reported.",
)
@click.option(
    "--output",
    type=OUTPUT_FILE,
    help="Write every pair to FILE (.csv, .jsonl or .parquet), with its kind of match.",
)
@click.option(
    "--format",
    "out_fmt",
    type=click.Choice(PAIR_FORMATS),
    help="Format of --output (default: from its extension).",
)
@click.option(
    "--clusters",
    "show_clusters",
    is_flag=True,
    help="Group the items into clusters whose members are all within --threshold of "
    "one another (complete linkage), largest first, each with its least similar pair.",
)
@click.option(
    "--of",
    "of_id",
    metavar="ID",
    help="Show the paraphrases of item ID from the latest finished job "
    "(or --job N) instead of mining.",
)
@click.option(
    "--job",
    "job_id",
    type=click.IntRange(-(2**63), 2**63 - 1),  # the database's integers
    help="With --of or --clusters: use this job.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 2**63 - 1),
    default=20,
    show_default=True,
    help="Pairs shown in the summary table.",
)
@_ray_option("Search the neighbours (in blocks of rows; the pairs are a local run's)")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per pair.")
@_common
@_friendly
def mine(
    threshold,
    top_k,
    mode,
    filters,
    where,
    max_pairs,
    output,
    out_fmt,
    show_clusters,
    of_id,
    job_id,
    limit,
    ray_address,
    quiet,
    as_json,
    home,
    model,
    db,
) -> None:
    """Find near-duplicate and paraphrased descriptions across the whole index.

    Each run is a job recorded in the database with its pairs. Below 20,000 items
    mining is exact; above, it uses an approximate kNN (recall measured in bench/mine.py);
    --exact forces exact mode. Pairs are never dropped silently.
    """
    from indexer.mining import get_job, job_clusters, job_pairs, latest_done_job

    flt = _parse_pairs(filters, "--filter")
    cond = _parse_where(where)
    with _open(home, model, db) as idx:
        if of_id is not None or (show_clusters and job_id is not None):
            job = job_id if job_id is not None else latest_done_job(idx)
            if job is None:
                raise click.ClickException("no finished mining job yet: run `foodvec mine`")
            found = get_job(idx, job)
            if found is None:
                raise click.ClickException(f"no job {job}; `foodvec jobs` lists the jobs")
            if found["status"] != "done":
                raise click.ClickException(f"job {job} is {found['status']}, not done")
            if of_id is not None:
                pairs = job_pairs(idx, job, of=of_id)
                _show_pairs(pairs, as_json, f"paraphrases of {of_id} (job {job})", None)
            if show_clusters:
                _show_clusters(job_clusters(idx, job), as_json, found["params"]["threshold"])
            return
        if threshold is None:
            threshold = idx.mining_threshold()
        res = idx.mine(
            threshold=threshold,
            top_k=top_k,
            mode=mode or "auto",
            filters=flt or None,
            where=cond,
            max_pairs=max_pairs,
            progress=not quiet and not as_json,
            ray=ray_address,
        )
        if output:
            n = _write_pairs(output, out_fmt, job_pairs(idx, res.job))
            click.echo(f"wrote {n} pairs to {output}", err=True)
        if as_json:
            for p in job_pairs(idx, res.job):
                _emit(p)
        else:
            head = (
                f"job {res.job}: {res.pairs} pairs with cosine >= {threshold} among "
                f"{res.items} items (top-{top_k}, {res.mode} mode, {res.seconds:.1f} s)"
            )
            if res.left_out:
                head += f"; {res.left_out} more pairs left out by --max-pairs"
            _show_pairs(job_pairs(idx, res.job, limit=limit), False, head, res.pairs)
        if show_clusters:
            _show_clusters(job_clusters(idx, res.job), as_json, threshold)
        if res.left_out and as_json:
            click.echo(f"{res.left_out} pairs left out by --max-pairs", err=True)


def _show_pairs(pairs: list[dict], as_json: bool, head: str, total: int | None) -> None:
    from indexer.mining import group_pairs

    if as_json:
        for p in pairs:
            _emit(p)
        return
    click.echo(head)
    for item, group in group_pairs(pairs):
        p = group[0]
        text = p["text_a"] if p["id_a"] == item else p["text_b"]
        click.echo(f"  {item}  {text}  ({len(group)} pair{'s' if len(group) > 1 else ''})")
        for p in group:
            other, other_text = (
                (p["id_b"], p["text_b"]) if p["id_a"] == item else (p["id_a"], p["text_a"])
            )
            click.echo(f"    {p['score']:.4f}  {p['kind']:<12}  {other}  {other_text}")
    if total is not None and total > len(pairs):
        click.echo(f"  … {total - len(pairs)} more (--output FILE or --json for all)")
    if not pairs:
        click.echo("  (no pairs)")


def _show_clusters(groups: list[dict], as_json: bool, threshold: float) -> None:
    if as_json:
        for n, g in enumerate(groups, 1):
            _emit({"cluster": n, **g})
        return
    largest = f", the largest has {groups[0]['size']} items" if groups else ""
    click.echo(f"{len(groups)} clusters (every two members at cosine >= {threshold}){largest}")
    for n, g in enumerate(groups, 1):
        least = g["least_similar"]
        click.echo(
            f"  cluster {n} ({g['size']} items; least similar: {least['id_a']} ~ "
            f"{least['id_b']} {least['score']:.4f})"
        )
        for m in g["members"]:
            click.echo(f"    {m['id']}  {m['text']}")


def _write_pairs(path: Path, fmt: str | None, pairs: list[dict]) -> int:
    from indexer.writers import output_format, write_rows

    cols = ["id_a", "id_b", "text_a", "text_b", "score", "kind"]
    return write_rows(path, output_format(path, fmt, PAIR_FORMATS), cols, pairs)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON line per job.")
@click.option(
    "--delete",
    "delete_ids",
    type=click.IntRange(1, 2**63 - 1),
    multiple=True,
    metavar="JOB",
    help="Delete this job and its pairs (a job still running is refused); repeatable.",
)
@_common
@_friendly
def jobs(as_json, delete_ids, home, model, db) -> None:
    """List mining jobs: parameters, status, timings and pair counts."""
    from indexer.mining import delete_job, list_jobs

    with _open(home, model, db, read=True) as idx:
        for job_id in delete_ids:
            delete_job(idx, job_id)
            click.echo(f"deleted job {job_id} and its pairs", err=True)
        rows = list_jobs(idx)
    if as_json:
        for r in rows:
            _emit(r)
        return
    if not rows:
        click.echo("no jobs yet")
    for r in rows:
        p = r["params"]
        click.echo(
            f"job {r['id']}  {r['status']:11s} threshold {p.get('threshold')} "
            f"top-k {p.get('top_k')} mode {r['mode'] or p.get('mode')}  "
            f"items {r['items']}  pairs {r['pair_count']}  {r['seconds']} s  "
            f"started {r['started_at']}  generation {r['generation']}"
            + (f"  ({r['error']})" if r["error"] else "")
        )


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. A non-loopback address needs a token (or --insecure).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--token",
    metavar="TOKEN",
    help="Require `Authorization: Bearer TOKEN` for writes (or set FOODVEC_TOKEN).",
)
@click.option("--protect-reads", is_flag=True, help="Require the token for reads too.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address without a token.")
@click.option(
    "--compact-every",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds between saves of the FAISS index (0: only at shutdown).",
)
@click.option(
    "--log-format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="json: one JSON object per log line (requests included), for log collectors.",
)
@_common
@_friendly
def serve(
    host, port, token, protect_reads, insecure, compact_every, log_format, home, model, db
) -> None:
    """Serve search, live updates and mining jobs over HTTP (OpenAPI at /docs and
    /redoc, which work offline).

    On start it says on stderr where it listens, the home, the store, the item count,
    the model and the mode (who may read and write). Each request is one log line with
    its status, duration in ms and request id; the response carries the id in
    X-Request-ID (a sane one sent by the client is kept).
    """
    from .service import serve as run

    token = token or settings().token
    run(home, model, db, host, port, token, protect_reads, insecure, compact_every, log_format)


def main() -> None:
    # Python hands bytes that are not UTF-8 over as lone surrogates, which no database
    # or file format can take: refuse them here as bad usage, naming the argument.
    for n, arg in enumerate(sys.argv[1:], 1):
        if has_lone_surrogate(arg):
            try:
                shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            except UnicodeEncodeError:  # a surrogate no argv byte makes (set by a caller)
                shown = arg.encode("utf-8", "backslashreplace").decode("utf-8")
            click.echo(
                f"Error: argument {n} ({shown}) is not valid UTF-8; foodvec takes its "
                "arguments, paths included, as UTF-8",
                err=True,
            )
            sys.exit(2)
        if "\x00" in arg:  # no exec hands one over; a caller setting sys.argv can
            click.echo(f"Error: argument {n} holds a NUL character", err=True)
            sys.exit(2)
    cli(prog_name="foodvec")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
