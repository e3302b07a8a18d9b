"""Faults that once broke foodvec, each named after its item in the hardening list:
bad values in metadata and ids, corrupted index files, and a verify that tells the
truth about them."""

from __future__ import annotations

import datetime
import decimal
import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer import BuildOptions, FoodIndex
from indexer.text import MAX_META_DEPTH, clean_metadata
from search.service import create_app
from tests.conftest import ROOT, SAMPLE, make_read_only, make_writable, run, unprivileged
from tests.fakes import FakeEmbedder

pytestmark = pytest.mark.hostile


def write_jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def count(home):
    with FoodIndex(home) as idx:
        return idx.count()


# 1. NaN or Infinity in metadata --------------------------------------------------------
def test_nan_and_infinity_in_metadata_are_stored_as_null_and_filters_keep_working(built, tmp_path):
    f = write_jsonl(
        tmp_path / "nan.jsonl",
        [
            '{"id": "n1", "text": "귀리: 식이섬유", "x": NaN, "y": 1e400, "z": -Infinity}',
            '{"id": "n2", "text": "보리: 식이섬유", "x": 2.5}',
        ],
    )
    assert run("build", f, "-q").exit_code == 0
    res = run("search", "귀리", "--filter", "category=곡류", "--json")
    assert res.exit_code == 0, res.output
    json.loads(res.output)  # valid JSON: no bare NaN
    res = run("search", "귀리", "--json", "-k", "3")
    hit = next(h for h in json.loads(res.output)["results"] if h["id"] == "n1")
    assert hit["metadata"] == {"x": None, "y": None, "z": None}
    with FoodIndex(built) as idx:
        with TestClient(create_app(idx, compact_every=0)) as c:
            r = c.post(
                "/items",
                content='{"items": [{"id": "h1", "text": "쌀: 탄수화물", "metadata": {"v": NaN}}]}',
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 200, r.text
            r = c.post("/search", json={"query": "쌀", "filters": {"category": "곡류"}})
            assert r.status_code == 200
        assert idx.verify() == []


# 2. verify misses corrupted vectors -----------------------------------------------------
def test_verify_names_items_whose_index_vector_is_nan_or_wrong(built):
    import faiss

    side = json.loads((built / "index" / "index.json").read_text())
    path = built / "index" / side["file"]
    index = faiss.read_index(str(path))
    ids = faiss.vector_to_array(index.id_map)
    vecs = np.vstack([index.reconstruct(int(i)) for i in ids])
    vecs[3, 0] = np.nan
    vecs[7] *= -1
    fresh = faiss.IndexIDMap2(faiss.IndexFlatIP(vecs.shape[1]))
    fresh.add_with_ids(vecs, ids)
    faiss.write_index(fresh, str(path))
    # As foodvec itself would have saved wrong vectors: the sidecar's checksum matches
    # (a file changed behind its back is refused by the checksum: the test below).
    side["crc32"] = zlib.crc32(path.read_bytes())
    (built / "index" / "index.json").write_text(json.dumps(side))
    res = run("verify")
    assert res.exit_code == 1
    assert "2 index vectors differ" in res.output
    assert str(int(ids[3])) in res.output and str(int(ids[7])) in res.output


def test_a_faiss_file_changed_behind_its_checksum_is_rebuilt(built):
    side = json.loads((built / "index" / "index.json").read_text())
    path = built / "index" / side["file"]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one vector's byte: FAISS would read the file without a word
    path.write_bytes(bytes(data))
    res = run("search", "김치", "-k", "1", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["results"][0]["id"] == "k131"
    warning = [line for line in res.stderr.splitlines() if "damaged" in line]
    assert len(warning) == 1 and "does not match its checksum" in warning[0]
    assert run("verify").exit_code == 0


# 4. a damaged FAISS file or sidecar ------------------------------------------------------
@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "empty",
        "wrong-dimension",
        "count-differs",
        "sidecar-list",
        "sidecar-one",
        "sidecar-format",
    ],
)
def test_damaged_index_or_sidecar_is_rebuilt_from_the_database(built, damage):
    import faiss

    folder = built / "index"
    side = json.loads((folder / "index.json").read_text())
    path = folder / side["file"]
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "wrong-dimension":
        other = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
        other.add_with_ids(np.ones((2, 8), np.float32), np.array([1, 2], np.int64))
        faiss.write_index(other, str(path))
    elif damage == "count-differs":
        side["count"] += 5
        (folder / "index.json").write_text(json.dumps(side))
    else:
        content = {"sidecar-list": [], "sidecar-one": [1], "sidecar-format": {"format": 1}}
        (folder / "index.json").write_text(json.dumps(content[damage]))
    res = run("search", "김치", "-k", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["id"] == "k131"
    # one line says what was wrong and that the index was rebuilt
    warning = [line for line in res.stderr.splitlines() if "damaged" in line]
    assert len(warning) == 1 and "rebuilding it from the database" in warning[0]
    assert run("verify").exit_code == 0
    assert count(built) == 234


# 5. deep or huge metadata ----------------------------------------------------------------
def test_deep_metadata_is_refused_with_the_row_named(built, tmp_path):
    deep = "1"
    for _ in range(MAX_META_DEPTH + 5):
        deep = '{"a": ' + deep + "}"
    f = write_jsonl(tmp_path / "deep.jsonl", ['{"id": "d1", "text": "x: y", "m": ' + deep + "}"])
    res = run("build", f)
    assert res.exit_code == 1 and "deep.jsonl" in res.output and "deeper than" in res.output
    big = json.dumps({"id": "b1", "text": "x: y", "m": "가" * 40_000}, ensure_ascii=False)
    res = run("build", write_jsonl(tmp_path / "big.jsonl", [big]))
    assert res.exit_code == 1 and "bytes as JSON" in res.output
    assert count(built) == 234
    with FoodIndex(built) as idx:
        with TestClient(create_app(idx, compact_every=0)) as c:
            body = {"items": [{"id": "h", "text": "x", "metadata": json.loads(deep)}]}
            r = c.post("/items", json=body)
            assert r.status_code == 400 and "deeper than" in r.json()["detail"]


# 7. lone surrogates ------------------------------------------------------------------------
def test_lone_surrogates_are_refused_by_row_and_skip_mode_skips_them(built, tmp_path):
    lines = [
        '{"id": "s1", "text": "\\ud800 bad"}',
        '{"id": "\\udc00", "text": "ok: id bad"}',
        '{"id": "s3", "text": "ok: meta bad", "m": "\\udfff"}',
        '{"id": "s4", "text": "좋은 줄: 식이섬유"}',
    ]
    f = write_jsonl(tmp_path / "sur.jsonl", lines)
    res = run("build", f)
    assert res.exit_code == 1 and "sur.jsonl" in res.output and "surrogate" in res.output
    report = tmp_path / "rejected.jsonl"
    res = run("build", f, "--on-error", "skip", "--report", report, "--json", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["rejected"] == 3
    assert len(report.read_text(encoding="utf-8").splitlines()) == 3
    assert count(built) == 235
    with FoodIndex(built) as idx:
        with TestClient(create_app(idx, compact_every=0)) as c:
            r = c.post(
                "/items",
                content='{"items": [{"id": "h", "text": "x", "metadata": {"m": "\\ud800"}}]}',
                headers={"content-type": "application/json"},
            )
            assert r.status_code in (400, 422) and "surrogate" in r.text


# 9. Parquet types ---------------------------------------------------------------------------
def test_parquet_timestamps_decimals_and_binary(built, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "id": ["p1", "p2"],
            "text": ["귀리: 식이섬유", "보리: 식이섬유"],
            "when": [datetime.datetime(2026, 12, 1, 9, 30), datetime.datetime(2026, 1, 2)],
            "price": pa.array([decimal.Decimal("1.50"), decimal.Decimal("3")], pa.decimal128(5, 2)),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    assert run("build", tmp_path / "t.parquet", "-q").exit_code == 0
    with FoodIndex(built) as idx:
        row = idx.item("p1")
        assert row.metadata == {"when": "2026-12-01T09:30:00", "price": 1.5}
        assert idx.item("p2").metadata["price"] == 3
    binary = pa.table({"id": ["b1"], "text": ["x: y"], "blob": pa.array([b"\x00\x01"])})
    pq.write_table(binary, tmp_path / "b.parquet")
    res = run("build", tmp_path / "b.parquet")
    assert res.exit_code == 1 and "'blob' is binary" in res.output


def test_clean_metadata_maps_each_type():
    assert clean_metadata(
        {"a": float("nan"), "b": decimal.Decimal("2.0"), "c": datetime.date(2026, 1, 1)}
    ) == {"a": None, "b": 2, "c": "2026-01-01"}
    assert clean_metadata({"n": np.float32(1.5), "i": np.int64(3)}) == {"n": 1.5, "i": 3}
    with pytest.raises(ValueError, match="JSON cannot hold"):
        clean_metadata({"s": {1, 2}})


# 12. ids that would be changed silently -----------------------------------------------------
@pytest.mark.parametrize(
    "line, why",
    [
        ('{"id": "  pad  ", "text": "x: y"}', "white space at its ends"),
        ('{"id": [1], "text": "x: y"}', "the id is a list"),
        ('{"id": NaN, "text": "x: y"}', "not a usable id"),
        ('{"id": true, "text": "x: y"}', "the id is a bool"),
    ],
)
def test_ids_are_never_changed_silently(built, tmp_path, line, why):
    res = run("build", write_jsonl(tmp_path / "ids.jsonl", [line]))
    assert res.exit_code == 1 and why in res.output, res.output
    assert count(built) == 234


def test_whole_float_ids_become_integers(built, tmp_path):
    assert (
        run("build", write_jsonl(tmp_path / "f.jsonl", ['{"id": 7.0, "text": "x: y"}'])).exit_code
        == 0
    )
    with FoodIndex(built) as idx:
        assert idx.item("7") is not None


def test_index_with_a_fake_model_over_http_keeps_working_after_bad_writes(home):
    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))
    with TestClient(create_app(idx, compact_every=0)) as c:
        for body in (
            {"items": [{"id": "x", "text": ""}]},
            {"items": [{"id": " x", "text": "ok"}]},
        ):
            assert 400 <= c.post("/items", json=body).status_code < 500
        assert c.post("/search", json={"query": "김치"}).status_code == 200
    assert idx.searcher().search("김치", k=1)[0][0].id == "k131"
    idx.close()


# 11. a chunked body over 4 MiB ---------------------------------------------------------
def test_chunked_body_over_the_limit_gets_413(home):
    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))

    def chunks():
        for _ in range(5):
            yield b"x" * (1024 * 1024)

    with TestClient(create_app(idx, compact_every=0)) as c:
        r = c.post("/items", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        small = c.post(
            "/search",
            content=iter([b'{"query": ', b'"\xea\xb9\x80\xec\xb9\x98"}']),
            headers={"content-type": "application/json"},
        )
        assert small.status_code == 200 and small.json()["results"][0]["id"] == "k131"
    assert idx.count() == 234
    idx.close()


# 3. the model falling out of step with the items ---------------------------------------
def test_add_with_another_model_after_deleting_everything_switches_the_home(built, fakes):
    with FoodIndex(built) as idx:
        ids = [r.ext_id for r in idx.items(range(1, 300)).values()]
        idx.delete(ids)
    res = run("add", "새 음식: 단백질", "--id", "n1", "--model", "fake-other")
    assert res.exit_code == 0 and "added" in res.output
    with FoodIndex(built, model="fake-other") as idx:
        assert idx.stats()["items"] == 1
        assert idx.stats()["model"] == fakes["fake-other"].fingerprint
        assert [h.id for h in idx.searcher().search("새 음식", k=1)[0]] == ["n1"]
        assert idx.verify() == []


def test_apply_rechecks_the_model_under_the_write_lock(built, fakes, tmp_path, monkeypatch):
    """A build whose early check saw no model (another first build had not committed
    yet) must not land its items under the other build's model."""
    from indexer.build import build
    from indexer.errors import ModelMismatchError
    from indexer.storage import Store

    f = tmp_path / "more.jsonl"
    f.write_text('{"id": "m1", "text": "다른 모델: 항목"}\n', encoding="utf-8")
    with FoodIndex(built) as idx:
        monkeypatch.setattr(Store, "active_model", lambda self: None)
        with pytest.raises(ModelMismatchError):
            from indexer.build import open_sources

            build(
                idx._store,
                fakes["fake-other"],
                open_sources([f], "auto"),
                BuildOptions(progress=False),
            )
        monkeypatch.undo()
        assert idx.count() == 234 and idx.item("m1") is None
        assert idx.verify() == []


# 10. a reported failure that committed --------------------------------------------------
def test_a_write_whose_index_cannot_be_saved_says_it_is_committed(built, monkeypatch):
    from indexer.ann import AnnIndex

    def fail(*a, **k):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(AnnIndex, "save", fail)
        res = run("add", "새 음식: 단백질", "--id", "ro1")
    assert res.exit_code == 1
    assert "the write is committed" in res.output and "Permission denied" in res.output
    with FoodIndex(built) as idx:  # the index catches up on the next open
        assert idx.searcher().search("새 음식: 단백질", k=1, mode="dense")[0][0].id == "ro1"
        assert idx.verify() == []


# 8. a file with no line breaks is not read whole -----------------------------------------
@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_a_line_without_end_is_refused_without_reading_it_whole(built, tmp_path, ext):
    import tracemalloc

    from indexer.readers import MAX_LINE_BYTES

    path = tmp_path / f"long.{ext}"
    with open(path, "wb") as fh:
        fh.write(b"id,text\n" if ext == "csv" else b"")
        fh.write(b'{"id": "x", "text": "' if ext == "jsonl" else b"x,")
        for _ in range(24):
            fh.write(b"a" * MAX_LINE_BYTES)
    tracemalloc.start()
    res = run("build", path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert res.exit_code == 1
    assert ("line 2" if ext == "csv" else "line 1") in res.output
    assert "missing its line breaks" in res.output
    assert peak < 8 * MAX_LINE_BYTES  # never the whole 24 MiB line
    assert count(built) == 234


# 6. mining jobs are bounded --------------------------------------------------------------
def test_mining_jobs_are_capped_deletable_and_clean_up(built, monkeypatch):
    import indexer.mining as mining
    import search.service.routes_jobs as service

    monkeypatch.setattr(mining, "DEFAULT_MAX_PAIRS", 50)
    res = run("mine", "--threshold", "-1", "--json", "-q")
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 50
    assert "pairs left out" in res.stderr
    with FoodIndex(built) as idx:
        job = idx.list_jobs()[0]
        assert job["pair_count"] == 50 and job["left_out"] > 0
        # an interrupted job (its process gone) loses the pairs it had stored
        with idx._store.immediate() as conn:
            conn.execute(
                __import__("sqlalchemy").text(
                    "UPDATE jobs SET status = 'running', pid = 2147483646 WHERE id = :j"
                ),
                {"j": job["id"]},
            )
        assert idx.job(job["id"])["status"] == "interrupted"
        assert idx.job_pairs(job["id"]) == []
    assert run("jobs", "--delete", job["id"]).exit_code == 0
    res = run("jobs", "--delete", job["id"])
    assert res.exit_code == 1 and f"no job {job['id']}" in res.output
    # the server runs at most MAX_RUNNING_JOBS at once and answers 429 past that
    monkeypatch.setattr(service, "MAX_RUNNING_JOBS", 0)
    with FoodIndex(built) as idx:
        with TestClient(create_app(idx, compact_every=0)) as c:
            r = c.post("/jobs/mine", json={"threshold": 0.5})
            assert r.status_code == 429 and "try again" in r.json()["detail"]
            assert c.delete("/jobs/999").status_code == 404


# fragile: /health with --protect-reads, and DNS rebinding against a loopback server ------
def test_health_hides_state_when_reads_are_protected_and_hosts_are_checked(home):
    from search.service import LOOPBACK_NAMES

    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))
    with TestClient(create_app(idx, token="t", protect_reads=True, compact_every=0)) as c:
        assert c.get("/health").json() == {"status": "ok"}
    app = create_app(idx, compact_every=0, allowed_hosts=LOOPBACK_NAMES)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/health").status_code == 200
        r = c.post(
            "/items",
            json={"items": [{"id": "x", "text": "y"}]},
            headers={"host": "evil.example:8000"},
        )
        assert r.status_code == 400
    assert idx.item("x") is None
    idx.close()


def test_temporary_files_of_a_killed_save_are_cleaned(built):
    stale = [built / "index" / "faiss-9-flat-1.index.tmp", built / "index" / "index.jsonab.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    assert run("add", "새 음식: 단백질", "--id", "t1").exit_code == 0
    assert not any(p.exists() for p in stale)


# 13. the vector cache shrinks ---------------------------------------------------------------
def test_vacuum_collects_unused_vectors_and_a_build_survives_it(built, fakes, tmp_path):
    for n in range(30):
        assert run("add", f"바뀌는 음식 {n}: 단백질", "--id", "w1").exit_code == 0
    assert run("delete", "w1").exit_code == 0
    with FoodIndex(built) as idx:
        assert idx.stats()["vectors_cached"] == 234 + 30
    res = run("vacuum")
    assert res.exit_code == 0 and "deleted 30 unused vectors; 234 left" in res.output
    # a build whose vectors were collected between its embedding and its apply step
    from indexer.storage import Staging

    real = Staging.stage

    def stage_then_vacuum(self, rows, vectors=()):
        real(self, rows, vectors)
        with FoodIndex(built) as other:
            assert other.collect_vectors()[0] >= 1

    # more rows than a build keeps in memory, so that they and their vectors are
    # written before the apply step (a smaller build writes them all in its apply)
    f = tmp_path / "new.jsonl"
    f.write_text(
        '{"id": "v1", "text": "새로 온 음식: 칼슘"}\n'
        + "".join(f'{{"id": "v{n}", "text": "새로 온 음식 {n}: 칼슘"}}\n' for n in range(2, 80)),
        encoding="utf-8",
    )
    Staging.stage = stage_then_vacuum
    try:
        assert run("build", f, "-q").exit_code == 0
    finally:
        Staging.stage = real
    with FoodIndex(built) as idx:
        assert idx.verify() == []
        assert idx.searcher().search("새로 온 음식: 칼슘", k=1, mode="dense")[0][0].id == "v1"


def test_clusters_of_an_unknown_job_is_an_error(built):
    res = run("mine", "--job", "-1", "--clusters")
    assert res.exit_code == 1 and "no job -1" in res.output
    res = run("mine", "--job", "999", "--of", "k001")
    assert res.exit_code == 1 and "no job 999" in res.output


def test_a_database_error_is_one_line(fakes, home, tmp_path):
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    res = run("stats", "--db", f"sqlite:///{bad}")
    assert res.exit_code == 1
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: database error:"), res.output


# 12. ids holding "/" can be deleted over HTTP ---------------------------------------------
def test_an_id_with_a_slash_is_deleted_over_http(home):
    idx = FoodIndex(home, embedder=FakeEmbedder(64))
    idx.build([SAMPLE], BuildOptions(progress=False))
    with TestClient(create_app(idx, compact_every=0)) as c:
        assert c.post("/items", json={"items": [{"id": "a/b", "text": "x: y"}]}).status_code == 200
        r = c.delete("/items/a%2Fb")
        assert r.status_code == 200 and r.json()["deleted"] == 1
        assert c.delete("/items/a%2Fb").status_code == 404
    assert idx.item("a/b") is None
    idx.close()


# Issue 26: the third round of hostile inputs ------------------------------------------
def foodvec(home, *args, **kw):
    """The CLI in a process of its own (the fake model), so that a crash (SIGSEGV) fails
    the test instead of ending pytest. Arguments may be bytes (not UTF-8)."""
    env = {**os.environ, "FOODVEC_HOME": str(home), "FOODVEC_MODEL": "fake"}
    env["HF_HUB_OFFLINE"] = "1"
    argv = [a if isinstance(a, bytes) else str(a) for a in args]
    cmd = [sys.executable, "-m", "tests.serve_fake", *argv]
    kw.setdefault("timeout", 300)
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, **kw)


def foodvec_as_user(home, *args):
    """``foodvec`` in a process of its own for which file permissions hold (as root
    too: ``unprivileged``), so that a read-only folder is one."""
    env = {**os.environ, "FOODVEC_HOME": str(home), "FOODVEC_MODEL": "fake"}
    env["HF_HUB_OFFLINE"] = "1"
    cmd = [*unprivileged(), sys.executable, "-m", "tests.serve_fake", *map(str, args)]
    res = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, timeout=300)
    return res.returncode, res.stdout.decode("utf-8"), res.stderr.decode("utf-8")


def damaged_lexical_arrays(data: bytes, how: str) -> dict[str, np.ndarray]:
    """The arrays of a lexical file, damaged as ``how`` says."""
    import io

    with np.load(io.BytesIO(data)) as z:
        a = {k: z[k].copy() for k in z.files}
    if how == "indptr-not-monotone":
        a["indptr"][5] = a["indptr"][-1] + 10**6
    elif how == "index-past-vocabulary":
        a["indices"][3] = 10**7
    elif how == "lengths-differ":
        a["data"] = a["data"][:-7]
        a["ids"] = a["ids"][:-3]
    elif how == "indptr-descending":
        a["indptr"] = a["indptr"][::-1].copy()
    elif how == "negative-index":
        a["indices"][3] = -5
    elif how == "negative-frequency":
        a["data"][0] = -1.0
    elif how == "nan-length":
        a["lens"][0, 0] = np.nan
    elif how == "duplicate-ids":
        a["ids"][1] = a["ids"][0]
    elif how == "float-indices":
        a["indices"] = a["indices"].astype(np.float64)
    elif how == "unsorted-columns":
        lo, hi = a["indptr"][0], a["indptr"][1]
        a["indices"][lo:hi] = a["indices"][lo:hi][::-1].copy()
    return a


def damage_lexical(home, how):
    side = json.loads((home / "index" / "index.json").read_text())
    path = home / "index" / side["lexical"]
    arrays = damaged_lexical_arrays(path.read_bytes(), how)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


# 1. an inconsistent lexical file crashed search, verify and serve -------------------------
@pytest.mark.parametrize("how", ["indptr-not-monotone", "index-past-vocabulary", "lengths-differ"])
def test_an_inconsistent_lexical_file_is_rebuilt_never_a_crash(built, how):
    damage_lexical(built, how)
    res = foodvec(built, "verify")
    assert res.returncode == 0, (res.returncode, res.stderr[-400:])
    damage_lexical(built, how)
    res = foodvec(built, "search", "김치", "-k", "1", "--json", "--mode", "lexical")
    assert res.returncode == 0, (res.returncode, res.stderr[-400:])
    assert json.loads(res.stdout)["results"][0]["id"] == "k131"
    with FoodIndex(built) as idx:
        assert idx.verify() == []


@pytest.mark.parametrize(
    "how",
    [
        "indptr-descending",
        "negative-index",
        "negative-frequency",
        "nan-length",
        "duplicate-ids",
        "float-indices",
        "unsorted-columns",
    ],
)
def test_an_inconsistent_lexical_file_is_not_loaded(how):
    """Damage that loads without a crash (damage that could crash is the test above,
    each in a process of its own): ``load_bytes`` refuses it, so the home rebuilds the
    index."""
    from indexer.lexical import LexicalIndex

    docs = [(1, "김치", "김치: 유산균 풍부"), (2, "두부", "두부: 단백질"), (3, None, "우유: 칼슘")]
    good = LexicalIndex.build(docs).to_bytes()
    assert LexicalIndex.load_bytes(good).ids().tolist() == [1, 2, 3]
    buf = __import__("io").BytesIO()
    np.savez(buf, **damaged_lexical_arrays(good, how))
    assert LexicalIndex.load_bytes(buf.getvalue()) is None


# 3. a lone surrogate in a filter gave 500, and a job holding one broke /jobs --------------
# 7. SQLite: a cursor past 64 bits gave 500 ----------------------------------------------
def test_a_lone_surrogate_in_a_filter_or_a_huge_cursor_is_a_4xx(built):
    bodies = [
        '{"query": "김치", "where": {"category": "\\ud800"}}',
        '{"query": "김치", "where": {"\\udc00": 1}}',
        '{"query": "김치", "where": {"$or": [{"a": {"$in": ["x", "\\udfff"]}}]}}',
        '{"query": "김치", "filters": {"category": "\\ud800"}}',
    ]
    with FoodIndex(built) as idx:
        app = create_app(idx, compact_every=0)
        with TestClient(app, raise_server_exceptions=False) as c:
            for body in bodies:
                r = c.post("/search", content=body, headers={"content-type": "application/json"})
                assert r.status_code == 400 and "surrogate" in r.text, (body, r.text)
            r = c.get("/items", params={"where": '{"category": "\\ud800"}'})
            assert r.status_code == 400 and "surrogate" in r.text
            r = c.post(
                "/jobs/mine",
                content='{"threshold": 0.99, "where": {"category": {"$ne": "\\ud800"}}}',
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 400 and "surrogate" in r.text
            assert c.get("/jobs").status_code == 200
            for after in (str(2**63), str(-(2**63) - 1), "9" * 40):
                r = c.get("/items", params={"after": after})
                assert r.status_code == 400 and "not a cursor" in r.text, r.text
            assert c.get("/items", params={"after": str(2**63 - 1)}).json()["items"] == []
    res = run("jobs", "--json")
    assert res.exit_code == 0 and res.output == ""
    res = run("search", "김치", "--where", "category=\ud800")
    assert res.exit_code == 2 and "surrogate" in res.output


# 8. a sidecar with Infinity, NaN or another kind ------------------------------------------
@pytest.mark.parametrize(
    "field, value",
    [("generation", float("inf")), ("kind", "hnsw"), ("count", float("nan")), ("dim", 1e400)],
)
def test_a_sidecar_with_infinity_nan_or_a_false_kind_is_rebuilt(built, field, value):
    path = built / "index" / "index.json"
    side = json.loads(path.read_text())
    side[field] = value
    path.write_text(json.dumps(side))  # Infinity and NaN, as Python's json writes them
    res = run("search", "김치", "-k", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"][0]["id"] == "k131"
    warning = [line for line in res.stderr.splitlines() if "damaged" in line]
    assert len(warning) == 1 and "rebuilding it from the database" in warning[0]
    path.write_text(json.dumps(side))
    res = run("verify")
    assert res.exit_code == 0, res.output
    assert json.loads(path.read_text())[field] != value


# 10. export to a device replaced it with a regular file ------------------------------------
def test_export_to_a_device_writes_in_place_and_a_write_error_is_one_line(built, tmp_path):
    link = tmp_path / "full.jsonl"  # a link to /dev/full: the test never touches /dev
    link.symlink_to("/dev/full")
    res = run("export", link)
    assert res.exit_code == 1
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "cannot write" in lines[0] and "No space left" in lines[0]
    assert link.is_symlink() and not link.is_file()
    assert not (tmp_path / "full.jsonl.tmp").exists()
    assert run("export", tmp_path / "out.jsonl").exit_code == 0  # regular files as before
    assert len((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 234


# 11. verify passed a damaged database; a truncated vector was a raw ValueError ------------
def checkpoint(db):
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return conn


def test_verify_runs_the_database_check_and_finds_an_overwritten_page(built):
    db = built / "foodvec.db"
    conn = checkpoint(db)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'ix_items_name_key'"
    ).fetchone()[0]
    conn.close()
    with open(db, "r+b") as fh:  # an index page that verify's own reads never use
        fh.seek((root - 1) * page)
        fh.write(b"\xa5" * page)
    res = run("verify")
    assert res.exit_code == 1
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "integrity check" in lines[0] and "Page" in lines[0], res.output


def test_verify_names_a_truncated_vector_and_search_says_so_in_one_line(built):
    conn = checkpoint(built / "foodvec.db")
    conn.execute(
        "UPDATE vectors SET data = substr(data, 1, 10) WHERE content_hash = "
        "(SELECT content_hash FROM items WHERE ext_id = 'k131')"
    )
    conn.commit()
    item = conn.execute("SELECT id FROM items WHERE ext_id = 'k131'").fetchone()[0]
    conn.close()
    res = run("verify")
    assert res.exit_code == 1 and "unexpected" not in res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "1 stored vectors are damaged" in lines[0]
    assert f"items using them: {item}" in lines[0]
    (built / "index" / "index.json").unlink()  # the index must be rebuilt from the vectors
    res = run("search", "김치")
    assert res.exit_code == 1 and "unexpected" not in res.output
    assert "damaged vector (10 bytes, not 256)" in res.output


# 13. a JSONL row nested 100,000 deep aborted a skipping build ------------------------------
def test_a_row_nested_100000_deep_is_a_bad_row(built, tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    f = write_jsonl(
        tmp_path / "deep.jsonl",
        [
            '{"id": "d1", "text": "x: y", "m": ' + deep + "}",
            '{"id": "d2", "text": "깊은 줄: 식이섬유"}',
        ],
    )
    res = run("build", f)
    assert res.exit_code == 1 and "deep.jsonl line 1" in res.output and "too deep" in res.output
    report = tmp_path / "rejected.jsonl"
    res = run("build", f, "--on-error", "skip", "--report", report, "--json", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["rejected"] == 1
    (rejected,) = [json.loads(x) for x in report.read_text(encoding="utf-8").splitlines()]
    assert rejected["where"] == "deep.jsonl line 1" and "too deep" in rejected["reason"]
    assert count(built) == 235


# 14. a backup inside the home recursed ------------------------------------------------------
def test_a_backup_inside_the_home_is_refused(built, tmp_path):
    for dest in (built / "bk", built / "models" / "default" / "bk", built, tmp_path):
        res = run("backup", dest)
        assert res.exit_code == 1 and "inside the home" in res.output, (dest, res.output)
        assert not (built / "bk").exists() and not (built / "models" / "default").exists()
    assert run("backup", tmp_path / "bk").exit_code == 0


# 18. add stored --meta values as text, update as numbers ------------------------------------
def test_add_and_update_type_meta_values_alike(built):
    assert run("add", "귀리 라떼: 저당", "--id", "o1", "--meta", "kcal=180").exit_code == 0
    assert run("add", "보리 라떼: 저당", "--id", "o2", "--meta", 'code="007"').exit_code == 0
    assert run("update", "k001", "--meta", "kcal=150").exit_code == 0
    with FoodIndex(built) as idx:
        assert idx.get("o1")["metadata"] == {"kcal": 180}
        assert idx.get("k001")["metadata"]["kcal"] == 150
        assert idx.get("o2")["metadata"]["code"] == "007"
    res = run("list", "--where", "kcal<200", "--json")
    assert sorted(json.loads(x)["id"] for x in res.output.splitlines()) == ["k001", "o1"]


# fragile: a closed pipe, a mistyped home, argv that is not UTF-8 ----------------------------
def test_a_closed_pipe_ends_list_quietly(built):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.serve_fake", "list"],
        env={**os.environ, "FOODVEC_HOME": str(built), "FOODVEC_MODEL": "fake"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode("utf-8", "replace")
    proc.wait(timeout=120)
    assert err == "", err


@pytest.mark.parametrize(
    "args",
    [("search", "김치"), ("list",), ("get", "k001"), ("stats",), ("verify",), ("jobs",)],
)
def test_reading_commands_never_create_a_home(fakes, tmp_path, args):
    typo = tmp_path / "TYPO"
    res = run(*args, "--home", typo)
    assert res.exit_code == 1 and f"no foodvec home at {typo}" in res.output, res.output
    res = run("export", tmp_path / "out.jsonl", "--home", typo)
    assert res.exit_code == 1 and str(typo) in res.output
    res = run(*args, "--db", f"sqlite:///{tmp_path / 'typo.db'}")
    assert res.exit_code == 1 and "typo.db does not exist" in res.output
    assert not typo.exists() and not (tmp_path / "typo.db").exists()


def test_argv_that_is_not_utf8_is_a_usage_error(built):
    res = foodvec(built, "search", b"\xff\xfe")
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode == 2 and "argument 2" in err and "not valid UTF-8" in err, err
    assert "unexpected" not in err


# 9. an index folder made read-only after a committed write --------------------------------
def test_a_read_only_index_folder_after_a_committed_write_is_searched_from_memory(built):
    folder = built / "index"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    make_read_only(*folder.iterdir(), folder)
    try:
        rc, out, err = foodvec_as_user(built, "add", "새 음식: 단백질", "--id", "ro1")
        assert rc == 1 and "the write is committed (generation 2)" in err, err
        rc, out, err = foodvec_as_user(
            built, "search", "새 음식: 단백질", "-k", "1", "--json", "--mode", "dense"
        )
        assert rc == 0, err
        assert json.loads(out)["results"][0]["id"] == "ro1"  # caught up in memory
        (warning,) = [x for x in err.splitlines() if x.strip()]
        assert "cannot be written" in warning and "in memory to generation 2" in warning
        rc, out, err = foodvec_as_user(built, "verify")
        assert rc == 0 and "ok:" in out and "235 items, generation 2" in out, err
        rc, out, err = foodvec_as_user(built, "stats", "--json")
        assert rc == 0 and json.loads(out)["items"] == 235, err
    finally:
        make_writable(built)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing written
    res = run("verify")  # writable again: the next open publishes the catch-up
    assert res.exit_code == 0, res.output
    assert json.loads((folder / "index.json").read_text())["generation"] == 2


# fragile: a read-only home (a copy on read-only media) could not be read ------------------
READING = [
    (("search", "김치", "-k", "1", "--json"), lambda out: json.loads(out)["results"][0]["id"]),
    (("list", "--limit", "2", "--json"), lambda out: json.loads(out.splitlines()[0])["id"]),
    (("get", "k131", "--json"), lambda out: json.loads(out)["id"]),
    (("stats", "--json"), lambda out: json.loads(out)["items"]),
    (("verify",), lambda out: out.split(":")[0]),
]


def test_a_read_only_home_can_be_read_and_refuses_writes_in_one_line(built):
    expected = ["k131", "k001", "k131", 234, "ok"]
    db = built / "foodvec.db"
    before = db.read_bytes()
    make_read_only(*built.rglob("*"), built)
    try:
        for (args, answer), want in zip(READING, expected, strict=True):
            rc, out, err = foodvec_as_user(built, *args)
            assert rc == 0, (args, err)
            assert answer(out) == want, (args, out)
        rc, out, err = foodvec_as_user(built, "add", "새 음식: 단백질", "--id", "ro1")
        lines = [x for x in err.splitlines() if x.strip()]
        assert rc == 1 and len(lines) == 1, err
        assert "is read-only here" in lines[0] and "not changed" in lines[0]
    finally:
        make_writable(built)
    assert db.read_bytes() == before
    assert sorted(p.name for p in built.iterdir()) == ["foodvec.db", "index"]  # no -wal, -shm


@pytest.mark.parametrize("shm", ["with-shm", "without-shm"])
def test_a_read_only_copy_with_a_write_ahead_log_is_read_whole_or_refused(built, tmp_path, shm):
    """A home copied while a process had it open: its log (-wal) holds a commit. With
    its -shm SQLite reads the log; without, reading the database alone would miss the
    commit, so the home is refused in one line instead of answering without it."""
    import shutil
    import sqlite3

    holder = sqlite3.connect(built / "foodvec.db")  # the log stays while it is open
    try:
        holder.execute("SELECT count(*) FROM items").fetchall()
        assert run("add", "새 음식: 단백질", "--id", "wal1").exit_code == 0
        copy = tmp_path / "copy"
        shutil.copytree(built, copy)
    finally:
        holder.close()
    assert (copy / "foodvec.db-wal").stat().st_size > 0
    if shm == "without-shm":
        (copy / "foodvec.db-shm").unlink()
    make_read_only(*copy.rglob("*"), copy)
    try:
        rc, out, err = foodvec_as_user(
            copy, "search", "새 음식: 단백질", "-k", "1", "--json", "--mode", "dense"
        )
    finally:
        make_writable(copy)
    if shm == "with-shm":
        assert rc == 0, err
        assert json.loads(out)["results"][0]["id"] == "wal1"
    else:
        lines = [x for x in err.splitlines() if x.strip()]
        assert rc == 1 and len(lines) == 1 and "write-ahead log" in lines[0], err


# fragile: a FIFO given as an input said "no such file" -------------------------------------
def test_a_fifo_or_a_device_as_input_says_what_it_is(built, tmp_path):
    from indexer.errors import BadInputError
    from indexer.evaluate import load_labelled

    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    device = tmp_path / "null.csv"  # a link to /dev/null: the test never touches /dev
    device.symlink_to("/dev/null")
    for path, kind in ((fifo, "a named pipe (FIFO), not a file"), (device, "a character device")):
        res = foodvec(built, "build", path, timeout=60)  # opening a FIFO would block
        err = res.stderr.decode("utf-8")
        lines = [x for x in err.splitlines() if x.strip()]
        assert res.returncode == 1 and len(lines) == 1, err
        assert kind in lines[0] and str(path) in lines[0] and "no such file" not in err
    res = foodvec(built, "build", tmp_path / "missing.csv", timeout=60)
    assert res.returncode == 2 and "does not exist" in res.stderr.decode("utf-8")
    with pytest.raises(BadInputError, match="named pipe"):
        load_labelled(fifo)
    assert count(built) == 234
