"""Mining job routes: start a job in a thread, read its status and pairs, delete it."""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from indexer.filters import filter_node

from .schemas import JobId, MineRequest, text_filters
from .state import MAX_RUNNING_JOBS, Service, read_access, service, write_access

log = logging.getLogger("foodvec")
router = APIRouter()


@router.post("/jobs/mine", dependencies=[Depends(write_access)])
def start_mine(req: MineRequest, svc: Service = Depends(service)) -> dict[str, Any]:
    """Start a mining job; 429 when ``MAX_RUNNING_JOBS`` run on this machine already
    (counted in the database as the job is recorded, so requests that arrive together
    cannot all pass)."""
    index = svc.index
    threshold = req.threshold if req.threshold is not None else index.mining_threshold()
    filters = text_filters(req.filters)
    filter_node(filters, req.where)  # a bad filter is refused (400) before the job starts
    params = {"threshold": threshold, "top_k": req.top_k, "filters": filters or {}}
    if req.where is not None:
        params["where"] = req.where
    job = index.start_job(params, limit=MAX_RUNNING_JOBS)  # BusyError -> 429

    def work() -> None:
        try:
            index.mine(
                threshold=threshold, top_k=req.top_k, filters=filters, where=req.where, job_id=job
            )
        except Exception as exc:  # recorded as failed in the job row
            log.warning("mining job %s failed: %s: %s", job, type(exc).__name__, exc)

    t = threading.Thread(target=work, name=f"foodvec-mine-{job}", daemon=True)
    svc.running.add(t)
    t.start()
    return {"job": job}


@router.get("/jobs", dependencies=[Depends(read_access)])
def jobs(svc: Service = Depends(service)) -> dict[str, Any]:
    """Every mining job, newest first."""
    return {"jobs": svc.index.list_jobs()}


def _job(svc: Service, job_id: int) -> dict[str, Any]:
    job = svc.index.job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@router.get("/jobs/{job_id}", dependencies=[Depends(read_access)])
def job_status(job_id: JobId, svc: Service = Depends(service)) -> dict[str, Any]:
    return _job(svc, job_id)


@router.delete("/jobs/{job_id}", dependencies=[Depends(write_access)])
def job_delete(job_id: JobId, svc: Service = Depends(service)) -> dict[str, Any]:
    svc.index.delete_job(job_id)  # NotFoundError -> 404, a running job -> 400
    return {"deleted": job_id}


@router.get("/jobs/{job_id}/pairs", dependencies=[Depends(read_access)])
def pairs(
    job_id: JobId,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    svc: Service = Depends(service),
) -> dict[str, Any]:
    """A finished job's pairs, best first, each with its kind of match: ``same name``,
    ``reworded`` or ``same profile`` (``indexer.mining.match_kind``)."""
    job = _job(svc, job_id)
    if job["status"] != "done":
        raise HTTPException(409, f"job {job_id} is {job['status']}, not done")
    return {
        "job": job_id,
        "offset": offset,
        "limit": limit,
        "total": job["pair_count"],
        "pairs": svc.index.job_pairs(job_id, limit=limit, offset=offset),
    }
