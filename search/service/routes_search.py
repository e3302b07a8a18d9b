"""Search and the search page."""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from indexer.text import normalize_text
from indexer.understand import parse_query

from .schemas import SearchRequest, text_filters
from .state import Service, read_access, service

router = APIRouter()
PAGE = resources.files("search.service").joinpath("page.html").read_text(encoding="utf-8")


@router.post("/search", dependencies=[Depends(read_access)])
def search(req: SearchRequest, svc: Service = Depends(service)) -> dict[str, Any]:
    queries = [req.query] if req.query is not None else list(req.queries or [])
    results = svc.index.search(
        queries,
        k=req.k,
        filters=text_filters(req.filters),
        where=req.where,
        min_score=req.min_score,
        mode=req.mode,
    )
    svc.metrics.searches.labels(req.mode).inc(len(queries))
    lists = [[h.as_dict() for h in hits] for hits in results]
    parses = [parse_query(normalize_text(q)).as_dict() for q in queries]
    if req.query is not None:
        return {"query": req.query, "parse": parses[0], "results": lists[0]}
    return {
        "results": [
            {"query": q, "parse": p, "results": r}
            for q, p, r in zip(queries, parses, lists, strict=True)
        ]
    }


@router.get("/facets", dependencies=[Depends(read_access)])
def facets(
    max_values: Annotated[int, Query(ge=1, le=200)] = 20, svc: Service = Depends(service)
) -> dict[str, Any]:
    """Per metadata key: its text values with counts (when at most ``max_values``), or
    the range of its numbers; what the page offers as filters."""
    return {"keys": svc.index.facets(max_values)}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> str:
    return PAGE
