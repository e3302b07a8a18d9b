"""Python clients for the HTTP API, with the method names of ``FoodIndex``: ``Client``
(blocking) and ``AsyncClient`` (asyncio), the same methods with the same arguments.

    from search.client import Client, NotFound
    with Client("http://127.0.0.1:8000", token="...") as fv:
        fv.upsert([{"id": "o1", "text": "귀리 라떼: 베타글루칸", "metadata": {"kcal": 120}}])
        for hit in fv.search("귀리", k=5, where={"kcal": {"$lt": 200}})[0]:
            print(hit.id, hit.score, hit.metadata)

Results are dataclasses (``Hit``, ``SearchResult``, ``Item``, ``UpsertResult``,
``Job``, ``Pair``, ``Stats``, ``Health``); each also answers ``result["key"]`` with the
server's own field, as the dicts of earlier versions did, and ``to_dict()``.

Errors are subclasses of ``FoodvecError``, by HTTP status: ``BadRequest`` (400, 413, 422),
``TooManyRequests`` (429), ``Unauthorized`` (401, 403), ``NotFound`` (404), ``Conflict``
(409), ``Unavailable`` (502, 503, 504; ``ConnectionFailed`` and ``Timeout`` when no
answer came), ``ServerError`` (any other 5xx). Each carries the server's message
(``detail``), the ``status``, the call (``method``, ``path``) and the server's
``request_id`` (its ``X-Request-ID``, the id in its log line). They are also
foodvec's own errors (``NotFound`` is a ``NotFoundError``, ``BadRequest`` and
``TooManyRequests`` are ``BadInputError``, ``Conflict`` a ``ModelMismatchError``), so code
written against the library catches them alike.

Retries: a connection that could not be opened or broke before the answer, and a 503,
are retried, ``retries`` times at most (default 3), after ``backoff × 2^n`` seconds
(with jitter, at most ``max_backoff``), or after the server's ``Retry-After`` when it
sends one (a wait longer than ``max_wait`` is not made: the error is raised). A
timeout waiting for the answer is not retried (the server is slow, not gone). Only
calls that are safe to repeat are retried: the reads (``health``, ``stats``, ``get``,
``records``, ``iter_records``, ``job``, ``jobs``, ``job_pairs``, ``search``, a POST
that only reads, and ``delete_where(dry_run=True)``), ``upsert`` (items are keyed by
id: a repeat leaves the same items, though its counts may then report as
``unchanged`` what a lost first try added) and ``update`` (sets and removes metadata
keys). ``delete``, ``delete_where``, ``delete_job`` and the start of a ``mine`` job
are sent once (a repeated delete that had landed would report 404 or 0; a repeated
mine would start a second job), except after a connection that could not be opened,
which means nothing was sent.

Timeouts by default: 5 s to connect, 60 s for the rest (``timeout=`` takes seconds or
an ``httpx.Timeout``). Needs ``httpx`` (``pip install 'foodvec[client]'``).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

from indexer.errors import BadInputError, FoodvecError, ModelMismatchError, NotFoundError

__all__ = [
    "AsyncClient",
    "APIError",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "FoodvecError",
    "Health",
    "Hit",
    "Item",
    "Job",
    "NotFound",
    "Pair",
    "SearchResult",
    "ServerError",
    "Stats",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "UpsertResult",
]

DEFAULT_TIMEOUT = 60.0  # seconds to read, write or wait for the pool
CONNECT_TIMEOUT = 5.0
RETRY_STATUSES = frozenset({503})
POLL_SECONDS = 0.2  # between looks at a running mining job


# -- errors ------------------------------------------------------------------------------
class APIError(FoodvecError):
    """A call that failed: ``status`` (None when no answer came), the server's message
    ``detail``, the call's ``method`` and ``path``, the server's ``request_id``."""

    def __init__(
        self,
        detail: str,
        status: int | None = None,
        method: str = "",
        path: str = "",
        request_id: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ):
        where = f"{method} {path}: " if method else ""
        code = f"{status} " if status is not None else ""
        super().__init__(f"{where}{code}{detail}")
        self.detail = detail
        self.status = status
        self.method = method
        self.path = path
        self.request_id = request_id
        self.errors = errors or []
        self.retry_after = retry_after


class BadRequest(APIError, BadInputError):
    """400, 413 or 422: the request is wrong (``errors`` lists each problem of a 422)."""


class TooManyRequests(APIError, BadInputError):
    """429: too much at once (two mining jobs are running); try again later."""


class Unauthorized(APIError):
    """401 or 403: the call needs the server's token (``Client(token=...)``)."""


class NotFound(APIError, NotFoundError):
    """404: no such item or job."""


class Conflict(APIError, ModelMismatchError):
    """409: the index belongs to another model, or a job is not done yet."""


class ServerError(APIError):
    """A 5xx: the server failed."""


class Unavailable(ServerError):
    """502, 503 or 504, or no answer at all: try again later."""


class ConnectionFailed(Unavailable):
    """The connection could not be opened, or broke before an answer came."""


class Timeout(Unavailable):
    """No answer within the timeout."""


def error_for(
    status: int,
    detail: str,
    method: str = "",
    path: str = "",
    request_id: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    retry_after: float | None = None,
) -> APIError:
    """The exception for an HTTP status."""
    if status in (401, 403):
        cls: type[APIError] = Unauthorized
    elif status == 404:
        cls = NotFound
    elif status == 409:
        cls = Conflict
    elif status == 429:
        cls = TooManyRequests
    elif status in (502, 503, 504):
        cls = Unavailable
    elif status >= 500:
        cls = ServerError
    elif status >= 400:
        cls = BadRequest
    else:
        cls = APIError
    return cls(detail, status, method, path, request_id, errors, retry_after)


# -- results -----------------------------------------------------------------------------
R = TypeVar("R", bound="_Record")


@dataclass
class _Record:
    """A result read from the server's JSON; ``raw`` keeps every field it sent."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    @classmethod
    def from_dict(cls: type[R], d: dict[str, Any]) -> R:
        names = {f.name for f in fields(cls) if f.init and f.name != "raw"}
        return cls(**{k: v for k, v in d.items() if k in names}, raw=dict(d))

    def __getitem__(self, key: str) -> Any:
        """The server's field ``key``, as the dicts of earlier versions."""
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass
class Hit(_Record):
    """One search hit: ``score`` in [0, 1] (the chance it is relevant), ``dense``
    (cosine) and ``lexical`` (keyword coverage) when the mode has them, ``why`` (the
    clauses that serve a need) and ``health`` for queries naming a need or nutrient."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    dense: float | None = None
    lexical: float | None = None
    why: list[str] | None = None
    health: float | None = None


class SearchResult(list):
    """The hits of one query, best first: a list of ``Hit`` (so ``result[0]``,
    ``len(result)`` and ``result == []`` work as on the plain lists of earlier
    versions), with the ``query`` and its reading ``parse`` (the needs and nutrients
    it names, which way round)."""

    def __init__(self, query: str, hits: Iterable[Hit] = (), parse: dict[str, Any] | None = None):
        super().__init__(hits)
        self.query = query
        self.parse = parse or {}

    @property
    def hits(self) -> list[Hit]:
        return list(self)

    def __repr__(self) -> str:
        return f"SearchResult(query={self.query!r}, hits={list.__repr__(self)})"


@dataclass
class Item(_Record):
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class UpsertResult(_Record):
    """What ``upsert`` did: items new, updated (text or metadata changed) and
    unchanged, and the database's generation after the last batch."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    generation: int = 0

    @property
    def upserted(self) -> int:
        return self.new + self.updated


@dataclass
class Job(_Record):
    """A mining job's record: ``status`` is running, done, failed or interrupted."""

    id: int
    status: str
    kind: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    model_fp: str | None = None
    generation: int | None = None
    items: int | None = None
    mode: str | None = None
    pair_count: int | None = None
    left_out: int | None = None
    error: str | None = None
    host: str | None = None
    pid: int | None = None
    started_at: str | None = None
    ended_at: str | None = None
    seconds: float | None = None


@dataclass
class Pair(_Record):
    """A mined pair, with its kind of match (same name, reworded, same profile)."""

    id_a: str
    id_b: str
    text_a: str
    text_b: str
    score: float
    kind: str | None = None


@dataclass
class Stats(_Record):
    """The same object as ``foodvec stats --json``."""

    home: str | None = None
    items: int = 0
    generation: int = 0
    model: str | None = None
    model_name: str | None = None
    dim: int | None = None
    vectors_cached: int | None = None
    mine_threshold: float | None = None
    index: dict[str, Any] = field(default_factory=dict)
    in_memory: dict[str, Any] = field(default_factory=dict)


@dataclass
class Health(_Record):
    """``status`` "ok"; the generation and model fingerprint unless reads are protected."""

    status: str
    generation: int | None = None
    model: str | None = None


# -- calls: what each method sends and makes of the answer, shared by both clients -------
@dataclass
class _Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    idempotent: bool = True  # safe to repeat: retried after a dropped connection or a 503


@dataclass
class _Sleep:
    seconds: float


Steps = Generator["_Call | _Sleep", Any, Any]


def _path(ext_id: str) -> str:
    return quote(str(ext_id), safe="")


def _search(
    queries: str | Sequence[str],
    k: int,
    where: dict[str, Any] | None,
    filters: dict[str, Any] | None,
    min_score: float | None,
    mode: str,
) -> Steps:
    qs = [queries] if isinstance(queries, str) else list(queries)
    body: dict[str, Any] = {"queries": qs, "k": k, "mode": mode}
    if where is not None:
        body["where"] = where
    if filters:
        body["filters"] = filters
    if min_score is not None:
        body["min_score"] = min_score
    got = yield _Call("POST", "/search", json=body)
    return [
        SearchResult(r["query"], [Hit.from_dict(h) for h in r["results"]], r.get("parse"))
        for r in got["results"]
    ]


def _upsert(records: Iterable[dict[str, Any]], batch: int) -> Steps:
    if batch < 1:
        raise ValueError("batch: at least 1")
    total = {"new": 0, "updated": 0, "unchanged": 0, "generation": 0}
    items = list(records)
    for start in range(0, len(items), batch):
        got = yield _Call("POST", "/items", json={"items": items[start : start + batch]})
        for key in ("new", "updated", "unchanged"):
            total[key] += got[key]
        total["generation"] = got["generation"]
    return UpsertResult.from_dict({**total, "upserted": total["new"] + total["updated"]})


def _delete(ext_ids: Sequence[str] | str) -> Steps:
    ids = [ext_ids] if isinstance(ext_ids, str) else list(ext_ids)
    deleted = 0
    for ext_id in ids:
        got = yield _Call("DELETE", f"/items/{_path(ext_id)}", idempotent=False)
        deleted += got["deleted"]
    return deleted


def _get(ext_id: str) -> Steps:
    try:
        got = yield _Call("GET", f"/items/{_path(ext_id)}")
    except NotFound:
        return None
    return Item.from_dict(got)


def _records(where: dict[str, Any] | None, offset: int, limit: int, after: str | None) -> Steps:
    params: dict[str, Any] = {"offset": offset, "limit": limit}
    if where is not None:
        params["where"] = json.dumps(where, ensure_ascii=False)
    if after is not None:
        params["after"] = after
    page = yield _Call("GET", "/items", params=params)
    return [Item.from_dict(it) for it in page["items"]], page["next"]


def _update(ext_id: str, metadata: dict[str, Any] | None, unset: Sequence[str]) -> Steps:
    body = {"metadata": metadata or {}, "unset": list(unset)}
    got = yield _Call("PATCH", f"/items/{_path(ext_id)}", json=body)
    return got["generation"]


def _delete_where(where: dict[str, Any], dry_run: bool) -> Steps:
    params = {"where": json.dumps(where, ensure_ascii=False), "dry_run": str(dry_run).lower()}
    got = yield _Call("DELETE", "/items", params=params, idempotent=dry_run)
    return got["would_delete" if dry_run else "deleted"]


def _mine(threshold: float | None, top_k: int, where: dict[str, Any] | None, wait: float) -> Steps:
    body: dict[str, Any] = {"top_k": top_k}
    if threshold is not None:
        body["threshold"] = threshold
    if where is not None:
        body["where"] = where
    started = yield _Call("POST", "/jobs/mine", json=body, idempotent=False)
    deadline = time.monotonic() + wait
    while True:
        rec = Job.from_dict((yield _Call("GET", f"/jobs/{started['job']}")))
        if rec.status != "running" or time.monotonic() > deadline:
            return rec
        yield _Sleep(POLL_SECONDS)


def _job(job: int) -> Steps:
    return Job.from_dict((yield _Call("GET", f"/jobs/{int(job)}")))


def _jobs() -> Steps:
    got = yield _Call("GET", "/jobs")
    return [Job.from_dict(j) for j in got["jobs"]]


def _delete_job(job: int) -> Steps:
    got = yield _Call("DELETE", f"/jobs/{int(job)}", idempotent=False)
    return got["deleted"]


def _job_pairs(job: int, offset: int, limit: int) -> Steps:
    params = {"offset": offset, "limit": limit}
    got = yield _Call("GET", f"/jobs/{int(job)}/pairs", params=params)
    return [Pair.from_dict(p) for p in got["pairs"]]


def _health() -> Steps:
    return Health.from_dict((yield _Call("GET", "/health")))


def _stats() -> Steps:
    return Stats.from_dict((yield _Call("GET", "/stats")))


# -- the transport rules, shared ---------------------------------------------------------
def _httpx():
    try:
        import httpx
    except ImportError:
        raise FoodvecError("the client needs httpx: pip install 'foodvec[client]'") from None
    return httpx


def _timeout(timeout: Any):
    httpx = _httpx()
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(None)
    return httpx.Timeout(float(timeout), connect=min(CONNECT_TIMEOUT, float(timeout)))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _failure(call: _Call, response) -> APIError:
    try:
        body = response.json()
    except ValueError:
        body = None
    detail: Any = body.get("detail") if isinstance(body, dict) else None
    if detail is None:
        detail = response.text.strip()[:500] or response.reason_phrase
    elif not isinstance(detail, str):
        detail = json.dumps(detail, ensure_ascii=False)
    errors = body.get("errors") if isinstance(body, dict) else None
    return error_for(
        response.status_code,
        detail,
        call.method,
        call.path,
        response.headers.get("x-request-id"),
        errors if isinstance(errors, list) else None,
        _retry_after(response.headers.get("retry-after")),
    )


def _transport_failure(call: _Call, exc: Exception) -> APIError:
    httpx = _httpx()
    cls = Timeout if isinstance(exc, httpx.TimeoutException) else ConnectionFailed
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return cls(detail, None, call.method, call.path)


class _Policy:
    """When to try a call again and how long to wait first."""

    def __init__(self, retries: int, backoff: float, max_backoff: float, max_wait: float):
        if retries < 0 or backoff < 0 or max_backoff < 0 or max_wait < 0:
            raise ValueError("retries, backoff, max_backoff and max_wait: not negative")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_wait = max_wait

    def delay(
        self, call: _Call, attempt: int, error: APIError, exc: Exception | None
    ) -> float | None:
        """Seconds to wait before try ``attempt + 1`` after ``error`` (None: give up).
        ``exc``: the transport exception when no answer came."""
        if attempt >= self.retries:
            return None
        if exc is not None:
            httpx = _httpx()
            nothing_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            if not nothing_sent and not call.idempotent:
                return None
            if isinstance(exc, httpx.TimeoutException) and not nothing_sent:
                return None  # the server is slow, not gone: waiting again would double it
        elif error.status not in RETRY_STATUSES or not call.idempotent:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_wait else None
        step = min(self.max_backoff, self.backoff * (2**attempt))
        return random.uniform(0.5, 1.0) * step


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


# -- the blocking client -----------------------------------------------------------------
class Client:
    """The HTTP API as Python calls (see the module's docstring for errors and retries).

    ``url``: the server; ``token``: its token (sent as ``Authorization: Bearer``);
    ``timeout``: seconds (or an ``httpx.Timeout``; ``None`` waits for ever);
    ``retries``, ``backoff``, ``max_backoff``, ``max_wait``: the retry rule."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        max_wait: float = 30.0,
        transport: Any = None,
    ):
        httpx = _httpx()
        self._policy = _Policy(retries, backoff, max_backoff, max_wait)
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers=_headers(token),
            timeout=_timeout(timeout),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running calls ---------------------------------------------------------------
    def _send(self, call: _Call) -> Any:
        httpx = _httpx()
        attempt = 0
        while True:
            exc: Exception | None = None
            try:
                r = self._http.request(call.method, call.path, params=call.params, json=call.json)
            except httpx.TransportError as e:
                exc, error = e, _transport_failure(call, e)
            else:
                if r.status_code < 400:
                    return r.json()
                error = _failure(call, r)
            wait = self._policy.delay(call, attempt, error, exc)
            if wait is None:
                if exc is not None:
                    raise error from exc
                raise error
            time.sleep(wait)
            attempt += 1

    def _drive(self, steps: Steps) -> Any:
        try:
            step = next(steps)
            while True:
                if isinstance(step, _Sleep):
                    time.sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    got = self._send(step)
                except APIError as error:
                    step = steps.throw(error)
                else:
                    step = steps.send(got)
        except StopIteration as done:
            return done.value

    # -- the API ---------------------------------------------------------------------
    def health(self) -> Health:
        return self._drive(_health())

    def ready(self) -> bool:
        """True when the server answers searches (model loaded, index caught up);
        False while it loads or catches up, or when it cannot be reached. Not retried."""
        try:
            return self._http.get("/ready").status_code == 200
        except _httpx().TransportError:
            return False

    def stats(self) -> Stats:
        return self._drive(_stats())

    def search(
        self,
        queries: str | Sequence[str],
        k: int = 10,
        where: dict[str, Any] | None = None,
        filters: dict[str, Any] | None = None,
        min_score: float | None = None,
        mode: str = "hybrid",
    ) -> list[SearchResult]:
        """One ``SearchResult`` (a list of ``Hit``) per query, in the queries' order."""
        return self._drive(_search(queries, k, where, filters, min_score, mode))

    def upsert(self, records: Iterable[dict[str, Any]], batch: int = 1000) -> UpsertResult:
        """Insert or update items ({"id", "text", "metadata"}), ``batch`` per request."""
        return self._drive(_upsert(records, batch))

    def delete(self, ext_ids: Sequence[str] | str) -> int:
        """Delete items by id (one request each); ``NotFound`` for an unknown id."""
        return self._drive(_delete(ext_ids))

    def get(self, ext_id: str) -> Item | None:
        return self._drive(_get(ext_id))

    def records(
        self,
        where: dict[str, Any] | None = None,
        offset: int = 0,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[Item], str | None]:
        """A page of items and the cursor of the next page (None at the end)."""
        return self._drive(_records(where, offset, limit, after))

    def iter_records(self, where: dict[str, Any] | None = None) -> Iterator[Item]:
        """Every item (matching ``where``), page by page."""
        cursor = None
        while True:
            items, cursor = self.records(where, limit=1000, after=cursor)
            yield from items
            if cursor is None:
                return

    def update(
        self, ext_id: str, metadata: dict[str, Any] | None = None, unset: Sequence[str] = ()
    ) -> int:
        """Set metadata keys and remove ``unset`` ones; the new generation."""
        return self._drive(_update(ext_id, metadata, unset))

    def delete_where(self, where: dict[str, Any], dry_run: bool = False) -> int:
        return self._drive(_delete_where(where, dry_run))

    def mine(
        self,
        threshold: float | None = None,
        top_k: int = 10,
        where: dict[str, Any] | None = None,
        wait: float = 600.0,
    ) -> Job:
        """Start a mining job and wait for it (at most ``wait`` seconds); its record."""
        return self._drive(_mine(threshold, top_k, where, wait))

    def job(self, job: int) -> Job:
        return self._drive(_job(job))

    def jobs(self) -> list[Job]:
        """Every mining job, newest first."""
        return self._drive(_jobs())

    def delete_job(self, job: int) -> int:
        return self._drive(_delete_job(job))

    def job_pairs(self, job: int, offset: int = 0, limit: int = 100) -> list[Pair]:
        return self._drive(_job_pairs(job, offset, limit))


# -- the asyncio client ------------------------------------------------------------------
class AsyncClient:
    """``Client``'s methods as coroutines, over ``httpx.AsyncClient``:

    async with AsyncClient("http://127.0.0.1:8000") as fv:
        results = await fv.search("김치")
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        max_wait: float = 30.0,
        transport: Any = None,
    ):
        httpx = _httpx()
        self._policy = _Policy(retries, backoff, max_backoff, max_wait)
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers=_headers(token),
            timeout=_timeout(timeout),
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _send(self, call: _Call) -> Any:
        httpx = _httpx()
        attempt = 0
        while True:
            exc: Exception | None = None
            try:
                r = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json
                )
            except httpx.TransportError as e:
                exc, error = e, _transport_failure(call, e)
            else:
                if r.status_code < 400:
                    return r.json()
                error = _failure(call, r)
            wait = self._policy.delay(call, attempt, error, exc)
            if wait is None:
                if exc is not None:
                    raise error from exc
                raise error
            await asyncio.sleep(wait)
            attempt += 1

    async def _drive(self, steps: Steps) -> Any:
        try:
            step = next(steps)
            while True:
                if isinstance(step, _Sleep):
                    await asyncio.sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    got = await self._send(step)
                except APIError as error:
                    step = steps.throw(error)
                else:
                    step = steps.send(got)
        except StopIteration as done:
            return done.value

    async def health(self) -> Health:
        return await self._drive(_health())

    async def ready(self) -> bool:
        try:
            return (await self._http.get("/ready")).status_code == 200
        except _httpx().TransportError:
            return False

    async def stats(self) -> Stats:
        return await self._drive(_stats())

    async def search(
        self,
        queries: str | Sequence[str],
        k: int = 10,
        where: dict[str, Any] | None = None,
        filters: dict[str, Any] | None = None,
        min_score: float | None = None,
        mode: str = "hybrid",
    ) -> list[SearchResult]:
        return await self._drive(_search(queries, k, where, filters, min_score, mode))

    async def upsert(self, records: Iterable[dict[str, Any]], batch: int = 1000) -> UpsertResult:
        return await self._drive(_upsert(records, batch))

    async def delete(self, ext_ids: Sequence[str] | str) -> int:
        return await self._drive(_delete(ext_ids))

    async def get(self, ext_id: str) -> Item | None:
        return await self._drive(_get(ext_id))

    async def records(
        self,
        where: dict[str, Any] | None = None,
        offset: int = 0,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[Item], str | None]:
        return await self._drive(_records(where, offset, limit, after))

    async def iter_records(self, where: dict[str, Any] | None = None) -> AsyncIterator[Item]:
        cursor = None
        while True:
            items, cursor = await self.records(where, limit=1000, after=cursor)
            for item in items:
                yield item
            if cursor is None:
                return

    async def update(
        self, ext_id: str, metadata: dict[str, Any] | None = None, unset: Sequence[str] = ()
    ) -> int:
        return await self._drive(_update(ext_id, metadata, unset))

    async def delete_where(self, where: dict[str, Any], dry_run: bool = False) -> int:
        return await self._drive(_delete_where(where, dry_run))

    async def mine(
        self,
        threshold: float | None = None,
        top_k: int = 10,
        where: dict[str, Any] | None = None,
        wait: float = 600.0,
    ) -> Job:
        return await self._drive(_mine(threshold, top_k, where, wait))

    async def job(self, job: int) -> Job:
        return await self._drive(_job(job))

    async def jobs(self) -> list[Job]:
        return await self._drive(_jobs())

    async def delete_job(self, job: int) -> int:
        return await self._drive(_delete_job(job))

    async def job_pairs(self, job: int, offset: int = 0, limit: int = 100) -> list[Pair]:
        return await self._drive(_job_pairs(job, offset, limit))
