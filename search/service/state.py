"""What the routes share: the index, the token rule and the running mining jobs, kept
on ``app.state.foodvec`` and reached through FastAPI dependencies."""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from indexer.home import FoodIndex

from .metrics import Metrics

# Mining jobs at once per server: each holds every vector in memory and keeps a core busy.
MAX_RUNNING_JOBS = 2


@dataclass
class Service:
    index: FoodIndex
    token: str | None = None
    protect_reads: bool = False
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
