"""A private PostgreSQL cluster for the test session: ``initdb`` in a temporary folder,
a server on a free loopback port, one fresh database per test. Run as root, the server
runs as the ``postgres`` user (PostgreSQL refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.servers import free_port

USER = "foodvec"
# CI sets this, so that a missing server is a failure there, never a skip.
REQUIRED = os.environ.get("FOODVEC_TEST_POSTGRES") == "required"


def bindir() -> Path | None:
    for cand in [shutil.which("pg_ctl")] + sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True
    ):
        if cand and Path(cand).exists():
            path = Path(cand).resolve().parent
            if (path / "initdb").exists() and (path / "postgres").exists():
                return path
    return None


def cluster_or_skip() -> Cluster:
    """A new private cluster; the test skips where PostgreSQL or its driver is missing
    (never when FOODVEC_TEST_POSTGRES=required)."""
    import pytest

    try:
        import psycopg  # noqa: F401

        return Cluster()
    except (FileNotFoundError, ImportError) as exc:
        if REQUIRED:
            raise
        pytest.skip(f"no PostgreSQL here: {exc}")


class Cluster:
    def __init__(self) -> None:
        bins = bindir()
        if bins is None:
            raise FileNotFoundError("PostgreSQL's initdb and pg_ctl are not installed")
        self.bins = bins
        self.dir = Path(tempfile.mkdtemp(prefix="foodvec-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.dir, pg.pw_uid, pg.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            "initdb",
            "-D",
            self.data,
            "-A",
            "trust",
            "-U",
            USER,
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        self.resume()
        self._made = 0

    def _run(self, tool: str, *args) -> None:
        cmd = [*self.as_user, str(self.bins / tool), *map(str, args)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        self._made += 1
        name = f"t{self._made}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def pause(self) -> None:
        """Stop the server (its data kept), as an outage does."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the server (again)."""
        self._run(
            "pg_ctl", "-D", self.data, "-l", self.dir / "server.log", "-w", "start", "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass  # not running (paused)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
