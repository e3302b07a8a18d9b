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
    """Ready to answer searches: the model is loaded and the in-memory index is at the
    database's generation (503 otherwise: while a large index is rebuilt, for the
    moment between a write elsewhere and the server's background catch-up, which
    looks every 0.5 s, and when the items were re-embedded with a model other than the
    one this server loaded, whose searches are refused). ``/health`` is liveness only."""
    lag = svc.index.index_lag()
    loaded = svc.index.model_loaded() or svc.index.state()[1] is None
    mismatch = svc.index.model_mismatch()  # the items re-embedded with another model
    ok = lag == 0 and loaded and mismatch is None
    body = {"ready": ok, "index_lag": lag, "model_loaded": loaded}
    if mismatch:
        body["model_mismatch"] = mismatch
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/stats", dependencies=[Depends(read_access)])
def stats(svc: Service = Depends(service)) -> dict[str, Any]:
    return svc.index.stats()


@router.get("/metrics", dependencies=[Depends(read_access)], include_in_schema=False)
def metrics(svc: Service = Depends(service)) -> Response:
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
