"""The trained default model, cached per user: trained once, copied into every home.

``foodvec train`` with its defaults looks the model up here first (docs/model.md, "The
per-user cache"): an entry is keyed by what makes the model what it is — the recipe and
its settings, the training data, the base model's weights and the training code — so a
second clone's
``make demo`` copies the model in seconds, and a change to any of them trains anew.

An entry is ``CACHE/models/<key>/`` (CACHE: FOODVEC_CACHE, the per-user cache that also
holds the exported ONNX graphs): ``model/``, the model folder as training left it (its
ONNX graph included), and ``entry.json``, what the key was made of and every file's
size and the weights' fingerprint. It is written beside and renamed into place, so an
entry is whole or absent; one damaged later (a file missing or cut short, other
weights) is ignored and replaced by the next training. Nothing is ever linked: a home's
copy is its own, so retraining a home never changes the cache, nor the cache a home.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .settings import DATA_DIR, settings

KEY_VERSION = 1
ENTRY = "entry.json"
MODEL = "model"
# The packaged data files that training does not read (the score curves of search, prose).
NOT_TRAINING_DATA = ("README.md", "calibration.json")
# The modules whose code shapes the trained model: the recipes, their pairs and
# examples, the health head, the calibrated threshold and the shipped ONNX graph.
TRAINING_CODE = (
    "train.py",
    "pairs.py",
    "knowledge.py",
    "understand.py",
    "health.py",
    "evaluate.py",
    "onnx_encoder.py",
)
STALE_SECONDS = 24 * 3600  # a half-written entry this old belongs to no running process


def cache_root() -> Path:
    return settings().cache / "models"


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_hash(data: Path, data_dir: Path | None = None) -> str:
    """SHA-256 over the training CSV and every packaged data file training reads (the
    corpora its pairs come from, the knowledge table, the held-out phrases, ...)."""
    data_dir = Path(data_dir or DATA_DIR)
    h = hashlib.sha256(b"data\0" + _file_hash(Path(data)).encode())
    for f in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        rel = f.relative_to(data_dir).as_posix()
        if f.name in NOT_TRAINING_DATA or f.name.startswith(".") or "__pycache__" in rel:
            continue
        h.update(rel.encode() + b"\0" + _file_hash(f).encode() + b"\0")
    return h.hexdigest()


def base_hash(base: str) -> str:
    """The base model's fingerprint (weights, tokenizer, configuration)."""
    from .embedder import BASE_MODEL_ALIAS, base_model_path, check_model_folder, model_fingerprint

    path = base_model_path() if base == BASE_MODEL_ALIAS else Path(base).expanduser()
    check_model_folder(path)
    return model_fingerprint(path, settings().cache / "fingerprints.json")


def code_hash() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in TRAINING_CODE:
        h.update(name.encode() + b"\0" + _file_hash(here / name).encode() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class Entry:
    """Where the model of one training key lives in the cache, and what the key is."""

    key: str
    parts: dict[str, Any]
    path: Path

    @property
    def model(self) -> Path:
        return self.path / MODEL


def entry_for(cfg: Any, root: Path | None = None) -> Entry:
    """The cache entry of a training configuration (an ``indexer.train.TrainConfig``):
    its recipe and every setting, the data's hash, the base model's and the code's.
    Paths among the settings count by their content, never their location, so every
    clone of the same sources finds the same entry."""
    settings_: dict[str, Any] = {}
    for name, value in sorted(asdict(cfg).items()):
        if name in ("output", "data", "base"):
            continue
        if isinstance(value, Path):
            value = _file_hash(value) if value.is_file() else None
        settings_[name] = value
    parts = {
        "version": KEY_VERSION,
        "recipe": cfg.recipe,
        "settings": settings_,
        "data": data_hash(cfg.data),
        "base": base_hash(str(cfg.base)),
        "code": code_hash(),
    }
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    key = hashlib.sha256(blob).hexdigest()[:32]
    return Entry(key, parts, (root or cache_root()) / key)


def _files(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def check(entry: Entry) -> tuple[dict | None, str]:
    """The entry's record when it is whole (every file there at its size, the weights
    those recorded), else None and what is wrong ('' when the cache has no such entry)."""
    from .embedder import model_fingerprint

    if not entry.path.exists():
        return None, ""
    try:
        record = json.loads((entry.path / ENTRY).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"its {ENTRY} is unreadable ({type(exc).__name__})"
    if not isinstance(record, dict) or record.get("key") != entry.key:
        return None, f"its {ENTRY} is not this entry's"
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return None, f"its {ENTRY} lists no files"
    for rel, size in files.items():
        f = entry.model / rel
        if not f.is_file():
            return None, f"{MODEL}/{rel} is missing"
        if f.stat().st_size != size:
            return None, f"{MODEL}/{rel} has {f.stat().st_size} bytes, not {size}"
    if model_fingerprint(entry.model) != record.get("fingerprint"):
        return None, "its weights are not those it was stored with"
    return record, ""


def _replace_folder(stage: Path, out: Path) -> None:
    """Put ``stage`` at ``out``, moving whatever was there away first."""
    old = None
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
    os.rename(stage, out)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def fetch(entry: Entry, out: Path) -> tuple[dict | None, str]:
    """Copy the cached model to ``out`` (replacing what is there); returns the entry's
    record, or None and why not ('' when the cache has no entry); the entry is checked
    first (``check``), so a damaged one is never copied."""
    record, why = check(entry)
    if record is None:
        return None, why
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.with_name(f".{out.name}.cache-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        shutil.copytree(entry.model, stage)
        _record_origin(stage, out, entry)
        _replace_folder(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return record, ""


def _record_origin(model: Path, out: Path, entry: Entry) -> None:
    """The copy's training record names its own folder and the entry it came from."""
    path = model / "foodvec_training.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(info, dict):
        if isinstance(info.get("config"), dict):
            info["config"]["output"] = str(out)
        info["from_cache"] = str(entry.path)
        path.write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")


def store(entry: Entry, model: Path, extra: dict[str, Any] | None = None) -> Path:
    """Copy the model folder into the cache as ``entry`` (a damaged entry there is
    replaced; a whole one, stored meanwhile by another process, is kept). ``extra``
    (the training's figures) goes into the record. Returns the entry's folder."""
    from .embedder import model_fingerprint

    root = entry.path.parent
    root.mkdir(parents=True, exist_ok=True)
    _drop_stale(root)
    tmp = root / f".{entry.key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(model, tmp / MODEL)
        record = {
            "key": entry.key,
            "parts": entry.parts,
            "fingerprint": model_fingerprint(tmp / MODEL),
            "files": _files(tmp / MODEL),
            "stored": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **(extra or {}),
        }
        (tmp / ENTRY).write_text(
            json.dumps(record, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
        )
        if entry.path.exists():
            if check(entry)[0] is not None:
                return entry.path  # another process stored the same model first
            shutil.rmtree(entry.path)
        try:
            os.rename(tmp, entry.path)
        except OSError:
            if check(entry)[0] is None:  # not a race lost to a whole entry
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry.path


def _drop_stale(root: Path) -> None:
    """Remove half-written entries left by processes that died long ago."""
    now = time.time()
    for p in root.glob(".*.tmp-*"):
        try:
            if now - p.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
