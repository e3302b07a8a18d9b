"""The HTTP service (FastAPI): the app, its middleware and error mapping, and ``serve``.

Writes are acknowledged only after their database transaction commits (SQLite or
PostgreSQL), so an acknowledged write survives a kill -9; the in-memory FAISS index
catches up from the change log at once (read your writes) and is saved to disk
periodically, not per request.
Other processes writing to the same home (a CLI build) are noticed by generation. The
routes are in ``routes_ops``, ``routes_search``, ``routes_items`` and ``routes_jobs``;
request bodies in ``schemas``; metrics in ``metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from indexer.errors import (
    BadInputError,
    BusyError,
    FoodvecError,
    ModelMismatchError,
    ModelNotFoundError,
    NotFoundError,
)
from indexer.home import FoodIndex
from indexer.settings import Settings, settings

from . import routes_items, routes_jobs, routes_ops, routes_search
from .docs import add_docs
from .logs import RequestLog, announce, log_config, startup_facts
from .metrics import MetricsMiddleware
from .outage import RETRY_AFTER_S, Outage, unavailable
from .schemas import MAX_BODY_BYTES
from .state import Limits, Service

log = logging.getLogger("foodvec")


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413, chunked ones too."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = JSONResponse({"detail": f"request body over {self.limit} bytes"}, status_code=413)
        if length is not None:
            try:
                if int(length) > self.limit:
                    return await too_big(scope, receive, send)
            except ValueError:
                return await JSONResponse({"detail": "bad Content-Length"}, status_code=400)(
                    scope, receive, send
                )
        if length is not None:
            return await self.app(scope, receive, send)
        # A chunked body has no declared length: read it here, up to the limit, so an
        # oversized one gets 413 before the app's body parser sees it (which would
        # report any failure while reading as a 400).
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.limit:
                return await too_big(scope, receive, send)
            chunks.append(body)
            if not message.get("more_body"):
                break
        whole, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ResponseLimit:
    """ASGI middleware: a response whose declared length is over ``limit`` bytes is
    replaced by a 413 naming the limit (search and pages of items count their bytes as
    they assemble them, so they never hold that much; this holds for every route). A
    streamed body without a declared length is cut at the limit."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = {"done": False, "sent": 0}

        async def limited(message):
            if state["done"]:
                return
            if message["type"] == "http.response.start":
                declared = dict(message.get("headers") or []).get(b"content-length")
                if declared is not None and int(declared) > self.limit:
                    state["done"] = True
                    refusal = JSONResponse(
                        {
                            "detail": f"the response would be {int(declared)} bytes; the "
                            f"limit is {self.limit} (FOODVEC_MAX_RESPONSE_BYTES): ask for "
                            "less (a smaller limit, k or fewer queries)"
                        },
                        status_code=413,
                    )
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 413,
                            "headers": refusal.raw_headers,
                        }
                    )
                    await send({"type": "http.response.body", "body": refusal.body})
                    return
            elif message["type"] == "http.response.body":
                state["sent"] += len(message.get("body", b""))
                if state["sent"] > self.limit:
                    state["done"] = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
            await send(message)

        await self.app(scope, receive, limited)


PROTECT_READS_NEEDS_TOKEN = (
    "--protect-reads needs a token (--token or FOODVEC_TOKEN): without one, reads are open"
)


def _status(exc: FoodvecError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, (ModelMismatchError, ModelNotFoundError)):
        return 409
    if isinstance(exc, BadInputError):
        return 400
    if isinstance(exc, BusyError):
        return 429
    return 500


@dataclass(frozen=True)
class SavePolicy:
    """When a server saves its in-memory index (each save rewrites the whole FAISS file:
    1.5 GB at a million items). An index of at most ``small`` items is saved at every
    look; a larger one once ``share`` of its items changed since its last save, or
    ``max_age`` seconds after that save, whichever comes first. Between saves the change
    log holds what a restart needs to catch up."""

    small: int = 50_000
    share: float = 0.01
    max_age: float = 600.0

    def due(self, count: int, changed: int | None, age: float) -> bool:
        if changed == 0:
            return False
        if changed is None or count <= self.small or age >= self.max_age:
            return True
        return changed >= self.share * count


# Seconds between looks for an index to rebuild beside the one served (its kind for
# the items it holds, a newer shared layout: ``DerivedIndex.rebuild_aside``).
RELAYOUT_EVERY_S = 2.0


class _Background:
    """The server's life around its requests: at start, the analyzer and the model
    warmed and the index caught up; while serving, a thread that publishes the index
    every ``compact_every`` seconds, one that catches it up every ``catch_up_every``
    seconds when it is behind (0: no thread) and one that rebuilds it beside the one
    served when it no longer fits (``RELAYOUT_EVERY_S``); at the end, a last publish."""

    def __init__(
        self,
        index: FoodIndex,
        compact_every: float,
        catch_up_every: float,
        outage: Outage,
        saves: SavePolicy,
    ):
        self.index = index
        self.saves = saves
        self.outage = outage
        self.compact_every = compact_every
        self.catch_up_every = catch_up_every
        self.stop = threading.Event()

    def catch_up(self) -> None:
        failing = False
        # PostgreSQL tells of each write's commit (LISTEN/NOTIFY): a write through any
        # replica is caught up at once; the look every catch_up_every seconds stays as
        # the fallback (a notification lost with a connection, SQLite, which cannot tell).
        listener = self.index.generation_listener()
        while not self.stop.is_set():
            if listener is not None:
                listener.wait(self.catch_up_every)
            if self.stop.wait(0 if listener is not None else self.catch_up_every):
                break
            try:
                self.index.catch_up()  # a big change read ahead, applied in slices
                failing = False
                self.outage.end()
            except Exception as exc:  # the database away: said once, retried each tick
                if unavailable(exc):
                    self.outage.begin(exc)
                elif not failing:
                    log.warning(
                        "catching the index up failed (%s: %s); retrying",
                        type(exc).__name__,
                        exc,
                    )
                failing = True
        if listener is not None:
            listener.close()

    def relayout(self) -> None:
        while not self.stop.wait(RELAYOUT_EVERY_S):
            # each on its own: a landing that cannot land never stops the relayout
            _try_step(self.index.finish_landings, "finishing a big build that stopped")
            _try_step(self.index.rebuild_aside, "rebuilding the index aside")

    def compact(self) -> None:
        saved = time.monotonic()
        while not self.stop.wait(self.compact_every):
            try:
                count, changed = self.index.unpublished()
                if self.saves.due(count, changed, time.monotonic() - saved):
                    self.index.publish()
                    saved = time.monotonic()
            except Exception as exc:  # a failed save is retried at the next tick
                log.warning("saving the index failed (%s: %s); retrying", type(exc).__name__, exc)

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        index = self.index
        if self.catch_up_every > 0:
            index.serve_aside()  # misfit indexes rebuilt by the relayout thread
        index.warm_lexical()  # the Korean analyzer, before the first write or catch-up
        index.sync(publish=None)  # catch up on whatever happened while we were down
        index.warm_index()  # the FAISS file's pages copied in before the first write
        index.warm_fields()  # filters answered in memory from the first request
        if index.state()[1] is not None:
            index.embedder.encode(["warm up"])  # load the model before the first request
        for every, work, name in (
            (self.compact_every, self.compact, "foodvec-compactor"),
            (self.catch_up_every, self.catch_up, "foodvec-catch-up"),
            (self.catch_up_every, self.relayout, "foodvec-relayout"),
        ):
            if every > 0:
                threading.Thread(target=work, name=name, daemon=True).start()
        yield
        self.stop.set()
        index.publish()


def _try_step(step, what: str) -> None:
    """One step of a background look; a failure is said and the next look tries again
    (the database away: the outage's to say)."""
    try:
        step()
    except Exception as exc:
        if not unavailable(exc):
            log.warning("%s failed (%s: %s); retrying", what, type(exc).__name__, exc)


def create_app(
    index: FoodIndex,
    token: str | None = None,
    protect_reads: bool = False,
    compact_every: float = 30.0,
    allowed_hosts: list[str] | None = None,
    catch_up_every: float = 0.5,
    limits: Limits | None = None,
    saves: SavePolicy | None = None,
) -> FastAPI:
    """The app over one ``FoodIndex``. ``token``: writes need ``Authorization: Bearer``.
    ``allowed_hosts``: the Host header values accepted (a loopback server accepts only
    loopback names, so a page on another site cannot reach it by DNS rebinding).
    ``catch_up_every``: seconds between looks at the database's generation; an index
    found behind (a write through another replica or process) is caught up from the
    change log then, so an idle replica becomes ready without a search (0: never).
    ``limits``: what one request may ask for (default: from the settings).
    ``saves``: when the in-memory index is saved, looked at every ``compact_every``
    seconds (``SavePolicy``).
    ``protect_reads`` without a token is refused: it would leave every read open."""
    if protect_reads and not token:
        raise BadInputError(PROTECT_READS_NEEDS_TOKEN)
    limits = limits or Limits.from_settings()
    outage = Outage()
    background = _Background(index, compact_every, catch_up_every, outage, saves or SavePolicy())
    lifespan = background.lifespan
    app = FastAPI(
        title="foodvec",
        version="0.1.0",
        lifespan=lifespan,
        description="Semantic search over food descriptions.",
        docs_url=None,  # /docs and /redoc from local files (docs.py), not a CDN
        redoc_url=None,
    )
    svc = Service(index, token=token, protect_reads=protect_reads, limits=limits)
    app.state.foodvec = svc
    for module in (routes_ops, routes_search, routes_items, routes_jobs):
        app.include_router(module.router)
    add_docs(app)
    _admin_page(app)
    _error_handlers(app, outage)
    app.add_middleware(ResponseLimit, limit=limits.max_response_bytes)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics)
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    # outermost: every request logged with its duration and id, refused ones too
    app.add_middleware(RequestLog)
    return app


def _admin_page(app: FastAPI) -> None:
    """``/admin``: mining, jobs and deleting items, a page apart from the search page
    (``/``); it asks for the token and sends it with each request."""

    @app.get("/admin", response_class=HTMLResponse, include_in_schema=False)
    def admin() -> str:
        from importlib import resources

        return resources.files("search.service").joinpath("admin.html").read_text(encoding="utf-8")


def _error_handlers(app: FastAPI, outage: Outage) -> None:
    @app.exception_handler(SQLAlchemyError)
    def _database(request: Request, exc: SQLAlchemyError):
        if unavailable(exc):
            outage.begin(exc)
            return JSONResponse(
                {"detail": "the database is unavailable; retry shortly"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        log.error("database error on %s", request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    @app.exception_handler(FoodvecError)
    def _foodvec_error(request: Request, exc: FoodvecError):
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc))

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError):
        errors = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"where": "body", "problem": "invalid request"}
        return JSONResponse(
            {"detail": f"{first['where']}: {first['problem']}", "errors": errors}, status_code=422
        )

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception):
        # Any other failure is ours; say so without a traceback (logged by uvicorn).
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)


LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]", "::1"]
# How long a server starting while its database is away waits for it.
DB_WAIT_S = 300.0


def _open_waiting(open_index, wait: float, first_pause: float = 0.5) -> FoodIndex:
    """``open_index()``, tried again with a growing pause (0.5 s doubling to 5 s) while
    the database cannot be reached, for up to ``wait`` seconds; said once."""
    deadline = time.monotonic() + wait
    pause, said = first_pause, False
    while True:
        try:
            index = open_index()
        except SQLAlchemyError as exc:
            if not unavailable(exc) or time.monotonic() + pause > deadline:
                raise
            if not said:
                log.warning(
                    "the database cannot be reached (%s); waiting for it (up to %.0f s)",
                    str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200],
                    wait,
                )
                said = True
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
            continue
        if said:
            log.warning("the database is reachable; starting")
        return index


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    home: Path | None,
    model: str | None,
    db: str | None,
    host: str,
    port: int,
    token: str | None,
    protect_reads: bool,
    insecure: bool,
    compact_every: float,
    log_format: str = "text",
    config: Settings | None = None,
    db_wait: float = DB_WAIT_S,
) -> None:
    """Serve a home until stopped; ``config``: the settings read at the command line's
    edge (default: the environment now). A database that cannot be reached at start is
    waited for, up to ``db_wait`` seconds (``_open_waiting``)."""
    import uvicorn

    cfg = config if config is not None else settings()

    if not is_loopback(host) and not token and not insecure:
        raise BadInputError(
            f"refusing to listen on {host} without a token: set FOODVEC_TOKEN, or pass "
            "--insecure to serve writes to anyone who can reach it"
        )
    if protect_reads and not token:
        raise BadInputError(PROTECT_READS_NEEDS_TOKEN)
    index = _open_waiting(lambda: FoodIndex(home=home, model=model, db=db, config=cfg), db_wait)
    app = create_app(
        index,
        token=token,
        protect_reads=protect_reads,
        compact_every=compact_every,
        allowed_hosts=LOOPBACK_NAMES + [host] if is_loopback(host) else None,
        limits=Limits.from_settings(cfg),
    )
    db_url = db or cfg.db or index.layout.db_url
    facts = startup_facts(index, host, port, db_url, token, protect_reads, is_loopback(host))
    announce(facts, log_format)
    level = cfg.log_level
    config = log_config(log_format, level)
    # the levels are in the config (requests logged whatever the level)
    uvicorn.run(app, host=host, port=port, log_config=config, log_level=None)
