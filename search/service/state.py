"""What the routes share: the index, the token rule, the limits of a request and the
running mining jobs, kept on ``app.state.foodvec`` and reached through FastAPI
dependencies."""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from indexer.home import FoodIndex
from indexer.settings import Settings, settings

from .metrics import Metrics

# Mining jobs at once per machine: each holds every vector in memory and keeps a core
# busy. Counted in the database when a job starts (``indexer.storage.jobs``).
MAX_RUNNING_JOBS = 2


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, with or without a token (docs/reference.md, "Environment")."""

    max_response_bytes: int
    max_queries: int
    max_hits: int

    @classmethod
    def from_settings(cls, cfg: Settings | None = None) -> Limits:
        cfg = cfg or settings()
        return cls(cfg.max_response_bytes, cfg.max_queries, cfg.max_hits)


def too_large(what: str, limit: int, variable: str, hint: str) -> HTTPException:
    """A 413 naming the limit passed and the variable that sets it."""
    return HTTPException(413, f"{what}; the limit is {limit} ({variable}): {hint}")


class ResponseBudget:
    """Counts the bytes of a response as it is assembled (JSON as the response writes
    it), so an oversized one is refused before the whole of it is held."""

    def __init__(self, limit: int, hint: str):
        self.limit = limit
        self.hint = hint
        self.used = 0

    def add(self, obj: object) -> None:
        self.used += len(
            json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        )
        if self.used > self.limit:
            raise too_large(
                f"the response would be over {self.limit} bytes",
                self.limit,
                "FOODVEC_MAX_RESPONSE_BYTES",
                self.hint,
            )


@dataclass
class Service:
    index: FoodIndex
    token: str | None = None
    protect_reads: bool = False
    limits: Limits = field(default_factory=Limits.from_settings)
    running: set[threading.Thread] = field(default_factory=set)
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self)

    def live_jobs(self) -> int:
        self.running.intersection_update({t for t in self.running if t.is_alive()})
        return len(self.running)


def service(request: Request) -> Service:
    return request.app.state.foodvec


def _check_token(request: Request, token: str | None) -> None:
    if not token:
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        value.strip().encode(), token.encode()
    ):
        # /metrics counts refused requests apart, under no label a caller chooses
        request.scope["foodvec.refused"] = True
        raise HTTPException(
            401,
            "a valid Authorization: Bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


def write_access(request: Request) -> None:
    """Writes need the token when the server has one."""
    _check_token(request, service(request).token)


def read_access(request: Request) -> None:
    """Reads need it too with --protect-reads."""
    svc = service(request)
    if svc.protect_reads:
        _check_token(request, svc.token)
