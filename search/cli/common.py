"""What the commands share: the options every command takes, the settings of one
command line, error messages, opening the home, parsing and printing."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from indexer.errors import FoodvecError
from indexer.home import FoodIndex
from indexer.settings import Settings, settings

INPUT_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUTPUT_FILE = click.Path(dir_okay=False, path_type=Path)
FOLDER = click.Path(file_okay=False, path_type=Path)

WHERE_HELP = (
    "Only items whose metadata satisfies EXPR: kcal<200, 'category in (과일,채소)', "
    "'note ~ 저염', brand? (has it), or a JSON filter; repeatable, all must hold "
    "(docs/filters.md)."
)
META_HELP = (
    "A plain numeral becomes a number (as in CSV files, so "
    "--where 'kcal<200' finds it); true, false and quoted values are taken as JSON."
)


# -- options ------------------------------------------------------------------------
def options(*decorators: Callable) -> Callable:
    """Several option decorators as one, in the order given (as if stacked)."""

    def apply(f: Callable) -> Callable:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def where_option(help_text: str) -> Callable:
    """--where EXPR (repeatable), the filter language's short form or JSON."""
    return click.option("--where", "where", multiple=True, metavar="EXPR", help=help_text)


def ray_option(what: str) -> Callable:
    return click.option(
        "--ray",
        "ray_address",
        metavar="ADDRESS",
        help=f"{what} on a Ray cluster: `auto` joins the one running on this machine or "
        "starts one; else the head's address (HOST:PORT or ray://HOST:PORT). Needs "
        "`pip install 'foodvec[cluster]'`; every node needs the model folder.",
    )


def json_flag(help_text: str) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def quiet_flag(help_text: str = "No progress bar.") -> Callable:
    return click.option("--quiet", "-q", is_flag=True, help=help_text)


_HOME_OPTIONS = options(
    click.option(
        "--home",
        metavar="DIR",
        type=FOLDER,
        help="Folder holding the database, index and models "
        "(default: $FOODVEC_HOME or ~/.local/share/foodvec).",
    ),
    click.option(
        "--model",
        "model",
        metavar="PATH",
        help="A sentence-transformers model folder, or `base` for the untuned "
        "all-MiniLM-L6-v2. Default: $FOODVEC_MODEL, else the model the index was built with, "
        "else the trained default in HOME/models/default.",
    ),
    click.option(
        "--db",
        metavar="URL",
        help="SQLAlchemy URL of the database (default: $FOODVEC_DB, else SQLite in the home).",
    ),
)


# -- the settings of one command line -------------------------------------------------
class Edge:
    """The click context object of one command line: the settings, read from the
    environment once, when a command first needs them (`foodvec CMD --help` needs none,
    so a bad variable does not spoil it)."""

    @functools.cached_property
    def settings(self) -> Settings:
        return settings()


def current_settings() -> Settings:
    return click.get_current_context().ensure_object(Edge).settings


@dataclass(frozen=True)
class Target:
    """The home a command works on: --home, --model and --db as given."""

    home: Path | None
    model: str | None
    db: str | None

    @property
    def settings(self) -> Settings:
        return current_settings()

    def open(self, read: bool = False) -> FoodIndex:
        """The home; a reading command (``read``) never creates one: a mistyped --home is
        an error naming the path, not a new empty home that answers nothing."""
        if read:
            _require_database(self.home, self.db, self.settings)
        return FoodIndex(home=self.home, model=self.model, db=self.db, config=self.settings)


def home_command(f: Callable) -> Callable:
    """--home, --model and --db, accepted by every command and handed to it as one
    ``Target`` (``at``); library errors become one-line messages with exit code 1."""

    @functools.wraps(f)
    def wrapper(*args, home, model, db, **kwargs):
        return f(*args, at=Target(home, model, db), **kwargs)

    return _HOME_OPTIONS(friendly(wrapper))


def _require_database(home: Path | None, db: str | None, cfg: Settings) -> None:
    from indexer.settings import Layout

    home_path = Path(home or cfg.home).expanduser()
    url = db or cfg.db
    if url is None:
        path = Layout(home_path).database
    else:
        from indexer.storage import database_file

        path = database_file(url)
        if path is None:  # a server's database, or one opening says what is wrong with
            return
    if not path.is_file():
        where = f"no foodvec home at {home_path}" if url is None else "no database"
        raise click.ClickException(
            f"{where}: {path} does not exist (check --home, FOODVEC_HOME or --db; "
            "`foodvec init` or `foodvec build` makes one)"
        )


# -- errors ---------------------------------------------------------------------------
def friendly(f: Callable) -> Callable:
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
            raise click.ClickException(f"database error: {type(cause).__name__}: {first}") from None
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
            if current_settings().debug:
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


# -- parsing --------------------------------------------------------------------------
def parse_where(exprs: tuple[str, ...], hint: str = "--where") -> dict[str, Any] | None:
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


def parse_meta(pairs: tuple[str, ...]) -> dict[str, Any]:
    """--meta KEY=VALUE of add and update, typed as the short filter form types values."""
    from indexer.filters import parse_value

    return {k: parse_value(v) for k, v in parse_pairs(pairs, "--meta").items()}


def parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{p!r} is not key=value", param_hint=what)
        out[key.strip()] = value
    return out


# -- printing -------------------------------------------------------------------------
def emit(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


def emit_each(rows: Iterable[Any]) -> None:
    """One JSON line per row."""
    for row in rows:
        emit(row)


def record_line(rec: dict[str, Any]) -> str:
    meta = ", ".join(f"{k}={v}" for k, v in rec["metadata"].items())
    return f"{rec['id']}  {rec['text']}" + (f"  [{meta}]" if meta else "")


def report_problems(problems: list[str]) -> None:
    """What `verify` found, a MISMATCH line each on stderr."""
    for p in problems:
        click.echo(f"MISMATCH: {p}", err=True)
