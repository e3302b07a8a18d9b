"""The ``foodvec`` command line: each command parses, calls the library, reports.

Exit codes: 0 success, 1 a runtime error (one line on stderr), 2 bad usage.
The commands live by what they work on: ``index`` (init, build, search, vacuum),
``records`` (add, get, update, delete, list, export), ``jobs`` (mine, jobs), ``ops``
(serve, stats, verify, backup, restore) and ``model`` (train, eval-model); ``common``
holds what they share.
"""

from __future__ import annotations

import logging
import sys

import click

from indexer.text import has_lone_surrogate

from . import index, jobs, model, ops, records
from .common import Edge

COMMANDS = (
    index.init,
    index.build,
    index.search,
    index.vacuum,
    records.add,
    records.get,
    records.update,
    records.delete,
    records.list_items,
    records.export,
    jobs.mine,
    jobs.jobs,
    ops.serve,
    ops.stats,
    ops.verify,
    ops.backup,
    ops.restore,
    model.train,
    model.eval_model,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="foodvec")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """foodvec: semantic search over food descriptions.

    Index a file of foods with `foodvec build`, look foods up with `foodvec search`.
    Everything of one index lives in one folder (--home / FOODVEC_HOME).
    """
    ctx.obj = Edge()  # the settings, read once for the command that runs
    _log_to_stderr()


for _command in COMMANDS:
    cli.add_command(_command)


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
