"""Request bodies of the HTTP API (pydantic models) and the limits they enforce."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path as FastAPIPath
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from indexer.retrieval import MAX_K, MODES
from indexer.text import MAX_TEXT_CHARS

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_ITEMS_PER_REQUEST = 1000
# The queries of one search are limited by FOODVEC_MAX_QUERIES (413 past it, ``Limits``);
# this only bounds what the body parser takes.
MAX_QUERIES_PER_REQUEST = 10_000
MAX_PAGE_ITEMS = 10_000
RAW_TEXT_LIMIT = 4 * MAX_TEXT_CHARS  # before white space is folded

JobId = Annotated[int, FastAPIPath(ge=1, le=2**62)]  # SQLite integers are 64-bit
Text = Annotated[str, Field(min_length=1, max_length=RAW_TEXT_LIMIT)]
Key = Annotated[str, Field(min_length=1, max_length=200)]
Scalar = str | int | float | bool
Mode = Literal[MODES]  # type: ignore[valid-type]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Text | None = None
    queries: (
        Annotated[list[Text], Field(min_length=1, max_length=MAX_QUERIES_PER_REQUEST)] | None
    ) = None
    k: int = Field(10, ge=1, le=MAX_K)
    filters: dict[Key, Scalar] = Field(default_factory=dict, max_length=20)
    # The filter language (docs/filters.md): {"kcal": {"$lt": 200}}, {"$or": [...]}.
    where: dict[str, Any] | None = None
    # The scale of ``score`` depends on the mode (docs/searching.md), so no fixed bounds.
    min_score: float | None = Field(None, allow_inf_nan=False)
    mode: Mode = "hybrid"

    @model_validator(mode="after")
    def one_of_query_or_queries(self):
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of query (a string) or queries (a list)")
        return self


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Key
    text: Text
    metadata: dict[Key, Any] = Field(default_factory=dict, max_length=100)

    @field_validator("metadata")
    @classmethod
    def no_reserved_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = {"id", "text"} & set(v)
        if bad:
            raise ValueError(f"metadata may not use the keys {sorted(bad)}")
        return v


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)]


class PatchRequest(BaseModel):
    """Metadata to set and keys to remove; the text and its vector stay."""

    model_config = ConfigDict(extra="forbid")
    metadata: dict[Key, Any] = Field(default_factory=dict, max_length=100)
    unset: list[Key] = Field(default_factory=list, max_length=100)


class MineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # None: the model's calibrated threshold (as `foodvec mine`).
    threshold: float | None = Field(None, ge=-1.0, le=1.0)
    top_k: int = Field(10, ge=1, le=100)
    filters: dict[Key, Scalar] = Field(default_factory=dict, max_length=20)
    where: dict[str, Any] | None = None


def as_text(v: Any) -> str:
    """A filter value as the text it is compared with (booleans as 1 and 0)."""
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def text_filters(filters: dict[str, Any]) -> dict[str, str] | None:
    return {k: as_text(v) for k, v in filters.items()} or None
