"""Making and searching the index: init, build, search, vacuum."""

from __future__ import annotations

import click

from indexer.ann import KINDS
from indexer.build import ON_ERROR, BuildOptions
from indexer.readers import FORMATS
from indexer.text import normalize_text
from indexer.understand import describe_parse, parse_query

from .common import (
    INPUT_FILE,
    OUTPUT_FILE,
    WHERE_HELP,
    Target,
    emit,
    home_command,
    json_flag,
    options,
    parse_pairs,
    parse_where,
    quiet_flag,
    ray_option,
    where_option,
)


@click.command()
@home_command
def init(at: Target) -> None:
    """Create the database, or migrate it to the newest schema."""
    with at.open() as idx:
        click.echo(f"database ready in {idx.home} (schema up to date)")


# How build reads its files and writes their rows.
_BUILD_OPTIONS = options(
    click.option(
        "--text-column",
        default="text",
        show_default=True,
        help="Column holding the food description.",
    ),
    click.option(
        "--id-column",
        default=None,
        help="Column holding each row's id. Default: `id` if the file has it, else "
        "an id derived from the text (t- and 16 hex digits of its SHA-256).",
    ),
    click.option(
        "--name-column",
        default=None,
        help="Column holding each food's name, for the exact-name rule of search. Default: "
        "`name` if the file has it, else the text's leading label before a colon.",
    ),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(("auto",) + FORMATS),
        default="auto",
        show_default=True,
        help="Input format; auto reads the file extension.",
    ),
    click.option(
        "--index",
        "index_kind",
        type=click.Choice(("auto",) + KINDS),
        default="auto",
        show_default=True,
        help="FAISS index: flat (exact), hnsw, ivf or ivf-sq8 (8-bit codes, re-ranked "
        "exactly); auto is flat up to 50,000 items, ivf up to 1,000,000, ivf-sq8 above.",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(1, 100_000),
        default=2048,
        show_default=True,
        help="Rows embedded and written per batch.",
    ),
    click.option(
        "--on-error",
        type=click.Choice(ON_ERROR),
        default="fail",
        show_default=True,
        help="fail: a bad row stops the build and nothing lands. skip: good rows land "
        "and bad ones go to a report file.",
    ),
    click.option(
        "--report",
        type=OUTPUT_FILE,
        help="Where --on-error skip writes rejected rows (JSONL). "
        "Default: HOME/reports/rejected-<time>.jsonl.",
    ),
    click.option(
        "--fix-encoding",
        is_flag=True,
        help="Repair mis-decoded text (UTF-8 read as Windows-1252/Latin-1) with ftfy.",
    ),
    click.option(
        "--keep-text",
        multiple=True,
        metavar="COLUMN",
        help="Keep this CSV/TSV column's values as text (repeatable; '*' for every column). "
        "Otherwise plain numerals (12, -3.5, 1e3; not 007 or +1) become numbers, so "
        "--where 'kcal<200' works.",
    ),
    click.option(
        "--vector-column",
        metavar="COLUMN",
        help="Take each row's vector from COLUMN (a list of numbers of the model's size, "
        "unit length; e.g. `foodvec export --vectors`) instead of embedding its text.",
    ),
    click.option(
        "--reembed",
        is_flag=True,
        help="Switch the index to the given model, re-embedding every stored text.",
    ),
    ray_option(
        "Embed the texts (after every row is read and validated, in one Ray Data job; the "
        "vectors are bit for bit a local build's)"
    ),
)


@click.command()
@click.argument("files", nargs=-1, required=True, type=INPUT_FILE)
@_BUILD_OPTIONS
@quiet_flag()
@json_flag("Print the summary as JSON.")
@home_command
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
    at: Target,
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
    with at.open() as idx:
        summary = idx.build(files, opts, index_kind=index_kind)
        stats = idx.stats()
    if as_json:
        emit({**summary.as_dict(), "index": stats["index"]})
    else:
        _print_build(summary, stats)


def _print_build(s, stats: dict) -> None:
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


_SEARCH_OPTIONS = options(
    click.option(
        "-k",
        "k",
        type=click.IntRange(1, 1000),
        default=10,
        show_default=True,
        help="Results per query.",
    ),
    click.option(
        "--filter",
        "filters",
        multiple=True,
        metavar="KEY=VALUE",
        help="Only items whose metadata KEY equals VALUE (as text); repeatable.",
    ),
    where_option(WHERE_HELP),
    click.option(
        "--mode",
        type=click.Choice(("hybrid", "dense", "lexical")),
        default="hybrid",
        show_default=True,
        help="hybrid: meaning and keywords fused, an exact name first. dense: cosine of "
        "the model's vectors only. lexical: Korean-aware keyword (BM25) search only.",
    ),
    click.option(
        "--min-score",
        type=float,
        help="Drop results whose score is below this (cosine in dense mode; see --mode).",
    ),
    click.option(
        "--explain",
        is_flag=True,
        help="Show how each query was read: the needs and nutrients it names and which "
        'way it wants them (also in --json as "parse").',
    ),
)


@click.command()
@click.argument("queries", nargs=-1, required=True)
@_SEARCH_OPTIONS
@json_flag("One JSON line per query.")
@home_command
def search(queries, k, filters, where, mode, min_score, explain, as_json, at: Target) -> None:
    """Find the foods that best answer each QUERY.

    The default hybrid mode fuses the model's cosine similarity with a Korean-aware
    keyword search, so names, spellings and nutrients match as typed (spacing and
    particles do not matter) while needs said in other words still find their foods.
    """
    flt = parse_pairs(filters, "--filter")
    cond = parse_where(where)
    with at.open(read=True) as idx:
        if mode != "lexical":  # keyword search loads no model
            idx.prefetch_model()
        results = idx.search(
            list(queries), k=k, filters=flt or None, where=cond, min_score=min_score, mode=mode
        )
    for q, hits in zip(queries, results, strict=True):
        parse = parse_query(normalize_text(q))
        if as_json:
            emit({"query": q, "parse": parse.as_dict(), "results": [h.as_dict() for h in hits]})
        else:
            _print_hits(q, parse, hits, explain)


def _print_hits(q: str, parse, hits: list, explain: bool) -> None:
    click.echo(f"{q}")
    if explain:
        click.echo(f"  read as: {describe_parse(parse)}")
    if not hits:
        click.echo("  (no results)")
    for n, h in enumerate(hits, 1):
        meta = ", ".join(f"{k_}={v}" for k_, v in h.metadata.items())
        click.echo(f"  {n:2d}. {h.score:.4f}  {h.id}  {h.text}" + (f"  [{meta}]" if meta else ""))
        health = f"(health {h.health:.2f})" if h.health is not None else ""
        if h.why:
            click.echo(f"      why: {' · '.join(h.why)}  {health}".rstrip())
        elif explain and health:
            click.echo(f"      {health}")


@click.command()
@home_command
def vacuum(at: Target) -> None:
    """Delete cached vectors that no item uses any more (after rewrites and deletes).

    Safe while a build runs: a build re-embeds any of its texts whose vector was
    collected before it applies its rows.
    """
    with at.open() as idx:
        n, left = idx.collect_vectors()
    click.echo(f"deleted {n} unused vectors; {left} left")
