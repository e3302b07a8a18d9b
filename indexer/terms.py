"""Korean-aware keyword terms for the lexical index (pure functions, no I/O).

Korean has no reliable spacing and glues particles to words, so words are not a good
unit: ``김치가``, ``김치 찌개`` and ``김치찌개`` must all find ``김치``. Hangul is therefore
indexed as syllable bigrams over each run of Hangul with the spaces inside it removed
(``김치 찌개`` and ``김치찌개`` give the same terms), plus single syllables in a separate,
lightly weighted field so that one-syllable names (``무``, ``배``, ``뼈``) still match.
Latin letters and digits form words (lower-cased, a plural ``s`` dropped).
"""

from __future__ import annotations

import re
import unicodedata

# Bump when the terms change: a store whose terms were made by another version re-derives
# them on open.
TERMS_VERSION = 1

_HANGUL = "\uac00-\ud7a3"
# A run of Hangul syllables, white space inside it allowed; or a run of Latin letters
# and digits. Everything else (punctuation, other scripts) separates runs.
_RUN = re.compile(rf"[{_HANGUL}](?:[{_HANGUL}\s]*[{_HANGUL}])?|[a-z0-9]+")
_SPACE = re.compile(r"\s+")
_NAME_DROP = re.compile(r"[\W_]+")

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


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _latin_word(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss") and not word.isdigit():
        return word[:-1]
    return word


def terms(text: str) -> tuple[list[str], list[str]]:
    """(main terms, single-syllable terms) of a text: Hangul bigrams and Latin/digit
    words in the first list, Hangul syllables in the second."""
    main: list[str] = []
    uni: list[str] = []
    for m in _RUN.finditer(_fold(text)):
        run = m.group()
        if "a" <= run[0] <= "z" or run[0].isdigit():
            main.append(_latin_word(run))
            continue
        syl = _SPACE.sub("", run)
        uni.extend(syl)
        if len(syl) == 1:
            # A lone syllable has no bigram; it still counts as a main term.
            main.append(syl)
        main.extend(syl[i : i + 2] for i in range(len(syl) - 1))
    return main, uni


def name_key(name: str) -> str:
    """What two names must share to be the same name: case, width, spacing and
    punctuation ignored (``닭 가슴살`` = ``닭가슴살``, ``Greek Yogurt`` = ``greek-yogurt``)."""
    return _NAME_DROP.sub("", _fold(name))


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


FIELDS = ("name", "text", "syllable")


def item_terms(name: str | None, text: str) -> tuple[list[str], list[str], list[str]]:
    """The terms of an item's three fields: its name, its text, its text's syllables."""
    main, uni = terms(text)
    return (terms(name)[0] if name else []), main, uni


def query_terms(query: str) -> tuple[list[str], list[str]]:
    """A query's distinct terms: (main terms, syllables)."""
    main, uni = terms(query)
    return list(dict.fromkeys(main)), list(dict.fromkeys(uni))
