"""Paraphrase mining and its recorded jobs: mine, jobs."""

from __future__ import annotations

from pathlib import Path

import click

from indexer.home import FoodIndex

from .common import (
    OUTPUT_FILE,
    WHERE_HELP,
    Target,
    emit_each,
    home_command,
    json_flag,
    options,
    parse_pairs,
    parse_where,
    quiet_flag,
    ray_option,
    where_option,
)

PAIR_FORMATS = ("csv", "jsonl", "parquet")  # what `mine --output` writes
DB_INTEGER = click.IntRange(-(2**63), 2**63 - 1)  # the database's integers

# Which pairs a mining job looks for.
_MINING_OPTIONS = options(
    click.option(
        "--threshold",
        type=click.FloatRange(-1, 1),
        help="Keep pairs whose cosine is at least this. Default: the threshold calibrated "
        "for the model when it was trained (`stats` shows it), else 0.9.",
    ),
    click.option(
        "--top-k",
        type=click.IntRange(1, 1000),
        default=10,
        show_default=True,
        help="Neighbours looked at per item (a pair counts when either item has the "
        "other among its top k).",
    ),
    click.option(
        "--exact", "mode", flag_value="exact", help="Exact mining (compares every pair, in chunks)."
    ),
    click.option(
        "--approximate",
        "mode",
        flag_value="approximate",
        help="Approximate kNN (an IVF index built for the job).",
    ),
    click.option(
        "--filter",
        "filters",
        multiple=True,
        metavar="KEY=VALUE",
        help="Mine only items whose metadata KEY equals VALUE; repeatable.",
    ),
    where_option(WHERE_HELP),
    click.option(
        "--max-pairs",
        type=click.IntRange(1),
        help="Keep at most this many pairs (the best; default 1,000,000); the number left "
        "out is reported.",
    ),
)

# What is done with the pairs found (or with those of an earlier job).
_PAIRS_OPTIONS = options(
    click.option(
        "--output",
        type=OUTPUT_FILE,
        help="Write every pair to FILE (.csv, .jsonl or .parquet), with its kind of match.",
    ),
    click.option(
        "--format",
        "out_fmt",
        type=click.Choice(PAIR_FORMATS),
        help="Format of --output (default: from its extension).",
    ),
    click.option(
        "--clusters",
        "show_clusters",
        is_flag=True,
        help="Group the items into clusters whose members are all within --threshold of "
        "one another (complete linkage), largest first, each with its least similar pair.",
    ),
    click.option(
        "--of",
        "of_id",
        metavar="ID",
        help="Show the paraphrases of item ID from the latest finished job "
        "(or --job N) instead of mining.",
    ),
    click.option("--job", "job_id", type=DB_INTEGER, help="With --of or --clusters: use this job."),
    click.option(
        "--limit",
        type=click.IntRange(1, 2**63 - 1),
        default=20,
        show_default=True,
        help="Pairs shown in the summary table.",
    ),
)


@click.command()
@_MINING_OPTIONS
@_PAIRS_OPTIONS
@ray_option("Search the neighbours (in blocks of rows; the pairs are a local run's)")
@quiet_flag()
@json_flag("One JSON line per pair.")
@home_command
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
    at: Target,
) -> None:
    """Find near-duplicate and paraphrased descriptions across the whole index.

    Each run is a job recorded in the database with its pairs. Below 20,000 items
    mining is exact; above, it uses an approximate kNN (recall measured in bench/mine.py);
    --exact forces exact mode. Pairs are never dropped silently.
    """
    flt = parse_pairs(filters, "--filter")
    cond = parse_where(where)
    with at.open() as idx:
        if of_id is not None or (show_clusters and job_id is not None):
            _show_job(idx, job_id, of_id, show_clusters, as_json)
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
            n = _write_pairs(output, out_fmt, idx.job_pairs(res.job))
            click.echo(f"wrote {n} pairs to {output}", err=True)
        if as_json:
            emit_each(idx.job_pairs(res.job))
        else:
            head = (
                f"job {res.job}: {res.pairs} pairs with cosine >= {threshold} among "
                f"{res.items} items (top-{top_k}, {res.mode} mode, {res.seconds:.1f} s)"
            )
            if res.left_out:
                head += f"; {res.left_out} more pairs left out by --max-pairs"
            _show_pairs(idx.job_pairs(res.job, limit=limit), False, head, res.pairs)
        if show_clusters:
            _show_clusters(idx.job_clusters(res.job), as_json, threshold)
        if res.left_out and as_json:
            click.echo(f"{res.left_out} pairs left out by --max-pairs", err=True)


def _show_job(
    idx: FoodIndex, job_id: int | None, of_id: str | None, show_clusters: bool, as_json: bool
) -> None:
    """The paraphrases of one item (--of) and the clusters (--clusters) of a finished
    job: --job, else the latest."""
    job = job_id if job_id is not None else idx.latest_done_job()
    if job is None:
        raise click.ClickException("no finished mining job yet: run `foodvec mine`")
    found = idx.job(job)
    if found is None:
        raise click.ClickException(f"no job {job}; `foodvec jobs` lists the jobs")
    if found["status"] != "done":
        raise click.ClickException(f"job {job} is {found['status']}, not done")
    if of_id is not None:
        pairs = idx.job_pairs(job, of=of_id)
        _show_pairs(pairs, as_json, f"paraphrases of {of_id} (job {job})", None)
    if show_clusters:
        _show_clusters(idx.job_clusters(job), as_json, found["params"]["threshold"])


def _show_pairs(pairs: list[dict], as_json: bool, head: str, total: int | None) -> None:
    from indexer.mining import group_pairs

    if as_json:
        emit_each(pairs)
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
        emit_each({"cluster": n, **g} for n, g in enumerate(groups, 1))
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


@click.command()
@json_flag("One JSON line per job.")
@click.option(
    "--delete",
    "delete_ids",
    type=click.IntRange(1, 2**63 - 1),
    multiple=True,
    metavar="JOB",
    help="Delete this job and its pairs (a job still running is refused); repeatable.",
)
@home_command
def jobs(as_json, delete_ids, at: Target) -> None:
    """List mining jobs: parameters, status, timings and pair counts."""
    with at.open(read=True) as idx:
        for job_id in delete_ids:
            idx.delete_job(job_id)
            click.echo(f"deleted job {job_id} and its pairs", err=True)
        rows = idx.list_jobs()
    if as_json:
        emit_each(rows)
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
