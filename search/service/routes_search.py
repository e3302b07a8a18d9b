"""Search and the search page."""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from indexer.text import normalize_text
from indexer.understand import parse_query

from .schemas import SearchRequest, text_filters
from .state import ResponseBudget, Service, read_access, service, too_large

router = APIRouter()
PAGE = resources.files("search.service").joinpath("page.html").read_text(encoding="utf-8")


@router.post("/search", dependencies=[Depends(read_access)])
def search(req: SearchRequest, svc: Service = Depends(service)) -> dict[str, Any]:
    """Search; refused with 413 past the limits of ``Limits`` (queries per request, k x
    queries, response bytes), with a token or without."""
    queries = [req.query] if req.query is not None else list(req.queries or [])
    limits = svc.limits
    if len(queries) > limits.max_queries:
        raise too_large(
            f"{len(queries)} queries in one request",
            limits.max_queries,
            "FOODVEC_MAX_QUERIES",
            "send them in several requests",
        )
    if len(queries) * req.k > limits.max_hits:
        raise too_large(
            f"k={req.k} x {len(queries)} queries asks for {len(queries) * req.k} results",
            limits.max_hits,
            "FOODVEC_MAX_HITS",
            "ask for a smaller k or fewer queries at once",
        )
    results = svc.index.search(
        queries,
        k=req.k,
        filters=text_filters(req.filters),
        where=req.where,
        min_score=req.min_score,
        mode=req.mode,
    )
    svc.metrics.searches.labels(req.mode).inc(len(queries))
    budget = ResponseBudget(
        limits.max_response_bytes, "ask for a smaller k or fewer queries at once"
    )
    lists = []
    for hits in results:
        lists.append([])
        for h in hits:
            hit = h.as_dict()
            budget.add(hit)  # 413 as soon as the hits pass the limit
            lists[-1].append(hit)
    parses = [parse_query(normalize_text(q)).as_dict() for q in queries]
    for q, p in zip(queries, parses, strict=True):
        budget.add([q, p])
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
