"""A Python client for the HTTP API, with the method names of ``FoodIndex``.

    from search.client import Client
    with Client("http://127.0.0.1:8000", token="...") as fv:
        fv.upsert([{"id": "o1", "text": "귀리 라떼: 베타글루칸", "metadata": {"kcal": 120}}])
        hits = fv.search("귀리", k=5, where={"kcal": {"$lt": 200}})[0]

Errors come back as foodvec's own: ``NotFoundError`` (404), ``BadInputError`` (400,
422, 413, 429), ``ModelMismatchError`` (409), ``FoodvecError`` otherwise. Needs
``httpx`` (``pip install 'foodvec[client]'``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

from indexer.errors import BadInputError, FoodvecError, ModelMismatchError, NotFoundError


class Client:
    def __init__(
        self, url: str = "http://127.0.0.1:8000", token: str | None = None, timeout: float = 60.0
    ):
        try:
            import httpx
        except ImportError:
            raise FoodvecError("the client needs httpx: pip install 'foodvec[client]'") from None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the calls ------------------------------------------------------------------
    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self._http.request(method, path, **kw)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise _error(r.status_code, f"{method} {path}: {r.status_code} {detail}")
        return r.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def ready(self) -> bool:
        return self._http.get("/ready").status_code == 200

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def search(
        self,
        queries: str | Sequence[str],
        k: int = 10,
        where: dict[str, Any] | None = None,
        filters: dict[str, Any] | None = None,
        min_score: float | None = None,
        mode: str = "hybrid",
    ) -> list[list[dict[str, Any]]]:
        """One list of hits (dicts: id, text, score, metadata, …) per query."""
        qs = [queries] if isinstance(queries, str) else list(queries)
        body: dict[str, Any] = {"queries": qs, "k": k, "mode": mode}
        if where is not None:
            body["where"] = where
        if filters:
            body["filters"] = filters
        if min_score is not None:
            body["min_score"] = min_score
        return [r["results"] for r in self._call("POST", "/search", json=body)["results"]]

    def upsert(self, records: Iterable[dict[str, Any]], batch: int = 1000) -> dict[str, int]:
        """Insert or update items ({"id", "text", "metadata"}), ``batch`` per request."""
        total = {"new": 0, "updated": 0, "unchanged": 0, "generation": 0}
        items = list(records)
        for start in range(0, len(items), batch):
            got = self._call("POST", "/items", json={"items": items[start : start + batch]})
            for key in ("new", "updated", "unchanged"):
                total[key] += got[key]
            total["generation"] = got["generation"]
        return total

    def delete(self, ext_ids: Sequence[str]) -> int:
        return sum(self._call("DELETE", f"/items/{_path(i)}")["deleted"] for i in ext_ids)

    def get(self, ext_id: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", f"/items/{_path(ext_id)}")
        except NotFoundError:
            return None

    def records(
        self,
        where: dict[str, Any] | None = None,
        offset: int = 0,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of items and the cursor of the next page (None at the end)."""
        import json

        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if where is not None:
            params["where"] = json.dumps(where, ensure_ascii=False)
        if after is not None:
            params["after"] = after
        page = self._call("GET", "/items", params=params)
        return page["items"], page["next"]

    def iter_records(self, where: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
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
        body = {"metadata": metadata or {}, "unset": list(unset)}
        return self._call("PATCH", f"/items/{_path(ext_id)}", json=body)["generation"]

    def delete_where(self, where: dict[str, Any], dry_run: bool = False) -> int:
        import json

        params = {"where": json.dumps(where, ensure_ascii=False), "dry_run": str(dry_run).lower()}
        got = self._call("DELETE", "/items", params=params)
        return got["would_delete" if dry_run else "deleted"]

    def mine(
        self,
        threshold: float | None = None,
        top_k: int = 10,
        where: dict[str, Any] | None = None,
        wait: float = 600.0,
    ) -> dict[str, Any]:
        """Start a mining job and wait for it; the job's record (status, pair count …)."""
        body: dict[str, Any] = {"top_k": top_k}
        if threshold is not None:
            body["threshold"] = threshold
        if where is not None:
            body["where"] = where
        job = self._call("POST", "/jobs/mine", json=body)["job"]
        deadline = time.monotonic() + wait
        while True:
            rec = self._call("GET", f"/jobs/{job}")
            if rec["status"] != "running" or time.monotonic() > deadline:
                return rec
            time.sleep(0.2)

    def job_pairs(self, job: int, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        params = {"offset": offset, "limit": limit}
        return self._call("GET", f"/jobs/{job}/pairs", params=params)["pairs"]


def _path(ext_id: str) -> str:
    return quote(str(ext_id), safe="")


def _error(status: int, message: str) -> FoodvecError:
    if status == 404:
        return NotFoundError(message)
    if status == 409:
        return ModelMismatchError(message)
    if status in (400, 413, 422, 429):
        return BadInputError(message)
    return FoodvecError(message)
