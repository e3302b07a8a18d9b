"""Backup while a writer runs, and restore into a new home."""

from __future__ import annotations

import json
import threading
import time

import pytest

from indexer import FoodIndex
from indexer.errors import BadInputError
from tests.conftest import run
from tests.fakes import FakeEmbedder


def test_backup_and_restore_round_trip_on_the_cli(built, fakes, tmp_path):
    before = json.loads(run("search", "칼슘", "-k", "5", "--json").stdout)
    res = run("backup", tmp_path / "bk", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["generation"] >= 1 and out["index_generation"] == out["generation"]
    assert run("backup", tmp_path / "bk").exit_code == 1  # not an empty folder: refused
    new = tmp_path / "new-home"
    res = run("restore", tmp_path / "bk", "--home", new, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["items"] == 234 and json.loads(res.stdout)["problems"] == []
    after = json.loads(run("search", "칼슘", "-k", "5", "--json", "--home", new).stdout)
    assert after == before
    # a home that holds a database is never overwritten; a folder without one is no backup
    res = run("restore", tmp_path / "bk", "--home", new)
    assert res.exit_code == 1 and "already holds a database" in res.output
    (tmp_path / "empty").mkdir()
    res = run("restore", tmp_path / "empty", "--home", tmp_path / "other")
    assert res.exit_code == 1 and "not a foodvec backup" in res.output


def test_backup_while_a_writer_upserts_keeps_every_acknowledged_write(home, tmp_path):
    embedder = FakeEmbedder(32)
    with FoodIndex(home, embedder=embedder) as idx:
        idx.upsert([{"id": f"base{n}", "text": f"기본 음식 {n}"} for n in range(200)])
    acked: list[tuple[float, str]] = []
    stop = threading.Event()

    def writer() -> None:
        with FoodIndex(home, embedder=embedder) as w:
            n = 0
            while not stop.is_set():
                w.upsert([{"id": f"w{n}", "text": f"새 음식 {n}"}], publish=n % 5 == 0)
                acked.append((time.monotonic(), f"w{n}"))  # acknowledged: committed
                n += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(acked) < 20:
            time.sleep(0.01)
        with FoodIndex(home, embedder=embedder) as idx:
            began = time.monotonic()
            idx.backup(tmp_path / "bk")
        while len(acked) < len([a for a in acked if a[0] <= began]) + 10:
            time.sleep(0.01)  # the writer went on during and after the backup
    finally:
        stop.set()
        t.join()
    must = {i for at, i in acked if at <= began}
    with FoodIndex.restore(tmp_path / "bk", tmp_path / "restored", embedder=embedder) as r:
        assert r.verify() == []
        missing = [i for i in must if r.get(i) is None]
        assert not missing and len(must) >= 20
        assert r.count() >= 200 + len(must)


def test_backup_refuses_a_non_empty_folder_and_restore_keeps_a_home(home, tmp_path):
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert([{"id": "a", "text": "사과"}])
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("x")
        with pytest.raises(BadInputError, match="not empty"):
            idx.backup(tmp_path / "full")
        idx.backup(tmp_path / "bk")
    with pytest.raises(BadInputError, match="already holds"):
        FoodIndex.restore(tmp_path / "bk", home)


def _log(home):
    """(rows in the change log, reader entries) of a home's database."""
    import sqlite3

    conn = sqlite3.connect(home / "foodvec.db")
    try:
        rows = conn.execute("SELECT count(*) FROM changes").fetchone()[0]
        readers = conn.execute("SELECT value FROM state WHERE key LIKE 'reader:%'").fetchall()
    finally:
        conn.close()
    return rows, [r[0] for r in readers]


def _write_twice(home, embedder, tag):
    with FoodIndex(home, embedder=embedder, db=f"sqlite:///{home / 'foodvec.db'}") as idx:
        idx.upsert([{"id": f"{tag}1", "text": f"{tag} 음식 하나"}])
        idx.upsert([{"id": f"{tag}2", "text": f"{tag} 음식 둘"}])
        assert idx.verify() == []


# 12. a restored or copied home never pruned its change log --------------------------------
@pytest.mark.parametrize("how", ["copied", "restored"])
def test_a_restored_or_copied_home_prunes_its_change_log(home, tmp_path, how):
    import shutil

    embedder = FakeEmbedder(32)
    with FoodIndex(home, embedder=embedder) as idx:
        idx.upsert([{"id": f"a{n}", "text": f"기본 음식 {n}"} for n in range(20)])
        if how == "restored":
            idx.backup(tmp_path / "bk")
    other = tmp_path / "other"
    if how == "copied":
        shutil.copytree(home, other)  # a copy made while no writer runs
    else:
        FoodIndex.restore(tmp_path / "bk", other, embedder=embedder).close()
    _write_twice(other, embedder, "n")
    rows, readers = _log(other)
    # The original home's entry no longer pins the log: it is pruned to the last save,
    # and the one reader left is the home itself, naming its own database file.
    assert rows == 0
    assert len(readers) == 1 and readers[0].endswith(str((other / "foodvec.db").resolve()))
    _write_twice(home, embedder, "o")  # the original prunes its own log as before
    assert _log(home)[0] == 0


@pytest.mark.hostile
def test_stale_or_damaged_reader_entries_do_not_pin_the_log(home):
    from indexer.storage.store import READER_TTL_S

    embedder = FakeEmbedder(32)
    with FoodIndex(home, embedder=embedder) as idx:
        idx.upsert([{"id": "a", "text": "기본 음식"}])
        now = time.time()
        entries = {
            "old": f"1 {now - READER_TTL_S - 60:.0f}",  # not seen for longer than the TTL
            "future": f"1 {now + 10 * 365 * 86400:.0f}",  # a wrong clock: would never expire
            "nan": "1 nan",
            "garbled": "x",
            "gone": f"1 {now:.0f} {home / 'gone' / 'foodvec.db'}",  # a file it no longer reads
        }
        with idx._store.immediate() as conn:
            for name, value in entries.items():
                idx._store._set(conn, f"reader:{name}", value)
        idx.upsert([{"id": "b", "text": "새 음식 하나"}])  # publishes: prunes
        idx.upsert([{"id": "c", "text": "새 음식 둘"}])
        assert idx.verify() == []
    rows, readers = _log(home)
    assert rows == 0 and len(readers) == 1


# 15. a failed restore left a bad database in place, and the retry was refused -----------
@pytest.mark.hostile
@pytest.mark.parametrize("damage", ["garbage", "overwritten-page", "copy-fails"])
def test_a_failed_restore_leaves_nothing_and_a_retry_works(built, tmp_path, damage, monkeypatch):
    import shutil
    import sqlite3

    assert run("backup", tmp_path / "bk").exit_code == 0
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "bk", bad)
    db = bad / "foodvec.db"
    if damage == "garbage":
        db.write_bytes(b"not a database " * 1000)
    elif damage == "overwritten-page":
        conn = sqlite3.connect(db)
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'ix_items_name_key'"
        ).fetchone()[0]
        conn.close()
        with open(db, "r+b") as fh:
            fh.seek((root - 1) * page)
            fh.write(b"\xa5" * page)
    new = tmp_path / "new-home"
    with monkeypatch.context() as m:
        if damage == "copy-fails":
            real = shutil.copytree

            def copytree(src, dst, *a, **k):
                if "index" in str(src):
                    raise OSError(28, "No space left on device")
                return real(src, dst, *a, **k)

            m.setattr(shutil, "copytree", copytree)
        res = run("restore", bad, "--home", new)
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    if damage != "copy-fails":
        assert "does not restore" in lines[0] and "nothing was restored" in lines[0]
    assert not (new / "foodvec.db").exists()
    assert not list(tmp_path.glob(".new-home.restoring-*"))  # no half-restored folder
    res = run("restore", tmp_path / "bk", "--home", new, "--json")  # the retry works
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["items"] == 234 and out["problems"] == []


# 16. restore verified FOODVEC_DB's database, not the restored file ------------------------
@pytest.mark.parametrize("env_db", ["sqlite", "postgres"])
def test_restore_verifies_the_file_it_restored_whatever_foodvec_db_says(
    built, tmp_path, monkeypatch, request, env_db
):
    assert run("backup", tmp_path / "bk").exit_code == 0
    if env_db == "postgres":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert run("init", "--db", url).exit_code == 0  # an empty database somewhere else
    monkeypatch.setenv("FOODVEC_DB", url)
    res = run("restore", tmp_path / "bk", "--home", tmp_path / "new", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["items"] == 234 and out["problems"] == [], out
    assert out["home"] == str(tmp_path / "new")
    with FoodIndex(tmp_path / "new", db=f"sqlite:///{tmp_path / 'new' / 'foodvec.db'}") as idx:
        assert idx.count() == 234 and idx.verify() == []
    with FoodIndex(tmp_path / "x", db=url) as other:
        assert other.count() == 0  # the exported database was neither read nor written


# 16. backup on PostgreSQL left index files behind before it refused -----------------------
@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_backup_on_postgres_refuses_before_writing_anything(built, tmp_path):
    res = run("backup", tmp_path / "bk")
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert res.exit_code == 1 and len(lines) == 1 and "pg_dump" in lines[0], res.output
    assert not (tmp_path / "bk").exists()
    (tmp_path / "empty").mkdir()
    assert run("backup", tmp_path / "empty").exit_code == 1
    assert list((tmp_path / "empty").iterdir()) == []


# issue 27 item 7: backups link the model; a restored home names its own model ------------
def _home_with_a_model(home):
    """A home whose items were embedded by the model in HOME/models/default (a fake
    embedder standing for the folder's model: same name, same fingerprint)."""
    from indexer.embedder import model_fingerprint

    folder = home / "models" / "default"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 32}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (folder / "foodvec_model.json").write_text('{"mine_threshold": 0.8}')
    embedder = FakeEmbedder(32)
    embedder.name, embedder.fingerprint = str(folder), model_fingerprint(folder)
    with FoodIndex(home, embedder=embedder) as idx:
        idx.upsert([{"id": f"a{n}", "text": f"기본 음식 {n}"} for n in range(20)])
        assert idx.stats()["model_name"] == str(folder)
    return folder, embedder


def _inode(path):
    return path.stat().st_ino


@pytest.mark.parametrize("how", ["linked", "copied", "referenced"])
def test_backups_link_the_model_and_a_restored_home_names_its_own(home, tmp_path, how, monkeypatch):
    import os

    folder, embedder = _home_with_a_model(home)
    weights = folder / "model.safetensors"
    with FoodIndex(home, embedder=embedder) as idx:
        with monkeypatch.context() as m:
            if how == "referenced":  # another file system: no hard links

                def no_link(*a, **k):
                    raise OSError(18, "Invalid cross-device link")

                m.setattr(os, "link", no_link)
            out = idx.backup(tmp_path / "bk", with_model=how == "copied")
    assert out["model"] == how
    copy = tmp_path / "bk" / "models" / "default" / "model.safetensors"
    if how == "linked":
        assert _inode(copy) == _inode(weights)  # no second 1 MiB: the same file
    elif how == "copied":
        assert _inode(copy) != _inode(weights) and copy.read_bytes() == weights.read_bytes()
    else:
        assert not copy.exists()
        manifest = json.loads((tmp_path / "bk" / "foodvec_backup.json").read_text())
        assert manifest["model"] == {
            "kept": "referenced",
            "path": str(folder.resolve()),
            "active": embedder.fingerprint,
        }
    new = tmp_path / "new"
    with FoodIndex.restore(tmp_path / "bk", new, embedder=embedder) as r:
        stats = r.stats()
        assert stats["model_name"] == str(new / "models" / "default")  # its own, not home's
        assert r.model_spec() == str(new / "models" / "default")
        assert stats["mine_threshold"] == 0.8 and r.verify() == []
    restored = new / "models" / "default" / "model.safetensors"
    assert restored.read_bytes() == weights.read_bytes()
    assert _inode(restored) not in (_inode(weights), _inode(copy) if copy.exists() else -1)
    res = run("stats", "--json", "--home", new)
    assert res.exit_code == 0 and json.loads(res.stdout)["model_name"] == str(
        new / "models" / "default"
    )
    if how != "referenced":  # the command line says the same
        flag = ["--with-model"] if how == "copied" else []
        res = run("backup", tmp_path / "bk2", *flag, "--json", "--home", home)
        assert res.exit_code == 0 and json.loads(res.stdout)["model"] == how, res.output


def test_a_linked_model_changed_after_the_backup_is_named_at_restore(home, tmp_path, caplog):
    folder, embedder = _home_with_a_model(home)
    with FoodIndex(home, embedder=embedder) as idx:
        assert idx.backup(tmp_path / "bk")["model"] == "linked"
    with open(folder / "model.safetensors", "r+b") as fh:  # retrained in place
        fh.write(b"\xff" * 64)
    with caplog.at_level("WARNING", logger="foodvec"):
        with FoodIndex.restore(tmp_path / "bk", tmp_path / "new", embedder=embedder) as r:
            assert r.verify() == []
            # the items' model is left as it was: the changed copy is not theirs
            assert r.stats()["model_name"] == str(folder)
    assert any("changed after the backup" in rec.getMessage() for rec in caplog.records)


# issue 27 item 7: the index lock through filelock, with fcntl's semantics ------------------
def test_the_index_lock_excludes_threads_and_processes_and_dies_with_its_holder(home, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert([{"id": "a", "text": "사과"}])
    a, b = (FoodIndex(home, embedder=FakeEmbedder(16)) for _ in range(2))
    waited: list[float] = []

    def second() -> None:
        t0 = time.monotonic()
        with b.derived.file_lock():
            waited.append(time.monotonic() - t0)

    with a.derived.file_lock():  # another object in this process, on another thread
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        assert not waited  # still waiting
    t.join(timeout=30)
    assert waited and waited[0] >= 0.4

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from indexer import FoodIndex\n"
            "idx = FoodIndex(sys.argv[1], db='sqlite:///' + sys.argv[1] + '/foodvec.db')\n"
            "with idx.derived.file_lock():\n"
            "    print('held', flush=True); time.sleep(60)\n",
            str(home),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        got = threading.Event()

        def third() -> None:
            with a.derived.file_lock():
                got.set()

        t = threading.Thread(target=third)
        t.start()
        assert not got.wait(1.0)  # another process holds it
        holder.kill()  # a holder that dies (SIGKILL) releases it
        assert got.wait(30)
        t.join(timeout=30)
    finally:
        holder.kill()
        holder.wait()
        a.close()
        b.close()
