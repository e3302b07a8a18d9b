"""Hostile requests and inputs of the third hardening round (issue 26), each test named
after its item: mining jobs raced past their limit, response amplification, /metrics
label cardinality, ids and names too long for PostgreSQL's B-tree, a Parquet export
held whole in memory, and the fragile ones (--protect-reads without a token, finished
jobs kept forever, ``--where "a=x or a=y"``)."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from indexer import BuildOptions, FoodIndex
from indexer.errors import BadInputError, BadRowError, BusyError
from search.service import create_app
from search.service.metrics import METHODS
from tests.conftest import SAMPLE, run, write_csv
from tests.fakes import FakeEmbedder

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BOTH = pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
pytestmark = pytest.mark.hostile


@pytest.fixture
def index(fakes, home):
    """The sample corpus with the fake model that the CLI in these tests loads too."""
    idx = FoodIndex(home)
    idx.build([SAMPLE], BuildOptions(progress=False))
    yield idx
    idx.close()


# 2. the limit of two mining jobs at once was raced ----------------------------------------
@BOTH
def test_2_concurrent_mining_requests_past_the_limit_get_429_never_500(index, monkeypatch):
    """8 requests at once: exactly two jobs start, six get 429 naming the limit, none a
    5xx; the two finish (no "database is locked"), and the limit frees with them."""
    release = threading.Event()
    mine = index.mine

    def held_mine(**kw):  # a job that runs until the test lets it go
        assert release.wait(30)
        return mine(**kw)

    index.mine = held_mine
    # Recording a job takes a while (a slow disk): the requests overlap for sure. A
    # check made apart from the insert lets them all through; one inside it cannot.
    record = index._store.jobs.start

    def slow_record(*a, **kw):
        time.sleep(0.2)
        return record(*a, **kw)

    monkeypatch.setattr(index._store.jobs, "start", slow_record)
    with TestClient(create_app(index, token=TOKEN, compact_every=0)) as c:
        gate = threading.Barrier(8)
        answers: list = []

        def start() -> None:
            gate.wait()
            r = c.post("/jobs/mine", json={"threshold": 0.9, "top_k": 3}, headers=AUTH)
            answers.append((r.status_code, r.json()))

        threads = [threading.Thread(target=start) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        codes = Counter(code for code, _ in answers)
        assert codes == {200: 2, 429: 6}, answers
        refusal = next(body for code, body in answers if code == 429)["detail"]
        assert "the most at once is 2" in refusal and "try again" in refusal
        running = [j for j in c.get("/jobs").json()["jobs"] if j["status"] == "running"]
        assert len(running) == 2
        release.set()
        for job in (body["job"] for code, body in answers if code == 200):
            deadline = time.monotonic() + 30
            while c.get(f"/jobs/{job}").json()["status"] == "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert c.get(f"/jobs/{job}").json()["status"] == "done"
        r = c.post("/jobs/mine", json={"threshold": 0.9}, headers=AUTH)
        assert r.status_code == 200  # the limit counts running jobs only


def test_2_a_job_whose_process_is_gone_does_not_hold_a_place(index):
    with index._store.immediate() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs(kind, status, params, host, pid) "
                "VALUES ('mine', 'running', '{}', :h, 2147483646)"
            ),
            {"h": __import__("socket").gethostname()},
        )
    assert index._store.jobs.start({}, None, 0, limit=1) > 0  # the dead one does not count
    with pytest.raises(BusyError, match="the most at once is 1"):
        index._store.jobs.start({}, None, 0, limit=1)  # this process's own job does


# 4. response amplification ----------------------------------------------------------------
BIG = "nutrition facts " * 3700  # about 60 KB of metadata per item (the limit is 64 KiB)


def _big_items(idx, n=30):
    idx.upsert(
        [
            {"id": f"big{i}", "text": f"큰 두부 요리 {i}", "metadata": {"note": f"{BIG}{i}"}}
            for i in range(n)
        ]
    )


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "token"])
def test_4_responses_are_limited_with_and_without_a_token(index, monkeypatch, token):
    """k x queries x metadata bytes past FOODVEC_MAX_RESPONSE_BYTES, queries past
    FOODVEC_MAX_QUERIES and k x queries past FOODVEC_MAX_HITS: a 413 naming the limit
    and its variable, for searches, pages of items and any other route."""
    monkeypatch.setenv("FOODVEC_MAX_RESPONSE_BYTES", "500000")
    monkeypatch.setenv("FOODVEC_MAX_QUERIES", "5")
    monkeypatch.setenv("FOODVEC_MAX_HITS", "60")
    _big_items(index)
    searched = []
    search = index.search
    index.search = lambda *a, **kw: searched.append(1) or search(*a, **kw)
    headers = AUTH if token else {}
    app = create_app(index, token=token, protect_reads=bool(token), compact_every=0)
    with TestClient(app) as c:
        small = c.post("/search", json={"query": "두부", "k": 3}, headers=headers)
        assert small.status_code == 200, small.text
        # 3 queries x k=20 over items of 60 KB: 3.6 MB, refused once the hits pass 500 KB
        r = c.post(
            "/search",
            json={
                "queries": ["큰 두부 요리", "두부", "요리"],
                "k": 20,
                "where": {"note": {"$exists": True}},
            },
            headers=headers,
        )
        assert r.status_code == 413, r.text
        assert "500000" in r.json()["detail"]
        assert "FOODVEC_MAX_RESPONSE_BYTES" in r.json()["detail"]
        # too many queries, or too many results asked for: refused before any search
        searched.clear()
        r = c.post("/search", json={"queries": ["두부"] * 6}, headers=headers)
        assert r.status_code == 413 and "FOODVEC_MAX_QUERIES" in r.json()["detail"]
        assert "the limit is 5" in r.json()["detail"]
        r = c.post("/search", json={"queries": ["두부"] * 5, "k": 13}, headers=headers)
        assert r.status_code == 413 and "FOODVEC_MAX_HITS" in r.json()["detail"]
        assert "65 results" in r.json()["detail"] and "the limit is 60" in r.json()["detail"]
        assert searched == []
        # a page of items over the limit, read in steps, and a smaller page
        r = c.get("/items", params={"limit": 300}, headers=headers)
        assert r.status_code == 413 and "FOODVEC_MAX_RESPONSE_BYTES" in r.json()["detail"]
        assert c.get("/items", params={"limit": 5}, headers=headers).status_code == 200
        # any other route: the facets list every value of `note`, which is big
        r = c.get("/facets", params={"max_values": 50}, headers=headers)
        assert r.status_code == 413 and "500000" in r.json()["detail"]
        assert c.get("/health").status_code == 200


def test_4_a_bad_limit_in_the_environment_is_one_clear_error(index, monkeypatch):
    monkeypatch.setenv("FOODVEC_MAX_RESPONSE_BYTES", "lots")
    with pytest.raises(BadInputError, match="FOODVEC_MAX_RESPONSE_BYTES='lots'"):
        create_app(index, compact_every=0)


# 5. /metrics label cardinality ------------------------------------------------------------
def _series(c) -> dict[tuple, float]:
    text_ = c.get("/metrics", headers=AUTH).text
    out = {}
    for fam in text_string_to_metric_families(text_):
        if fam.name in ("foodvec_requests", "foodvec_request_seconds"):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_5_metrics_labels_are_fixed_sets_and_refused_requests_add_none(index):
    app = create_app(index, token=TOKEN, protect_reads=True, compact_every=0)
    from search.service import routes_items, routes_jobs, routes_ops, routes_search

    routers = (routes_items, routes_jobs, routes_ops, routes_search)
    templates = {r.path for m in routers for r in m.router.routes} | {"unmatched"}
    with TestClient(app) as c:
        assert c.post("/search", json={"query": "두부"}, headers=AUTH).status_code == 200
        _series(c)  # the scrape's own series, counted once it has answered
        before = _series(c)
        refused = 0
        # refused by the token check: any route, raw paths, methods made up or not
        for n in range(40):
            for method, path in (
                ("GET", f"/items/made-up-{n}"),
                ("POST", "/search"),
                ("DELETE", f"/jobs/{n + 1}"),
                ("GET", "/stats"),
            ):
                r = c.request(method, path, headers={"Authorization": f"Bearer wrong{n}"})
                assert r.status_code == 401
                refused += 1
        after = _series(c)
        assert set(after) == set(before)  # not one new series
        scraped = c.get("/metrics", headers=AUTH).text
        assert f"foodvec_requests_refused_total {float(refused)}" in scraped
        # made-up methods and raw paths, with the token: labels from fixed sets
        for n in range(30):
            c.request(f"M{n}X", "/search", headers=AUTH)
            c.request(f"Q{n}", f"/nowhere/{n}/deeper", headers=AUTH)
            c.get(f"/items/item-{n}", headers=AUTH)
        labels = [dict(k[1]) for k in _series(c)]
    methods = {lab["method"] for lab in labels if "method" in lab}
    routes = {lab["route"] for lab in labels}
    assert methods <= METHODS | {"other"} and "other" in methods
    assert routes <= templates and "/items/{item_id:path}" in routes
    assert not any(lab.get("status") == "401" for lab in labels)


# 6. ids and names too long for PostgreSQL's B-tree -----------------------------------------
@BOTH
def test_6_ids_and_names_over_their_limits_are_refused_before_the_database(index, tmp_path):
    before = index.count()
    for rec, why in [
        ({"id": "i" * 3000, "text": "긴 아이디"}, "the id is 3000 characters long"),
        ({"id": "n1", "text": "긴 이름", "metadata": {"name": "이" * 3000}}, "the name is 3000"),
        # 150 characters, but NFKC widens each to 18: too long once folded
        ({"id": "n2", "text": "넓은 이름", "metadata": {"name": "\ufdfa" * 150}}, "once folded"),
    ]:
        with pytest.raises(BadRowError, match=why) as err:
            index.upsert([{"id": "fine", "text": "괜찮은 행"}, rec])
        assert err.value.where == "item 2"  # the row is named
    index.upsert([{"id": "i" * 512, "text": "가장 긴 아이디", "metadata": {"name": "이" * 200}}])
    with pytest.raises(BadInputError, match="item 'k001': the name is 3000"):
        index.update("k001", {"name": "이" * 3000})
    assert index.count() == before + 1
    with TestClient(create_app(index, token=TOKEN, compact_every=0)) as c:
        item = {"id": "h1", "text": "긴 이름", "metadata": {"name": "가" * 3000}}
        r = c.post("/items", json={"items": [item]}, headers=AUTH)
        assert r.status_code == 400 and "the limit is 200" in r.json()["detail"]
        r = c.patch("/items/k002", json={"metadata": {"name": "가" * 3000}}, headers=AUTH)
        assert r.status_code == 400 and "the limit is 200" in r.json()["detail"]
        long_id = "x" * 5000
        assert c.get(f"/items/{long_id}").status_code == 404
        assert c.delete(f"/items/{long_id}", headers=AUTH).status_code == 404
        assert (
            c.patch(f"/items/{long_id}", json={"metadata": {"a": 1}}, headers=AUTH).status_code
            == 404
        )
    bad = write_csv(
        tmp_path / "long.csv",
        [{"id": "ok1", "text": "좋은 행"}, {"id": "y" * 600, "text": "긴 행"}],
    )
    res = run("build", bad, "-q")
    assert res.exit_code == 1 and "line 3" in res.output and "the limit is 512" in res.output
    assert index.count() == before + 1 and index.verify() == []


# 17. a Parquet export held every row -------------------------------------------------------
def test_17_parquet_export_streams_in_row_groups_and_writes_what_it_wrote_before(
    index, tmp_path, monkeypatch
):
    """With pages and row groups of 40 rows, the export reads the items 40 at a time,
    writes ceil(n / 40) row groups, and the file reads back as the table built from all
    rows at once (what the export wrote before), types merged across pages."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import indexer.records
    import indexer.writers

    # types that differ between pages: ints then floats, a key only late, nested values
    extra = [{"id": f"m{i}", "text": f"혼합 {i}", "metadata": {"kcal": i}} for i in range(30)]
    extra += [
        {"id": "m-last", "text": "마지막", "metadata": {"kcal": 1.5, "late": {"a": [1, 2]}}},
        {"id": "m-more", "text": "하나 더", "metadata": {"late": {"b": "x"}, "kcal": None}},
    ]
    index.upsert(extra)
    monkeypatch.setattr(indexer.records, "EXPORT_PAGE_ROWS", 40)
    monkeypatch.setattr(indexer.writers, "ROW_GROUP_ROWS", 40)
    fetched = []
    page = index._store.page

    def counted(*a, **kw):
        rows = page(*a, **kw)
        fetched.append(len(rows))
        return rows

    monkeypatch.setattr(index._store, "page", counted)
    out = tmp_path / "all.parquet"
    n = index.export(out, vectors=True)
    assert n == index.count() == 234 + 32
    assert max(fetched) == 40 and sum(fetched) == 2 * n  # two passes, 40 rows at a time
    assert pq.ParquetFile(out).num_row_groups == math.ceil(n / 40) > 1
    # what the export wrote before: one table from every row
    records = index.records(limit=10_000)[0]
    keys = list(dict.fromkeys(k for r in records for k in r["metadata"]))
    columns = ["id", "text", *keys, "vector"]
    ids, vecs = index.vectors([index.item(r["id"]).id for r in records])
    by_id = dict(zip(ids.tolist(), vecs.tolist(), strict=True))
    rows = [
        {"id": r["id"], "text": r["text"], **r["metadata"], "vector": by_id[index.item(r["id"]).id]}
        for r in records
    ]
    whole = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
    pq.write_table(whole, tmp_path / "before.parquet")
    before = pq.read_table(tmp_path / "before.parquet")
    got = pq.read_table(out)
    assert got.schema == before.schema and got.equals(before)
    assert dict(zip(got.column_names, got.schema.types, strict=True))["kcal"] == pa.float64()
    # values that fit no one type are refused as before, with a message
    index.upsert([{"id": "m-text", "text": "글자", "metadata": {"kcal": "많음"}}])
    with pytest.raises(BadInputError, match="one type per column"):
        index.export(tmp_path / "mixed.parquet")
    assert not (tmp_path / "mixed.parquet").exists()


# fragile: --protect-reads without a token --------------------------------------------------
def test_fragile_protect_reads_without_a_token_refuses_to_start(home, fakes, monkeypatch):
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(a))
    monkeypatch.delenv("FOODVEC_TOKEN", raising=False)
    res = run("serve", "--protect-reads")
    assert res.exit_code == 1 and started == []
    assert res.output.strip().splitlines() == [
        "Error: --protect-reads needs a token (--token or FOODVEC_TOKEN): without one, "
        "reads are open"
    ]
    assert not home.exists()  # refused before the home was opened
    res = run("serve", "--protect-reads", "--token", "s3cret")
    assert res.exit_code == 0 and len(started) == 1
    with FoodIndex(home, embedder=FakeEmbedder(8)) as idx, pytest.raises(BadInputError):
        create_app(idx, protect_reads=True, compact_every=0)


# fragile: finished mining jobs kept without bound ------------------------------------------
@BOTH
def test_fragile_finished_jobs_are_pruned_by_count_and_age(home, monkeypatch):
    monkeypatch.setenv("FOODVEC_JOBS_KEEP", "3")
    with FoodIndex(home, embedder=FakeEmbedder(32)) as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
        # a job running in this process, started long ago: never pruned
        running = idx._store.jobs.start({"threshold": 0.5}, None, 0)
        jobs = [idx.mine(threshold=0.5, top_k=3).job for _ in range(5)]
        kept = [j["id"] for j in idx.list_jobs()]
        assert kept == [*reversed(jobs[2:]), running]

        def pairs_of(job_ids):
            marks = ",".join(map(str, job_ids))
            with idx._store.read() as conn:
                sql = f"SELECT count(*) FROM job_pairs WHERE job_id IN ({marks})"
                return conn.execute(text(sql)).scalar()

        assert pairs_of(jobs[:2]) == 0 and pairs_of(jobs[2:]) > 0
        # by age: a job that ended long ago goes when the next one finishes
        with idx._store.immediate() as conn:
            conn.execute(
                text("UPDATE jobs SET ended_at = '2000-01-01 00:00:00' WHERE id = :j"),
                {"j": jobs[3]},
            )
            conn.execute(
                text("UPDATE jobs SET started_at = '2000-01-01 00:00:00' WHERE id = :j"),
                {"j": running},
            )
        newest = idx.mine(threshold=0.5, top_k=3).job
        kept = [j["id"] for j in idx.list_jobs()]
        assert kept == [newest, jobs[4], running] and pairs_of([jobs[3]]) == 0


def test_fragile_job_retention_is_configurable_and_checked(monkeypatch, home):
    from indexer.settings import JOBS_KEEP, JOBS_KEEP_DAYS, Settings

    cfg = Settings.from_env({})
    assert (cfg.jobs_keep, cfg.jobs_keep_days) == (JOBS_KEEP, JOBS_KEEP_DAYS) == (100, 7.0)
    cfg = Settings.from_env({"FOODVEC_JOBS_KEEP": "5", "FOODVEC_JOBS_KEEP_DAYS": "0.5"})
    assert (cfg.jobs_keep, cfg.jobs_keep_days) == (5, 0.5)
    for bad in ("0", "-3", "many", "9" * 5000):
        with pytest.raises(BadInputError, match="FOODVEC_JOBS_KEEP="):
            Settings.from_env({"FOODVEC_JOBS_KEEP": bad})
    monkeypatch.setenv("FOODVEC_JOBS_KEEP_DAYS", "nan")
    res = run("jobs")
    assert res.exit_code == 1 and "FOODVEC_JOBS_KEEP_DAYS='nan'" in res.output


# fragile: --where "a=x or a=y" was read as one text -----------------------------------------
def test_fragile_where_with_or_is_an_error_naming_or(built, tmp_path):
    out = tmp_path / "x.jsonl"
    for cmd in (["search", "김치"], ["list"], ["delete"], ["mine"], ["export", out]):
        res = run(*cmd, "--where", "category=과일 or category=채소")
        assert res.exit_code == 2, (cmd, res.output)
        assert "`or` is not supported" in res.output and '"$or"' in res.output
    res = run("list", "--where", "category=과일 and kcal<100")
    assert res.exit_code == 2 and "`and` is not supported" in res.output
    res = run("list", "--where", "category in (과일 or 채소)")
    assert res.exit_code == 2 and "`or`" in res.output
    # quoted, it is the text itself; words that merely hold the letters are values
    assert run("list", "--where", 'category="과일 or 채소"').exit_code == 0
    assert run("list", "--where", "category=organic").exit_code == 0
    res = run("list", "--where", '{"$or": [{"category": "과일"}, {"category": "채소"}]}', "--json")
    assert res.exit_code == 0 and len(res.stdout.splitlines()) > 0
