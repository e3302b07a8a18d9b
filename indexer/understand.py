"""Query understanding: what a query or a description names, and which way round.

A query is parsed into the needs it names (혈압, 뼈, blood pressure) and the nutrients
and properties (칼슘, 짠, 카페인, low sodium), each with a direction: a need is wanted
``help`` (혈압에 좋은, 혈압 낮추는, 고혈압 관리) or ``harm`` (혈압에 안 좋은, 혈압 올리는,
고혈압 환자가 피해야 할); a nutrient ``high`` (칼슘 많은, 고단백, 짠) or ``low`` (당이 적은,
카페인 없는, 저염, 짜지 않은). A description is read the same way, clause by clause, into
the facts it states (``칼륨 풍부, 혈압 조절`` -> potassium high, blood pressure help;
``나트륨 과다, 혈압 상승 위험`` -> sodium high, blood pressure harm).

The words come from two data files: the knowledge table (``needs.json``, through
``indexer.knowledge``) and the direction cues (``cues.json``). Everything here is pure
and fast (a query parses in tens of microseconds); no analyser is loaded.

Guarantees: a one-syllable word (뼈, 장, 간, 당, 짠) is only read as a need or nutrient
when it stands as a word of its own, alone or with a particle or a cue after it, so
간식, 간장, 해장국 and 당근 name no need; the longest alias wins where several match
(혈당 before 당, 고혈압 before 혈압).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .knowledge import Knowledge, load_knowledge
from .settings import DATA_DIR

CUES_PATH = DATA_DIR / "cues.json"
CUE_KINDS = (
    "help",
    "harm",
    "rise",
    "fall",
    "high",
    "low",
    "negation",
    "mild",
    "level",
    "block",
    "risk",
)
# Prefixes that turn a Korean nutrient word into an amount: 고단백, 저지방, 무설탕.
_PREFIX_DIR = {"고": "high", "저": "low", "무": "low"}
# "None of it" after a harm cue takes the harm back (부담 없는 = no burden).
_NEED_CUES = ("help", "harm", "rise", "fall", "risk", "block")
_ABSENCE = ("없는", "없이", "없고", "없음", "없어")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LATIN = re.compile(r"[a-z]")
_HANGUL_RUN = re.compile(r"[\uac00-\ud7a3]*")
_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*|[\uac00-\ud7a3]+|\S")
_CLAUSE = re.compile(r"[,·;/()\[\]|]| - |\n|및|그리고")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFKC", text)).casefold()


@dataclass(frozen=True)
class Mention:
    """One need or nutrient named in a text."""

    kind: str  # "need" | "nutrient"
    id: str
    surface: str  # the words as written
    start: int
    end: int
    base: str  # nutrient: "high" | "low" from the word itself; need: "help"
    lang: str  # "ko" | "en"


@dataclass(frozen=True)
class Target:
    """What a query asks for: a need with its side, or a nutrient with its amount."""

    kind: str  # "need" | "nutrient"
    id: str
    direction: str  # need: "help" | "harm"; nutrient: "high" | "low"
    surface: str

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "id": self.id,
            "direction": self.direction,
            "words": self.surface,
        }


@dataclass
class Parse:
    """A query's targets and what is left of it once they and their cues are taken out."""

    query: str
    targets: list[Target] = field(default_factory=list)
    rest: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"targets": [t.as_dict() for t in self.targets], "rest": self.rest}


@dataclass(frozen=True)
class Fact:
    """One thing a description states: a need helped or harmed, a nutrient high or low."""

    kind: str
    id: str
    direction: str
    clause: str


class Lexicon:
    """The alias and cue dictionaries, compiled once per (table, cues) pair."""

    def __init__(self, knowledge: Knowledge, cues: dict[str, Any]):
        self.knowledge = knowledge
        # Korean aliases, spaces removed, by first character, longest first.
        self.ko: dict[str, list[tuple[str, str, str, str]]] = {}
        en: list[tuple[str, str, str, str]] = []
        for n in knowledge.nutrients.values():
            for words, base in ((n.ko, "high"), (n.ko_high, "high"), (n.ko_low, "low")):
                for w in words:
                    self._add_ko(w, "nutrient", n.id, base)
            for words, base in ((n.en, "high"), (n.en_high, "high"), (n.en_low, "low")):
                en.extend((w, "nutrient", n.id, base) for w in words)
        for d in knowledge.needs.values():
            for w in d.ko:
                self._add_ko(w, "need", d.id, "help")
            en.extend((w, "need", d.id, "help") for w in d.en)
        for lst in self.ko.values():
            lst.sort(key=lambda a: -len(a[0]))
        en.sort(key=lambda a: -len(a[0]))
        self._en = en
        self._en_re = (
            re.compile(
                r"(?<![a-z0-9])("
                + "|".join(re.escape(w).replace(r"\ ", r"[\s\-]*") for w, *_ in en)
                + r")(?![a-z0-9])"
            )
            if en
            else None
        )
        self._en_by = {w.replace(" ", ""): (k, i, b) for w, k, i, b in en}
        self.cues_ko = {k: tuple(cues["ko"].get(k, ())) for k in CUE_KINDS}
        self.cues_en = {k: frozenset(cues["en"].get(k, ())) for k in CUE_KINDS}
        self._ko_cue_list = sorted(
            ((w, k) for k, ws in self.cues_ko.items() for w in ws), key=lambda p: -len(p[0])
        )
        self.cue_words = frozenset(w for ws in self.cues_ko.values() for w in ws) | frozenset(
            w for ws in self.cues_en.values() for w in ws
        )
        self._ko_cues_by: dict[str, list[tuple[str, str]]] = {}
        for w, kind in self._ko_cue_list:
            self._ko_cues_by.setdefault(w[0], []).append((w, kind))
        self.particles = tuple(sorted(cues.get("particles", ()), key=len, reverse=True))
        self.joins = tuple(cues.get("joins", ()))
        self.eaters = frozenset(cues.get("eaters", ()))

    def _add_ko(self, word: str, kind: str, ident: str, base: str) -> None:
        key = "".join(_fold(word).split())
        if key:
            self.ko.setdefault(key[0], []).append((key, kind, ident, base))

    # -- mentions -------------------------------------------------------------------
    def mentions(self, text: str) -> list[Mention]:
        """The needs and nutrients a (folded) text names, in order, not overlapping."""
        out: list[Mention] = []
        taken = [False] * len(text)
        # Korean: scan the text with spaces skipped, so 장 건강 = 장건강.
        chars = [(i, c) for i, c in enumerate(text) if not c.isspace()]
        compact = "".join(c for _, c in chars)
        pos = 0
        ko = self.ko
        while pos < len(compact):
            c = compact[pos]
            hit = None
            if c in ko:
                for key, kind, ident, base in ko[c]:
                    if compact.startswith(key, pos) and self._ko_ok(text, chars, pos, key):
                        hit = (key, kind, ident, base)
                        break
            if hit is None:
                pos += 1
                continue
            key, kind, ident, base = hit
            start, end = chars[pos][0], chars[pos + len(key) - 1][0] + 1
            if kind == "nutrient" and base == "high" and pos > 0:
                before = compact[pos - 1]
                if before in _PREFIX_DIR and self._word_start(text, chars[pos - 1][0]):
                    base = _PREFIX_DIR[before]
                    start = chars[pos - 1][0]
            out.append(Mention(kind, ident, text[start:end], start, end, base, "ko"))
            for i in range(start, end):
                taken[i] = True
            pos += len(key)
        if self._en_re is not None and _LATIN.search(text):
            for m in self._en_re.finditer(text):
                if any(taken[m.start() : m.end()]):
                    continue
                key = re.sub(r"[\s\-]+", "", m.group(1))
                got = self._en_by.get(key)
                if got is None:
                    got = next(
                        ((k, i, b) for w, k, i, b in self._en if re.sub(r"[\s\-]+", "", w) == key),
                        None,
                    )
                if got is None:
                    continue
                kind, ident, base = got
                out.append(Mention(kind, ident, m.group(1), m.start(), m.end(), base, "en"))
        out.sort(key=lambda m: m.start)
        return out

    @staticmethod
    def _word_start(text: str, i: int) -> bool:
        """Whether a word starts at ``i`` (100g당 has no word 당: it is 'per 100 g')."""
        return i == 0 or not (_HANGUL.match(text[i - 1]) or text[i - 1].isalnum())

    def _ko_ok(self, text: str, chars: list[tuple[int, str]], pos: int, key: str) -> bool:
        """Whether a Korean alias found at ``pos`` of the spaceless text is a word here:
        it starts a word (or follows a 고/저/무 that does), and the word goes on with
        nothing, a particle, a cue or a joining word (건강, 환자); a longer alias may also
        be followed by one more syllable (다이어트할, 혈압약). So 간식, 장어, 당근 name no
        need or nutrient, nor do 치아시드 (chia seeds) and 뼈해장국."""
        start = chars[pos][0]
        end = chars[pos + len(key) - 1][0] + 1
        if not self._word_start(text, start):
            prefixed = (
                pos > 0
                and len(key) > 1
                and text[start - 1] in _PREFIX_DIR
                and self._word_start(text, start - 1)
            )
            if not prefixed:
                return False
        word_rest = _HANGUL_RUN.match(text, end).group()
        if not word_rest:
            return True
        if word_rest in self.particles or word_rest.startswith(self.joins):
            return True
        for p in self.particles:  # 간에좋은: a particle, then a cue or a joining word
            after = word_rest[len(p) :]
            if word_rest.startswith(p) and after and self._starts_cue(after):
                return True
        if len(key) > 1 and (len(word_rest) == 1 or word_rest.startswith(self.particles)):
            return True
        return self._starts_cue(word_rest)

    def _starts_cue(self, rest: str) -> bool:
        """Whether a word's rest begins with a cue of two or more syllables or a
        joining word."""
        if rest.startswith(self.joins):
            return True
        return any(len(w) > 1 and rest.startswith(w) for w, _ in self._ko_cues_by.get(rest[0], ()))

    # -- cues -----------------------------------------------------------------------
    def cues(self, text: str, lang_hint: str = "ko") -> list[tuple[int, str]]:
        """(position, kind) of each direction cue in a (folded) span of text."""
        out: list[tuple[int, str]] = []
        for m in _WORD.finditer(text):
            word = m.group()
            if _HANGUL.match(word[0]):
                alone = len(word) == 1 or word[1:] in self.particles
                i = 0
                while i < len(word):
                    got = None
                    for w, kind in self._ko_cues_by.get(word[i], ()):
                        if len(w) == 1 and not (i == 0 and alone):
                            continue  # 안, 못, 덜 only as words of their own
                        if word.startswith(w, i):
                            got = (w, kind)
                            break
                    if got is None:
                        i += 1
                        continue
                    out.append((m.start() + i, got[1]))
                    i += len(got[0])
            else:
                for kind in CUE_KINDS:
                    if word in self.cues_en[kind]:
                        out.append((m.start(), kind))
                        break
        return out


@lru_cache(maxsize=4)
def _lexicon(table: Path | None, cues: Path) -> Lexicon:
    data = json.loads(cues.read_text(encoding="utf-8"))
    return Lexicon(load_knowledge(table), data)


def lexicon(table: Path | None = None, cues: Path = CUES_PATH) -> Lexicon:
    """The shared lexicon of the shipped (or given) table and cues."""
    return _lexicon(table, cues)


def _need_side(need_rise: str, kinds: list[str], default: str = "help") -> str:
    """The side of a need that a run of cues asks for. A cue that says good or bad
    outright (좋은, 피해야) decides before one that says up or down (올리는, 낮추는), whose
    meaning comes from the need (or from 'level': a measured level is bad when high;
    a risk is a level too: 위험 낮추는); 'mild' (천천히, 완만) anywhere takes the rise or
    fall back."""
    if "level" in kinds:
        need_rise = "harm"
    for n, kind in enumerate(kinds[:-1]):
        if kind == "risk" and kinds[n + 1] in ("rise", "fall"):
            need_rise = "harm"
            kinds = kinds[:n] + kinds[n + 1 :]
            break
    side = next((k for k in kinds if k in ("help", "harm", "risk")), None)
    side = "harm" if side == "risk" else side
    if side is None:
        kind = next((k for k in kinds if k in ("rise", "fall")), None)
        if kind is not None:
            up = kind == "rise"
            side = "harm" if up == (need_rise == "harm") else "help"
            if "mild" in kinds:
                side = "help" if side == "harm" else "harm"
    if side is None:
        return default
    flips = kinds.count("negation")
    if side == "harm":
        flips += kinds.count("absence")
    if flips % 2:
        side = "help" if side == "harm" else "harm"
    return side


def _amount(base: str, kinds: list[str]) -> str:
    """The amount of a nutrient that a run of cues asks for."""
    amount = base
    set_by_cue = False
    flips = 0
    for kind in kinds:
        if kind in ("high", "low") and not set_by_cue:
            amount = kind if base == "high" else ("low" if kind == "high" else "high")
            set_by_cue = True
        elif kind == "negation":
            flips += 1
    if not set_by_cue and "block" in kinds:
        amount = "low" if base == "high" else "high"  # 칼슘 흡수 방해: less calcium
    if flips % 2:
        amount = "low" if amount == "high" else "high"
    return amount


def _cue_kinds(lex: Lexicon, text: str, span: tuple[int, int]) -> list[str]:
    piece = text[span[0] : span[1]]
    kinds = []
    for pos, kind in lex.cues(piece):
        if kind == "low" and piece[pos:].startswith(_ABSENCE):
            kinds.append("absence")
        if kind == "block":
            kinds.append("harm")
        kinds.append(kind)
    return kinds


def _after_eater(lex: Lexicon, text: str, span: tuple[int, int]) -> tuple[int, int]:
    """Cues before a word for the eater (때, 사람, 환자: 잠이 안 올 때 먹으면 좋은, 콩팥 안
    좋은 사람 식단) say how the eater is, not what the food should do: only the cues
    after the last such word count."""
    piece = text[span[0] : span[1]]
    last = None
    for m in _WORD.finditer(piece):
        word = m.group()
        if word in lex.eaters or any(
            word == e + p for e in lex.eaters for p in lex.particles if len(e) > 0
        ):
            last = m.end()
    if last is None:
        return span
    return (span[0] + last, span[1])


def parse_query(query: str, lex: Lexicon | None = None) -> Parse:
    """The needs and nutrients a query names, each with the direction it wants
    (cached for the shipped lexicon)."""
    if lex is None:
        return _parse_cached(query)
    return _parse(query, lex)


@lru_cache(maxsize=4096)
def _parse_cached(query: str) -> Parse:
    return _parse(query, lexicon())


def _parse(query: str, lex: Lexicon) -> Parse:
    text = _fold(query)
    found = lex.mentions(text)
    out = Parse(query)
    seen: set[tuple[str, str]] = set()
    for n, m in enumerate(found):
        after = (m.end, found[n + 1].start if n + 1 < len(found) else len(text))
        before = (found[n - 1].end if n else 0, m.start)
        spans = (after, before) if m.lang == "ko" else (before, after)
        kinds: list[str] = []
        for span in spans:
            if m.kind == "need":
                span = _after_eater(lex, text, span)
            kinds = _cue_kinds(lex, text, span)
            relevant = _NEED_CUES if m.kind == "need" else ("high", "low", "block")
            if any(k in relevant for k in kinds) or (m.kind == "nutrient" and "negation" in kinds):
                break
        if m.kind == "need":
            rise = lex.knowledge.needs[m.id].rise
            direction = _need_side(rise, kinds)
        else:
            direction = _amount(m.base, kinds)
        if (m.id, m.kind) in seen:
            continue
        seen.add((m.id, m.kind))
        out.targets.append(Target(m.kind, m.id, direction, m.surface))
    # What is left once the named needs, nutrients and cues are taken out: the kind of
    # food asked for (과일, 반찬, snack), for the ordinary legs.
    rest = text
    for m in reversed(found):
        rest = rest[: m.start] + " " + rest[m.end :]
    words = []
    for w in _WORD.findall(rest):
        if not w[0].isalnum():
            continue  # punctuation
        bare = w
        for p in lex.particles:
            if bare.endswith(p) and len(bare) > len(p):
                bare = bare[: -len(p)]
                break
        if w in lex.cue_words or bare in lex.cue_words or w in lex.particles:
            continue
        if any(c[0] == 0 for c in lex.cues(w)):
            continue  # a word that starts with a cue (좋은데, 낮추는)
        words.append(w)
    out.rest = " ".join(words)
    return out


def read_facts(text: str, lex: Lexicon | None = None) -> list[Fact]:
    """What a description states, clause by clause: ``칼륨 풍부`` -> potassium high;
    ``혈압 상승 위험`` -> blood pressure harm; ``철분과 엽산 풍부`` -> both high."""
    lex = lex or lexicon()
    folded = _fold(text)
    # A leading name before a colon (김치: ...) states nothing.
    head, sep, tail = folded.partition(":")
    body = tail if sep and len(head) <= 60 else folded
    facts: list[Fact] = []
    for clause in _CLAUSE.split(body):
        clause = clause.strip()
        if not clause:
            continue
        found = lex.mentions(clause)
        if not found:
            continue
        # Cues are read over the clause with its mentions blanked out.
        blanked = clause
        for m in found:
            blanked = blanked[: m.start] + " " * (m.end - m.start) + blanked[m.end :]
        kinds = _cue_kinds(lex, blanked, (0, len(blanked)))
        for m in found:
            if m.kind == "need":
                rise = lex.knowledge.needs[m.id].rise
                side = _need_side(rise, kinds)
                facts.append(Fact("need", m.id, side, clause))
            else:
                facts.append(Fact("nutrient", m.id, _amount(m.base, kinds), clause))
    return facts


_SIDE_WORDS = {
    "help": "foods good for it",
    "harm": "foods bad for it",
    "high": "a lot of it",
    "low": "little or none of it",
}


def describe_parse(parse: Parse) -> str:
    """One line for people: ``blood_pressure (혈압): foods good for it``."""
    if not parse.targets:
        return "no need or nutrient named; a plain lookup"
    parts = [f"{t.id} ({t.surface}): {_SIDE_WORDS[t.direction]}" for t in parse.targets]
    if parse.rest:
        parts.append(f"other words: {parse.rest}")
    return "; ".join(parts)


def fact_tokens(text: str, lex: Lexicon | None = None) -> list[str]:
    """The facts a description states as index terms (``need:blood_pressure:harm``,
    ``nutrient:sodium:high``), each once: what the lexical index keeps per item so that
    a search judges candidates without reading their texts."""
    facts = read_facts(text, lex)
    return sorted({f"{f.kind}:{f.id}:{f.direction}" for f in facts})


@lru_cache(maxsize=4)
def lexicon_version(table: Path | None = None, cues: Path = CUES_PATH) -> int:
    """A number that changes whenever the knowledge table or the cues change: indexed
    facts made under another version are re-derived."""
    import hashlib

    from .knowledge import DEFAULT_PATH

    digest = hashlib.sha256()
    for path in (table or DEFAULT_PATH, cues):
        digest.update(Path(path).read_bytes())
    return int(digest.hexdigest()[:8], 16)
