"""Running and keeping a home: serve, stats, verify, backup, restore."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (
    FOLDER,
    Target,
    emit,
    home_command,
    json_flag,
    options,
    report_problems,
)

# Where the server listens and who may use it.
_SERVE_OPTIONS = options(
    click.option(
        "--host",
        default="127.0.0.1",
        show_default=True,
        help="Address to listen on. A non-loopback address needs a token (or --insecure).",
    ),
    click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True),
    click.option(
        "--token",
        metavar="TOKEN",
        help="Require `Authorization: Bearer TOKEN` for writes (or set FOODVEC_TOKEN).",
    ),
    click.option("--protect-reads", is_flag=True, help="Require the token for reads too."),
    click.option("--insecure", is_flag=True, help="Allow a non-loopback address without a token."),
    click.option(
        "--compact-every",
        type=click.FloatRange(0),
        default=30.0,
        show_default=True,
        help="Seconds between looks at whether to save the index (0: only at shutdown). An "
        "index of up to 50,000 items is saved at every look; a larger one once 1% of its "
        "items changed or 10 minutes after its last save.",
    ),
    click.option(
        "--log-format",
        type=click.Choice(("text", "json")),
        default="text",
        show_default=True,
        help="json: one JSON object per log line (requests included), for log collectors.",
    ),
)


@click.command()
@_SERVE_OPTIONS
@home_command
def serve(
    host, port, token, protect_reads, insecure, compact_every, log_format, at: Target
) -> None:
    """Serve search, live updates and mining jobs over HTTP (OpenAPI at /docs and
    /redoc, which work offline).

    On start it says on stderr where it listens, the home, the store, the item count,
    the model and the mode (who may read and write). Each request is one log line with
    its status, duration in ms and request id; the response carries the id in
    X-Request-ID (a sane one sent by the client is kept).
    """
    from search.service import serve as run

    token = token or at.settings.token
    run(
        at.home,
        at.model,
        at.db,
        host,
        port,
        token,
        protect_reads,
        insecure,
        compact_every,
        log_format,
        config=at.settings,
    )


@click.command()
@json_flag("Print one JSON object.")
@home_command
def stats(as_json, at: Target) -> None:
    """How many items, which model, which index."""
    with at.open(read=True) as idx:
        s = idx.stats()
    if as_json:
        emit(s)
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
    for lay in s.get("layouts", [])[:1]:  # the shared IVF layout in force
        recall = lay["recall_at_10"]
        click.echo(
            f"layout:     epoch {lay['epoch']}, {lay['nlist']} lists trained on "
            f"{lay['trained_count']} items, recall@10 "
            f"{'-' if recall is None else f'{recall:.3f}'} (shared by every home on the database)"
        )
    for b in s.get("landings", []):
        if b["state"] != "landed":  # a big build landing in slices, or stopped mid-way
            click.echo(
                f"landing:    build {b['id']} ({b['rows']} rows) {b['state']}: "
                f"{b['landed']} of {b['parts']} parts landed, last moved {b['moved_at']}"
            )
    click.echo(f"mining:     default threshold {s['mine_threshold']}")
    head = s.get("health_head")
    click.echo(
        f"health:     head accuracy {head['heldout_accuracy']} on held-out phrases, "
        f"{head.get('foods_accuracy') or '-'} on held-out foods"
        if head
        else "health:     the model has no health head (scores from stated facts only)"
    )


@click.command()
@home_command
def verify(at: Target) -> None:
    """Check that the FAISS index and the database agree (ids, count, vectors)."""
    with at.open(read=True) as idx:
        problems = idx.verify()
        s = idx.stats()
    if problems:
        report_problems(problems)
        raise click.exceptions.Exit(1)
    click.echo(f"ok: index and database agree ({s['items']} items, generation {s['generation']})")


@click.command()
@click.argument("dest", type=FOLDER)
@click.option(
    "--with-model",
    is_flag=True,
    help="Copy the trained model into the backup (default: hard-link its files, or "
    "reference its folder where links cannot be made).",
)
@json_flag("Print the result as JSON.")
@home_command
def backup(dest, with_model, as_json, at: Target) -> None:
    """Copy the home into the new folder DEST, safely while writers run.

    The database is copied with SQLite's online backup (it holds every write committed
    before the backup began), with the index files of that moment; the trained default
    model is hard-linked (or copied with --with-model). `foodvec restore DEST --home NEW`
    makes a home of it again.
    """
    with at.open() as idx:
        out = idx.backup(dest, with_model=with_model)
    if as_json:
        emit(out)
    else:
        click.echo(
            f"backed up generation {out['generation']} to {out['backup']} in {out['seconds']} s"
        )


@click.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_flag("Print the result as JSON.")
@home_command
def restore(src, as_json, at: Target) -> None:
    """Make the home (--home, which must hold no database yet) from a backup folder,
    then check it as `verify` does."""
    from indexer.home import FoodIndex

    if at.db:
        raise click.UsageError("restore makes a SQLite home; --db does not apply")
    with FoodIndex.restore(src, at.home, model=at.model) as idx:
        problems = idx.verify()
        s = idx.stats()
    if as_json:
        keys = ("home", "items", "generation")
        emit({**{k: s[k] for k in keys}, "problems": problems})
    else:
        click.echo(f"restored {s['items']} items (generation {s['generation']}) into {s['home']}")
        report_problems(problems)
    if problems:
        raise click.exceptions.Exit(1)
