from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
from click.testing import CliRunner

from indexer import BuildOptions, FoodIndex
from indexer.text import derived_id, normalize_text
from search.cli import cli
from tests.conftest import SAMPLE, sample_rows, write_csv

# Each test runs on SQLite and on PostgreSQL.
STORES = ("sqlite", "postgres")


def run(*args):
    res = CliRunner().invoke(cli, list(map(str, args)))
    return res


def count(home) -> int:
    with FoodIndex(home) as idx:
        return idx.count()


def test_build_sample_then_rebuild_is_unchanged(fakes, home):
    res = run("build", SAMPLE, "--model", "fake", "--json", "-q")
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    n = len(sample_rows())
    assert (s["rows_read"], s["new"], s["embedded"], s["rejected"]) == (n, n, n, 0)
    assert s["index"]["type"] == "flat"
    before = fakes["fake"].texts_encoded
    s2 = json.loads(run("build", SAMPLE, "--model", "fake", "--json", "-q").output)
    assert (s2["new"], s2["updated"], s2["unchanged"], s2["embedded"]) == (0, 0, n, 0)
    assert s2["cached"] == n
    assert fakes["fake"].texts_encoded == before  # nothing re-embedded
    assert s2["generation"] == s["generation"]  # an unchanged build writes nothing
    assert run("verify").exit_code == 0


def test_changed_rows_are_reembedded_and_metadata_updates(fakes, home, tmp_path):
    rows = [
        {"id": "a", "text": "사과: 식이섬유 풍부", "kind": "fruit"},
        {"id": "b", "text": "라면: 나트륨 과다", "kind": "noodle"},
    ]
    f = write_csv(tmp_path / "in.csv", rows)
    assert run("build", f, "--model", "fake", "-q").exit_code == 0
    rows[0]["text"] = "사과: 식이섬유와 비타민 풍부"
    rows[1]["kind"] = "instant"
    write_csv(f, rows)
    s = json.loads(run("build", f, "--model", "fake", "--json", "-q").output)
    assert (s["new"], s["updated"], s["unchanged"], s["embedded"]) == (0, 2, 0, 1)
    with FoodIndex(home) as idx:
        assert idx.item("b").metadata == {"kind": "instant"}
        assert idx.item("a").text == "사과: 식이섬유와 비타민 풍부"
    assert run("verify").exit_code == 0


def test_identical_texts_embedded_once_within_and_across_builds(fakes, home, tmp_path):
    rows = [{"id": str(i), "text": "두부: 식물성 단백질 풍부"} for i in range(50)]
    rows.append({"id": "x", "text": "두부:   식물성 단백질 풍부 "})  # same after normalising
    f = write_csv(tmp_path / "dups.csv", rows)
    s = json.loads(run("build", f, "--model", "fake", "--json", "-q", "--batch-size", "7").output)
    assert s["new"] == 51 and s["embedded"] == 1
    g = write_csv(tmp_path / "more.csv", [{"id": "y", "text": "두부: 식물성 단백질 풍부"}])
    s2 = json.loads(run("build", g, "--model", "fake", "--json", "-q").output)
    assert s2["new"] == 1 and s2["embedded"] == 0 and s2["cached"] == 1


def test_unicode_nfc_and_whitespace_normalisation():
    composed = "비타민 C 풍부"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert normalize_text("  " + decomposed.replace(" ", "\t\n ") + " ") == composed


def test_ids_derived_from_text_without_id_column(fakes, home, tmp_path):
    f = write_csv(tmp_path / "noid.csv", [{"text": "김치: 유산균 풍부", "cat": "발효"}])
    assert run("build", f, "--model", "fake", "-q").exit_code == 0
    res = run("search", "김치", "--json")
    hit = json.loads(res.output)["results"][0]
    assert hit["id"] == derived_id("김치: 유산균 풍부")
    assert hit["id"].startswith("t-") and len(hit["id"]) == 18
    assert hit["metadata"] == {"cat": "발효"}


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "parquet"])
def test_other_formats(fakes, home, tmp_path, fmt):
    rows = sample_rows()[:20]
    path = tmp_path / f"in.{fmt}"
    if fmt == "tsv":
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\t".join(rows[0]) + "\n")
            for r in rows:
                fh.write("\t".join(r.values()) + "\n")
    elif fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({**r, "healthy": int(r["healthy"])}, ensure_ascii=False) + "\n")
    else:
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    s = json.loads(run("build", path, "--model", "fake", "--json", "-q").output)
    assert s["new"] == 20 and s["rejected"] == 0
    with FoodIndex(home) as idx:
        item = idx.item(rows[0]["id"])
    assert item.text == rows[0]["text"]
    assert set(item.metadata) == {"name", "category", "healthy"}


def test_text_and_id_columns_by_name(fakes, home, tmp_path):
    f = write_csv(tmp_path / "n.csv", [{"fdc": "1", "description": "Apple, raw", "cat": "f"}])
    res = run(
        "build", f, "--model", "fake", "-q", "--text-column", "description", "--id-column", "fdc"
    )
    assert res.exit_code == 0, res.output
    with FoodIndex(home) as idx:
        assert idx.item("1").metadata == {"cat": "f"}


def test_reader_streams(tmp_path):
    from indexer.readers import open_table

    f = write_csv(tmp_path / "big.csv", [{"id": str(i), "text": f"food {i}"} for i in range(1000)])
    table = open_table(f)
    first = next(table.rows)
    assert first.where == "big.csv line 2" and first.data == {"id": "0", "text": "food 0"}
    assert table.approx_rows == 1000


def test_python_api_build_upsert_delete_search(fakes, home):
    with FoodIndex(home, model="fake") as idx:
        s = idx.build([SAMPLE], BuildOptions(progress=False))
        assert s.new == len(sample_rows())
        up = idx.upsert(
            [{"id": "new1", "text": "귀리 우유: 베타글루칸 함유", "metadata": {"category": "음료"}}]
        )
        assert up.new == 1
        hits = idx.searcher().search("귀리 우유: 베타글루칸 함유", k=3, mode="dense")[0]
        assert hits[0].id == "new1" and hits[0].metadata == {"category": "음료"}
        assert hits[0].dense == pytest.approx(1.0, abs=1e-5)
        assert idx.delete(["new1"]) == 1
        assert all(h.id != "new1" for h in idx.searcher().search("귀리 우유", k=5)[0])
        assert idx.verify() == []


def test_vectors_match_embedder_output(fakes, home):
    with FoodIndex(home, model="fake") as idx:
        idx.build([SAMPLE], BuildOptions(progress=False))
        item = idx.item("k001")
        ann = idx.sync()
        want = fakes["fake"].encode([item.text])[0]
        np.testing.assert_allclose(ann.reconstruct(item.id), want, atol=1e-6)
