"""One item at a time, or the items that match: add, get, update, delete, list, export."""

from __future__ import annotations

import json

import click

from indexer.readers import FORMATS

from .common import (
    META_HELP,
    OUTPUT_FILE,
    Target,
    emit,
    home_command,
    json_flag,
    parse_meta,
    parse_where,
    record_line,
    where_option,
)

_MATCHING = "Only items matching EXPR (the --where of search; repeatable)."


@click.command()
@click.argument("text")
@click.option("--id", "ext_id", help="The item's id (default: derived from the text).")
@click.option(
    "--meta", multiple=True, metavar="KEY=VALUE", help="Metadata; repeatable. " + META_HELP
)
@json_flag("Print the result as JSON.")
@home_command
def add(text, ext_id, meta, as_json, at: Target) -> None:
    """Insert or update one item."""
    record = {**parse_meta(meta), "text": text}
    if ext_id is not None:
        record["id"] = ext_id
    with at.open() as idx:
        s = idx.upsert([record])
    what = "added" if s.new else ("updated" if s.updated else "unchanged")
    if as_json:
        emit({"status": what, "generation": s.generation, "items": s.items})
    else:
        click.echo(f"{what}; {s.items} items, generation {s.generation}")


@click.command()
@click.argument("ids", nargs=-1)
@where_option("Delete every item matching EXPR (the --where of search; repeatable, all hold).")
@click.option("--dry-run", is_flag=True, help="With --where: count the items, delete none.")
@json_flag("Print the result as JSON.")
@home_command
def delete(ids, where, dry_run, as_json, at: Target) -> None:
    """Delete items by id (all of them, or none if any id is unknown), or every item
    matching --where."""
    if bool(ids) == bool(where):
        raise click.UsageError("give item ids or --where, not both and not neither")
    if dry_run and not where:
        raise click.UsageError("--dry-run goes with --where")
    cond = parse_where(where)
    with at.open() as idx:
        if cond is not None:
            n = idx.delete_where(cond, dry_run=dry_run)
        else:
            n = idx.delete(list(ids))
        left = idx.count()
    if as_json:
        emit({("would_delete" if dry_run else "deleted"): n, "items": left})
    elif dry_run:
        click.echo(f"would delete {n} of {left} items")
    else:
        click.echo(f"deleted {n}; {left} items left")


@click.command()
@click.argument("item_id")
@json_flag("Print the item as JSON.")
@home_command
def get(item_id, as_json, at: Target) -> None:
    """Show one item: its id, text and metadata."""
    with at.open(read=True) as idx:
        rec = idx.get(item_id)
    if rec is None:
        raise click.ClickException(f"not in the index: {item_id!r}")
    if as_json:
        emit(rec)
        return
    click.echo(record_line(rec))


@click.command("list")
@where_option(_MATCHING)
@click.option(
    "--offset", type=click.IntRange(0, 2**63 - 1), default=0, help="Skip this many items first."
)
@click.option(
    "--limit", type=click.IntRange(1, 2**63 - 1), help="At most this many items (default: all)."
)
@json_flag("One JSON line per item.")
@home_command
def list_items(where, offset, limit, as_json, at: Target) -> None:
    """List items in a stable order (the order they were added), streaming."""
    cond = parse_where(where)
    left = limit
    cursor = None
    with at.open(read=True) as idx:
        while left is None or left > 0:
            size = 5000 if left is None else min(5000, left)
            recs, cursor = idx.records(cond, offset=offset, limit=size, after=cursor)
            offset = 0  # the offset applies once; the cursor carries on from there
            for rec in recs:
                click.echo(json.dumps(rec, ensure_ascii=False) if as_json else record_line(rec))
            if left is not None:
                left -= len(recs)
            if cursor is None:
                break


@click.command()
@click.argument("item_id")
@click.option(
    "--meta",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set KEY (repeatable). " + META_HELP,
)
@click.option("--unset", multiple=True, metavar="KEY", help="Remove KEY (repeatable).")
@json_flag("Print the updated item as JSON.")
@home_command
def update(item_id, meta, unset, as_json, at: Target) -> None:
    """Change an item's metadata without re-embedding its text."""
    values = parse_meta(meta)
    with at.open() as idx:
        gen = idx.update(item_id, values, unset=list(unset))
        rec = idx.get(item_id)
    if as_json:
        emit({**rec, "generation": gen})
    else:
        click.echo(f"updated; generation {gen}\n{record_line(rec)}")


@click.command()
@click.argument("file", type=OUTPUT_FILE)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="csv, tsv, jsonl or parquet (default: from FILE's extension).",
)
@where_option(_MATCHING)
@click.option(
    "--vectors",
    is_flag=True,
    help="Add each item's vector as a `vector` column (build reads it back with "
    "--vector-column vector, embedding nothing).",
)
@json_flag("Print the result as JSON.")
@home_command
def export(file, fmt, where, vectors, as_json, at: Target) -> None:
    """Write the items to FILE: id, text and one column per metadata key.

    `foodvec build FILE` reads it back into the same items. JSONL and Parquet keep
    every value's type; CSV and TSV write nested values as JSON text, and a text that
    reads as a number comes back a number unless built with --keep-text.
    """
    cond = parse_where(where)
    with at.open(read=True) as idx:
        n = idx.export(file, fmt, where=cond, vectors=vectors)
    if as_json:
        emit({"file": str(file), "items": n})
    else:
        click.echo(f"wrote {n} items to {file}")
