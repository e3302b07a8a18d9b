"""The nutrition knowledge table: which nutrients help or harm which health needs.

The table lives in ``indexer/data/needs.json``, a reviewable data file written for this
project from public dietary guidance (WHO guidelines, the Korean Dietary Reference
Intakes 2020, the Dietary Guidelines for Americans 2020-2025, NIH fact sheets, the EU
register of health claims and others; each source is listed in the file). It has three
parts:

- ``nutrients``: nutrients and food properties that a description or a query can name
  (칼슘, 식이섬유, 발효, 튀김, 매운맛 ...), each with its plain names in Korean and English
  and the words that by themselves mean "a lot of it" (짠 = much sodium) or "little or
  none of it" (저염, 무가당).
- ``needs``: health needs and conditions (혈압, 뼈, 수면 ...), each with its Korean and
  English aliases, what raising it means (``rise``: ``"harm"`` when more of it is bad,
  as for 혈압, ``"help"`` when more is good, as for 면역력), the nutrients that help and
  harm it (each at a level: ``"high"``, a lot of it, or ``"low"``, little of it) and the
  sources that support those links.
- ``sources``: citation keys and their references.

:func:`load_knowledge` validates the file and guarantees, for the table it returns:

- ids are unique across nutrients and needs, and every alias list of a nutrient's plain
  names and of a need is non-empty;
- aliases are NFC-normalised and stripped, English ones lower-cased, and none is empty;
- every word of a nutrient (plain, high or low, Korean or English) means one nutrient at
  one level; no need alias is also a nutrient word; no alias belongs to two needs
  (all compared case-insensitively);
- every need has a ``rise`` of ``"harm"`` or ``"help"``, at least one helping nutrient,
  only known nutrient ids, no nutrient both helping and harming at the same level or
  helping at both levels, and cites at least one known source; every source is cited.

Any violation raises :class:`~indexer.errors.BadInputError` naming the entry and the
problem.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import BadInputError, BadRowError
from .settings import DATA_DIR

DEFAULT_PATH = DATA_DIR / "needs.json"
VERSION = 1
RISES = ("harm", "help")
LEVELS = ("high", "low")

_TOP_KEYS = ("version", "sources", "nutrients", "needs")
_NUTRIENT_KEYS = ("id", "ko", "en", "ko_high", "ko_low", "en_high", "en_low")
_NEED_KEYS = ("id", "ko", "en", "rise", "helps", "harms", "sources")
# Alias lists that must hold at least one word.
_REQUIRED_ALIASES = ("ko", "en")


@dataclass(frozen=True)
class Nutrient:
    """A nutrient or food property and the words that name it.

    Attributes:
        id: The nutrient's id (``"sodium"``).
        ko: Korean plain names (``나트륨``, ``소금``).
        en: English plain names, lower-cased.
        ko_high: Korean words that alone mean "a lot of it" (``짠``).
        ko_low: Korean words that alone mean "little or none of it" (``저염``).
        en_high: English words meaning "a lot of it", lower-cased.
        en_low: English words meaning "little or none of it", lower-cased.
    """

    id: str
    ko: tuple[str, ...]
    en: tuple[str, ...]
    ko_high: tuple[str, ...]
    ko_low: tuple[str, ...]
    en_high: tuple[str, ...]
    en_low: tuple[str, ...]


@dataclass(frozen=True)
class Need:
    """A health need or condition and the nutrients that help or harm it.

    Attributes:
        id: The need's id (``"blood_pressure"``).
        ko: Korean aliases (``혈압``, ``고혈압``).
        en: English aliases, lower-cased.
        rise: ``"harm"`` if raising the named thing is bad (혈압), ``"help"`` if good
            (면역력).
        helps: ``(nutrient id, level)`` pairs, level ``"high"`` (a lot of it helps) or
            ``"low"`` (little of it helps); never empty.
        harms: ``(nutrient id, level)`` pairs in the same form; may be empty.
        sources: Keys of :attr:`Knowledge.sources` supporting the links; never empty.
    """

    id: str
    ko: tuple[str, ...]
    en: tuple[str, ...]
    rise: str
    helps: tuple[tuple[str, str], ...]
    harms: tuple[tuple[str, str], ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Knowledge:
    """The validated table. Shared through a cache: do not mutate its dicts.

    Attributes:
        nutrients: Nutrients by id, in file order.
        needs: Needs by id, in file order.
        sources: Reference text by citation key, in file order.
    """

    nutrients: dict[str, Nutrient]
    needs: dict[str, Need]
    sources: dict[str, str]


def load_knowledge(path: Path | None = None) -> Knowledge:
    """Load and validate a knowledge table; cached per path.

    Args:
        path: The JSON file; ``indexer/data/needs.json`` when ``None``.

    Returns:
        The validated table (the same object on later calls with the same path).

    Raises:
        BadInputError: The file cannot be read or parsed, or breaks a rule of the
            format (the message names the entry and the problem).
    """
    return _load_cached(Path(DEFAULT_PATH if path is None else path).resolve())


@lru_cache(maxsize=16)
def _load_cached(path: Path) -> Knowledge:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the knowledge table: {exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not valid JSON: {exc}") from exc
    return _parse(raw, path.name)


def _parse(raw: Any, name: str) -> Knowledge:
    if not isinstance(raw, dict):
        raise BadRowError(name, "the top level must be a JSON object")
    _check_keys(raw, _TOP_KEYS, name)
    if raw["version"] != VERSION:
        raise BadRowError(name, f"unsupported version {raw['version']!r} (expected {VERSION})")
    sources = _parse_sources(raw["sources"], name)
    nutrients = _parse_nutrients(raw["nutrients"], name)
    needs = _parse_needs(raw["needs"], name, nutrients, sources)
    cited = {key for need in needs.values() for key in need.sources}
    for key in sources:
        if key not in cited:
            raise BadRowError(f"{name}: sources[{key!r}]", "source is not cited by any need")
    return Knowledge(nutrients=nutrients, needs=needs, sources=sources)


def _parse_sources(raw: Any, name: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise BadRowError(f"{name}: sources", "must be a non-empty object of key -> reference")
    sources: dict[str, str] = {}
    for key, text in raw.items():
        clean = _text(text)
        if not key.strip() or not clean:
            raise BadRowError(
                f"{name}: sources[{key!r}]", "key and reference must be non-empty text"
            )
        sources[key] = clean
    return sources


def _parse_nutrients(raw: Any, name: str) -> dict[str, Nutrient]:
    if not isinstance(raw, list) or not raw:
        raise BadRowError(f"{name}: nutrients", "must be a non-empty list")
    nutrients: dict[str, Nutrient] = {}
    # casefolded word -> (nutrient id, "plain" | "high" | "low")
    words: dict[str, tuple[str, str]] = {}
    for i, entry in enumerate(raw):
        where = _where(name, "nutrients", i, entry)
        if not isinstance(entry, dict):
            raise BadRowError(where, "must be an object")
        _check_keys(entry, _NUTRIENT_KEYS, where)
        nid = _id(entry["id"], where)
        if nid in nutrients:
            raise BadRowError(where, f"duplicate id {nid!r}")
        fields = {key: _aliases(entry[key], key, where) for key in _NUTRIENT_KEYS[1:]}
        for key, aliases in fields.items():
            level = key.partition("_")[2] or "plain"
            for alias in aliases:
                seen = words.setdefault(alias.casefold(), (nid, level))
                if seen != (nid, level):
                    raise BadRowError(
                        where,
                        f"word {alias!r} ({level}) is already a word of nutrient "
                        f"{seen[0]!r} ({seen[1]})",
                    )
        nutrients[nid] = Nutrient(id=nid, **fields)
    return nutrients


def _parse_needs(
    raw: Any, name: str, nutrients: Mapping[str, Nutrient], sources: Mapping[str, str]
) -> dict[str, Need]:
    if not isinstance(raw, list) or not raw:
        raise BadRowError(f"{name}: needs", "must be a non-empty list")
    nutrient_words = {
        word.casefold(): n.id
        for n in nutrients.values()
        for key in _NUTRIENT_KEYS[1:]
        for word in getattr(n, key)
    }
    needs: dict[str, Need] = {}
    owner: dict[str, str] = {}  # casefolded alias -> need id
    for i, entry in enumerate(raw):
        where = _where(name, "needs", i, entry)
        if not isinstance(entry, dict):
            raise BadRowError(where, "must be an object")
        _check_keys(entry, _NEED_KEYS, where)
        nid = _id(entry["id"], where)
        if nid in needs or nid in nutrients:
            raise BadRowError(where, f"duplicate id {nid!r}")
        ko = _aliases(entry["ko"], "ko", where)
        en = _aliases(entry["en"], "en", where)
        for alias in ko + en:
            folded = alias.casefold()
            if folded in nutrient_words:
                raise BadRowError(
                    where, f"alias {alias!r} is a word of nutrient {nutrient_words[folded]!r}"
                )
            other = owner.setdefault(folded, nid)
            if other != nid:
                raise BadRowError(where, f"alias {alias!r} is already an alias of need {other!r}")
        rise = entry["rise"]
        if rise not in RISES:
            raise BadRowError(where, f"bad rise {rise!r} (expected one of {', '.join(RISES)})")
        helps = _links(entry["helps"], "helps", where, nutrients)
        harms = _links(entry["harms"], "harms", where, nutrients)
        if not helps:
            raise BadRowError(where, "helps names no nutrient (at least one is needed)")
        for link in helps:
            if link in harms:
                raise BadRowError(where, f"nutrient {link[0]!r} both helps and harms at {link[1]}")
        helping = [nutrient for nutrient, _ in helps]
        for nutrient in helping:
            if helping.count(nutrient) > 1:
                raise BadRowError(where, f"nutrient {nutrient!r} helps at both high and low")
        cites = entry["sources"]
        if not isinstance(cites, list) or not cites:
            raise BadRowError(where, "sources must be a non-empty list of source keys")
        for key in cites:
            if key not in sources:
                raise BadRowError(where, f"unknown source {key!r}")
        if len(set(cites)) != len(cites):
            raise BadRowError(where, "a source is cited twice")
        needs[nid] = Need(
            id=nid, ko=ko, en=en, rise=rise, helps=helps, harms=harms, sources=tuple(cites)
        )
    return needs


def _links(
    raw: Any, key: str, where: str, nutrients: Mapping[str, Nutrient]
) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise BadRowError(where, f"{key} must be an object with keys high and/or low")
    links: list[tuple[str, str]] = []
    for level, ids in raw.items():
        if level not in LEVELS:
            raise BadRowError(where, f"{key} has bad level {level!r} (expected high or low)")
        if not isinstance(ids, list):
            raise BadRowError(where, f"{key}.{level} must be a list of nutrient ids")
        for nutrient in ids:
            if nutrient not in nutrients:
                raise BadRowError(where, f"unknown nutrient {nutrient!r} in {key}.{level}")
            if (nutrient, level) in links:
                raise BadRowError(where, f"nutrient {nutrient!r} listed twice in {key}.{level}")
            links.append((nutrient, level))
    return tuple(links)


def _check_keys(entry: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [key for key in keys if key not in entry]
    if missing:
        raise BadRowError(where, f"missing key(s): {', '.join(missing)}")
    extra = [key for key in entry if key not in keys]
    if extra:
        raise BadRowError(where, f"unknown key(s): {', '.join(map(str, extra))}")


def _id(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw or raw != raw.strip():
        raise BadRowError(where, f"bad id {raw!r} (must be non-empty text without spaces)")
    return raw


def _aliases(raw: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise BadRowError(where, f"{key} must be a list of words")
    if not raw and key in _REQUIRED_ALIASES:
        raise BadRowError(where, f"empty alias list {key}")
    words: list[str] = []
    for word in raw:
        clean = _text(word)
        if not clean:
            raise BadRowError(where, f"{key} holds an empty or non-text alias {word!r}")
        if key.startswith("en"):
            clean = clean.lower()
        if clean in words:
            raise BadRowError(where, f"alias {clean!r} is listed twice in {key}")
        words.append(clean)
    return tuple(words)


def _text(raw: Any) -> str:
    return unicodedata.normalize("NFC", raw).strip() if isinstance(raw, str) else ""


def _where(name: str, section: str, i: int, entry: Any) -> str:
    label = entry.get("id") if isinstance(entry, dict) else None
    return f"{name}: {section}[{i}]" + (f" ({label})" if isinstance(label, str) else "")
