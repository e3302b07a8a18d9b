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
    from .knowledge import load_knowledge

    for need in load_knowledge().needs.values():
        out |= set(need_phrasings(need, "help")) | set(need_phrasings(need, "harm"))
    return out


# -- training examples with their batch keys ---------------------------------------------
# Ways of saying a need, written for foodvec (never a benchmark query: a test checks).
# {x} is a Korean alias, {x_e} the alias with 을/를, {x_ae} with 에; {e} an English one.
NEED_HELP_KO = (
    "{x_ae} 좋은 먹거리",
    "{x_ae} 도움 되는 식품",
    "{x} 관리 식단",
    "{x} 챙기는 메뉴",
    "{x_e} 위한 식사",
    "{x} 걱정될 때 먹을 것",
    "{x_ae} 이로운 반찬",
)
NEED_HELP_EN = ("a good pick for {e}", "foods that support {e}", "{e} friendly meal", "helps {e}")
NEED_HARM_KO = (
    "{x_ae} 해로운 먹거리",
    "{x_ae} 나쁜 식품",
    "{x} 있으면 멀리할 음식",
    "{x} 악화시키는 메뉴",
)
NEED_HARM_EN = ("harmful for {e}", "worst foods for {e}")


def _fill(template: str, alias: str) -> str:
    final = _has_final(alias[-1])
    return template.format(
        x=alias, e=alias, x_e=alias + ("을" if final else "를"), x_ae=alias + "에"
    )


def need_phrasings(need, side: str) -> list[str]:
    """Every way of asking for foods that help (``side='help'``) or harm a need."""
    ko, en = (NEED_HELP_KO, NEED_HELP_EN) if side == "help" else (NEED_HARM_KO, NEED_HARM_EN)
    return [_fill(t, a) for a in need.ko for t in ko] + [_fill(t, a) for a in need.en for t in en]


@dataclass(frozen=True)
class Example:
    """A (query, positive[, hard negative]) triple and the keys it must not share with
    another example of its batch (its foods, needs and nutrients): two examples with a
    key in common would each count the other's positive as a wrong answer."""

    anchor: str
    positive: str
    negative: str | None
    keys: frozenset[str]


def food_stance(text: str, knowledge) -> tuple[set[str], set[str]]:
    """The needs a description supports and the needs it harms, read from the facts it
    states (``indexer.understand.read_facts``) through the knowledge table."""
    from .understand import read_facts

    facts = read_facts(text)
    said = {(f.id, f.direction) for f in facts if f.kind == "nutrient"}
    helps, harms = set(), set()
    for f in facts:
        if f.kind == "need":
            (helps if f.direction == "help" else harms).add(f.id)
    for need in knowledge.needs.values():
        if said & set(need.harms):
            harms.add(need.id)
        elif said & set(need.helps):
            helps.add(need.id)
    return helps - harms, harms


# Rewordings for near-duplicate copies (phrase -> the other ways it is written).
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("풍부", "함유", "많음"),
    ("과다", "많음", "높음"),
    ("단백질 함량 높음", "고단백", "단백질 풍부"),
    ("저칼로리", "열량 낮음", "칼로리 낮음"),
    ("고칼로리", "열량 높음", "칼로리 높음"),
    ("섬유질 많음", "식이섬유 풍부"),
    ("짠맛 강함", "짠맛"),
    ("기름에 튀김", "튀긴 음식", "튀김"),
    ("설탕 많음", "당분 과다"),
    ("오메가3", "오메가-3"),
)


def _profile(food: Food) -> list[str]:
    """The description's clauses without the name, brand, portion and glosses."""
    text = food.text.split(" [", 1)[0]
    body = text.split(" - ", 1)[1] if " - " in text else text.split(":", 1)[-1]
    return [c.strip() for c in body.split(",") if c.strip()]


def reword(food: Food, rng: random.Random) -> str:
    """A near-duplicate of the food's description: its name, then its clauses in
    another order, some said another way and one of them (of three or more) left out."""
    clauses = _profile(food)
    if len(clauses) >= 3:
        clauses.pop(rng.randrange(len(clauses)))
    out = []
    for c in clauses:
        for group in SYNONYMS:
            hit = next((w for w in group if w in c), None)
            if hit is not None and rng.random() < 0.6:
                c = c.replace(hit, rng.choice([w for w in group if w != hit]))
                break
        out.append(c)
    rng.shuffle(out)
    return f"{food.name} - {', '.join(dict.fromkeys(out))}"


# How product data dresses a food (our own lists): a maker before the name, a portion
# after it, ``name portion - profile`` instead of ``name: profile``.
MAKERS = ("해찬들", "사조", "롯데", "빙그레", "남양", "대상", "샘표", "노브랜드", "이마트", "삼양")
SERVINGS = ("1봉지(90g)", "250ml", "1조각", "2인분 400g", "1공기 210g", "1캔 355ml", "1접시")


def dress(food: Food, rng: random.Random) -> str:
    """The food's description as product data writes it: a maker, the name, a portion,
    then its profile after a dash."""
    return f"{rng.choice(MAKERS)} {food.name} {rng.choice(SERVINGS)} - {', '.join(_profile(food))}"


def _closest_profile(food: Food, foods: list[Food], rng: random.Random) -> Food | None:
    """Another food (another name) whose description mentions the most of the same
    nutrients; None when none shares one."""
    mine = set(nutrients_of(food.text))
    best, best_n = [], 0
    for other in foods:
        if other.name == food.name:
            continue
        n = len(mine & set(nutrients_of(other.text)))
        if n > best_n:
            best, best_n = [other], n
        elif n == best_n and n:
            best.append(other)
    return rng.choice(best) if best else None


KINDS = ("name", "typed", "english", "nutrient", "need", "reword", "phrase", "dressed")


def training_examples(
    foods: list[Food], seed: int = 0, kinds: tuple[str, ...] = KINDS, needs_per: int = 12
) -> list[Example]:
    """The search examples of the default recipe, shuffled.

    Food examples (each food's text the positive): its name, the name typed
    differently, its English name, a nutrient it mentions, a need it serves (with a food
    that harms that need as the hard negative), and a reworded copy of its own
    description. Need examples from the knowledge table: ``needs_per`` ways of asking
    for foods good for each need (a supporting food the positive, a harming one the
    negative) and a third as many for foods bad for it (the other way round).
    Phrase examples tie each way of asking to the words labels use."""
    from .knowledge import load_knowledge

    rng = random.Random(seed)
    know = load_knowledge()
    stance = {f.text: food_stance(f.text, know) for f in foods}
    helping: dict[str, list[Food]] = {}
    harming: dict[str, list[Food]] = {}
    for f in foods:
        helps, harms = stance[f.text]
        for n in helps:
            if f.healthy:
                helping.setdefault(n, []).append(f)
        for n in harms:
            harming.setdefault(n, []).append(f)
    out: list[Example] = []

    def add(anchor: str, f: Food, negative: Food | None, *keys: str) -> None:
        neg = negative.text if negative is not None else None
        own = {"food:" + f.text, *keys} | ({"food:" + neg} if neg else set())
        out.append(Example(anchor, f.text, neg, frozenset(own)))

    for f in foods:
        _food_examples(f, foods, kinds, rng, add)
        if "need" in kinds and f.healthy and stance[f.text][0]:
            need = know.needs[rng.choice(sorted(stance[f.text][0]))]
            neg = rng.choice(harming[need.id]) if harming.get(need.id) else None
            add(rng.choice(need_phrasings(need, "help")), f, neg, "need:" + need.id)
    if "need" in kinds:
        _need_examples(know, helping, harming, needs_per, rng, add)
    if "phrase" in kinds:
        out.extend(_phrase_examples())
    rng.shuffle(out)
    return out


def _food_examples(f: Food, foods: list[Food], kinds, rng: random.Random, add) -> None:
    """A food's own examples: its name, a typed name, its English name, a nutrient it
    mentions, a reworded copy and a dressed copy of its description."""
    if "name" in kinds:
        add(f.name, f, None)
    if "typed" in kinds:
        add(rng.choice(typed_variants(f.name, rng)), f, None)
    if "english" in kinds and f.english:
        add(f.english, f, None)
    found = nutrients_of(f.text)
    if "nutrient" in kinds and found:
        n = rng.choice(found)
        add(rng.choice(NUTRIENTS[n][1]), f, None, "nutrient:" + n)
    if "reword" in kinds and len(_profile(f)) >= 1:
        # the hard negative: another food with the most nutrients in common, so that a
        # reworded copy is told apart from a food of the same profile
        twin = _closest_profile(f, foods, rng) if "reword-hard" in kinds else None
        add(f.text, Food(f.name, reword(f, rng), f.healthy), twin)
    if "dressed" in kinds and " - " not in f.text and _profile(f):
        anchor = rng.choice([f.name, *typed_variants(f.name, rng)])
        add(anchor, Food(f.name, dress(f, rng), f.healthy, f.english), None, "food:" + f.text)


def _need_examples(know, helping, harming, needs_per: int, rng: random.Random, add) -> None:
    """``needs_per`` ways of asking for foods good for each need (a helping food the
    positive, a harming one the negative), a third as many for foods bad for it."""
    for need in know.needs.values():
        for side, pos, neg, count in (
            ("help", helping, harming, needs_per),
            ("harm", harming, helping, max(1, needs_per // 3)),
        ):
            if not pos.get(need.id):
                continue
            says = need_phrasings(need, side)
            for _ in range(count):
                f = rng.choice(pos[need.id])
                other = rng.choice(neg[need.id]) if neg.get(need.id) else None
                add(rng.choice(says), f, other, "need:" + need.id)


def _phrase_examples() -> list[Example]:
    """Each way of asking for a nutrient or a need tied to the words labels use."""
    out = []
    for marks, asks in NUTRIENTS.values():
        for ask in asks:
            out.append(Example(ask, f"{marks[0]} 풍부", None, frozenset({"n:" + marks[0]})))
    for _, phrasings, label in NEEDS:
        for say in phrasings:
            out.append(Example(say, label, None, frozenset({"l:" + label})))
    return out


def batches(examples: list[Example], size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffle, then fill each batch with examples that share no key with it (no food,
    need or nutrient twice); an example that fits nowhere yet waits for the next."""
    pending = list(examples)
    rng.shuffle(pending)
    out: list[list[Example]] = []
    while pending:
        batch: list[Example] = []
        taken: set[str] = set()
        texts: set[str] = set()
        rest: list[Example] = []
        for ex in pending:
            own = {ex.anchor, ex.positive} | ({ex.negative} if ex.negative else set())
            if len(batch) < size and not (ex.keys & taken) and not (own & texts):
                batch.append(ex)
                taken |= ex.keys
                texts |= own
            else:
                rest.append(ex)
        out.append(batch)
        pending = rest
    return out
