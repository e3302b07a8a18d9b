"""The HTTP service (FastAPI): search, live upserts and deletes, mining jobs.

Writes are acknowledged only after their database transaction commits (SQLite WAL), so
an acknowledged write survives a kill -9; the in-memory FAISS index catches up from the
change log at once (read your writes) and is saved to disk periodically, not per request.
Other processes writing to the same home (a CLI build) are noticed by generation.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as FastAPIPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from indexer.errors import (
    BadInputError,
    FoodvecError,
    ModelMismatchError,
    ModelNotFoundError,
    NotFoundError,
)
from indexer.home import FoodIndex
from indexer.text import MAX_TEXT_CHARS

from .engine import MAX_K, Searcher
from .page import PAGE

log = logging.getLogger("foodvec")
MAX_BODY_BYTES = 4 * 1024 * 1024
# Mining jobs at once per server: each holds every vector in memory and keeps a core busy.
MAX_RUNNING_JOBS = 2
MAX_ITEMS_PER_REQUEST = 1000
MAX_QUERIES_PER_REQUEST = 100
RAW_TEXT_LIMIT = 4 * MAX_TEXT_CHARS  # before white space is folded

JobId = Annotated[int, FastAPIPath(ge=1, le=2**62)]  # SQLite integers are 64-bit
Text = Annotated[str, Field(min_length=1, max_length=RAW_TEXT_LIMIT)]
Scalar = str | int | float | bool


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Text | None = None
    queries: (
        Annotated[list[Text], Field(min_length=1, max_length=MAX_QUERIES_PER_REQUEST)] | None
    ) = None
    k: int = Field(10, ge=1, le=MAX_K)
    filters: dict[Annotated[str, Field(min_length=1, max_length=200)], Scalar] = Field(
        default_factory=dict, max_length=20
    )
    # The scale of ``score`` depends on the mode (README "Search"), so no fixed bounds.
    min_score: float | None = Field(None, allow_inf_nan=False)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"

    @model_validator(mode="after")
    def one_of_query_or_queries(self):
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of query (a string) or queries (a list)")
        return self


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, Field(min_length=1, max_length=200)]
    text: Text
    metadata: dict[Annotated[str, Field(min_length=1, max_length=200)], Any] = Field(
        default_factory=dict, max_length=100
    )

    @field_validator("metadata")
    @classmethod
    def no_reserved_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = {"id", "text"} & set(v)
        if bad:
            raise ValueError(f"metadata may not use the keys {sorted(bad)}")
        return v


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)]


class MineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # None: the model's calibrated threshold (as `foodvec mine`).
    threshold: float | None = Field(None, ge=-1.0, le=1.0)
    top_k: int = Field(10, ge=1, le=100)
    filters: dict[Annotated[str, Field(min_length=1, max_length=200)], Scalar] = Field(
        default_factory=dict, max_length=20
    )


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




def _status(exc: FoodvecError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, (ModelMismatchError, ModelNotFoundError)):
        return 409
    if isinstance(exc, BadInputError):
        return 400
    return 500


def create_app(
    index: FoodIndex,
    token: str | None = None,
    protect_reads: bool = False,
    compact_every: float = 30.0,
    allowed_hosts: list[str] | None = None,
) -> FastAPI:
    """The app over one ``FoodIndex``. ``token``: writes need ``Authorization: Bearer``.
    ``allowed_hosts``: the Host header values accepted (a loopback server accepts only
    loopback names, so a page on another site cannot reach it by DNS rebinding)."""
    searcher = Searcher(index)
    stop = threading.Event()
    running: set[threading.Thread] = set()

    def check_token(request: Request) -> None:
        if not token:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            raise HTTPException(
                401,
                "a valid Authorization: Bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def read_access(request: Request) -> None:
        if protect_reads:
            check_token(request)

    def compactor() -> None:
        while not stop.wait(compact_every):
            try:
                index.publish()
            except Exception as exc:  # a failed save is retried at the next tick
                log.warning("saving the index failed (%s: %s); retrying", type(exc).__name__, exc)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        index.sync(publish=None)  # catch up on whatever happened while we were down
        if index.store.state()[1] is not None:
            index.embedder.encode(["warm up"])  # load the model before the first request
        if compact_every > 0:
            threading.Thread(target=compactor, name="foodvec-compactor", daemon=True).start()
        yield
        stop.set()
        index.publish()

    app = FastAPI(
        title="foodvec",
        version="0.1.0",
        lifespan=lifespan,
        description="Semantic search over food descriptions.",
    )

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

    @app.get("/health")
    def health() -> dict[str, Any]:
        if protect_reads:
            return {"status": "ok"}  # the generation and model are for readers with the token
        gen, model = index.store.state()
        return {"status": "ok", "generation": gen, "model": model}

    @app.get("/stats", dependencies=[Depends(read_access)])
    def stats() -> dict[str, Any]:
        return index.stats()

    @app.post("/search", dependencies=[Depends(read_access)])
    def search(req: SearchRequest) -> dict[str, Any]:
        queries = [req.query] if req.query is not None else list(req.queries or [])
        results = searcher.search(
            queries,
            k=req.k,
            filters={k: _as_text(v) for k, v in req.filters.items()} or None,
            min_score=req.min_score,
            mode=req.mode,
        )
        lists = [[h.as_dict() for h in hits] for hits in results]
        if req.query is not None:
            return {"query": req.query, "results": lists[0]}
        return {
            "results": [{"query": q, "results": r} for q, r in zip(queries, lists, strict=True)]
        }

    @app.post("/items", dependencies=[Depends(check_token)])
    def upsert(req: UpsertRequest) -> dict[str, Any]:
        records = [{"id": it.id, "text": it.text, "metadata": it.metadata} for it in req.items]
        summary = index.upsert(records, publish=False)
        return {
            "upserted": summary.new + summary.updated,
            "new": summary.new,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "generation": summary.generation,
        }

    @app.delete("/items/{item_id:path}", dependencies=[Depends(check_token)])
    def delete(item_id: str) -> dict[str, Any]:
        n = index.delete([item_id], publish=False)
        return {"deleted": n, "generation": index.store.generation()}

    @app.post("/jobs/mine", dependencies=[Depends(check_token)])
    def start_mine(req: MineRequest) -> dict[str, Any]:
        from .mining import run_mining_job, start_job

        live = {t for t in running if t.is_alive()}
        running.intersection_update(live)
        if len(live) >= MAX_RUNNING_JOBS:
            raise HTTPException(
                429,
                f"{len(live)} mining jobs are running (the most at once is "
                f"{MAX_RUNNING_JOBS}); try again when one has finished",
            )
        threshold = req.threshold if req.threshold is not None else index.mining_threshold()
        params = {
            "threshold": threshold,
            "top_k": req.top_k,
            "filters": {k: _as_text(v) for k, v in req.filters.items()},
        }
        job = start_job(index, params)

        def work() -> None:
            try:
                run_mining_job(
                    index,
                    threshold=threshold,
                    top_k=req.top_k,
                    filters=params["filters"] or None,
                    job_id=job,
                )
            except Exception as exc:  # recorded as failed in the job row
                log.warning("mining job %s failed: %s: %s", job, type(exc).__name__, exc)

        t = threading.Thread(target=work, name=f"foodvec-mine-{job}", daemon=True)
        running.add(t)
        t.start()
        return {"job": job}

    @app.get("/jobs/{job_id}", dependencies=[Depends(read_access)])
    def job_status(job_id: JobId) -> dict[str, Any]:
        from .mining import get_job

        job = get_job(index, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.delete("/jobs/{job_id}", dependencies=[Depends(check_token)])
    def job_delete(job_id: JobId) -> dict[str, Any]:
        from .mining import delete_job

        delete_job(index, job_id)  # NotFoundError -> 404, a running job -> 400
        return {"deleted": job_id}

    @app.get("/jobs/{job_id}/pairs", dependencies=[Depends(read_access)])
    def pairs(
        job_id: JobId,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        from .mining import get_job, job_pairs

        job = get_job(index, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        if job["status"] != "done":
            raise HTTPException(409, f"job {job_id} is {job['status']}, not done")
        return {
            "job": job_id,
            "offset": offset,
            "limit": limit,
            "total": job["pair_count"],
            "pairs": job_pairs(index, job_id, limit=limit, offset=offset),
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return PAGE

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    return app


LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]", "::1"]


def _as_text(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


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
) -> None:
    import uvicorn

    if not is_loopback(host) and not token and not insecure:
        raise BadInputError(
            f"refusing to listen on {host} without a token: set FOODVEC_TOKEN, or pass "
            "--insecure to serve writes to anyone who can reach it"
        )
    index = FoodIndex(home=home, model=model, db=db)
    app = create_app(
        index,
        token=token,
        protect_reads=protect_reads,
        compact_every=compact_every,
        allowed_hosts=LOOPBACK_NAMES + [host] if is_loopback(host) else None,
    )
    uvicorn.run(app, host=host, port=port, log_level=os.environ.get("FOODVEC_LOG", "warning"))
