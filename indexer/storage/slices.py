"""Big builds land in slices: past ``SLICE_ROWS`` staged rows, a build does not hold
the write lock for one long transaction (a million rows held it for minutes, and
every other writer waited). Its rows are copied from the staging table to
``landing_rows`` in parts of ``SLICE_ROWS``, a short transaction each; one more marks
the landing "landing", and from that commit on the build lands whole: one part per
write transaction, each its own generation, so other writers go between the parts and
replicas catch up part by part.

A build stopped before that commit lands nothing (its copied rows are cleared later).
One stopped after it is finished by the next process that looks (``finish_stale``: a
server every few seconds, the next big build): the parts are in the database, their
vectors are kept from ``foodvec vacuum``, and each part is landed under the write
lock by whoever takes it next, once. Between two parts a search can see the parts
landed so far; a write to one of the build's items that lands between two parts is
overwritten when that item's part lands after it (the later write wins).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, text

from ..errors import FoodvecError
from .sql import Database, WriteTx, get_state, get_state_int
from .staging import Applied, Embed, Staging, commit_generation, embed_lost, land

log = logging.getLogger("foodvec")

# Rows a part of a big build holds: one write transaction lands it (about a second of
# the write lock on PostgreSQL, less on SQLite).
SLICE_ROWS = 10_000
# A landing whose process has not moved it on for this long is finished by another.
STALE_S = 30.0
# Landed landings are kept this long for `foodvec stats`, then forgotten.
KEEP_LANDED_S = 3600.0

_PART = (
    "(SELECT ext_id, text, hash, meta, src, seq, name, nkey FROM landing_rows "
    "WHERE landing = :lb AND part = :lp)"
)


@dataclass
class _Landing:
    id: int
    state: str
    model_fp: str
    model_name: str
    dim: int
    rows: int
    parts: int
    landed: int
    new: int
    updated: int
    unchanged: int
    generation: int | None


def _read(conn: Connection, landing: int) -> _Landing | None:
    row = conn.execute(
        text(
            "SELECT id, state, model_fp, model_name, dim, rows, parts, landed, new, "
            "updated, unchanged, generation FROM landings WHERE id = :b"
        ),
        {"b": landing},
    ).first()
    return _Landing(*row) if row else None


# -- the build's own process ----------------------------------------------------------
def apply(
    staging: Staging,
    model_fp: str,
    model_name: str,
    dim: int,
    embed: Embed,
    switch_model: bool,
    refuse: Callable[[str], Exception],
) -> Applied:
    """Land a build's staged rows (``Staging.apply``'s arguments): past ``SLICE_ROWS``
    rows in parts, each under the write lock alone; a re-embedding build (it switches
    the home's model) and a smaller one in one write transaction."""
    if staging.staged > SLICE_ROWS and not switch_model:
        return land_staged(staging, model_fp, model_name, dim, embed, refuse)
    return staging.apply(model_fp, model_name, dim, embed, switch_model, refuse)


def land_staged(
    staging: Staging,
    model_fp: str,
    model_name: str,
    dim: int,
    embed: Embed,
    refuse: Callable[[str], Exception],
) -> Applied:
    """Land a big build's staged rows in parts (``Staging.apply`` past ``SLICE_ROWS``)."""
    try:
        finish_stale(staging.store)  # another build's, left when its process stopped
    except FoodvecError as exc:  # it cannot land: said, and this build goes on
        log.warning("a landing left by a build that stopped cannot be finished: %s", exc)
    landing, lost = _copy(staging, model_fp, model_name, dim, embed, refuse)
    done = None
    while done is None or done.state != "landed":
        done = land_part(staging.store, lambda: _staging_tx(staging), landing, embed)
        if done is None:  # gone: never expected while its own process lands it
            raise FoodvecError(f"internal error: landing {landing} vanished while landing")
    with staging.store.read() as conn:
        items = conn.execute(text("SELECT count(*) FROM items")).scalar_one()
        gen = done.generation  # None: no part changed anything
        if gen is None:
            gen = get_state_int(conn, "generation", 0)
    return Applied(done.new, done.updated, done.unchanged, lost, gen, items)


@contextmanager
def _staging_tx(staging: Staging) -> Iterator[Connection]:
    """A write transaction on the build's own connection (commits synchronously)."""
    with staging._begin(immediate=True):
        staging._before_apply()
        yield staging.conn


def _copy(
    staging: Staging,
    model_fp: str,
    model_name: str,
    dim: int,
    embed: Embed,
    refuse: Callable[[str], Exception],
) -> tuple[int, int]:
    """Copy the staged rows to ``landing_rows`` in parts, embed again any text whose
    vector went missing, then mark the landing "landing" (from then on it lands whole).
    Returns the landing's id and how many texts were embedded again."""
    conn = staging.conn
    with staging._begin(immediate=True):
        staging._relation()  # the rows still in memory join the table
        staging._takes_model(model_fp, False, refuse)
        staging._index_seq()
        landing = conn.execute(
            text(
                "INSERT INTO landings(state, model_fp, model_name, dim, rows, parts, "
                "landed, new, updated, unchanged) VALUES ('copying', :m, :n, :d, 0, 0, 0, "
                "0, 0, 0) RETURNING id"
            ),
            {"m": model_fp, "n": model_name, "d": dim},
        ).scalar_one()
    try:
        parts, rows = _copy_parts(staging, landing)
        if rows != staging.staged:
            raise FoodvecError(
                f"internal error: {staging.staged} rows staged but {rows} copied to "
                "land; nothing was written"
            )
        relation = "(SELECT hash, text FROM landing_rows WHERE landing = :lb)"
        with staging._begin(immediate=True):
            staging._before_apply()  # the commit point: on disk before it is said done
            staging._takes_model(model_fp, False, refuse)  # again, under the write lock
            lost = embed_lost(conn, relation, {"lb": landing}, model_fp, embed)
            held = conn.execute(
                text("SELECT count(*) FROM landing_rows WHERE landing = :b"), {"b": landing}
            ).scalar_one()
            marked = conn.execute(
                text(
                    "UPDATE landings SET state = 'landing', rows = :r, parts = :p, "
                    f"moved_at = {staging.store.now_sql} WHERE id = :b AND state = 'copying'"
                ),
                {"r": rows, "p": parts, "b": landing},
            ).rowcount
            if held != rows or marked != 1:
                raise FoodvecError(
                    f"the copy of this build's rows was cleared as abandoned ({held} of "
                    f"{rows} rows left); nothing was written: run the build again"
                )
    except BaseException:
        _clear(staging.store, landing)
        raise
    return landing, len(lost)


def _copy_parts(staging: Staging, landing: int) -> tuple[int, int]:
    """Copy the staging table to ``landing_rows``, ``SLICE_ROWS`` rows a part in
    input order, one short transaction each; (parts, rows copied)."""
    conn, last, part, rows = staging.conn, None, 0, 0
    while True:
        with staging._begin(immediate=True):
            moved = conn.execute(
                text(
                    f"UPDATE landings SET moved_at = {staging.store.now_sql} "
                    "WHERE id = :b AND state = 'copying'"
                ),
                {"b": landing},
            ).rowcount
            if moved != 1:  # cleared by another process as abandoned
                raise FoodvecError(
                    "the copy of this build's rows was cleared as abandoned; nothing was "
                    "written: run the build again"
                )
            after = "" if last is None else "WHERE seq > :last "
            copied = conn.execute(
                text(
                    "INSERT INTO landing_rows(landing, part, ext_id, text, hash, meta, src, "
                    "seq, name, nkey) SELECT :b, :p, ext_id, text, hash, meta, src, seq, "
                    f"name, nkey FROM {staging.table} {after}ORDER BY seq LIMIT :n"
                ),
                {"b": landing, "p": part, "n": SLICE_ROWS, "last": last},
            ).rowcount
            if copied <= 0:
                return part, rows
            last = conn.execute(
                text("SELECT max(seq) FROM landing_rows WHERE landing = :b AND part = :p"),
                {"b": landing, "p": part},
            ).scalar_one()
        part, rows = part + 1, rows + copied


# -- any process ----------------------------------------------------------------------
def land_part(
    store: Database,
    tx: Callable[[], AbstractContextManager[Connection]],
    landing: int,
    embed: Embed | None = None,
) -> _Landing | None:
    """Land the next part of ``landing`` in one write transaction (``tx()``); the
    landing as it stands after (state "landed" once its last part is in), or None when
    it is gone or not landing. ``embed`` None: a text without a vector is refused
    (vacuum keeps them; never expected)."""
    with tx() as conn:
        b = _read(conn, landing)
        if b is None or b.state != "landing":
            return b if b is not None and b.state == "landed" else None
        tx_ = WriteTx(conn, get_state_int(conn, "generation", 0) + 1, store.where_key)
        active = get_state(conn, "model")
        if active != b.model_fp:
            items = conn.execute(text("SELECT count(*) FROM items")).scalar_one()
            if active is not None and items:
                raise FoodvecError(
                    f"landing {landing} cannot land: the home's model is {active[:12]}, "
                    f"not its {b.model_fp[:12]}, and {items} items are stored"
                )
            tx_.set_model(b.model_fp, b.model_name, b.dim)
        p = {"lb": landing, "lp": b.landed}
        embed_lost(conn, _PART, p, b.model_fp, embed)
        done = land(tx_, _PART, p)
        gen = commit_generation(tx_, store) if tx_.touched else b.generation
        conn.execute(text("DELETE FROM landing_rows WHERE landing = :lb AND part = :lp"), p)
        b.landed += 1
        b.new, b.updated = b.new + done.new, b.updated + done.updated
        b.unchanged += done.unchanged
        b.generation = gen
        b.state = "landed" if b.landed >= b.parts else "landing"
        conn.execute(
            text(
                "UPDATE landings SET state = :s, landed = :l, new = :n, updated = :u, "
                f"unchanged = :c, generation = :g, moved_at = {store.now_sql} WHERE id = :b"
            ),
            {"s": b.state, "l": b.landed, "n": b.new, "u": b.updated, "c": b.unchanged,
             "g": gen, "b": landing},
        )  # fmt: skip
    return b


def finish_stale(store: Database, stale_s: float | None = None) -> list[int]:
    """Finish the landings whose process has not moved them on for ``stale_s``
    seconds (it stopped, or died), clear the copies that never became landings, and
    forget landed ones past ``KEEP_LANDED_S``. Returns the landings finished."""
    stale_s = STALE_S if stale_s is None else stale_s
    with store.read() as conn:
        rows = conn.execute(
            text(
                "SELECT id, state FROM landings WHERE state != 'landed' "
                f"AND moved_at <= {store.seconds_ago_sql}"
            ),
            {"s": stale_s},
        ).all()
        rows += conn.execute(
            text(
                "SELECT id, state FROM landings WHERE state = 'landed' "
                f"AND moved_at <= {store.seconds_ago_sql}"
            ),
            {"s": KEEP_LANDED_S},
        ).all()
    finished = []
    for landing, state in rows:
        if state != "landing":
            _clear(store, landing, stale_s if state == "copying" else None)
            continue
        log.info("finishing landing %d, left by a build that stopped", landing)
        while (b := land_part(store, store.immediate, landing)) is not None:
            if b.state == "landed":
                finished.append(landing)
                break
    return finished


def _clear(store: Database, landing: int, stale_s: float | None = None) -> None:
    """Remove a landing and its rows (a part a transaction), unless it is landing;
    ``stale_s``: only while its process has not moved it on for that long (checked
    again in each transaction, under the write lock its copy takes too)."""
    stale = f"SELECT 1 FROM landings WHERE id = :b AND moved_at <= {store.seconds_ago_sql}"
    while True:
        with store.immediate() as conn:
            b = _read(conn, landing)
            if b is None or b.state == "landing":
                return
            if (
                stale_s is not None
                and not conn.execute(text(stale), {"b": landing, "s": stale_s}).first()
            ):
                return  # its process moved it on meanwhile: not abandoned
            part = conn.execute(
                text("SELECT min(part) FROM landing_rows WHERE landing = :b"), {"b": landing}
            ).scalar_one()
            if part is None:
                conn.execute(text("DELETE FROM landings WHERE id = :b"), {"b": landing})
                return
            conn.execute(
                text("DELETE FROM landing_rows WHERE landing = :b AND part = :p"),
                {"b": landing, "p": part},
            )


def describe(store: Database) -> list[dict]:
    """The landings in the database, newest first, for ``foodvec stats``."""
    with store.read() as conn:
        rows = conn.execute(
            text(
                "SELECT id, state, rows, parts, landed, new, updated, unchanged, "
                "generation, started_at, moved_at FROM landings ORDER BY id DESC"
            )
        ).all()
    keys = ("id", "state", "rows", "parts", "landed", "new", "updated", "unchanged",
            "generation", "started_at", "moved_at")  # fmt: skip
    return [
        {k: (str(v) if k.endswith("_at") else v) for k, v in zip(keys, r, strict=True)}
        for r in rows
    ]
