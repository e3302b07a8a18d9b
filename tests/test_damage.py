"""Every file of a home, damaged every way (issue 26, "What to build" 2).

A home is built once: the sample corpus, indexed with the tests' fake model standing
for a trained one in ``models/default`` (its settings, health head and fingerprint
cache beside it), and a build that rejected a row (its report). Each file the home
holds is then damaged in turn: cut to half, emptied, bytes flipped, filled with
zeros, junk written into an empty file, the numbers of a JSON file made NaN, Infinity
or huge, or made read-only with its folder. Against each damaged copy run ``search``,
``verify``, ``stats``, a write (``add``), the server's ``/search`` (in process, through
the TestClient) and, for a file that other code reads, that code; every operation gets
a freshly damaged copy. Each must end in a correct answer (the index rebuilt from the
database where a derived file was damaged) or a clear one-line error: never a crash,
a hang, a wrong answer, or rows lost from the database.

Files whose loading is native code (SQLite, FAISS) or trusts its arrays (the lexical
index), and the read-only cases (whose permissions must hold, for root too:
``unprivileged``), run in a process of their own (``python -m tests.test_damage``), so
that a crash fails its case instead of ending pytest; the others run in process, each
under a time limit.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SAMPLE, make_read_only, make_writable, unprivileged
from tests.fakes import FakeEmbedder

pytestmark = pytest.mark.hostile

# name -> the file's path in the home (a glob: the index files carry generations)
FILES = {
    "database": "foodvec.db",
    "faiss": "index/faiss-*.index",
    "sidecar": "index/index.json",
    "lexical": "index/lexical-*.npz",
    "lock": "index/.lock",
    "model-settings": "models/default/foodvec_model.json",
    "health-head": "models/default/health_head.json",
    "model-modules": "models/default/modules.json",
    "pooling-config": "models/default/1_Pooling/config.json",
    "fingerprints": "models/fingerprints.json",
    "reject-report": "reports/rejected-*.jsonl",
}
# Files of the home the matrix leaves out: read only by the model libraries
# (transformers, tokenizers, safetensors) when a real model loads, which the fake model
# stands in for here; foodvec's own code only hashes them (the fingerprint).
MODEL_LIBRARY_FILES = {
    "models/default/config.json",
    "models/default/tokenizer.json",
    "models/default/model.safetensors",
}
JSON_FILES = {
    "sidecar",
    "model-settings",
    "health-head",
    "model-modules",
    "pooling-config",
    "fingerprints",
}
# loaded by native code (a damaged file could crash the process)
NATIVE = {"database", "faiss", "lexical"}
BYTE_DAMAGES = ("truncated", "emptied", "flipped", "zeroed", "read-only")
JSON_DAMAGES = ("nan", "infinity", "huge")
EMPTY_DAMAGES = ("junk", "read-only")  # for a file that holds nothing (the lock)
OPS = ("search", "verify", "stats", "add", "serve")
# what else reads the file
EXTRA_OPS = {
    "fingerprints": ("fingerprint",),
    "health-head": ("head",),
    "model-modules": ("supported",),
    "pooling-config": ("supported",),
    "reject-report": ("report",),
}
CASE_SECONDS = 240
QUERY, TOP_ID, TOP_TEXT = "김치", "k131", "김치: 유산균 풍부, 장 건강 지원"
NEW_ID = "dmg1"


def cases() -> list[tuple[str, str]]:
    out = []
    for name in FILES:
        damages = EMPTY_DAMAGES if name == "lock" else BYTE_DAMAGES
        if name in JSON_FILES:
            damages = damages + JSON_DAMAGES
        out.extend((name, d) for d in damages)
    return out


# -- the home ---------------------------------------------------------------------------
def build_template(root: Path) -> Path:
    """A home as a trained model leaves it, with the fake model's vectors."""
    from indexer import BuildOptions, FoodIndex
    from indexer.embedder import model_fingerprint
    from indexer.settings import Layout

    layout = Layout(root)
    model = layout.default_model
    (model / "1_Pooling").mkdir(parents=True)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (model / "modules.json").write_text(json.dumps(modules))
    pooling = {"embedding_dimension": 64, "pooling_mode": "mean", "include_prompt": True}
    (model / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (model / "config.json").write_text(json.dumps({"hidden_size": 64, "num_hidden_layers": 6}))
    (model / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {}}))
    (model / "model.safetensors").write_bytes(random.Random(1).randbytes(64 * 1024))
    (model / "foodvec_model.json").write_text(json.dumps({"mine_threshold": 0.85}))
    head = {
        "weights": [round(0.01 * i - 0.3, 4) for i in range(64)],
        "bias": -0.2,
        "l2": 1.0,
        "heldout_accuracy": 0.9,
        "train_rows": 120,
    }
    (model / "health_head.json").write_text(json.dumps(head))
    model_fingerprint(model, layout.models_dir / "fingerprints.json")  # as a load writes it
    bad = root.parent / "bad.jsonl"
    bad.write_text('{"id": "r1", "text": ""}\n{"id": "r2", "text": "보리: 식이섬유"}\n')
    with FoodIndex(root, embedder=FakeEmbedder(64), db=layout.db_url) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
        idx.build([bad], BuildOptions(progress=False, on_error="skip"))
        idx.delete(["r2"])  # the corpus again, with a reject report
        assert idx.count() == 234 and idx.verify() == []
    return root


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return build_template(tmp_path_factory.mktemp("damage") / "home")


def the_file(home: Path, name: str) -> Path:
    found = sorted(home.glob(FILES[name]))
    assert len(found) == 1, (name, found)
    return found[0]


def rows(home: Path) -> dict[bytes, tuple[bytes, bytes]]:
    """The items of a home's database as stored (bytes: a damaged text stays
    comparable), read without writing anything."""
    uri = f"file:{home / 'foodvec.db'}?immutable=1"
    conn = sqlite3.connect(uri, uri=True)
    conn.text_factory = bytes
    try:
        found = conn.execute("SELECT ext_id, text, metadata FROM items").fetchall()
    finally:
        conn.close()
    return {r[0]: (r[1], r[2]) for r in found}


def rows_before(template: Path, work: Path, name: str, how: str):
    """The rows each operation must leave: the template's; for a damaged database,
    those of a copy damaged the same way (None when it cannot be read at all)."""
    if name != "database":
        return rows(template)
    ref = work / "reference"
    shutil.copytree(template, ref)
    damage(ref, name, how)
    make_writable(ref)
    try:
        return rows(ref)
    except (sqlite3.DatabaseError, UnicodeDecodeError):  # a flip in the schema's text
        return None


# -- the damage ---------------------------------------------------------------------------
def _numbers(obj: Any, value: Any) -> tuple[Any, int]:
    """``obj`` with every number replaced by ``value`` (and how many were)."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj, 0
    if isinstance(obj, (int, float)):
        return value, 1
    if isinstance(obj, list):
        parts = [_numbers(v, value) for v in obj]
        return [p[0] for p in parts], sum(p[1] for p in parts)
    parts_d = {k: _numbers(v, value) for k, v in obj.items()}
    return {k: p[0] for k, p in parts_d.items()}, sum(p[1] for p in parts_d.values())


def _strings(obj: Any, value: Any) -> Any:
    if isinstance(obj, str):
        return value
    if isinstance(obj, list):
        return [_strings(v, value) for v in obj]
    if isinstance(obj, dict):
        return {k: _strings(v, value) for k, v in obj.items()}
    return obj


def damage(home: Path, name: str, how: str) -> None:
    path = the_file(home, name)
    data = path.read_bytes()
    rng = random.Random(f"{name}/{how}")
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "flipped":
        flipped = bytearray(data)
        for at in rng.sample(range(len(data)), min(16, len(data))):
            flipped[at] ^= 0xFF
        path.write_bytes(bytes(flipped))
    elif how == "zeroed":
        path.write_bytes(bytes(len(data)))
    elif how == "junk":
        path.write_bytes(rng.randbytes(4096))
    elif how in JSON_DAMAGES:
        value = {"nan": math.nan, "infinity": math.inf, "huge": 10**40}[how]
        obj, n = _numbers(json.loads(data), value)
        if not n:  # no numbers (the fingerprint cache): its values instead
            obj = _strings(obj, value)
        path.write_text(json.dumps(obj))  # NaN and Infinity as Python's json writes them
    elif how == "read-only":
        make_read_only(path, path.parent)
    else:
        raise ValueError(how)


# -- the operations (run in the process that damages) ------------------------------------------
def _cli(home: Path, *args: str) -> dict[str, Any]:
    from click.testing import CliRunner

    from search.cli import cli

    res = CliRunner().invoke(cli, [*args, "--home", str(home)])
    return {"rc": res.exit_code, "out": res.stdout, "err": res.stderr}


def _clear(exc: BaseException) -> bool:
    """An error `foodvec serve` reports in one line (not an unexpected one)."""
    from sqlalchemy.exc import SQLAlchemyError

    from indexer.errors import FoodvecError

    return isinstance(exc, (FoodvecError, SQLAlchemyError))


def op_serve(home: Path) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from indexer import FoodIndex
    from search.service import create_app

    try:
        idx = FoodIndex(home)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "clear": _clear(exc)}
    try:
        app = create_app(idx, compact_every=0, catch_up_every=0)
        with TestClient(app, raise_server_exceptions=False) as client:
            r = client.post("/search", json={"query": QUERY, "k": 1})
            return {"status": r.status_code, "body": r.text}
    except Exception as exc:  # the app did not start (or stop)
        return {"error": f"{type(exc).__name__}: {exc}", "clear": _clear(exc)}
    finally:
        idx.close()


def op_fingerprint(home: Path) -> dict[str, Any]:
    from indexer.embedder import model_fingerprint

    folder = home / "models" / "default"
    try:
        cached = model_fingerprint(folder, home / "models" / "fingerprints.json")
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "clear": _clear(exc)}
    return {"same": cached == model_fingerprint(folder)}


def op_head(home: Path) -> dict[str, Any]:
    import numpy as np

    from indexer.health import load_head

    try:
        head = load_head(home / "models" / "default")
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "clear": False}
    if head is None:
        return {"head": None}
    w = np.asarray(head.weights)
    finite = bool(np.isfinite(w).all() and math.isfinite(head.bias))
    return {"head": "loaded", "finite": finite, "shape": list(w.shape)}


def op_supported(home: Path) -> dict[str, Any]:
    """Whether the ONNX encoder can run the model (it reads modules.json and the
    pooling config): a yes or no, never an exception."""
    from indexer import onnx_encoder

    try:
        return {"supported": bool(onnx_encoder.supported(home / "models" / "default"))}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "clear": False}


def op_report(home: Path) -> dict[str, Any]:
    bad = home.parent / f"{home.name}-bad.jsonl"
    bad.write_text('{"id": "r3", "text": ""}\n{"id": "r4", "text": "귀리: 식이섬유"}\n')
    return _cli(home, "build", str(bad), "--on-error", "skip", "-q")


OPERATIONS = {
    "search": lambda h: _cli(h, "search", QUERY, "-k", "1", "--json"),
    "verify": lambda h: _cli(h, "verify"),
    "stats": lambda h: _cli(h, "stats", "--json"),
    "add": lambda h: _cli(h, "add", "새 음식: 단백질", "--id", NEW_ID),
    "serve": op_serve,
    "fingerprint": op_fingerprint,
    "head": op_head,
    "supported": op_supported,
    "report": op_report,
}


def fake_model() -> None:
    """Every model folder loads as the fake embedder the template was built with."""
    import indexer.home_model

    fake = FakeEmbedder(64)
    indexer.home_model.load_embedder = lambda spec, **kw: fake


def run_case(template: Path, work: Path, name: str, how: str) -> list[dict[str, Any]]:
    """Each operation of the case on a copy of the home damaged afresh."""
    results = []
    for op in OPS + EXTRA_OPS.get(name, ()):
        home = work / op
        shutil.copytree(template, home)
        if op == "fingerprint":
            # The cache is keyed by the files' paths: give it this copy's entry first,
            # so that the damaged file is the one the code reads.
            from indexer.embedder import model_fingerprint

            model_fingerprint(home / "models" / "default", home / "models" / "fingerprints.json")
        damage(home, name, how)
        results.append({"op": op, "home": str(home), **OPERATIONS[op](home)})
    return results


# -- the verdict ------------------------------------------------------------------------------
def _strict_json(text: str) -> Any:
    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _cli_problem(op: str, r: dict[str, Any]) -> str | None:
    rc, out, err = r["rc"], r["out"], r["err"]
    lines = [x for x in err.splitlines() if x.strip()]
    if "Traceback" in err or "unexpected" in err:
        return f"an unexpected error: {err.strip()[-300:]}"
    if rc == 1:
        said = [x for x in lines if x.startswith(("Error:", "MISMATCH:"))]
        notes = [x for x in lines if x.startswith("foodvec:")]
        if not said or len(said) + len(notes) != len(lines) or len(notes) > 2:
            return f"not a clear error: {err.strip()[-300:]!r}"
        if op != "verify" and len(said) != 1:
            return f"more than one error line: {err.strip()[-300:]!r}"
        return None
    if rc != 0:
        return f"exit {rc}: {(out + err).strip()[-300:]!r}"
    if len(lines) > 2:
        return f"too many warning lines: {lines}"
    try:
        if op == "search":
            top = _strict_json(out)["results"][0]
            if (top["id"], top["text"]) != (TOP_ID, TOP_TEXT):
                return f"a wrong answer: {top['id']} {top['text']!r}"
        elif op == "stats":
            s = _strict_json(out)
            if s["items"] != 234 or not -1 <= s["mine_threshold"] <= 1:
                return f"wrong stats: items {s['items']}, threshold {s['mine_threshold']}"
        elif op == "verify" and not out.startswith("ok: index and database agree (234 items"):
            return f"verify said {out.strip()!r}"
        elif op == "add" and "added" not in out:
            return f"add said {out.strip()!r}"
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"not a usable answer ({exc}): {out[:300]!r}"
    return None


INDEX_FILES = {"faiss", "sidecar", "lexical", "lock"}


def must_answer(name: str, how: str, op: str) -> bool:
    """Whether the operation must succeed (an error, however clear, is wrong): always,
    except on a damaged database (which has no second copy), for a write where the
    file's folder is read-only (the index folder: the write commits but its index is
    not saved; the report folder: no report), and for a write to a read-only database."""
    if name == "database":
        return how == "read-only" and op not in ("add",)
    if how == "read-only":
        return not (
            (op == "add" and name in INDEX_FILES) or (op == "report" and name == "reject-report")
        )
    return True


def succeeded(r: dict[str, Any]) -> bool:
    if "rc" in r:
        return r["rc"] == 0
    if "error" in r:
        return False
    return r.get("status", 200) == 200


def problem(op: str, r: dict[str, Any]) -> str | None:
    """What is wrong with one operation's outcome (None: a right answer or a clear
    error)."""
    if "rc" in r:
        return _cli_problem(op, r)
    if "error" in r:
        return None if r["clear"] else f"an unexpected error: {r['error'][:300]}"
    if op == "serve":
        try:
            body = _strict_json(r["body"])
            if r["status"] == 200:
                top = body["results"][0]
                ok = (top["id"], top["text"]) == (TOP_ID, TOP_TEXT)
                return None if ok else f"/search answered {top['id']}"
            detail = str(body.get("detail", ""))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            return f"/search gave {r['status']} with no usable answer ({exc}): {r['body'][:300]}"
        if r["status"] < 400 or detail.startswith("internal error"):
            return f"/search gave {r['status']}: {detail}"
        return None
    if op == "fingerprint":
        return None if r["same"] else "the cached fingerprint is not the model's"
    if op == "head":
        if r["head"] is None or (r["finite"] and r["shape"] == [64]):
            return None
        return f"a health head that is not usable was loaded: {r}"
    if op == "supported":
        return None  # an answer, not an exception
    return f"unknown outcome {r}"


def lost_rows(name: str, r: dict[str, Any], before) -> str | None:
    """Whether the operation left the database's rows as they must be: as they were,
    plus the added item when the add committed. On a damaged database only an
    operation that passed (a write, or verify) vouches for it."""
    committed = r["op"] == "add" and (
        r.get("rc") == 0 or "the write is committed" in r.get("err", "")
    )
    if name == "database" and not (r.get("rc") == 0 and r["op"] in ("add", "verify")):
        return None
    if before is None:
        return f"{r['op']} passed on a database that cannot be read"
    home = Path(r["home"])
    make_writable(home)
    try:
        after = rows(home)
    except sqlite3.DatabaseError as exc:
        return f"the database cannot be read after {r['op']}: {exc}"
    after.pop(b"r4", None)  # the report's build adds one good row
    if committed != (NEW_ID.encode() in after):
        return f"the added item is {'missing' if committed else 'there unacknowledged'}"
    after.pop(NEW_ID.encode(), None)
    if after != before:
        gone = sorted(set(before) - set(after))[:5]
        changed = sorted(k for k in before if k in after and after[k] != before[k])[:5]
        return f"rows lost or changed: gone {gone}, changed {changed}"
    return None


# -- the tests --------------------------------------------------------------------------------
def test_the_matrix_covers_every_file_a_home_holds(template):
    held = sorted(str(p.relative_to(template)) for p in template.rglob("*") if p.is_file())
    covered = {str(the_file(template, name).relative_to(template)) for name in FILES}
    assert sorted(covered | MODEL_LIBRARY_FILES) == held
    assert len(cases()) == len(set(cases()))


@pytest.mark.parametrize("name, how", cases())
def test_a_damaged_file_is_survived(template, tmp_path, monkeypatch, name, how):
    monkeypatch.delenv("FOODVEC_MODEL", raising=False)  # the home's model: models/default
    before = rows_before(template, tmp_path, name, how)
    if name in NATIVE or how == "read-only":
        cmd = [*unprivileged(), sys.executable, "-m", "tests.test_damage"]
        cmd += [str(template), str(tmp_path), name, how]
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, capture_output=True, text=True, timeout=CASE_SECONDS
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name}/{how}: a hang (no end in {CASE_SECONDS} s)")
        finally:
            make_writable(tmp_path)
        assert proc.returncode == 0, (
            f"{name}/{how}: crashed ({proc.returncode}): {proc.stderr[-2000:]}"
        )
        results = json.loads(proc.stdout.splitlines()[-1])
    else:
        import indexer.home_model

        fake = FakeEmbedder(64)
        monkeypatch.setattr(indexer.home_model, "load_embedder", lambda spec, **kw: fake)
        pool = ThreadPoolExecutor(1)
        try:
            results = pool.submit(run_case, template, tmp_path, name, how).result(CASE_SECONDS)
        except FutureTimeout:
            pytest.fail(f"{name}/{how}: a hang (no end in {CASE_SECONDS} s)")
        finally:
            pool.shutdown(wait=False)
    assert [r["op"] for r in results] == list(OPS + EXTRA_OPS.get(name, ()))
    found = []
    for r in results:
        for why in (problem(r["op"], r), lost_rows(name, r, before)):
            if why:
                found.append(f"{r['op']}: {why}")
        if must_answer(name, how, r["op"]) and not succeeded(r):
            said = r.get("err") or r.get("error") or r.get("body")
            found.append(f"{r['op']}: must answer, but: {str(said).strip()[-300:]}")
    assert not found, f"{name}/{how}:\n" + "\n".join(found)


if __name__ == "__main__":  # one case in a process of its own: TEMPLATE WORK FILE DAMAGE
    import faulthandler
    import os

    faulthandler.enable()  # a native crash prints where it happened
    os.environ.pop("FOODVEC_MODEL", None)
    os.environ.pop("FOODVEC_DB", None)
    fake_model()
    template_arg, work_arg, name_arg, how_arg = sys.argv[1:5]
    out = run_case(Path(template_arg), Path(work_arg), name_arg, how_arg)
    print(json.dumps(out, ensure_ascii=False))
