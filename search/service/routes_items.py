"""Item routes: read one or a page of items; upsert, change metadata, delete. A write is
acknowledged after its transaction commits; the FAISS file is saved later by the
compactor."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from indexer.errors import BadInputError, NotFoundError

from .schemas import MAX_PAGE_ITEMS, PatchRequest, UpsertRequest
from .state import ResponseBudget, Service, read_access, service, write_access

router = APIRouter()
PAGE_STEP = 500  # items read at once for a page of GET /items
Where = Annotated[
    str | None, Query(max_length=65536, description='A JSON filter, e.g. {"kcal": {"$lt": 200}}')
]


def _where(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        where = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadInputError("where: not valid JSON") from None
    if not isinstance(where, dict):
        raise BadInputError("where: a filter is a JSON object")
    return where


@router.get("/items/{item_id:path}", dependencies=[Depends(read_access)])
def get_item(item_id: str, svc: Service = Depends(service)) -> dict[str, Any]:
    rec = svc.index.get(item_id)
    if rec is None:
        raise NotFoundError(f"not in the index: {item_id!r}")
    return rec


@router.get("/items", dependencies=[Depends(read_access)])
def list_items(
    where: Where = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_ITEMS)] = 100,
    after: Annotated[str | None, Query(max_length=40)] = None,
    svc: Service = Depends(service),
) -> dict[str, Any]:
    """Items in a stable order; pass the page's ``next`` as ``after`` for the next one.
    A page over FOODVEC_MAX_RESPONSE_BYTES is refused (413) as soon as the items read
    pass it: they are read in steps of ``PAGE_STEP``, never all at once."""
    cond = _where(where)
    budget = ResponseBudget(svc.limits.max_response_bytes, "ask for a smaller limit")
    items: list[dict[str, Any]] = []
    cursor = after
    while len(items) < limit:
        want = min(PAGE_STEP, limit - len(items))
        got, cursor = svc.index.records(cond, offset=offset, limit=want, after=cursor)
        offset = 0  # the offset counts from the request's start; later steps go by cursor
        for rec in got:
            budget.add(rec)
        items.extend(got)
        if cursor is None:
            break
    return {"items": items, "next": cursor if len(items) == limit else None}


@router.post("/items", dependencies=[Depends(write_access)])
def upsert(req: UpsertRequest, svc: Service = Depends(service)) -> dict[str, Any]:
    records = [{"id": it.id, "text": it.text, "metadata": it.metadata} for it in req.items]
    summary = svc.index.upsert(records, publish=False)
    return {
        "upserted": summary.new + summary.updated,
        "new": summary.new,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "generation": summary.generation,
    }


@router.patch("/items/{item_id:path}", dependencies=[Depends(write_access)])
def patch_item(item_id: str, req: PatchRequest, svc: Service = Depends(service)) -> dict[str, Any]:
    gen = svc.index.update(item_id, req.metadata, unset=req.unset, publish=False)
    return {**(svc.index.get(item_id) or {}), "generation": gen}


@router.delete("/items/{item_id:path}", dependencies=[Depends(write_access)])
def delete(item_id: str, svc: Service = Depends(service)) -> dict[str, Any]:
    n = svc.index.delete([item_id], publish=False)
    return {"deleted": n, "generation": svc.index.state()[0]}


@router.delete("/items", dependencies=[Depends(write_access)])
def delete_where(
    where: Where = None,
    dry_run: bool = False,
    svc: Service = Depends(service),
) -> dict[str, Any]:
    cond = _where(where)
    if cond is None:
        raise BadInputError("where: give a filter (deleting every item takes one that says so)")
    n = svc.index.delete_where(cond, dry_run=dry_run, publish=False)
    key = "would_delete" if dry_run else "deleted"
    return {key: n, "generation": svc.index.state()[0]}
