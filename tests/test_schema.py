from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from indexer.storage import HEAD_REVISION, Store, current_revision, make_engine
from indexer.storage.schema import Base
from migrations import SCRIPT_LOCATION


def test_models_and_migrations_agree(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"render_as_batch": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_head_constant_matches_scripts():
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


def test_open_migrates_new_database_and_uses_wal(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert current_revision(make_engine(url)) is None
    store = Store.open(url)
    assert current_revision(store.engine) == HEAD_REVISION
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    # opening again is a no-op and keeps the data
    with store.write() as tx:
        tx.mark()
    assert Store.open(url).generation() == 1


def test_cli_init(tmp_path):
    from click.testing import CliRunner

    from search.cli import cli

    res = CliRunner().invoke(cli, ["init", "--home", str(tmp_path / "h")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "h" / "foodvec.db").exists()
    url = f"sqlite:///{tmp_path / 'h' / 'foodvec.db'}"
    assert current_revision(make_engine(url)) == HEAD_REVISION


def test_old_database_is_migrated_on_open_and_keeps_its_rows(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0001")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO items(ext_id, text, content_hash, metadata) "
                "VALUES ('a', 'x', 'h', '{}')"
            )
        )
    assert current_revision(engine) == "0001"
    store = Store.open(url)
    assert current_revision(store.engine) == HEAD_REVISION
    assert store.count() == 1
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 0
