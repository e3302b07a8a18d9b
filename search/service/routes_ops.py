"""Operations: health, readiness, stats and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from .outage import unavailable
from .state import Service, read_access, service

router = APIRouter()

# How long a server's index may have been behind the database and still be ready: its
# background catch-up looks every 0.5 s, so a healthy server under writes through other
# replicas is never more than about that behind (a search catches up before it reads,
# so no answer is stale; this bounds the catch-up a request may have to make).
READY_LAG_S = 2.0


@router.get("/health")
def health(svc: Service = Depends(service)) -> dict[str, Any]:
    """The process answers (liveness: 200 while the database is away too, so that a
    probe does not restart a server that is waiting for it)."""
    if svc.protect_reads:
        return {"status": "ok"}  # the generation and model are for readers with the token
    try:
        gen, model = svc.index.state()
    except SQLAlchemyError as exc:
        if not unavailable(exc):
            raise
        return {"status": "ok", "database": "unavailable"}
    return {"status": "ok", "generation": gen, "model": model}


@router.get("/ready")
def ready(svc: Service = Depends(service)) -> JSONResponse:
    """Ready to answer searches: the model is loaded and the in-memory index is caught
    up with the database, or was at most ``READY_LAG_S`` seconds ago (writes through
    other replicas leave it behind for moments between the background catch-ups, which
    look every 0.5 s). 503 otherwise: before the first catch-up, while the database is
    away, when the catch-ups stall, and when the items were re-embedded with a model
    other than the one this server loaded (whose searches are refused). ``/health`` is
    liveness only."""
    lag, behind_s = svc.index.index_behind()
    loaded = svc.index.model_loaded() or svc.index.state()[1] is None
    mismatch = svc.index.model_mismatch()  # the items re-embedded with another model
    ok = behind_s <= READY_LAG_S and loaded and mismatch is None
    body = {
        "ready": ok,
        "index_lag": lag,
        "behind_s": round(behind_s, 3) if behind_s != float("inf") else None,
        "model_loaded": loaded,
    }
    if mismatch:
        body["model_mismatch"] = mismatch
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/stats", dependencies=[Depends(read_access)])
def stats(svc: Service = Depends(service)) -> dict[str, Any]:
    return svc.index.stats()


@router.get("/metrics", dependencies=[Depends(read_access)], include_in_schema=False)
def metrics(svc: Service = Depends(service)) -> Response:
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
