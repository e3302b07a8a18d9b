from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "indexer" / "data" / "sample_foods.csv"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Exported ONNX graphs go to a cache of this test session (shared by its tests and the
# processes they start), never to the user's own cache.
os.environ["FOODVEC_CACHE"] = tempfile.mkdtemp(prefix="foodvec-cache-")


@pytest.fixture
def fakes(monkeypatch, home):
    """FOODVEC_MODEL=fake; the specs `fake`, `fake-other` (another model, same size)
    and `fake-wide` (another size) load fake embedders, one object per spec so that
    tests can read its counters."""
    made = {
        "fake": FakeEmbedder(64),
        "fake-other": FakeEmbedder(64, salt="other"),
        "fake-wide": FakeEmbedder(128),
    }
    import indexer.home_model

    real = indexer.home_model.load_embedder

    def load(spec, **kw):
        return made[str(spec)] if str(spec) in made else real(spec, **kw)

    monkeypatch.setattr(indexer.home_model, "load_embedder", load)
    monkeypatch.setenv("FOODVEC_MODEL", "fake")
    return made


# -- hostile cases -----------------------------------------------------------------
# Tests marked `hostile` feed foodvec damaged files, hostile input or faults; the run
# ends with how many of them ran (docs/testing.md).
_hostile = {"run": 0}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "hostile: a hostile case (damaged files, hostile input, faults)"
    )


def pytest_runtest_logreport(report):
    if report.when == "call" and "hostile" in report.keywords:
        _hostile["run"] += 1


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"hostile cases run: {_hostile['run']}")


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold: as root, the child gives up
    the capabilities that let root write any file (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH), so a folder made read-only is read-only to it, as it would
    be to a user or on read-only media; nothing for other users. Skips the test where
    root cannot give them up (no setpriv)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to hold")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def make_read_only(*paths: Path) -> None:
    """Take write permission from files and folders (``unprivileged`` makes it hold)."""
    for p in paths:
        p.chmod(p.stat().st_mode & ~0o222)


def make_writable(root: Path) -> None:
    """Give write permission back to everything under ``root`` (for clean-up)."""
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o200)


def run(*args):
    """The CLI in process: ``run("search", "김치", "--json")``."""
    from click.testing import CliRunner

    from search.cli import cli

    return CliRunner().invoke(cli, list(map(str, args)))


@pytest.fixture
def built(fakes, home):
    """A home holding the sample corpus, indexed with the fake model."""
    from indexer import BuildOptions, FoodIndex

    with FoodIndex(home) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
    return home


def pytest_generate_tests(metafunc):
    # Modules with `STORES = ("sqlite", "postgres")` run each test on both stores.
    stores = getattr(metafunc.module, "STORES", None)
    if stores and "store" in metafunc.fixturenames:
        metafunc.parametrize("store", stores, indirect=True)


@pytest.fixture
def store(request):
    """The database a test runs on: 'sqlite' (the home's file) or 'postgres'."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch, request, store):
    h = tmp_path / "home"
    monkeypatch.setenv("FOODVEC_HOME", str(h))
    monkeypatch.delenv("FOODVEC_MODEL", raising=False)
    monkeypatch.delenv("FOODVEC_DB", raising=False)
    if store == "postgres":
        monkeypatch.setenv("FOODVEC_DB", request.getfixturevalue("pg_cluster").new_database())
    return h


def write_csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return path


def sample_rows() -> list[dict]:
    with open(SAMPLE, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def pg_cluster():
    """The test session's own PostgreSQL server (skipped only where the binaries or
    the driver are missing, and never when FOODVEC_TEST_POSTGRES=required)."""
    from tests import pg

    cluster = pg.cluster_or_skip()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    """The URL of a new, empty PostgreSQL database."""
    return pg_cluster.new_database()


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster with 2 CPUs for the test session (skipped only where Ray is
    not installed, and never when FOODVEC_TEST_RAY=required)."""
    try:
        import ray
    except ImportError as exc:
        if os.environ.get("FOODVEC_TEST_RAY") == "required":
            raise
        pytest.skip(f"Ray is not installed: {exc}")
    ray.init(
        num_cpus=2,
        object_store_memory=300 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="warning",
    )
    yield ray
    ray.shutdown()
