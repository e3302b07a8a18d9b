"""Export to CSV, TSV, JSONL and Parquet, and build the export back into the same items."""

from __future__ import annotations

import json

import pytest

from indexer import BuildOptions, FoodIndex
from indexer.errors import BadRowError
from tests.conftest import run
from tests.fakes import FakeEmbedder

ROWS = [
    {"id": "a1", "text": "사과: 식이섬유", "metadata": {"kcal": 52, "tags": ["과일", "빨강"],
                                                      "note": {"origin": "청송"}, "code": "007"}},
    {"id": "a2", "text": "두부: 단백질", "metadata": {"kcal": 76.5, "vegan": True, "code": "200"}},
    {"id": "a3", "text": "라면: 나트륨", "metadata": {}},
]  # fmt: skip


def _items(home) -> list[dict]:
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        page, _ = idx.records(limit=1000)
        return page


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_typed_formats_round_trip_exactly(home, tmp_path, ext):
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert(ROWS)
        assert idx.export(tmp_path / f"out.{ext}") == 3
        want = idx.records(limit=1000)[0]
    back = tmp_path / "back"
    with FoodIndex(back, embedder=FakeEmbedder(16)) as idx:
        idx.build([tmp_path / f"out.{ext}"], BuildOptions(progress=False))
        got = idx.records(limit=1000)[0]
    if ext == "parquet":  # one type per column: a key an item lacks is read back as null
        got = [{**g, "metadata": {k: v for k, v in g["metadata"].items() if v is not None}}
               for g in got]  # fmt: skip
    assert got == want


def test_csv_round_trip_of_flat_metadata_and_its_documented_limits(home, tmp_path):
    with FoodIndex(home, embedder=FakeEmbedder(16)) as idx:
        idx.upsert(ROWS)
        idx.export(tmp_path / "out.csv")
    back = tmp_path / "back"
    with FoodIndex(back, embedder=FakeEmbedder(16)) as idx:
        idx.build([tmp_path / "out.csv"], BuildOptions(progress=False, keep_text=("code",)))
        got = {r["id"]: r["metadata"] for r in idx.records(limit=1000)[0]}
    assert got["a1"]["kcal"] == 52 and got["a2"]["kcal"] == 76.5
    assert got["a1"]["code"] == "007" and got["a2"]["code"] == "200"  # kept as text
    assert json.loads(got["a1"]["tags"]) == ["과일", "빨강"]  # nested: JSON text in CSV


def test_export_with_vectors_builds_back_without_embedding(built, fakes, tmp_path):
    res = run("export", tmp_path / "all.jsonl", "--vectors", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["items"] == 234
    before = json.loads(run("search", "칼슘 풍부", "-k", "5", "--json").stdout)
    other = tmp_path / "other"
    encoded = fakes["fake"].texts_encoded
    res = run("build", tmp_path / "all.jsonl", "--vector-column", "vector", "-q", "--json",
              "--home", other)  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["given"] == 234 and summary["embedded"] == 0
    assert fakes["fake"].texts_encoded == encoded  # the model embedded nothing
    after = json.loads(run("search", "칼슘 풍부", "-k", "5", "--json", "--home", other).stdout)
    assert after == before
    assert run("verify", "--home", other).exit_code == 0


def test_export_where_and_bad_vectors(built, fakes, tmp_path):
    res = run("export", tmp_path / "veg.csv", "--where", "category=채소")
    assert res.exit_code == 0
    lines = (tmp_path / "veg.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("id,text,") and len(lines) > 5
    assert all(",채소," in line for line in lines[1:])
    assert run("export", tmp_path / "x.unknown").exit_code == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"id": "v1", "text": "음식", "vector": [0.5] * 63}) + "\n", encoding="utf-8"
    )
    with FoodIndex(tmp_path / "h", embedder=FakeEmbedder(64)) as idx:
        with pytest.raises(BadRowError, match="has 63 numbers; the model makes 64"):
            idx.build([bad], BuildOptions(progress=False, vector_column="vector"))
        bad.write_text(
            json.dumps({"id": "v1", "text": "음식", "vector": [0.5] * 64}) + "\n", encoding="utf-8"
        )
        with pytest.raises(BadRowError, match="unit length"):
            idx.build([bad], BuildOptions(progress=False, vector_column="vector"))
        assert idx.count() == 0
