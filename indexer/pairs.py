"""Training pairs for the search objective: (what a person types, the food's text).

Written for foodvec. From each food (a name, a description, and whether it is healthy)
we make queries of four kinds: the name, the name typed differently (a particle
attached, a space inside), a nutrient the description mentions (in several phrasings),
and a need said in other words that the nutrient serves (healthy foods only). Foods
with an English name also get it as a query. The phrasings below are ours and are
kept apart from the lookup benchmark's queries (a test checks that none is equal).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

# nutrient -> (substrings that show it in a description, ways people ask for it)
NUTRIENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "칼슘": (("칼슘",), ("칼슘 들어간 음식", "칼슘 함량 높은 식품", "칼슘 보충", "칼슘 섭취")),
    "철분": (("철분",), ("철분 보충 음식", "철분 함량 높은", "철분 섭취")),
    "단백질": (
        ("단백질", "고단백"),
        ("단백질 보충", "단백질 식품", "프로틴 많은", "단백질 섭취 음식"),
    ),
    "비타민C": (("비타민 C", "비타민C"), ("비타민 C 보충", "비타민C 식품", "비타민 씨")),
    "비타민A": (("베타카로틴", "비타민 A"), ("비타민 A 식품", "카로틴 많은")),
    "비타민D": (("비타민 D",), ("비타민 D 보충", "비타민D 식품")),
    "비타민E": (("비타민 E",), ("비타민 E 식품", "토코페롤")),
    "비타민K": (("비타민 K",), ("비타민 K 식품",)),
    "비타민B": (("비타민 B",), ("비타민 B군 식품", "비타민 B 보충")),
    "식이섬유": (("식이섬유", "섬유질", "이눌린", "펙틴"), ("섬유질 많은", "식이섬유 섭취")),
    "칼륨": (("칼륨",), ("칼륨 섭취", "칼륨 함량 높은")),
    "마그네슘": (("마그네슘",), ("마그네슘 보충", "마그네슘 식품")),
    "아연": (("아연",), ("아연 보충", "아연 식품")),
    "엽산": (("엽산",), ("엽산 식품", "엽산 보충")),
    "오메가3": (("오메가-3", "오메가3", "DHA"), ("오메가-3 식품", "DHA 식품", "등푸른 생선")),
    "유산균": (("유산균", "프로바이오틱스"), ("유산균 식품", "프로바이오틱스 음식")),
    "발효": (("발효",), ("발효 음식", "삭힌 음식")),
    "항산화": (
        ("항산화", "폴리페놀", "안토시아닌", "라이코펜", "카테킨"),
        ("항산화 식품", "폴리페놀 음식"),
    ),
    "저칼로리": (("저칼로리", "칼로리 없음"), ("칼로리 낮은", "열량 적은 음식")),
    "고칼로리": (("칼로리 높음", "칼로리 과다"), ("열량 높은 음식", "고열량")),
    "나트륨": (("나트륨",), ("나트륨 함량 높은", "염분 많은", "짭짤한 음식")),
    "당분": (("설탕", "당분"), ("단 음식", "당 함량 높은", "달달한 간식")),
    "포화지방": (("포화지방",), ("포화지방 높은", "기름진 음식")),
    "트랜스지방": (("트랜스지방",), ("트랜스지방 음식",)),
    "카페인": (("카페인 함유", "카페인과"), ("카페인 음료", "각성 음료")),
    "알코올": (("알코올",), ("술", "주류")),
    "불포화지방": (("불포화지방",), ("좋은 지방", "불포화 지방 식품")),
    "정제탄수화물": (("정제",), ("정제 곡물", "흰 밀가루 음식")),
    "가공육": (("가공육",), ("가공 고기", "육가공품")),
    "수분": (("수분",), ("수분 많은", "물기 많은 음식")),
}

# need -> (nutrients that serve it, ways people say the need, how a label says it)
NEEDS: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (
        ("칼슘", "비타민D", "비타민K"),
        ("뼈를 튼튼하게", "골밀도 높이기", "뼈 강화", "관절과 뼈"),
        "뼈 건강 지원",
    ),
    (("철분", "엽산"), ("빈혈 있을 때", "피가 부족할 때", "혈액 보충"), "빈혈 예방"),
    (("비타민C", "아연"), ("감기 예방에", "면역 강화", "잔병치레 줄이기"), "면역력 증진"),
    (("비타민A",), ("눈 건강에", "눈이 침침할 때", "눈 보호"), "눈 건강 지원"),
    (("식이섬유", "유산균"), ("배변 활동", "장 편하게", "장운동 돕는"), "장 건강 지원"),
    (("칼륨",), ("혈압 낮추기", "붓기 빼기", "짠 음식 먹은 뒤"), "혈압 조절"),
    (("저칼로리",), ("살 빼고 싶을 때", "체중 감량", "가벼운 식사"), "체중 관리 지원"),
    (("단백질",), ("근력 운동 후", "근육량 늘리기", "헬스 식단"), "근육 건강 지원"),
    (("오메가3",), ("머리 좋아지는", "집중력 향상", "혈행 개선"), "뇌 건강 지원"),
    (("불포화지방", "오메가3"), ("혈관 청소", "심장에 좋은"), "심장 건강 지원"),
    (("항산화",), ("젊음 유지", "세포 보호", "안티에이징"), "노화 방지"),
    (("비타민B",), ("피곤할 때", "활력 충전", "지칠 때"), "피로 회복"),
    (("엽산",), ("임신 준비", "태아 건강"), "임산부 영양"),
    (("발효", "유산균"), ("소화 돕는", "속 편한 음식"), "소화 지원"),
    (("수분",), ("목마를 때", "더위 먹었을 때"), "갈증 해소"),
)

# Particles after a syllable with a final consonant, and after one without.
PARTICLES = (("이", "을", "은", "도", "이랑", "하고"), ("가", "를", "는", "도", "랑", "하고"))


def _has_final(syllable: str) -> bool:
    return "가" <= syllable <= "힣" and (ord(syllable) - 0xAC00) % 28 != 0


@dataclass(frozen=True)
class Food:
    name: str
    text: str
    healthy: bool
    english: str | None = None


def read_foods(path: Path, split: str | None = None) -> list[Food]:
    """Foods from a CSV with ``name``, ``text`` and ``healthy`` (and optional ``en``,
    ``split``); with ``split``, only the rows of that split."""
    out = []
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if split is not None and row.get("split") != split:
                continue
            name = row.get("name") or row["text"].split(":", 1)[0]
            out.append(Food(name, row["text"], row.get("healthy") == "1", row.get("en") or None))
    return out


def nutrients_of(text: str) -> list[str]:
    return [n for n, (marks, _) in NUTRIENTS.items() if any(m in text for m in marks)]


def typed_variants(name: str, rng: random.Random) -> list[str]:
    """The name as people also type it: a particle attached; a space inside."""
    out = [name + rng.choice(PARTICLES[0] if _has_final(name[-1]) else PARTICLES[1])]
    compact = name.replace(" ", "")
    if " " in name:
        out.append(compact)
    elif len(compact) >= 3:
        cut = rng.randrange(1, len(compact))
        out.append(compact[:cut] + " " + compact[cut:])
    return out


def search_pairs(foods: list[Food], seed: int = 0) -> list[tuple[str, str]]:
    """(query, positive) pairs for in-batch ranking. Food pairs: the name, the name
    typed differently, the English name, one nutrient the text mentions, one need it
    serves (healthy foods). Phrase pairs tie each way of asking to the words labels
    use: a nutrient asked for to the nutrient as written, a need to the nutrients that
    serve it and to its label wording."""
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    for f in foods:
        pairs.append((f.name, f.text))
        pairs.append((rng.choice(typed_variants(f.name, rng)), f.text))
        if f.english:
            pairs.append((f.english, f.text))
        found = nutrients_of(f.text)
        if found:
            pairs.append((rng.choice(NUTRIENTS[rng.choice(found)][1]), f.text))
        serves = [p for served, p, _ in NEEDS if set(served) & set(found)]
        if f.healthy and serves:
            pairs.append((rng.choice(rng.choice(serves)), f.text))
    for marks, asks in NUTRIENTS.values():
        for ask in asks:
            pairs.append((ask, f"{marks[0]} 풍부"))
    for served, phrasings, label in NEEDS:
        for say in phrasings:
            pairs.append((say, label))
            for n in served:
                pairs.append((say, f"{NUTRIENTS[n][0][0]} 풍부"))
    rng.shuffle(pairs)
    return pairs


def all_query_phrasings() -> set[str]:
    """Every fixed query phrasing above (names aside), for the overlap test."""
    out = {q for _, qs in NUTRIENTS.values() for q in qs}
    out |= {q for _, qs, _ in NEEDS for q in qs}
    return out
