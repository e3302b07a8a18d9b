"""The database away: which errors mean that, and one log line per outage.

A request that meets the database unreachable (a refused or dropped connection, a
server shutting down, a statement cancelled by a timeout, the pool empty past its
wait, SQLite's lock held past its busy timeout) is answered 503 with ``Retry-After``,
never 500; the outage is logged once when it begins and once when it ends (the
server's catch-up thread reaching the database again), not once per request.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import exc as sa

log = logging.getLogger("foodvec")

RETRY_AFTER_S = 2
# What SQLite says when its lock stays held past the busy timeout.
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached now (worth retrying),
    rather than that a statement or the data is wrong."""
    if isinstance(error, sa.TimeoutError):  # no pooled connection within the pool's wait
        return True
    if not isinstance(error, sa.DBAPIError):
        return False
    if error.connection_invalidated or isinstance(error, sa.InterfaceError):
        return True
    if not isinstance(error, sa.OperationalError):
        return False
    driver = type(error.orig).__module__ or ""
    if driver.startswith("psycopg"):
        # PostgreSQL's operational errors: connection failures, administrator shutdown,
        # cancelled statements, too many connections
        return True
    return any(s in str(error.orig).lower() for s in _SQLITE_BUSY)


class Outage:
    """Whether the database is away, said once as it goes and once as it comes back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None
        self.outages = 0

    def begin(self, error: BaseException) -> None:
        with self._lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
            self.outages += 1
        first = str(getattr(error, "orig", None) or error).strip().splitlines()
        log.warning(
            "the database is unavailable (%s: %s); answering 503 until it is back",
            type(error).__name__,
            first[0][:200] if first else "",
        )

    def end(self) -> None:
        with self._lock:
            if self.since is None:
                return
            took, self.since = time.monotonic() - self.since, None
        log.warning("the database is back after %.1f s", took)

    @property
    def active(self) -> bool:
        return self.since is not None
