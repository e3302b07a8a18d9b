"""Write the Korean lookup benchmark (indexer/data/lookup/corpus.csv and queries.jsonl).

The foods, their tags and the queries are written by hand (``indexer/data/lookup/foods.txt`` and
the lists below); this script only spells the descriptions out and grades every query
by the rules in indexer/data/README.md, so the grading is reproducible and reviewable:

- names (exact, typed differently, English): 2 for the named food; 1 for a food whose
  name contains the named one or is contained in it (a compound and its parts).
- nutrients: 2 for a food tagged with the nutrient (and, where the query names a kind
  of food, of that category); 1 for the nutrient in another category.
- needs said in other words: 2 for a healthy food tagged with a primary tag of the
  need, 1 for a healthy food with a secondary tag; unhealthy foods get 0.

Every fourth food of the test half gets a reworded copy in planted.csv (other phrasings, another
order): the near-duplicate pairs that ``foodvec mine`` should find.

Foods are split into halves by a hash of their name; a name query belongs to the half
of its food, every other query to a half by a hash of its text. ``bench.lookup``
tunes on ``dev`` and reports ``test``.

    python -m bench.lookup_data     # rewrites indexer/data/lookup/corpus.csv and queries.jsonl
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "indexer" / "data" / "lookup"

# tag -> (profile phrases, a benefit phrase or "", an English gloss or "")
PHRASES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "단백질": (("단백질 풍부", "고단백", "단백질 함량 높음"), "근육 유지", "protein"),
    "칼슘": (("칼슘 풍부", "칼슘 함유"), "뼈 건강 지원", "calcium"),
    "철분": (("철분 풍부", "철분 함유"), "빈혈 예방", "iron"),
    "비타민C": (("비타민 C 풍부", "비타민C 함유"), "면역력 증진", "vitamin C"),
    "비타민A": (("베타카로틴 풍부", "비타민 A 함유"), "눈 건강 지원", "beta-carotene"),
    "비타민D": (("비타민 D 함유",), "뼈 건강 지원", "vitamin D"),
    "비타민E": (("비타민 E 풍부",), "항산화 작용", "vitamin E"),
    "비타민K": (("비타민 K 풍부",), "뼈 건강 지원", "vitamin K"),
    "비타민B": (("비타민 B군 함유",), "피로 회복", "B vitamins"),
    "식이섬유": (("식이섬유 풍부", "섬유질 많음"), "장 건강 지원", "fiber"),
    "칼륨": (("칼륨 풍부", "칼륨 함유"), "혈압 조절", "potassium"),
    "마그네슘": (("마그네슘 함유",), "근육 이완", "magnesium"),
    "아연": (("아연 풍부",), "면역력 증진", "zinc"),
    "엽산": (("엽산 풍부",), "임산부 영양", "folate"),
    "오메가3": (("오메가3 풍부", "DHA·EPA 함유"), "두뇌 건강", "omega-3"),
    "유산균": (("유산균 풍부", "프로바이오틱스 함유"), "장 건강 지원", "probiotics"),
    "발효": (("발효 식품", "자연 발효"), "소화 지원", "fermented"),
    "항산화": (("폴리페놀 풍부", "항산화 성분 함유"), "노화 방지", "antioxidants"),
    "저칼로리": (("저칼로리", "열량 낮음"), "체중 관리", "low calorie"),
    "고칼로리": (("고칼로리", "열량 높음"), "체중 증가 주의", "high calorie"),
    "나트륨높음": (("나트륨 과다", "짠맛 강함, 나트륨 높음"), "혈압 상승 위험", "high sodium"),
    "당높음": (("당분 과다", "설탕 많음"), "혈당 급상승 주의", "high sugar"),
    "포화지방": (("포화지방 과다", "포화지방 많음"), "심혈관 부담", "saturated fat"),
    "트랜스지방": (("트랜스지방 함유",), "심혈관 위험", "trans fat"),
    "카페인": (("카페인 함유",), "각성 효과", "caffeine"),
    "알코올": (("알코올 함유",), "간 부담", "alcohol"),
    "탄수화물": (("탄수화물 풍부",), "에너지 공급", "carbs"),
    "수분": (("수분 풍부",), "갈증 해소", ""),
    "불포화지방": (("불포화지방산 풍부",), "혈관 건강", "healthy fats"),
    "콜라겐": (("콜라겐 함유",), "피부 탄력", "collagen"),
    "저지방": (("저지방",), "체중 관리", "low fat"),
    "이소플라본": (("이소플라본 함유",), "갱년기 건강", ""),
    "가공육": (("가공육", "육가공품, 첨가물 함유"), "대장 건강 주의", "processed meat"),
    "튀김": (("기름에 튀김", "튀긴 음식"), "칼로리 높음", "deep-fried"),
    "정제": (("정제 탄수화물",), "혈당 급상승 주의", "refined"),
    "해장": (("숙취 해소",), "해장에 좋음", ""),
    "회복": (("기력 회복",), "보양식", ""),
    "면역": (("면역력 강화",), "감기 예방", ""),
    "소화": (("소화 도움",), "속 편안", ""),
    "혈당": (("혈당 상승 완만",), "혈당 관리", "low GI"),
    "혈액순환": (("혈액 순환 지원",), "혈관 건강", ""),
    "기관지": (("기관지 보호",), "목 건강", ""),
    "눈": (("안토시아닌 풍부",), "눈 건강 지원", ""),
    "수면": (("수면 유도 성분 함유",), "숙면 지원", ""),
    "타우린": (("타우린 풍부",), "피로 회복", "taurine"),
    "요오드": (("요오드 풍부",), "갑상선 건강", "iodine"),
    "전해질": (("전해질 보충",), "탈수 예방", "electrolytes"),
}

BRANDS = ("오뚜기", "CJ", "풀무원", "동원", "농협", "청정원", "비비고", "매일", "GS25", "하림")
PORTIONS = ("1인분 200g", "100g당", "1팩(150g)", "1회 제공량 80g", "1컵 240ml", "1개(120g)")


@dataclass
class Food:
    id: str
    name: str
    category: str
    en: str | None
    tags: tuple[str, ...]
    healthy: bool

    @property
    def key(self) -> str:
        return self.name.replace(" ", "")


def _h(s: str) -> int:
    return int(hashlib.sha256(s.encode("utf-8")).hexdigest()[:8], 16)


def split_of(s: str) -> str:
    return "test" if _h("split:" + s) % 2 else "dev"


def read_foods() -> list[Food]:
    foods = []
    for line in (DATA / "foods.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, cat, en, tags, healthy = (p.strip() for p in line.split("|"))
        foods.append(
            Food(
                f"L{len(foods) + 1:03d}",
                name,
                cat,
                None if en == "-" else en,
                tuple(t for t in tags.split(",") if t),
                healthy == "1",
            )
        )
    return foods


def describe(f: Food) -> str:
    """The food's description: ``name: profile`` mostly; a third are longer and messier
    (brand, portion, English words), the way product catalogues read."""
    h = _h(f.name)
    parts = []
    for n, tag in enumerate(f.tags):
        phrases, benefit, _ = PHRASES[tag]
        parts.append(phrases[(h >> n) % len(phrases)])
        # About a third of the foods also say what the nutrient is good for.
        if benefit and (h >> (8 + n)) % 3 == 0:
            parts.append(benefit)
    profile = ", ".join(dict.fromkeys(parts))
    shown_name = f.name
    if f.en and h % 2 == 0:
        shown_name = f"{f.name} ({f.en})"
    if h % 3 == 0:
        brand = BRANDS[(h >> 4) % len(BRANDS)]
        portion = PORTIONS[(h >> 6) % len(PORTIONS)]
        glosses = [PHRASES[t][2] for t in f.tags if PHRASES[t][2]]
        extra = f" [{', '.join(glosses[:2])}]" if glosses else ""
        return f"{brand} {shown_name} {portion} - {profile}{extra}"
    return f"{shown_name}: {profile}"


def reword(f: Food) -> str:
    """A near-duplicate of the food's description: the same food and facts, other
    phrasings in another order (the planted pairs that mining should find)."""
    h = _h("reword:" + f.name)
    parts = []
    for n, tag in enumerate(reversed(f.tags)):
        phrases, _, _ = PHRASES[tag]
        parts.append(phrases[(h >> n) % len(phrases)])
    return f"{f.name} - {', '.join(dict.fromkeys(parts))}"


# -- the queries, written before any tuning ---------------------------------------------
EXACT = (
    "김치 우유 두부 떡국 연어 고등어 시금치 브로콜리 바나나 사과 귤 아보카도 현미밥 오트밀 "
    "닭가슴살 삼겹살 계란 그릭요거트 치즈 아몬드 호두 된장찌개 김치찌개 제육볶음 닭갈비 "
    "떡볶이 라면 짜장면 냉면 비빔밥 김밥 순대 삼계탕 설렁탕 미역국 콩나물국 북엇국 해장국 "
    "청국장 낫토 두유 막걸리 소주 녹차 아메리카노 식혜 콜라 피자 햄버거 감자튀김 도넛 "
    "호떡 약과 붕어빵 팥빙수 굴 전복 장어 멸치 미역 김 무 배 감 잣 떡 죽 회 "
    "호밀빵 퀴노아 렌틸콩 병아리콩 케일 깻잎 연근 우엉 토마토 블루베리 석류 곤약 잡채 족발"
).split()
TYPED = (
    "김치 찌개|김치찌개",
    "된장 찌개|된장찌개",
    "닭 가슴살|닭가슴살",
    "닭 갈비|닭갈비",
    "제육 볶음|제육볶음",
    "고등어 구이|고등어구이",
    "갈치 구이|갈치구이",
    "그릭 요거트|그릭요거트",
    "현미 밥|현미밥",
    "순두부 찌개|순두부찌개",
    "김치 볶음밥|김치볶음밥",
    "참치 김밥|참치김밥",
    "콩나물 국|콩나물국",
    "미역 국|미역국",
    "뼈 해장국|뼈해장국",
    "떡 볶이|떡볶이",
    "삼계 탕|삼계탕",
    "방울 토마토|방울토마토",
    "다크 초콜릿|다크초콜릿",
    "호박 씨|호박씨",
    "김치가|김치",
    "우유를|우유",
    "두부랑|두부",
    "연어는|연어",
    "사과도|사과",
    "바나나가|바나나",
    "고등어를|고등어",
    "시금치가|시금치",
    "떡국은|떡국",
    "라면이|라면",
    "아몬드랑|아몬드",
    "블루베리는|블루베리",
    "삼겹살이|삼겹살",
    "막걸리는|막걸리",
    "청국장이|청국장",
    "김밥이랑|김밥",
    "녹차는|녹차",
    "굴이|굴",
    "귤을|귤",
    "배가|배",
    "달걀|계란",
    "요구르트|요거트",
    "쇠고기 안심|소고기 안심",
    "닭 가슴 살|닭가슴살",
    "후라이드치킨|후라이드 치킨",
    "아이스 크림|아이스크림",
    "오렌지주스|오렌지 주스",
    "프로틴쉐이크|프로틴 쉐이크",
    "흰식빵|흰 식빵",
    "연어 구이|연어구이",
    "치즈 피자|치즈피자",
    "돈가스|돈까스",
    "스파게티면|스파게티",
    "코코넛 워터|코코넛워터",
    "에너지드링크|에너지 드링크",
    "저지방우유|저지방 우유",
    "참치통조림|참치 통조림",
    "삶은달걀|삶은 달걀",
    "소고기등심|소고기 등심",
    "토마토주스|토마토 주스",
)
ENGLISH_NAMES = (
    "kimchi tofu salmon mackerel milk spinach broccoli banana avocado oatmeal bibimbap "
    "tteokbokki bulgogi japchae gimbap natto edamame quinoa lentils chickpeas almonds walnuts "
    "sushi sashimi pizza hamburger donut cola"
).split() + [
    "greek yogurt",
    "brown rice",
    "chicken breast",
    "sweet potato",
    "green tea",
    "pork belly",
    "dark chocolate",
    "soy milk",
    "kimchi stew",
    "seaweed soup",
    "fried chicken",
    "instant ramen",
]
# (query, tags that grade 2, category that grade 2 needs or "", kind)
NUTRIENTS = (
    ("칼슘이 많은 음식", "칼슘", ""),
    ("칼슘 풍부", "칼슘", ""),
    ("철분 많은 음식", "철분", ""),
    ("단백질 많은 음식", "단백질", ""),
    ("고단백 음식", "단백질", ""),
    ("비타민C 많은 과일", "비타민C", "과일"),
    ("비타민 D", "비타민D", ""),
    ("식이섬유 풍부한 음식", "식이섬유", ""),
    ("칼륨 많은 음식", "칼륨", ""),
    ("마그네슘 들어있는 음식", "마그네슘", ""),
    ("아연이 많은 음식", "아연", ""),
    ("엽산 풍부한 음식", "엽산", ""),
    ("오메가3 많은 생선", "오메가3", "해산물"),
    ("유산균 많은 음식", "유산균", ""),
    ("베타카로틴", "비타민A", ""),
    ("비타민 E", "비타민E", ""),
    ("비타민K", "비타민K", ""),
    ("저칼로리 음식", "저칼로리", ""),
    ("저지방 고단백", "저지방", ""),
    ("불포화지방산", "불포화지방", ""),
    ("콜라겐", "콜라겐", ""),
    ("타우린", "타우린", ""),
    ("요오드 많은 음식", "요오드", ""),
    ("나트륨 많은 음식", "나트륨높음", ""),
    ("짠 음식", "나트륨높음", ""),
    ("당분 많은 음식", "당높음", ""),
    ("설탕 많은 디저트", "당높음", "디저트"),
    ("포화지방 많은 음식", "포화지방", ""),
    ("트랜스지방", "트랜스지방", ""),
    ("카페인 있는 음료", "카페인", "음료"),
    ("튀긴 음식", "튀김", ""),
    ("가공육", "가공육", ""),
    ("정제 탄수화물", "정제", ""),
    ("칼로리 높은 음식", "고칼로리", ""),
    ("항산화 성분", "항산화", ""),
    ("발효 식품", "발효", ""),
    ("이소플라본", "이소플라본", ""),
    ("탄수화물 많은 음식", "탄수화물", ""),
    ("칼슘 많은 반찬", "칼슘", "반찬"),
    ("철분이 풍부한 채소", "철분", "채소"),
    ("단백질 많은 해산물", "단백질", "해산물"),
    ("식이섬유 많은 과일", "식이섬유", "과일"),
    ("알코올 음료", "알코올", ""),
    ("전해질 음료", "전해질", ""),
    ("비타민 B", "비타민B", ""),
)
# (query, primary tags, secondary tags)
NEEDS = (
    ("뼈에 좋은 음식", "칼슘 비타민D 비타민K", ""),
    ("뼈 건강", "칼슘 비타민D 비타민K", ""),
    ("골다공증 예방", "칼슘 비타민D 비타민K", ""),
    ("키 크는 음식", "칼슘", "단백질 비타민D"),
    ("빈혈에 좋은 음식", "철분", "엽산 비타민B"),
    ("어지러울 때 먹으면 좋은 음식", "철분", "엽산"),
    ("감기 걸렸을 때", "비타민C 면역", "아연 기관지"),
    ("면역력 높이는 음식", "면역 비타민C 아연", ""),
    ("눈이 피로할 때", "비타민A 눈", "항산화"),
    ("시력 보호", "비타민A 눈", "항산화"),
    ("변비에 좋은 음식", "식이섬유 유산균", ""),
    ("장 건강", "유산균 식이섬유", "발효"),
    ("혈압 관리", "칼륨", "오메가3 불포화지방"),
    ("고혈압에 좋은 음식", "칼륨", "오메가3"),
    ("다이어트 음식", "저칼로리", "저지방 식이섬유"),
    ("살 안 찌는 간식", "저칼로리", "식이섬유"),
    ("근육 키우는 음식", "단백질", ""),
    ("운동 후 먹을 것", "단백질", "탄수화물 칼륨 전해질"),
    ("피로 회복", "비타민B 타우린 회복", "마그네슘"),
    ("기력 회복 보양식", "회복", "단백질"),
    ("해장", "해장", ""),
    ("숙취 해소 음식", "해장", ""),
    ("술 마신 다음 날 먹을 것", "해장", ""),
    ("두뇌 발달", "오메가3", "불포화지방"),
    ("기억력에 좋은 음식", "오메가3", "불포화지방 항산화"),
    ("혈관 건강", "오메가3 불포화지방 혈액순환", "항산화"),
    ("콜레스테롤 낮추는 음식", "불포화지방 오메가3", "식이섬유"),
    ("혈당 관리", "혈당", "식이섬유"),
    ("당뇨에 좋은 음식", "혈당", "식이섬유"),
    ("피부에 좋은 음식", "비타민C 콜라겐 비타민E", "항산화 비타민A"),
    ("노화 방지", "항산화 비타민E", "비타민C"),
    ("임산부에게 좋은 음식", "엽산", "철분 칼슘"),
    ("소화가 잘 되는 음식", "소화", "발효"),
    ("속이 더부룩할 때", "소화", ""),
    ("잠이 안 올 때", "수면", "마그네슘"),
    ("목이 아플 때", "기관지", ""),
    ("기침에 좋은 음식", "기관지", ""),
    ("갈증 해소", "수분 전해질", ""),
    ("여름철 수분 보충", "수분", "전해질 칼륨"),
    ("탈수 예방", "전해질 수분", ""),
    ("부기 빼는 음식", "칼륨", "수분"),
    ("갑상선 건강", "요오드", ""),
    ("갱년기 건강", "이소플라본", "칼슘"),
    ("에너지 보충", "탄수화물", ""),
    ("포만감 오래 가는 음식", "식이섬유", "단백질"),
    ("스트레스 받을 때", "마그네슘", "비타민B"),
    ("심장 건강", "오메가3 불포화지방", "칼륨"),
    ("야식으로 먹어도 부담 없는 음식", "저칼로리", "소화"),
    ("아침 대용 건강식", "식이섬유 혈당", "단백질"),
    ("몸보신", "회복", "단백질"),
)
MIXED = (
    ("DHA 풍부한 생선", "오메가3", "해산물", ""),
    ("omega-3 food", "오메가3", "", ""),
    ("high protein snack", "단백질", "", ""),
    ("vitamin C fruit", "비타민C", "과일", ""),
    ("low calorie food", "저칼로리", "", ""),
    ("calcium rich food", "칼슘", "", ""),
    ("probiotics", "유산균", "", ""),
    ("iron rich food", "철분", "", ""),
    ("high fiber", "식이섬유", "", ""),
    ("hangover food", "해장", "", "need"),
    ("good for bones", "칼슘 비타민D 비타민K", "", "need"),
    ("caffeine 음료", "카페인", "음료", ""),
    ("protein 많은 음식", "단백질", "", ""),
    ("오메가3 supplement food", "오메가3", "", ""),
)


def _contains(a: str, b: str) -> bool:
    return len(b) >= 2 and len(a) >= 2 and (a in b or b in a)


def grade_name(foods: list[Food], target: Food, by_english: bool = False) -> dict[str, int]:
    rel = {target.id: 2}
    key = (target.en or "").lower() if by_english else target.key
    for f in foods:
        if f is target:
            continue
        other = (f.en or "").lower() if by_english else f.key
        if other and _contains(key, other):
            rel[f.id] = 1
    return rel


def grade_tags(foods, primary, category="", secondary=(), healthy_only=False) -> dict[str, int]:
    rel = {}
    for f in foods:
        if healthy_only and not f.healthy:
            continue
        if set(primary) & set(f.tags):
            rel[f.id] = 2 if not category or f.category == category else 1
        elif set(secondary) & set(f.tags):
            rel[f.id] = 1
    return rel


def make_queries(foods: list[Food]) -> list[dict]:
    by_key = {f.key: f for f in foods}
    by_en = {(f.en or "").lower(): f for f in foods if f.en}
    out: list[dict] = []

    def add(kind, query, rel, split):
        if not any(g == 2 for g in rel.values()):
            raise SystemExit(f"query {query!r} has no food graded 2")
        out.append({"kind": kind, "query": query, "split": split, "relevant": rel})

    for name in EXACT:
        f = by_key[name.replace(" ", "")]
        add("name", name, grade_name(foods, f), split_of(f.name))
    for spec in TYPED:
        query, target = spec.split("|")
        f = by_key[target.replace(" ", "")]
        add("typed", query, grade_name(foods, f), split_of(f.name))
    for query, tag, cat in NUTRIENTS:
        add("nutrient", query, grade_tags(foods, tag.split(), cat), split_of(query))
    for query, prim, sec in NEEDS:
        rel = grade_tags(foods, prim.split(), "", sec.split(), healthy_only=True)
        add("need", query, rel, split_of(query))
    for en in ENGLISH_NAMES:
        f = by_en[en]
        add("english", en, grade_name(foods, f, by_english=True), split_of(f.name))
    for query, tags, cat, need in MIXED:
        rel = grade_tags(foods, tags.split(), cat, healthy_only=bool(need))
        add("english", query, rel, split_of(query))
    for n, q in enumerate(out, 1):
        q["id"] = f"q{n:03d}"
    return out


def main() -> None:
    foods = read_foods()
    with open(DATA / "corpus.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "name", "text", "category", "healthy", "en", "split"])
        for f in foods:
            row = [f.id, f.name, describe(f), f.category, int(f.healthy), f.en or ""]
            w.writerow([*row, split_of(f.name)])
    with open(DATA / "planted.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "original", "text"])
        test_half = [f for f in foods if split_of(f.name) == "test"]
        for n, f in enumerate(test_half[::4], 1):
            w.writerow([f"P{n:03d}", f.id, reword(f)])
    queries = make_queries(foods)
    with open(DATA / "queries.jsonl", "w", encoding="utf-8") as fh:
        for q in queries:
            fh.write(json.dumps({"id": q.pop("id"), **q}, ensure_ascii=False) + "\n")
    kinds: dict[str, int] = {}
    for q in queries:
        kinds[q["kind"]] = kinds.get(q["kind"], 0) + 1
    print(json.dumps({"foods": len(foods), "queries": len(queries), "kinds": kinds}))


if __name__ == "__main__":
    main()
