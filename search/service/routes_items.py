"""Writing routes: upsert and delete items. A write is acknowledged after its
transaction commits; the FAISS file is saved later by the compactor."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from .schemas import UpsertRequest
from .state import Service, service, write_access

router = APIRouter(dependencies=[Depends(write_access)])


@router.post("/items")
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


@router.delete("/items/{item_id:path}")
def delete(item_id: str, svc: Service = Depends(service)) -> dict[str, Any]:
    n = svc.index.delete([item_id], publish=False)
    return {"deleted": n, "generation": svc.index.state()[0]}
