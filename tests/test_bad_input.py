"""Every kind of bad input: a clear message naming the row, exit 1, nothing lands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer import FoodIndex
from indexer.text import MAX_TEXT_CHARS
from search.cli import cli
from tests.conftest import ROOT, write_csv

# Each test runs on SQLite and on PostgreSQL.
STORES = ("sqlite", "postgres")
pytestmark = pytest.mark.hostile

SEED_ORIGINAL = ROOT.parent / "shared" / "seed" / "model-card.original.txt"
# UTF-8 Korean read as Windows-1252, as in the seed card. The first keeps every byte
# and can be repaired; the second lost the bytes cp1252 has no character for.
MOJIBAKE_OK = "설탕과 지방 과다, 비만 위험".encode().decode("cp1252")
MOJIBAKE_LOST = "비타민 C 풍부, 면역력 강화".encode().decode("cp1252", errors="ignore")


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


@pytest.fixture
def seeded(fakes, home, tmp_path):
    f = write_csv(
        tmp_path / "seed.csv",
        [{"id": "s1", "text": "두부: 단백질 풍부"}, {"id": "s2", "text": "콜라: 설탕 과다"}],
    )
    assert run("build", f, "-q").exit_code == 0
    return home


def items(home) -> int:
    with FoodIndex(home) as idx:
        return idx.count()


def good(n: int) -> list[dict]:
    return [{"id": f"g{i}", "text": f"좋은 음식 {i}: 식이섬유 풍부"} for i in range(n)]


def expect_failure(home, args, *fragments):
    res = run(*args)
    assert res.exit_code == 1, res.output
    msg = res.output.strip().splitlines()[-1]
    assert msg.startswith("Error: ")
    for frag in fragments:
        assert frag in msg, msg
    assert "Traceback" not in res.output
    assert items(home) == 2
    assert run("verify").exit_code == 0
    return msg


def test_missing_text_column_names_the_columns(seeded, tmp_path):
    f = write_csv(tmp_path / "a.csv", [{"id": "1", "desc": "x"}])
    expect_failure(seeded, ["build", f, "-q"], "no text column 'text'", "columns: id, desc")


def test_missing_named_id_column(seeded, tmp_path):
    f = write_csv(tmp_path / "a.csv", [{"code": "1", "text": "x"}])
    expect_failure(
        seeded,
        ["build", f, "-q", "--id-column", "fdc_id"],
        "no id column 'fdc_id'",
        "columns: code, text",
    )


@pytest.mark.parametrize(
    "bad,reason",
    [
        ("", "the text is empty"),
        ("   \t  ", "the text is empty"),
        ("가" * (MAX_TEXT_CHARS + 1), f"the limit is {MAX_TEXT_CHARS}"),
    ],
)
def test_empty_blank_and_huge_text(seeded, tmp_path, bad, reason):
    rows = good(5) + [{"id": "bad", "text": bad}] + good(3)[1:]
    rows[-1]["id"] = "g99"
    f = write_csv(tmp_path / "a.csv", rows)
    expect_failure(seeded, ["build", f, "-q"], "a.csv line 7", reason)


@pytest.mark.parametrize(
    "row,reason",
    [
        ({"id": "n1", "text": "두부\x00조림"}, "the text holds a NUL character"),
        ({"id": "n\x001", "text": "두부조림"}, "the id holds a NUL character"),
    ],
)
def test_nul_in_text_or_id(seeded, tmp_path, row, reason):
    f = tmp_path / "a.jsonl"
    f.write_text(json.dumps({"id": "g0", "text": "좋은 음식"}) + "\n" + json.dumps(row) + "\n")
    expect_failure(seeded, ["build", f, "-q"], "a.jsonl line 2", reason)


def test_nul_in_a_query_or_a_looked_up_id(seeded):
    res = run("search", "두부\x00", "--json")
    assert res.exit_code != 0 and "NUL" in res.output and "Traceback" not in res.output
    res = run("get", "s\x001")
    assert res.exit_code != 0 and "Traceback" not in res.output
    res = run("delete", "s\x001")
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert items(seeded) == 2


def test_malformed_row(seeded, tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("id,text\n1,ok text\n2,too,many,fields\n", encoding="utf-8")
    expect_failure(
        seeded, ["build", f, "-q"], "a.csv line 3", "has 4 fields where the header has 2"
    )


def test_invalid_utf8(seeded, tmp_path):
    f = tmp_path / "a.csv"
    f.write_bytes("id,text\n1,두부\n".encode() + b"2,caf\xe9 au lait\n")
    expect_failure(seeded, ["build", f, "-q"], "a.csv line 3", "invalid UTF-8", "0xe9")


def test_duplicate_id_names_both_rows(seeded, tmp_path):
    rows = good(3) + [{"id": "g1", "text": "다른 음식"}]
    f = write_csv(tmp_path / "a.csv", rows)
    expect_failure(
        seeded, ["build", f, "-q"], "a.csv line 5", "duplicate id 'g1'", "also at a.csv line 3"
    )


def test_duplicate_id_across_batches(seeded, tmp_path):
    rows = good(10) + [{"id": "g0", "text": "다른 음식"}]
    f = write_csv(tmp_path / "a.csv", rows)
    expect_failure(
        seeded,
        ["build", f, "-q", "--batch-size", "3"],
        "a.csv line 12",
        "duplicate id 'g0'",
        "also at a.csv line 2",
    )


def test_mojibake_is_refused_then_repaired_with_fix_encoding(seeded, home, tmp_path):
    f = write_csv(tmp_path / "a.csv", good(2) + [{"id": "m", "text": MOJIBAKE_OK}])
    expect_failure(seeded, ["build", f, "-q"], "a.csv line 4", "mis-decoded", "--fix-encoding")
    res = run("build", f, "-q", "--fix-encoding", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["repaired"] == 1
    with FoodIndex(home) as idx:
        assert idx.item("m").text == "설탕과 지방 과다, 비만 위험"


def test_unrepairable_mojibake_is_rejected_even_with_fix(seeded, tmp_path):
    f = write_csv(tmp_path / "a.csv", good(2) + [{"id": "m", "text": MOJIBAKE_LOST}])
    expect_failure(
        seeded, ["build", f, "-q", "--fix-encoding"], "a.csv line 4", "cannot be repaired"
    )


@pytest.mark.skipif(not SEED_ORIGINAL.exists(), reason="shared seed not present")
def test_seed_card_original_lines_are_caught(seeded, tmp_path):
    lines = [
        ln.strip(" -")
        for ln in SEED_ORIGINAL.read_text(encoding="utf-8").splitlines()
        if ln.startswith("  - ") and "ë" in ln
    ]
    assert len(lines) >= 10
    f = write_csv(tmp_path / "card.csv", [{"id": str(i), "text": t} for i, t in enumerate(lines)])
    expect_failure(seeded, ["build", f, "-q"], "card.csv line 2", "mis-decoded")


def test_jsonl_bad_records(seeded, tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"id": "1", "text": "두부"}\n{"id": "2", "text": \n', encoding="utf-8")
    expect_failure(seeded, ["build", f, "-q"], "a.jsonl line 2", "not valid JSON")
    f.write_text('{"id": "1", "text": "두부"}\n{"id": "2", "name": "x"}\n', encoding="utf-8")
    expect_failure(
        seeded, ["build", f, "-q"], "a.jsonl line 2", "no 'text' field", "fields: id, name"
    )
    f.write_text('{"id": "1", "text": 42}\n', encoding="utf-8")
    expect_failure(seeded, ["build", f, "-q"], "a.jsonl line 1", "not a string")


def test_empty_file_and_unknown_extension(seeded, tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("", encoding="utf-8")
    expect_failure(seeded, ["build", f, "-q"], "empty")
    g = tmp_path / "a.xlsx"
    g.write_text("x", encoding="utf-8")
    expect_failure(seeded, ["build", g, "-q"], "--format")


def test_on_error_skip_lands_good_rows_and_reports_bad(seeded, home, tmp_path):
    rows = good(4) + [
        {"id": "e", "text": " "},
        {"id": "g1", "text": "dup"},
        {"id": "m", "text": MOJIBAKE_OK},
    ]
    f = write_csv(tmp_path / "a.csv", rows)
    report = tmp_path / "rejects.jsonl"
    res = run("build", f, "-q", "--on-error", "skip", "--report", report, "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert (s["new"], s["rejected"]) == (4, 3)
    assert items(home) == 6
    lines = [json.loads(x) for x in report.read_text(encoding="utf-8").splitlines()]
    assert [x["where"] for x in lines] == ["a.csv line 6", "a.csv line 7", "a.csv line 8"]
    assert "empty" in lines[0]["reason"] and "duplicate" in lines[1]["reason"]
    assert lines[2]["row"]["text"] == MOJIBAKE_OK
    assert run("verify").exit_code == 0


def test_other_model_is_refused(seeded, tmp_path):
    f = write_csv(tmp_path / "a.csv", good(2))
    msg = expect_failure(
        seeded, ["build", f, "-q", "--model", "fake-other"], "built with the model", "--reembed"
    )
    assert "fake64other" in msg
    expect_failure(seeded, ["search", "두부", "--model", "fake-other"], "built with the model")


def test_model_of_wrong_dimension_is_refused(seeded, tmp_path):
    f = write_csv(tmp_path / "a.csv", good(2))
    expect_failure(
        seeded, ["build", f, "-q", "--model", "fake-wide"], "128-dimensional", "the index holds 64"
    )
    expect_failure(seeded, ["search", "두부", "--model", "fake-wide"], "built with the model")


def test_reembed_switches_model(seeded, home, tmp_path, fakes):
    f = write_csv(tmp_path / "a.csv", good(2))
    res = run("build", f, "-q", "--model", "fake-wide", "--reembed", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["embedded"] == 4
    res = run("search", "두부", "--model", "fake-wide", "--json")
    assert json.loads(res.output)["results"][0]["id"] == "s1"
    assert run("verify").exit_code == 0
    assert run("stats", "--json").exit_code == 0
    with FoodIndex(home) as idx:
        assert idx.stats()["dim"] == 128


def test_missing_model_folder(seeded, tmp_path):
    expect_failure(seeded, ["search", "두부", "--model", tmp_path / "nope"], "no model folder")
    (tmp_path / "empty").mkdir()
    expect_failure(
        seeded,
        ["search", "두부", "--model", tmp_path / "empty"],
        "not a sentence-transformers model folder",
    )


def test_untrained_default_says_how_to_train(home, tmp_path):
    f = write_csv(tmp_path / "a.csv", good(2))
    res = run("build", f, "-q")
    assert res.exit_code == 1
    assert "foodvec train" in res.output and "Traceback" not in res.output


def test_bad_usage_exits_2(seeded):
    assert run("search", "x", "-k", "0").exit_code == 2
    assert run("search", "x", "--filter", "novalue").exit_code == 2
    assert run("build").exit_code == 2
    assert run("build", Path("/nonexistent.csv")).exit_code == 2


def test_delete_unknown_id_deletes_nothing(seeded):
    expect_failure(
        seeded, ["delete", "s1", "nope"], "not in the index: 'nope'", "nothing was deleted"
    )


def test_accented_text_is_not_mistaken_for_mojibake():
    from indexer.text import looks_misdecoded

    for t in [
        "Crème brûlée",
        "Jalapeño poppers",
        "Açaí bowl",
        "Smörgåsbord",
        "Piña colada",
        "Crêpe Suzette",
        "비타민 C 풍부",
        "Müsli, 50 g",
        "Café au lait « grand »",
    ]:
        assert not looks_misdecoded(t), t
    assert looks_misdecoded(MOJIBAKE_OK) and looks_misdecoded(MOJIBAKE_LOST)
    assert looks_misdecoded("cafÃ© au lait")
