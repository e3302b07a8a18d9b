"""Korean-aware keyword terms for the lexical index (pure functions, no I/O).

Korean glues particles and endings to words and is spaced loosely, so neither words nor
raw syllables are good units: ``칼슘이`` must find ``칼슘``, ``김치 찌개`` must find
``김치찌개``, and the particle in ``뼈에`` must not find ``에너지`` (nor ``장`` find
``해장국``). An item's Hangul is therefore indexed as the content morphemes a real
morphological analyzer (kiwipiepy, ``korean.py``) finds in it: nouns, roots, verb and
adjective stems, a prefix joined to its noun (``고단백``); particles, endings, suffixes
and dependent nouns are dropped. Beside them, a lightly weighted field holds the syllable
bigrams of each run of nouns with the spaces removed, so spacing variants and compounds
the analyzer keeps whole (``김치찌개``) or splits still meet. Latin letters and digits form
words (lower-cased, a plural ``s`` dropped), by pattern on both sides.

A query is never analysed by Kiwi (making one takes seconds): ``query_terms`` segments
each run of Hangul, spaces removed, against the index's own morpheme vocabulary (fewest
pieces, so the longest morphemes), drops particles and endings from a fixed list, and
keeps what matches nothing as an unknown term (a meaningful word the index lacks, which
still counts against coverage). A one-syllable morpheme (``무``, ``뼈``, ``장``) matches
only as a whole piece: starting a word or following a morpheme, and followed by the
word's end, a particle or another morpheme, so ``에`` in ``뼈에`` stays a particle.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

# Bump when the terms change: a store whose terms were made by another version re-derives
# them on open.
TERMS_VERSION = 3

_HANGUL = "\uac00-\ud7a3"
_HANGUL_RE = re.compile(f"[{_HANGUL}]")
_ALL_HANGUL = re.compile(f"[{_HANGUL}]+")
# A run of Hangul syllables, white space inside it allowed.
_HANGUL_RUN = re.compile(rf"[{_HANGUL}](?:[{_HANGUL}\s]*[{_HANGUL}])?")
# Latin letters and digits form words.
_WORD = re.compile(r"[a-z0-9]+")
_SPACE = re.compile(r"\s+")
_NAME_DROP = re.compile(r"[\W_]+")

# (form, tag, start, length) of one morpheme, as korean.analyse gives it.
Token = tuple[str, str, int, int]

# Kiwi's tags (Sejong) of the morphemes that are indexed; irregular marks (VA-I) ignored.
CONTENT_TAGS = frozenset({"NNG", "NNP", "VV", "VA", "XR"})
# The tags whose morphemes form the noun runs of the bigram field.
RUN_TAGS = frozenset({"NNG", "NNP", "XR", "XPN", "XSN"})
NOUN_TAGS = frozenset({"NNG", "NNP"})

# Particles that people type after a name (김치가, 우유를, 두부랑); stripped from a query
# only to look up an exact name, never from indexed text. Longest first.
PARTICLES = (
    "이랑",
    "에서",
    "으로",
    "하고",
    "이나",
    "처럼",
    "이",
    "가",
    "을",
    "를",
    "은",
    "는",
    "의",
    "에",
    "도",
    "로",
    "와",
    "과",
    "랑",
    "나",
    "만",
)

# What a query may glue to a word that is no term: particles (after any word) ...
QUERY_PARTICLES = frozenset(
    PARTICLES
    + (
        "에게",
        "께",
        "한테",
        "까지",
        "부터",
        "보다",
        "요",
        "이요",
        "마다",
        "밖에",
        "뿐",
        "조차",
        "라도",
        "이라도",
        "든지",
        "이든지",
        "에는",
        "에도",
        "으로는",
        "로는",
        "이랑은",
        "만큼",
    )
)
# ... and endings, the verb 하다/되다/이다 glued to a noun or root (풍부한, 피로할),
# after a morpheme only.
QUERY_ENDINGS = frozenset(
    {
        "다", "고", "면", "으면", "며", "으며", "서", "어서", "아서", "어", "아", "지",
        "게", "기", "음", "니", "니까", "으니까", "는데", "은데", "도록", "려고", "으려고",
        "다가", "았", "었", "였", "겠", "습니다", "어요", "아요", "세요", "으세요", "ㄴ",
        "하", "한", "할", "함", "해", "했", "하는", "하게", "하기", "하다", "하면", "하며",
        "합니다", "해요", "하여", "해서", "된", "될", "되는", "되어", "돼", "됨", "되고",
        "되면", "인", "이다", "입니다", "적", "적인", "시키는", "스러운", "스런", "있는",
        "없는", "이고", "을까", "까",
    }
)  # fmt: skip
# Words that only say "food" in a query (칼슘이 많은 음식): dropped from a query that names
# something else the index holds, so that they do not rank items whose text says 튀긴
# 음식 first (dev half of the lookup benchmark: lexical nDCG@10 0.75 -> 0.79).
QUERY_GENERIC = frozenset({"음식", "식품", "먹거리", "식재료"})
_MAX_GLUE = max(len(w) for w in QUERY_PARTICLES | QUERY_ENDINGS)
# The longest morpheme a query is matched against, in syllables.
MAX_MORPHEME = 12


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def has_hangul(text: str) -> bool:
    return _HANGUL_RE.search(text) is not None


def _latin_word(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss") and not word.isdigit():
        return word[:-1]
    return word


def words(folded: str) -> list[str]:
    """The Latin and digit words of a folded text."""
    return [_latin_word(w) for w in _WORD.findall(folded)]


def bigrams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)]


def morpheme_terms(toks: Sequence[Token], text: str) -> tuple[list[str], list[str]]:
    """(content morphemes, noun runs with their spaces removed) of a folded text's
    analysis."""
    out: list[str] = []
    runs: list[str] = []
    run: list[str] = []
    end = -1
    for n, (form, tag, start, length) in enumerate(toks):
        base = tag.partition("-")[0]
        hangul = _ALL_HANGUL.fullmatch(form) is not None
        if hangul and base in CONTENT_TAGS:
            out.append(form)
        elif hangul and base == "XPN" and n + 1 < len(toks):
            nxt = toks[n + 1]
            if nxt[1] in NOUN_TAGS and nxt[2] == start + length and _ALL_HANGUL.fullmatch(nxt[0]):
                out.append(form + nxt[0])  # 고단백, 저지방: the prefix changes the noun
        if hangul and base in RUN_TAGS:
            if run and not (start >= end and text[end:start].isspace() or start == end):
                runs.append("".join(run))
                run = []
            run.append(form)
            end = start + length
        elif run:
            runs.append("".join(run))
            run = []
    if run:
        runs.append("".join(run))
    return out, runs


# The fifth field holds no words: the facts each description states (indexer.understand),
# never scored, read by the needs ranking (indexer.ranking).
FIELDS = ("name", "text", "bigram", "syllable", "fact")


def item_terms_from_tokens(
    name: str | None, name_toks: Sequence[Token], text: str, text_toks: Sequence[Token]
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The terms of an item's four fields from its folded name and text and their
    analyses: the name's morphemes and words, the text's, the syllable bigrams and the
    syllables of the text's noun runs."""
    name_terms: list[str] = []
    if name:
        name_terms = morpheme_terms(name_toks, name)[0] + words(name)
    text_morphs, runs = morpheme_terms(text_toks, text)
    grams = [b for r in runs for b in bigrams(r)]
    return name_terms, text_morphs + words(text), grams, [c for r in runs for c in r]


# -- queries ------------------------------------------------------------------------------
# The kinds of piece a query's segmentation is made of, and what its last piece was.
KNOWN, GLUE, UNKNOWN = 0, 2, 3
_START, _C, _C1, _G, _U1, _U = range(6)
# Costs: an unknown syllable costs more than any piece, so the segmentation first covers
# the most syllables with morphemes and glue, then uses the fewest pieces (the longest
# morphemes); a particle beats a one-syllable morpheme of the same spelling after a word.
_COST = {KNOWN: 1.0, GLUE: 0.9, UNKNOWN: 3.0}


def segment(
    run: str, known: Callable[[str], bool], max_len: int = MAX_MORPHEME
) -> list[tuple[str, int]]:
    """Split a run of Hangul (spaces inside it allowed and ignored, except that they
    end words) into (piece, kind) with kind ``KNOWN`` (a morpheme ``known`` accepts,
    at most ``max_len`` syllables), ``GLUE`` (a particle or ending) or ``UNKNOWN`` (the
    syllables of one word that match nothing, merged). Pure."""
    chars: list[str] = []
    word_start: list[bool] = []
    space = True
    for ch in run:
        if ch.isspace():
            space = True
            continue
        chars.append(ch)
        word_start.append(space)
        space = False
    s = "".join(chars)
    n = len(s)
    # word_end[i]: where the word holding syllable i ends
    word_end = [n] * n
    for i in range(n - 2, -1, -1):
        word_end[i] = i + 1 if word_start[i + 1] else word_end[i + 1]
    # best[i]: state -> (cost, (previous position, previous state, kind))
    best: list[dict[int, tuple[float, tuple[int, int, int] | None]]] = [{} for _ in range(n + 1)]
    best[0][_START] = (0.0, None)
    cost_known, cost_glue, cost_unknown = _COST[KNOWN], _COST[GLUE], _COST[UNKNOWN]

    def offer(j: int, state: int, cost: float, back: tuple[int, int, int]) -> None:
        cur = best[j].get(state)
        if cur is None or cost < cur[0]:
            best[j][state] = (cost, back)

    for i in range(n):
        if not best[i]:
            continue
        ws = word_start[i]
        hits = [j for j in range(i + 1, min(n, i + max_len) + 1) if known(s[i:j])]
        glue = []
        if not ws:
            for j in range(i + 1, min(word_end[i], i + _MAX_GLUE) + 1):
                piece = s[i:j]
                if piece in QUERY_PARTICLES:
                    glue.append((j, True))
                elif piece in QUERY_ENDINGS:
                    glue.append((j, False))
        for state, (cost, _) in list(best[i].items()):
            for j in hits:
                if j - i > 1:
                    offer(j, _C, cost + cost_known, (i, state, KNOWN))
                elif ws or state not in (_U1, _U):  # a whole piece, not inside a word
                    offer(j, _C1, cost + cost_known, (i, state, KNOWN))
            if glue and state != _START:
                for j, particle in glue:
                    # endings only right after a morpheme; particles after anything
                    if particle or state in (_C, _C1):
                        offer(j, _G, cost + cost_glue, (i, state, GLUE))
            if ws or state != _C1:  # a one-syllable morpheme is not the start of a word
                nxt = _U if (state in (_U1, _U) and not ws) else _U1
                offer(i + 1, nxt, cost + cost_unknown, (i, state, UNKNOWN))
    if n == 0 or not best[n]:
        return []
    state = min(best[n], key=lambda st: best[n][st][0])
    pieces: list[tuple[int, int, int]] = []
    j = n
    while best[j][state][1] is not None:
        i, prev, kind = best[j][state][1]
        pieces.append((i, j, kind))
        j, state = i, prev
    pieces.reverse()
    out: list[tuple[str, int]] = []
    for i, j, kind in pieces:
        if kind == UNKNOWN and out and out[-1][1] == UNKNOWN and not word_start[i]:
            out[-1] = (out[-1][0] + s[i:j], UNKNOWN)
        else:
            out.append((s[i:j], kind))
    return out


def query_terms(
    query: str, known: Callable[[str], bool], max_len: int = MAX_MORPHEME
) -> tuple[list[str], list[str], list[str]]:
    """A query's distinct terms: (content terms: morphemes ``known`` accepts, unknown
    words and Latin/digit words, generic words for "food" dropped when others remain;
    bigrams of its runs of content pieces; the syllables of its unknown words when the
    index holds none of its Hangul words, for spellings the index lacks: 돈가스 ~ 돈까스,
    never 장 ~ 해장국 nor 음식 ~ 음료). ``known`` says
    whether a string is an indexed morpheme (of at most ``max_len`` syllables). Pure;
    no analyzer."""
    folded = fold(query)
    content: list[str] = []
    grams: list[str] = []
    syllables: list[str] = []
    found: set[str] = set()  # the content pieces the index holds
    for m in _HANGUL_RUN.finditer(folded):
        run = ""
        for piece, kind in segment(m.group(), known, max_len):
            if kind == GLUE:
                grams.extend(bigrams(run))
                run = ""
                continue
            content.append(piece)
            run += piece
            if kind == UNKNOWN:
                syllables.extend(piece)
            else:
                found.add(piece)
        grams.extend(bigrams(run))
    if found:  # syllables stand in only for a query whose words the index lacks
        syllables = []
    content.extend(words(folded))
    if any(w not in QUERY_GENERIC and w in found for w in content):
        content = [w for w in content if w not in QUERY_GENERIC]
        grams = [g for g in grams if g not in QUERY_GENERIC]
    return (
        list(dict.fromkeys(content)),
        list(dict.fromkeys(grams)),
        list(dict.fromkeys(syllables)),
    )


def name_key(name: str) -> str:
    """What two names must share to be the same name: case, width, spacing and
    punctuation ignored (``닭 가슴살`` = ``닭가슴살``, ``Greek Yogurt`` = ``greek-yogurt``)."""
    return _NAME_DROP.sub("", fold(name))


def query_name_keys(query: str) -> list[str]:
    """The name keys a query may mean: itself, then without a trailing particle."""
    key = name_key(query)
    keys = [key] if key else []
    for p in PARTICLES:
        if key.endswith(p) and len(key) - len(p) >= 2:
            keys.append(key[: -len(p)])
            break
    return keys


def leading_label(text: str) -> str | None:
    """The name a description starts with, before a colon (``김치: 유산균 풍부``)."""
    head, sep, _ = text.partition(":")
    head = head.strip()
    if not sep or not head or len(head) > 60:
        return None
    return head


def item_name(name_value: object, text: str) -> str | None:
    """An item's name: the name column's value when it is a non-empty string, else the
    text's leading label."""
    if isinstance(name_value, str) and name_value.strip():
        return " ".join(name_value.split())
    return leading_label(text)
