"""Write the Korean lookup benchmark (indexer/data/lookup/corpus.csv and queries.jsonl).

The foods, their tags and the queries are written by hand (``indexer/data/lookup/foods.txt`` and
the lists below); this script only spells the descriptions out and grades every query
by the rules in indexer/data/README.md, so the grading is reproducible and reviewable:

- names (exact, typed differently, English): 2 for the named food; 1 for a food whose
  name contains the named one or is contained in it (a compound and its parts).
- nutrients: 2 for a food tagged with the nutrient (and, where the query names a kind
  of food, of that category); 1 for the nutrient in another category.
- needs said in other words, "good for X" (direction ``good``): 2 for a healthy food
  tagged with a primary tag of the need, 1 for a healthy food with a secondary tag;
  unhealthy foods get 0, and so does any food with a harm tag of the need (NEED_MAP).
- "bad for X" (direction ``bad``): 2 for a food with a harm tag of the need, 1 for an
  unhealthy food with neither a harm tag nor a primary help tag of the need.
- a nutrient said by its absence (``카페인 없는 차``, direction ``low``): in the kind of
  food the query names, 2 for a healthy food without the tag, 1 for an unhealthy one.
- Directional queries list ``opposite``: the foods the corpus describes the other way
  round (for good: the foods with a harm tag; for bad: the healthy foods with a primary
  help tag and no harm tag; for low: the foods with the tag).

Descriptions state what a harmful property harms (HARMS), as food data does, so a
food can read as good for one need and bad for another.

Every fourth food of the test half gets a reworded copy in planted.csv (other phrasings, another
order): the near-duplicate pairs that ``foodvec mine`` should find; every fourth food of the
dev half one in planted_dev.csv, for tuning a training recipe.

Foods are split into halves by a hash of their name; a name query belongs to the half
of its food, every other query to a half by a hash of its text. ``bench.lookup``
tunes on ``dev`` and reports ``test``.

    python -m bench.lookup_data   # rewrites corpus.csv, queries.jsonl, planted*.csv
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
    "간": (("간 기능 보호",), "간 건강", "liver"),
    "치아": (("충치 예방 성분",), "치아 건강", "xylitol"),
    "탄산": (("탄산 함유",), "", "carbonated"),
    "인산": (("인산 함유", "인산염 첨가"), "", "phosphoric acid"),
    "자극": (("맵고 자극적", "매운맛 강함"), "", "spicy"),
}

# Harmful properties: what each harms, stated in the description (the harm for the need
# it harms).  (phrase, m): m == 1 always; m == 2 half of the foods; m == 3 a third.
HARMS: dict[str, tuple[tuple[str, int], ...]] = {
    "나트륨높음": (("혈압 상승 위험", 1), ("부종 유발", 3)),
    "당높음": (("혈당 급상승 주의", 1), ("충치 주의", 3)),
    "정제": (("혈당 급상승 주의", 1),),
    "알코올": (("간 부담", 1), ("임산부 음주 금지", 3)),
    "카페인": (("숙면 방해", 2),),
    "포화지방": (("심혈관 부담", 1),),
    "트랜스지방": (("심혈관 위험", 1),),
    "고칼로리": (("체중 증가 주의", 1),),
    "튀김": (("체중 증가 주의", 1),),
    "가공육": (("대장 건강 주의", 1),),
    "인산": (("뼈 건강 주의", 1), ("칼슘 흡수 방해", 2)),
    "탄산": (("치아 부식 주의", 1),),
    "자극": (("위 자극 주의", 1),),
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
        # A harmful property always says what it harms (some only on some foods).
        for k, (harm, every) in enumerate(HARMS.get(tag, ())):
            if (h >> (16 + 2 * n + k)) % every == 0:
                parts.append(harm)
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
# (query, primary tags, secondary tags, need whose harm tags it excludes: NEED_MAP)
NEEDS = (
    ("뼈에 좋은 음식", "칼슘 비타민D 비타민K", "", "뼈"),
    ("뼈 건강", "칼슘 비타민D 비타민K", "", "뼈"),
    ("골다공증 예방", "칼슘 비타민D 비타민K", "", "뼈"),
    ("키 크는 음식", "칼슘", "단백질 비타민D", "성장"),
    ("빈혈에 좋은 음식", "철분", "엽산 비타민B", "빈혈"),
    ("어지러울 때 먹으면 좋은 음식", "철분", "엽산", "빈혈"),
    ("감기 걸렸을 때", "비타민C 면역", "아연 기관지", "감기"),
    ("면역력 높이는 음식", "면역 비타민C 아연", "", "면역"),
    ("눈이 피로할 때", "비타민A 눈", "항산화", "눈"),
    ("시력 보호", "비타민A 눈", "항산화", "눈"),
    ("변비에 좋은 음식", "식이섬유 유산균", "", "장"),
    ("장 건강", "유산균 식이섬유", "발효", "장"),
    ("혈압 관리", "칼륨", "오메가3 불포화지방", "혈압"),
    ("고혈압에 좋은 음식", "칼륨", "오메가3", "혈압"),
    ("다이어트 음식", "저칼로리", "저지방 식이섬유", "체중"),
    ("살 안 찌는 간식", "저칼로리", "식이섬유", "체중"),
    ("근육 키우는 음식", "단백질", "", "근육"),
    ("운동 후 먹을 것", "단백질", "탄수화물 칼륨 전해질", "운동"),
    ("피로 회복", "비타민B 타우린 회복", "마그네슘", "피로"),
    ("기력 회복 보양식", "회복", "단백질", "회복"),
    ("해장", "해장", "", "해장"),
    ("숙취 해소 음식", "해장", "", "해장"),
    ("술 마신 다음 날 먹을 것", "해장", "", "해장"),
    ("두뇌 발달", "오메가3", "불포화지방", "두뇌"),
    ("기억력에 좋은 음식", "오메가3", "불포화지방 항산화", "두뇌"),
    ("혈관 건강", "오메가3 불포화지방 혈액순환", "항산화", "심혈관"),
    ("콜레스테롤 낮추는 음식", "불포화지방 오메가3", "식이섬유", "심혈관"),
    ("혈당 관리", "혈당", "식이섬유", "혈당"),
    ("당뇨에 좋은 음식", "혈당", "식이섬유", "혈당"),
    ("피부에 좋은 음식", "비타민C 콜라겐 비타민E", "항산화 비타민A", "피부"),
    ("노화 방지", "항산화 비타민E", "비타민C", "노화"),
    ("임산부에게 좋은 음식", "엽산", "철분 칼슘", "임신"),
    ("소화가 잘 되는 음식", "소화", "발효", "위"),
    ("속이 더부룩할 때", "소화", "", "위"),
    ("잠이 안 올 때", "수면", "마그네슘", "수면"),
    ("목이 아플 때", "기관지", "", "기관지"),
    ("기침에 좋은 음식", "기관지", "", "기관지"),
    ("갈증 해소", "수분 전해질", "", "수분"),
    ("여름철 수분 보충", "수분", "전해질 칼륨", "수분"),
    ("탈수 예방", "전해질 수분", "", "수분"),
    ("부기 빼는 음식", "칼륨", "수분", "부기"),
    ("갑상선 건강", "요오드", "", "갑상선"),
    ("갱년기 건강", "이소플라본", "칼슘", "갱년기"),
    ("에너지 보충", "탄수화물", "", "에너지"),
    ("포만감 오래 가는 음식", "식이섬유", "단백질", "포만감"),
    ("스트레스 받을 때", "마그네슘", "비타민B", "스트레스"),
    ("심장 건강", "오메가3 불포화지방", "칼륨", "심혈관"),
    ("야식으로 먹어도 부담 없는 음식", "저칼로리", "소화", "체중"),
    ("아침 대용 건강식", "식이섬유 혈당", "단백질", ""),
    ("몸보신", "회복", "단백질", "회복"),
)
# (query, tags, category, need key (NEED_MAP) for the need queries or "")
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
    ("hangover food", "해장", "", "해장"),
    ("good for bones", "칼슘 비타민D 비타민K", "", "뼈"),
    ("caffeine 음료", "카페인", "음료", ""),
    ("protein 많은 음식", "단백질", "", ""),
    ("오메가3 supplement food", "오메가3", "", ""),
)

# -- needs said both ways round (added before any tuning) -------------------------------
# need -> (primary help tags, secondary help tags, harm tags). A harm tag is a property
# whose description states the harm for this need (HARMS above).
NEED_MAP: dict[str, tuple[str, str, str]] = {
    "혈압": ("칼륨", "마그네슘 오메가3 불포화지방", "나트륨높음"),
    "혈당": ("혈당", "식이섬유", "당높음 정제"),
    "체중": ("저칼로리", "저지방 식이섬유", "고칼로리 튀김"),
    "수면": ("수면", "마그네슘", "카페인"),
    "간": ("간", "해장 항산화", "알코올"),
    "장": ("유산균 식이섬유", "발효", "가공육"),
    "심혈관": ("오메가3 불포화지방 혈액순환", "항산화 식이섬유", "포화지방 트랜스지방"),
    "뼈": ("칼슘 비타민D 비타민K", "마그네슘", "인산"),
    "치아": ("치아 칼슘", "비타민D", "당높음 탄산"),
    "위": ("소화", "발효", "자극"),
    "부기": ("칼륨", "수분", "나트륨높음"),
    "임신": ("엽산", "철분 칼슘", "알코올"),
    "성장": ("칼슘", "단백질 비타민D", ""),
    "근육": ("단백질", "", ""),
    "운동": ("단백질", "탄수화물 칼륨 전해질", ""),
    "빈혈": ("철분", "엽산 비타민B", ""),
    "면역": ("면역 비타민C 아연", "", ""),
    "감기": ("비타민C 면역", "아연 기관지", ""),
    "눈": ("비타민A 눈", "항산화", ""),
    "피부": ("비타민C 콜라겐 비타민E", "항산화 비타민A", ""),
    "노화": ("항산화 비타민E", "비타민C", ""),
    "두뇌": ("오메가3", "불포화지방 항산화", ""),
    "피로": ("비타민B 타우린 회복", "마그네슘", ""),
    "회복": ("회복", "단백질", ""),
    "해장": ("해장", "간", ""),
    "기관지": ("기관지", "", ""),
    "수분": ("수분 전해질", "칼륨", ""),
    "갑상선": ("요오드", "", ""),
    "갱년기": ("이소플라본", "칼슘", ""),
    "에너지": ("탄수화물", "", ""),
    "포만감": ("식이섬유", "단백질", ""),
    "스트레스": ("마그네슘", "비타민B", ""),
}
# Scopes a query may name: a category, several (space-separated), "간식" (snacks) or
# "name:X" (foods whose name ends in X, e.g. "name:차" for teas).
SNACKS = "과자 디저트 견과류 과일"

# (query, need, direction "good"/"bad", scope or ""): needs as people type them
NEED_BOTH = (
    # blood pressure
    ("혈압에 좋은 음식", "혈압", "good", ""),
    ("혈압 낮추는 음식", "혈압", "good", ""),
    ("고혈압 환자 반찬", "혈압", "good", ""),
    ("혈압 관리에 도움 되는 과일", "혈압", "good", "과일"),
    ("혈압 높은 사람이 먹으면 좋은 것", "혈압", "good", ""),
    ("혈압 떨어뜨리는 채소", "혈압", "good", "채소"),
    ("혈압 안 올리는 간식", "혈압", "good", "간식"),
    ("고혈압 식단", "혈압", "good", ""),
    ("혈압에 안 좋은 음식", "혈압", "bad", ""),
    ("혈압 올리는 음식", "혈압", "bad", ""),
    ("고혈압 환자가 피해야 할 음식", "혈압", "bad", ""),
    ("고혈압에 나쁜 반찬", "혈압", "bad", "반찬"),
    ("혈압 높은 사람이 먹으면 안 되는 것", "혈압", "bad", ""),
    ("혈압 높아지는 국물 요리", "혈압", "bad", "국물요리"),
    # blood sugar, diabetes
    ("혈당 낮추는 음식", "혈당", "good", ""),
    ("당뇨 환자가 먹어도 되는 음식", "혈당", "good", ""),
    ("혈당 안 올리는 밥", "혈당", "good", "곡류"),
    ("당뇨 식단", "혈당", "good", ""),
    ("혈당 스파이크 없는 간식", "혈당", "good", ""),
    ("당뇨에 좋은 채소", "혈당", "good", "채소"),
    ("당뇨 환자가 조심할 음식", "혈당", "bad", ""),
    ("혈당 올리는 음식", "혈당", "bad", ""),
    ("당뇨에 안 좋은 과일", "혈당", "bad", "과일"),
    ("혈당 스파이크 오는 음식", "혈당", "bad", ""),
    ("당뇨 있으면 피해야 할 음료", "혈당", "bad", "음료"),
    ("혈당 급하게 올리는 빵", "혈당", "bad", "곡류"),
    # weight
    ("살 빠지는 음식", "체중", "good", ""),
    ("다이어트할 때 먹기 좋은 간식", "체중", "good", "간식"),
    ("체중 감량 식단", "체중", "good", ""),
    ("먹어도 살 안 찌는 음식", "체중", "good", ""),
    ("살 안 찌는 음료", "체중", "good", "음료"),
    ("살찌는 음식", "체중", "bad", ""),
    ("다이어트 중 피해야 할 음식", "체중", "bad", ""),
    ("살 찌는 야식", "체중", "bad", ""),
    ("칼로리 폭탄 음식", "체중", "bad", ""),
    ("다이어트의 적", "체중", "bad", ""),
    # sleep
    ("잠 잘 오는 음식", "수면", "good", ""),
    ("숙면에 좋은 음식", "수면", "good", ""),
    ("불면증에 좋은 차", "수면", "good", "name:차"),
    ("자기 전에 먹으면 좋은 것", "수면", "good", ""),
    ("잠 잘 오게 하는 음료", "수면", "good", "음료"),
    ("잠 방해 안 하는 차", "수면", "good", "name:차"),
    ("잠 안 오게 하는 음료", "수면", "bad", "음료"),
    ("자기 전에 먹으면 안 되는 것", "수면", "bad", ""),
    ("숙면 방해하는 음식", "수면", "bad", ""),
    ("불면증에 안 좋은 음료", "수면", "bad", "음료"),
    # liver
    ("간에 좋은 음식", "간", "good", ""),
    ("간 해독 음식", "간", "good", ""),
    ("지방간에 좋은 음식", "간", "good", ""),
    ("간 건강에 좋은 차", "간", "good", "name:차"),
    ("간 수치 낮추는 음식", "간", "good", ""),
    ("간에 부담 없는 음식", "간", "good", ""),
    ("간에 나쁜 것", "간", "bad", ""),
    ("간 망가지는 음식", "간", "bad", ""),
    ("간에 부담 주는 술", "간", "bad", "주류"),
    ("지방간 환자가 피해야 할 것", "간", "bad", ""),
    # gut
    ("장에 좋은 음식", "장", "good", ""),
    ("배변 활동 돕는 음식", "장", "good", ""),
    ("변비 해소 과일", "장", "good", "과일"),
    ("대장 건강에 좋은 음식", "장", "good", ""),
    ("장 건강 지키는 반찬", "장", "good", "반찬"),
    ("대장암 위험 높이는 음식", "장", "bad", ""),
    ("장 건강에 안 좋은 음식", "장", "bad", ""),
    ("대장에 나쁜 가공식품", "장", "bad", "가공식품"),
    # heart, vessels, cholesterol
    ("심혈관 건강에 좋은 음식", "심혈관", "good", ""),
    ("혈관 청소 음식", "심혈관", "good", ""),
    ("콜레스테롤 낮추는 생선", "심혈관", "good", "해산물"),
    ("동맥경화 예방 음식", "심혈관", "good", ""),
    ("고지혈증에 좋은 음식", "심혈관", "good", ""),
    ("심장에 무리 없는 음식", "심혈관", "good", ""),
    ("심장에 안 좋은 음식", "심혈관", "bad", ""),
    ("콜레스테롤 높이는 음식", "심혈관", "bad", ""),
    ("혈관 막히는 음식", "심혈관", "bad", ""),
    ("고지혈증 환자가 피해야 할 음식", "심혈관", "bad", ""),
    # bones
    ("뼈 튼튼해지는 음식", "뼈", "good", ""),
    ("뼈에 좋은 반찬", "뼈", "good", "반찬"),
    ("골밀도 높이는 음식", "뼈", "good", ""),
    ("뼈에 안 좋은 음식", "뼈", "bad", ""),
    ("골다공증에 나쁜 음료", "뼈", "bad", "음료"),
    ("칼슘 빠져나가게 하는 음식", "뼈", "bad", ""),
    # teeth
    ("치아 건강에 좋은 음식", "치아", "good", ""),
    ("이가 튼튼해지는 음식", "치아", "good", ""),
    ("충치 예방 음식", "치아", "good", ""),
    ("이 안 썩는 간식", "치아", "good", "간식"),
    ("이에 안 좋은 음식", "치아", "bad", ""),
    ("충치 생기는 음식", "치아", "bad", ""),
    ("치아 상하는 음료", "치아", "bad", "음료"),
    # stomach
    ("위에 좋은 음식", "위", "good", ""),
    ("속 쓰릴 때 먹으면 좋은 음식", "위", "good", ""),
    ("위염에 좋은 음식", "위", "good", ""),
    ("위가 약한 사람 음식", "위", "good", ""),
    ("위에 부담 없는 음식", "위", "good", ""),
    ("위에 안 좋은 음식", "위", "bad", ""),
    ("속 쓰리게 하는 음식", "위", "bad", ""),
    ("위염 있을 때 피해야 할 음식", "위", "bad", ""),
    # swelling
    ("붓기 빼는 차", "부기", "good", "음료"),
    ("몸이 부을 때 먹으면 좋은 음식", "부기", "good", ""),
    ("붓지 않는 야식", "부기", "good", ""),
    ("몸 붓게 하는 음식", "부기", "bad", ""),
    ("얼굴 붓는 음식", "부기", "bad", ""),
    # pregnancy
    ("임신 중 먹으면 좋은 음식", "임신", "good", ""),
    ("태아에게 좋은 음식", "임신", "good", ""),
    ("임산부가 피해야 할 음식", "임신", "bad", ""),
    ("임신 중 먹으면 안 되는 것", "임신", "bad", ""),
    # needs with no harmful side in the corpus
    ("근육량 늘리는 음식", "근육", "good", ""),
    ("헬스할 때 먹는 음식", "근육", "good", ""),
    ("빈혈 있을 때 먹을 것", "빈혈", "good", ""),
    ("면역력에 좋은 과일", "면역", "good", "과일"),
    ("환절기 면역력 음식", "면역", "good", ""),
    ("감기 예방 음식", "감기", "good", ""),
    ("감기 빨리 낫는 음식", "감기", "good", ""),
    ("눈 건강에 좋은 음식", "눈", "good", ""),
    ("눈 침침할 때 먹을 것", "눈", "good", ""),
    ("피부 미용 음식", "피부", "good", ""),
    ("피부 탄력 음식", "피부", "good", ""),
    ("젊어지는 음식", "노화", "good", ""),
    ("수험생 두뇌 음식", "두뇌", "good", ""),
    ("집중력 높이는 음식", "두뇌", "good", ""),
    ("피곤할 때 먹는 음식", "피로", "good", ""),
    ("만성피로에 좋은 음식", "피로", "good", ""),
    ("해장에 좋은 국", "해장", "good", "국물요리"),
    ("술 깨는 음식", "해장", "good", ""),
    ("갑상선에 좋은 해조류", "갑상선", "good", "해산물"),
    ("갱년기 여성에게 좋은 음식", "갱년기", "good", ""),
    ("기관지에 좋은 차", "기관지", "good", "name:차"),
    ("미세먼지 많은 날 먹는 음식", "기관지", "good", ""),
    ("수분 보충 과일", "수분", "good", "과일"),
    ("스트레스 해소 음식", "스트레스", "good", ""),
    ("배가 오래 부른 음식", "포만감", "good", ""),
    ("키 크는 데 도움 되는 음식", "성장", "good", ""),
    ("수술 후 회복식", "회복", "good", ""),
    ("여름 보양식", "회복", "good", ""),
)
# (query, tags the food must lack, scope): a nutrient said by its absence (direction "low")
NUTRIENT_LOW = (
    ("카페인 없는 차", "카페인", "name:차"),
    ("무카페인 음료", "카페인", "음료"),
    ("설탕 안 들어간 음료", "당높음", "음료"),
    ("짜지 않은 반찬", "나트륨높음", "반찬"),
    ("저염 국물 요리", "나트륨높음", "국물요리"),
    ("포화지방 적은 고기", "포화지방", "육류"),
    ("당분 적은 과일", "당높음", "과일"),
    ("나트륨 적은 간식", "나트륨높음", SNACKS),
    ("안 튀긴 간식", "튀김", SNACKS),
    ("설탕 없는 디저트", "당높음", "디저트"),
)
# English or mixed needs and nutrients: (query, need or "", direction, tags, scope).
# With a need: graded like NEED_BOTH. Without: "high" like NUTRIENTS, "low" like NUTRIENT_LOW.
ENGLISH_BOTH = (
    ("good for blood pressure", "혈압", "good", "", ""),
    ("foods that lower blood pressure", "혈압", "good", "", ""),
    ("foods bad for blood pressure", "혈압", "bad", "", ""),
    ("혈압에 good 음식", "혈압", "good", "", ""),
    ("high blood pressure foods to avoid", "혈압", "bad", "", ""),
    ("good for diabetes", "혈당", "good", "", ""),
    ("low GI food", "혈당", "good", "", ""),
    ("avoid for diabetes", "혈당", "bad", "", ""),
    ("diabetes 환자 avoid 음식", "혈당", "bad", "", ""),
    ("weight loss food", "체중", "good", "", ""),
    ("다이어트 food", "체중", "good", "", ""),
    ("fattening food", "체중", "bad", "", ""),
    ("good for sleep", "수면", "good", "", ""),
    ("sleep에 좋은 차", "수면", "good", "", "name:차"),
    ("drinks that keep you awake", "수면", "bad", "", "음료"),
    ("bad for sleep", "수면", "bad", "", ""),
    ("good for liver", "간", "good", "", ""),
    ("liver detox food", "간", "good", "", ""),
    ("bad for liver", "간", "bad", "", ""),
    ("good for gut health", "장", "good", "", ""),
    ("foods for constipation", "장", "good", "", ""),
    ("bad for colon health", "장", "bad", "", ""),
    ("heart healthy food", "심혈관", "good", "", ""),
    ("foods that lower cholesterol", "심혈관", "good", "", ""),
    ("foods that raise cholesterol", "심혈관", "bad", "", ""),
    ("bad for bones", "뼈", "bad", "", ""),
    ("good for teeth", "치아", "good", "", ""),
    ("bad for teeth", "치아", "bad", "", ""),
    ("good for stomach", "위", "good", "", ""),
    ("bad for stomach", "위", "bad", "", ""),
    ("pregnancy food", "임신", "good", "", ""),
    ("avoid during pregnancy", "임신", "bad", "", ""),
    ("good for eyes", "눈", "good", "", ""),
    ("immune boosting food", "면역", "good", "", ""),
    ("good for skin", "피부", "good", "", ""),
    ("brain food", "두뇌", "good", "", ""),
    ("muscle building food", "근육", "good", "", ""),
    ("anemia 음식", "빈혈", "good", "", ""),
    ("swelling 빼는 음식", "부기", "good", "", ""),
    ("foods that raise blood pressure", "혈압", "bad", "", ""),
    ("foods that spike blood sugar", "혈당", "bad", "", ""),
    ("bad for heart", "심혈관", "bad", "", ""),
    ("bad for weight loss", "체중", "bad", "", ""),
    ("causes insomnia", "수면", "bad", "", ""),
    ("liver에 안 좋은 음식", "간", "bad", "", ""),
    ("teeth 상하는 음료", "치아", "bad", "", "음료"),
    ("gut에 나쁜 음식", "장", "bad", "", ""),
    ("high calcium", "", "high", "칼슘", ""),
    ("비타민C 많은 fruit", "", "high", "비타민C", "과일"),
    ("high iron vegetables", "", "high", "철분", "채소"),
    ("high potassium fruit", "", "high", "칼륨", "과일"),
    ("magnesium rich food", "", "high", "마그네슘", ""),
    ("folate rich food", "", "high", "엽산", ""),
    ("zinc 많은 음식", "", "high", "아연", ""),
    ("high sodium food", "", "high", "나트륨높음", ""),
    ("sugary drinks", "", "high", "당높음", "음료"),
    ("low fat meat", "", "high", "저지방", "육류"),
    ("low sodium snacks", "", "low", "나트륨높음", SNACKS),
    ("low sugar drinks", "", "low", "당높음", "음료"),
    ("caffeine free tea", "", "low", "카페인", "name:차"),
    ("카페인 free 음료", "", "low", "카페인", "음료"),
    ("sugar free 음료", "", "low", "당높음", "음료"),
    ("나트륨 low 반찬", "", "low", "나트륨높음", "반찬"),
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


def in_scope(f: Food, scope: str) -> bool:
    """Whether ``f`` is of the kind of food a query names (see SNACKS and ``name:``)."""
    if not scope:
        return True
    if scope == "간식":
        scope = SNACKS
    if scope.startswith("name:"):
        return f.name.endswith(scope[5:])
    return f.category in scope.split()


def grade_tags(foods, primary, category="", secondary=(), healthy_only=False) -> dict[str, int]:
    rel = {}
    for f in foods:
        if healthy_only and not f.healthy:
            continue
        if set(primary) & set(f.tags):
            rel[f.id] = 2 if in_scope(f, category) else 1
        elif set(secondary) & set(f.tags):
            rel[f.id] = 1
    return rel


def grade_need(foods, primary, secondary, harm, direction, scope=""):
    """(relevant, opposite) of a need query; the rules are in indexer/data/README.md.

    good: a food with a harm tag of the need is 0 (and opposite); else a healthy food
    with a primary tag is 2 (1 if out of the scope the query names), a healthy food with
    a secondary tag in scope is 1; unhealthy foods are 0.
    bad: a food with a harm tag is 2 (1 out of scope); an unhealthy food in scope with
    neither a harm tag nor a primary help tag is 1; opposite: the healthy foods with a
    primary help tag and no harm tag."""
    primary, secondary, harm = set(primary), set(secondary), set(harm)
    rel: dict[str, int] = {}
    opposite: list[str] = []
    for f in foods:
        tags = set(f.tags)
        ok = in_scope(f, scope)
        if direction == "good":
            if tags & harm:
                opposite.append(f.id)
            elif not f.healthy:
                continue
            elif tags & primary:
                rel[f.id] = 2 if ok else 1
            elif tags & secondary and ok:
                rel[f.id] = 1
        else:
            if tags & harm:
                rel[f.id] = 2 if ok else 1
            elif tags & primary:
                if f.healthy:
                    opposite.append(f.id)
            elif not f.healthy and ok:
                rel[f.id] = 1
    return rel, opposite


def grade_low(foods, lacking, scope):
    """(relevant, opposite) of a nutrient said by its absence (``카페인 없는 차``): in the
    scope, a healthy food without the tag is 2, an unhealthy one 1; opposite: the foods
    in scope with the tag."""
    rel: dict[str, int] = {}
    opposite: list[str] = []
    for f in foods:
        if not in_scope(f, scope):
            continue
        if set(lacking) & set(f.tags):
            opposite.append(f.id)
        else:
            rel[f.id] = 2 if f.healthy else 1
    return rel, opposite


def make_queries(foods: list[Food]) -> list[dict]:
    by_key = {f.key: f for f in foods}
    by_en = {(f.en or "").lower(): f for f in foods if f.en}
    out: list[dict] = []

    def add(kind, query, rel, split, **extra):
        if not any(g == 2 for g in rel.values()):
            raise SystemExit(f"query {query!r} has no food graded 2")
        if "opposite" in extra and set(extra["opposite"]) & {i for i, g in rel.items() if g}:
            raise SystemExit(f"query {query!r}: a food both relevant and opposite")
        out.append({"kind": kind, "query": query, "split": split, **extra, "relevant": rel})
        if "opposite" in extra:  # written after relevant
            out[-1]["opposite"] = out[-1].pop("opposite")

    def add_need(kind, query, need, direction, scope="", prim=None, sec=None):
        p, s, harm = NEED_MAP[need] if need else ("", "", "")
        p = p if prim is None else prim
        s = s if sec is None else sec
        rel, opp = grade_need(foods, p.split(), s.split(), harm.split(), direction, scope)
        add(kind, query, rel, split_of(query), direction=direction, need=need, opposite=opp)

    for name in EXACT:
        f = by_key[name.replace(" ", "")]
        add("name", name, grade_name(foods, f), split_of(f.name))
    for spec in TYPED:
        query, target = spec.split("|")
        f = by_key[target.replace(" ", "")]
        add("typed", query, grade_name(foods, f), split_of(f.name))
    for query, tag, cat in NUTRIENTS:
        rel = grade_tags(foods, tag.split(), cat)
        add("nutrient", query, rel, split_of(query), direction="high")
    for query, prim, sec, need in NEEDS:
        add_need("need", query, need, "good", prim=prim, sec=sec)
    for en in ENGLISH_NAMES:
        f = by_en[en]
        add("english", en, grade_name(foods, f, by_english=True), split_of(f.name))
    for query, tags, cat, need in MIXED:
        if need:
            add_need("english", query, need, "good", cat, prim=tags, sec="")
        else:
            rel = grade_tags(foods, tags.split(), cat)
            add("english", query, rel, split_of(query), direction="high")
    # added with the needs said both ways round (after the first 291, whose ids stay)
    for query, need, direction, scope in NEED_BOTH:
        add_need("need", query, need, direction, scope)
    for query, tags, scope in NUTRIENT_LOW:
        rel, opp = grade_low(foods, tags.split(), scope)
        add("nutrient", query, rel, split_of(query), direction="low", opposite=opp)
    for query, need, direction, tags, scope in ENGLISH_BOTH:
        if need:
            add_need("english", query, need, direction, scope)
        elif direction == "low":
            rel, opp = grade_low(foods, tags.split(), scope)
            add("english", query, rel, split_of(query), direction="low", opposite=opp)
        else:
            rel = grade_tags(foods, tags.split(), scope)
            add("english", query, rel, split_of(query), direction="high")
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
    # Planted copies of every fourth food of each half (dev: what a training recipe may
    # be tuned on).
    for half, file, prefix in (("test", "planted.csv", "P"), ("dev", "planted_dev.csv", "D")):
        with open(DATA / file, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "original", "text"])
            foods_of_half = [f for f in foods if split_of(f.name) == half]
            for n, f in enumerate(foods_of_half[::4], 1):
                w.writerow([f"{prefix}{n:03d}", f.id, reword(f)])
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
