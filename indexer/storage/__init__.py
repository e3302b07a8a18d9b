"""Storage: the only code that speaks SQL. Items, vectors, generations and the change
log (``store``: the SQL both databases share; ``sqlite`` and ``postgres``: a subclass
for each), the pieces all of them use (``sql``), a build's staging table
(``staging``), mining jobs (``jobs``), filters as SQL (``where``).

Importing the package defines both dialects' stores, so ``Store.open`` finds either.
"""

from .jobs import Jobs
from .postgres import PostgresStore
from .sql import SQL_BATCH, ItemRow, WriteTx, canonical_json
from .sqlite import SQLiteStore, settle_sqlite_file
from .staging import Applied, StagedRow, Staging
from .store import (
    HEAD_REVISION,
    Delta,
    Store,
    current_revision,
    database_file,
    describe_database,
    make_engine,
    store_class,
)

__all__ = [
    "HEAD_REVISION",
    "SQL_BATCH",
    "Applied",
    "Delta",
    "ItemRow",
    "Jobs",
    "PostgresStore",
    "SQLiteStore",
    "StagedRow",
    "Staging",
    "Store",
    "WriteTx",
    "canonical_json",
    "current_revision",
    "database_file",
    "describe_database",
    "make_engine",
    "settle_sqlite_file",
    "store_class",
]
