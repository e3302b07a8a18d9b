"""Backups of a home and restores from them (``foodvec backup``, ``foodvec restore``).

A backup is a folder laid out like a home: the database (SQLite's online backup, taken
while writers go on), the published index files as they stood then, the trained
default model (hard-linked, copied or referenced) and a manifest (``MANIFEST``) of what
it holds and where it came from. A restore is all or nothing: it is staged beside the
home, its indexes caught up and verified there against its own database, and only then
moved into place, the database last.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .ann import SIDECAR, read_sidecar
from .derived import DerivedIndex, refuse_an_emptied_database
from .errors import BadInputError
from .settings import Layout
from .storage import Store, settle_sqlite_file

log = logging.getLogger("foodvec")

# A backup's record of what it holds and where it came from.
MANIFEST = "foodvec_backup.json"

T = TypeVar("T")


def backup(
    store: Store, derived: DerivedIndex, dest: Path | str, with_model: bool = False
) -> dict[str, Any]:
    """Copy the home of ``derived`` into the empty folder ``dest`` while writers go
    on: the database through SQLite's online backup (every write committed before the
    backup began is in it), the published index files as they stood then (a restored
    home catches them up from the change log), and the trained default model,
    hard-linked (no space taken) or, where links cannot be made (another file system),
    referenced by its path; ``with_model`` copies it instead. A manifest records where
    the home was and how the model was kept. Nothing is written before every check has
    passed, and a backup that fails half-way is removed. Returns what was done."""
    layout = derived.layout
    dest = Path(dest).expanduser()
    if not store.file_backup_supported:
        raise BadInputError(
            f"foodvec backup copies SQLite databases; back up a {store.dialect} "
            "database with its own tools (pg_dump), and rebuild a home's index from it"
        )
    inside, home = dest.resolve(), layout.home.resolve()
    if inside == home or home in inside.parents or inside in home.parents:
        raise BadInputError(
            f"{dest} is inside the home {layout.home} (or holds it); back up elsewhere"
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BadInputError(f"{dest} is not empty; back up into a new folder")
    made = not dest.exists()
    target = Layout(dest)
    t0 = time.perf_counter()
    try:
        target.index_dir.mkdir(parents=True, exist_ok=True)
        # Under the file lock no process publishes (or prunes the log past) the index
        # being copied, so the copied database's log reaches back to it.
        with derived.lock_unless_read_only():
            side = _copy_published(layout.index_dir, target.index_dir)
            generation = store.backup_to(target.database)
        kept = _back_up_model(layout.default_model, target.default_model, with_model)
        manifest = {
            "format": 1,
            "home": str(home),
            "generation": generation,
            "model": {
                "kept": kept,  # linked, copied, referenced, or None (no trained model)
                "path": str(layout.default_model.resolve()) if kept else None,
                "active": store.active_model(),
            },
        }
        (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    except BaseException:
        _remove_made(dest, made)
        raise
    return {
        "backup": str(dest),
        "generation": generation,
        "index_generation": side.get("generation"),
        "model": kept,
        "model_copied": kept in ("linked", "copied"),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _copy_published(index_dir: Path, into: Path) -> dict[str, Any]:
    """Copy the published index files (those its sidecar names, and the sidecar last);
    the sidecar as read ({} when there is none)."""
    side = read_sidecar(index_dir) or {}
    for name in (side.get("file"), side.get("lexical")):
        if _file_name(name) and (index_dir / name).is_file():
            shutil.copy2(index_dir / name, into / name)
    if side:
        shutil.copy2(index_dir / SIDECAR, into / SIDECAR)
    return side


def _back_up_model(src: Path, dest: Path, copy: bool) -> str | None:
    """Keep the trained default model in a backup: ``copied``, ``linked`` (its files
    hard-linked: a backup costs no model's worth of space) or ``referenced`` (no
    link across file systems: the manifest names the folder). None: no model."""
    if not src.is_dir():
        return None
    if copy:
        shutil.copytree(src, dest)
        return "copied"
    try:
        shutil.copytree(src, dest, copy_function=os.link)
        return "linked"
    except (OSError, shutil.Error):
        shutil.rmtree(dest, ignore_errors=True)
        return "referenced"


def restore(src: Path | str, home: Path, open_home: Callable[[Path, str], T]) -> T:
    """A home at ``home`` made from a backup folder (``backup``), all or nothing, opened
    by ``open_home(home, database URL)``: the backup is restored into a temporary
    folder beside the home, its indexes caught up and verified there against its own
    database (whatever ``FOODVEC_DB`` says), and only then moved into place, the
    database last. A backup that does not verify leaves nothing behind, so a retry
    works. Refuses a home that already holds a database. The restored home has its own
    copy of the model (the backup's, or the one its manifest references), recorded
    under the home's path, and none of the original home's change-log readers."""
    src = Path(src).expanduser()
    source = Layout(src)
    if not source.database.is_file():
        raise BadInputError(f"{src} is not a foodvec backup: it has no {source.database.name}")
    target = Layout(home)
    if target.database.exists():
        raise BadInputError(f"{home} already holds a database; restore into a new or empty home")
    if home.exists() and not home.is_dir():
        raise BadInputError(f"{home} is not a folder")
    manifest = _read_manifest(src / MANIFEST)
    model_from = _backed_up_model(source, manifest)
    parent = home.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    for left in parent.glob(f".{home.name}.restoring-*"):
        shutil.rmtree(left, ignore_errors=True)  # a restore killed half-way
    work = Path(tempfile.mkdtemp(prefix=f".{home.name}.restoring-", dir=parent))
    try:
        stage = Layout(work)
        shutil.copy2(source.database, stage.database)
        if source.index_dir.is_dir():
            shutil.copytree(
                source.index_dir, stage.index_dir, ignore=shutil.ignore_patterns(".lock")
            )
        own_model = model_from is not None and not target.default_model.exists()
        if own_model:
            shutil.copytree(model_from, stage.default_model)  # its own: never links
        problems = _check_restored(stage, target, manifest, own_model)
        if problems:
            shown = "; ".join(problems[:3]) + ("; …" if len(problems) > 3 else "")
            raise BadInputError(
                f"{src} does not restore ({shown}); nothing was restored into {home}"
            )
        settle_sqlite_file(stage.database)  # one file to move: no -wal, no -shm
        _move_into(work, home, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return open_home(home, target.db_url)


def _check_restored(
    stage: Layout, target: Layout, manifest: dict[str, Any], own_model: bool
) -> list[str]:
    """Open the restored home where it is staged (its own database, never
    ``FOODVEC_DB``'s), catch its indexes up and verify them: the problems found."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        refuse_an_emptied_database(stage)
        store = Store.open(stage.db_url)
        try:
            store.forget_readers()  # the original home's: they would pin the log
            if own_model:
                _adopt_model(store, manifest, target.default_model, stage.default_model)
            problems = DerivedIndex(store, stage).verify()
            store.forget_readers()  # the staging folder's own, from the catch-up
            return problems
        finally:
            store.close()
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        return [f"its database cannot be read: {type(cause).__name__}: {first}"]


def _adopt_model(store: Store, manifest: dict[str, Any], now_at: Path, copied: Path) -> None:
    """Record the restored home's own model folder as the model of the items that
    were embedded with the backed-up one (its fingerprint must match)."""
    from .embedder import model_fingerprint

    was = (manifest.get("model") or {}).get("path")
    for info in store.models():
        name = str(info["name"])
        ours = name == was or (was is None and Path(name).parts[-2:] == ("models", "default"))
        if not ours:
            continue
        try:
            fp = model_fingerprint(copied)
        except OSError as exc:
            log.warning("the restored model at %s cannot be read: %s", copied, exc)
            return
        if fp != info["fingerprint"]:
            log.warning(
                "the backup's model (from %s) is not the one the items were embedded "
                "with (fingerprint %s, not %s): it changed after the backup; search "
                "needs that model (--model) or a rebuild",
                name,
                fp[:12],
                str(info["fingerprint"])[:12],
            )
            continue
        store.rename_model(info["fingerprint"], str(now_at))


def _file_name(name: Any) -> bool:
    """A name of a file inside the index folder (a sidecar may be damaged or hostile:
    no folder part, nothing outside the folder)."""
    return isinstance(name, str) and name not in ("", ".", "..") and not set("/\\\x00") & set(name)


def _remove_made(dest: Path, made: bool) -> None:
    """Undo a failed backup: the folder it made, or what it put into an empty one."""
    if made:
        shutil.rmtree(dest, ignore_errors=True)
    elif dest.is_dir():
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def _read_manifest(path: Path) -> dict[str, Any]:
    """A backup's manifest ({} for a backup made before manifests, or a damaged one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _backed_up_model(source: Layout, manifest: dict[str, Any]) -> Path | None:
    """The model folder a restore takes: the backup's own (copied or linked), else
    the one its manifest references, when it is still there."""
    if source.default_model.is_dir():
        return source.default_model
    model = manifest.get("model")
    path = model.get("path") if isinstance(model, dict) else None
    if isinstance(path, str) and path and Path(path).is_dir():
        return Path(path)
    if isinstance(path, str) and path:
        log.warning("the backup references the model at %s, which is gone", path)
    return None


def _move_into(work: Path, home: Path, target: Layout) -> None:
    """Move a staged home into place. A new or empty home is the staged folder,
    renamed; into a folder that holds other things (but no database) the staged
    folders move first and the database last, so a half move is still no home."""
    if home.is_dir() and not any(home.iterdir()):
        home.rmdir()
    if not home.exists():
        os.rename(work, home)
        return
    stage = Layout(work)
    if target.index_dir.exists():  # derived files without a database: stale
        shutil.rmtree(target.index_dir)
    for child in work.iterdir():
        if child != stage.database:
            _merge_move(child, home / child.name)
    os.replace(stage.database, target.database)
    shutil.rmtree(work, ignore_errors=True)


def _merge_move(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest``; into a folder already there, what it lacks (what the
    home holds already is kept)."""
    if not dest.exists():
        os.rename(src, dest)
    elif src.is_dir() and dest.is_dir():
        for child in src.iterdir():
            _merge_move(child, dest / child.name)
