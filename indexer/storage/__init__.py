"""Storage: the only code that speaks SQL. Items, vectors, generations and the change
log (``store``), a build's staging table (``staging``), mining jobs (``jobs``)."""

from .jobs import Jobs
from .staging import Applied, StagedRow, Staging
from .store import (
    HEAD_REVISION,
    SQL_BATCH,
    ItemRow,
    Store,
    WriteTx,
    canonical_json,
    current_revision,
    make_engine,
    settle_sqlite_file,
)

__all__ = [
    "HEAD_REVISION",
    "SQL_BATCH",
    "Applied",
    "ItemRow",
    "Jobs",
    "StagedRow",
    "Staging",
    "Store",
    "WriteTx",
    "canonical_json",
    "current_revision",
    "make_engine",
    "settle_sqlite_file",
]
