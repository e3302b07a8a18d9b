"""The nutrition knowledge table (indexer/data/needs.json) and its validating loader."""

from __future__ import annotations

import copy
import json
import unicodedata
from pathlib import Path

import pytest

from indexer.errors import BadInputError
from indexer.knowledge import DEFAULT_PATH, Knowledge, load_knowledge

# One Korean alias per need that the search must understand; alternatives in a tuple.
REQUIRED_NEEDS = [
    "혈압", "뼈", "빈혈", "변비", "장", ("감기", "면역력"), "피로", "근육", "혈당", "눈",
    "수면", "부기", "콜레스테롤", ("체중", "다이어트"), "숙취", "피부", "치아", "심장", "간",
    "위", ("임산부", "임신"), ("성장", "키"), "기억력",
]  # fmt: skip


@pytest.fixture(scope="module")
def table() -> Knowledge:
    return load_knowledge()


@pytest.fixture
def raw() -> dict:
    return json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "needs.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def need_index(data: dict, need_id: str) -> int:
    return next(i for i, need in enumerate(data["needs"]) if need["id"] == need_id)


def test_shipped_table_loads_and_is_cached(table):
    assert load_knowledge() is table
    assert load_knowledge(DEFAULT_PATH) is table
    assert len(table.nutrients) >= 40
    assert table.sources


def test_at_least_45_needs_each_complete(table):
    assert len(table.needs) >= 45
    for need in table.needs.values():
        assert need.ko and need.en, need.id
        assert need.rise in ("harm", "help"), need.id
        assert need.helps, need.id
        assert need.sources, need.id
        for nutrient, level in need.helps + need.harms:
            assert nutrient in table.nutrients, (need.id, nutrient)
            assert level in ("high", "low"), (need.id, level)
        for key in need.sources:
            assert key in table.sources, (need.id, key)


def test_most_needs_name_a_harm(table):
    with_harms = sum(1 for need in table.needs.values() if need.harms)
    assert with_harms >= 0.7 * len(table.needs)


def test_required_needs_present(table):
    aliases = {alias for need in table.needs.values() for alias in need.ko}
    for want in REQUIRED_NEEDS:
        options = want if isinstance(want, tuple) else (want,)
        assert any(option in aliases for option in options), want


def test_known_links(table):
    """A few links that public guidance states plainly."""
    by_alias = {alias: need for need in table.needs.values() for alias in need.ko}
    assert ("sodium", "high") in by_alias["혈압"].harms
    assert ("potassium", "high") in by_alias["혈압"].helps
    assert ("calcium", "high") in by_alias["뼈"].helps
    assert ("iron", "high") in by_alias["빈혈"].helps
    assert ("fiber", "high") in by_alias["변비"].helps
    assert ("sugar", "high") in by_alias["혈당"].harms
    assert ("sugar", "high") in by_alias["충치"].harms
    assert ("caffeine", "high") in by_alias["수면"].harms
    assert ("alcohol", "high") in by_alias["간"].harms
    assert ("purine", "high") in by_alias["통풍"].harms
    assert by_alias["혈압"].rise == "harm"
    assert by_alias["면역력"].rise == "help"


def test_every_source_cited(table):
    cited = {key for need in table.needs.values() for key in need.sources}
    assert cited == set(table.sources)


def test_aliases_normalised_and_unique(table):
    seen: dict[str, str] = {}
    nutrient_words = {
        word.casefold()
        for n in table.nutrients.values()
        for word in n.ko + n.en + n.ko_high + n.ko_low + n.en_high + n.en_low
    }
    for need in table.needs.values():
        for alias in need.ko + need.en:
            assert alias == unicodedata.normalize("NFC", alias).strip(), alias
            assert seen.setdefault(alias.casefold(), need.id) == need.id, alias
            assert alias.casefold() not in nutrient_words, alias
        assert all(alias == alias.lower() for alias in need.en), need.id
    for n in table.nutrients.values():
        assert n.ko and n.en, n.id
        assert all(w == w.lower() for w in n.en + n.en_high + n.en_low), n.id


def test_named_nutrients_present(table):
    words = {w for n in table.nutrients.values() for w in n.ko + n.ko_high + n.ko_low}
    for word in ["나트륨", "짠", "저염", "칼슘", "식이섬유", "엽산", "유산균", "발효", "칼로리",
                 "고칼로리", "저칼로리", "포화지방", "트랜스지방", "불포화지방산", "당", "무가당",
                 "정제 탄수화물", "디카페인", "가공육", "튀김", "튀긴", "퓨린", "글루텐", "유당",
                 "캡사이신", "매운", "DHA", "수분", "전해질", "카페인", "알코올",
                 "술"]:  # fmt: skip
        assert word in words, word


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (
            lambda d: d["needs"][0]["helps"]["high"].append("vitamin_z"),
            "unknown nutrient 'vitamin_z'",
        ),
        (
            lambda d: d["needs"][0]["sources"].append("made-up-2099"),
            "unknown source 'made-up-2099'",
        ),
        (lambda d: d["needs"][1]["ko"].append(d["needs"][0]["ko"][0]), "already an alias of need"),
        (lambda d: d["needs"][0]["en"].append(d["needs"][1]["en"][0].upper()), "already an alias"),
        (lambda d: d["needs"][0].__setitem__("rise", "up"), "bad rise 'up'"),
        (lambda d: d["needs"][0].pop("rise"), "missing key(s): rise"),
        (lambda d: d["nutrients"][0].pop("ko_low"), "missing key(s): ko_low"),
        (lambda d: d.pop("sources"), "missing key(s): sources"),
        (lambda d: d["needs"][0].__setitem__("ko", []), "empty alias list ko"),
        (lambda d: d["nutrients"][0].__setitem__("en", []), "empty alias list en"),
        (lambda d: d["needs"][0]["ko"].append("칼슘"), "is a word of nutrient 'calcium'"),
        (lambda d: d["needs"].append(copy.deepcopy(d["needs"][0])), "duplicate id"),
        (lambda d: d["nutrients"].append(copy.deepcopy(d["nutrients"][0])), "duplicate id"),
        (lambda d: d["needs"][0].__setitem__("helps", {}), "helps names no nutrient"),
        (lambda d: d["needs"][0]["harms"].__setitem__("sometimes", ["sodium"]), "bad level"),
        (lambda d: d["sources"].__setitem__("unused-2000", "Nobody. Nothing. 2000."), "not cited"),
        (lambda d: d.__setitem__("version", 2), "unsupported version"),
    ],
)
def test_validator_rejects(tmp_path, raw, breaks, message):
    breaks(raw)
    with pytest.raises(BadInputError) as info:
        load_knowledge(write(tmp_path, raw))
    assert message in str(info.value)


def test_validator_names_the_entry(tmp_path, raw):
    i = need_index(raw, "bones")
    raw["needs"][i]["harms"]["high"].append("kryptonite")
    with pytest.raises(BadInputError) as info:
        load_knowledge(write(tmp_path, raw))
    assert f"needs[{i}] (bones)" in str(info.value)
    assert "unknown nutrient 'kryptonite' in harms.high" in str(info.value)


def test_validator_rejects_contradictions(tmp_path, raw):
    i = need_index(raw, "blood_pressure")
    raw["needs"][i]["helps"]["high"].append("sodium")
    with pytest.raises(BadInputError, match="'sodium' both helps and harms at high"):
        load_knowledge(write(tmp_path, raw))


def test_bad_json_is_bad_input(tmp_path):
    path = tmp_path / "needs.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(BadInputError, match="not valid JSON"):
        load_knowledge(path)
    with pytest.raises(BadInputError, match="cannot read"):
        load_knowledge(tmp_path / "absent.json")


def test_aliases_are_normalised_on_load(tmp_path, raw):
    nfd = unicodedata.normalize("NFD", "혈압약")
    raw["needs"][need_index(raw, "blood_pressure")]["ko"].append(f"  {nfd} ")
    raw["needs"][need_index(raw, "blood_pressure")]["en"].append(" BP ")
    need = load_knowledge(write(tmp_path, raw)).needs["blood_pressure"]
    assert "혈압약" in need.ko
    assert "bp" in need.en
