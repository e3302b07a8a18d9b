"""The metadata filter language: one grammar for the CLI, HTTP and Python (pure).

JSON form, in Chroma's shape where it fits::

    {"category": "과일"}                                  equals (short for $eq)
    {"kcal": {"$lt": 200}}                               $eq $ne $gt $gte $lt $lte
    {"category": {"$in": ["과일", "채소"]}}                $in $nin
    {"text_note": {"$contains": "저염"}}                  text containment
    {"brand": {"$exists": true}}                         present and not null
    {"$and": [{...}, {...}]}, {"$or": [{...}, {...}]}    several keys in one object: and

Numbers compare with numbers and text with text: a condition matches only values of
its own type (``{"kcal": {"$lt": 200}}`` never matches the text "150"). ``$ne`` and
``$nin`` also match items that lack the key. A malformed filter raises
``FilterError`` with the place and the problem.

The short CLI form (``parse_short``): ``kcal<200``, ``sodium_mg <= 400``,
``category=과일``, ``category != 과일``, ``category in (과일, 채소)``,
``category not in (과일)``, ``note ~ 저염`` (contains), ``brand?`` (exists), ``!brand``
(missing). A value that reads as a number is a number; quote it to keep it text
(``code="007"``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import BadInputError
from .text import has_lone_surrogate

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
OPERATORS = (*COMPARISONS, "$in", "$nin", "$contains", "$exists")
MAX_DEPTH = 8
MAX_CONDITIONS = 64
MAX_IN = 1000
# Metadata never holds one (a build refuses it), and no database driver can encode it.
_SURROGATE = "holds a lone surrogate (a broken \\ud800 escape; not valid Unicode)"


class FilterError(BadInputError):
    """A filter that cannot be read: an unknown operator, a value of the wrong type."""


@dataclass(frozen=True)
class Cond:
    """One condition on one metadata key. ``op`` is an operator without its ``$``, or
    ``text`` for the legacy ``--filter key=value`` (values compared as text)."""

    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class Group:
    """``and`` or ``or`` of its parts."""

    op: str
    parts: tuple[Cond | Group, ...]


Node = Cond | Group


def parse(where: Any) -> Node:
    """Check a JSON filter and turn it into a tree of ``Cond`` and ``Group``."""
    count = [0]
    node = _node(where, "where", 0, count)
    return node


def from_text_pairs(pairs: dict[str, Any]) -> Node:
    """The legacy ``key=value`` filters: every pair, compared as text, all must hold."""
    for k, v in pairs.items():
        if "\x00" in str(k) or "\x00" in _as_text(v):
            raise FilterError(f"filter {str(k)!r}: keys and values may not contain NUL")
        if has_lone_surrogate(str(k)) or has_lone_surrogate(_as_text(v)):
            raise FilterError(f"filter {str(k)!r}: {_SURROGATE}")
    return Group("and", tuple(Cond(str(k), "text", _as_text(v)) for k, v in pairs.items()))


def combine(*nodes: Node | None) -> Node | None:
    """All the given filters at once (None for none)."""
    given = tuple(n for n in nodes if n is not None)
    if not given:
        return None
    return given[0] if len(given) == 1 else Group("and", given)


def filter_node(
    filters: dict[str, Any] | None = None, where: dict[str, Any] | None = None
) -> Node | None:
    """The legacy key=value ``filters`` and a ``where`` filter, both to hold."""
    return combine(
        from_text_pairs(filters) if filters else None,
        parse(where) if where is not None else None,
    )


def _as_text(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def _node(obj: Any, where: str, depth: int, count: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise FilterError(f"{where}: filters nest deeper than {MAX_DEPTH} levels")
    if not isinstance(obj, dict):
        raise FilterError(f"{where}: a filter is an object, not {_kind(obj)}")
    if not obj:
        raise FilterError(f"{where}: an empty filter; leave it out to match every item")
    parts: list[Node] = []
    for key, value in obj.items():
        if not isinstance(key, str) or not key or "\x00" in key:
            raise FilterError(f"{where}: keys are non-empty strings without NUL")
        if has_lone_surrogate(key):
            raise FilterError(f"{where}: a key {_SURROGATE}")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{where}.{key}: a non-empty list of filters")
            subs = tuple(
                _node(v, f"{where}.{key}[{n}]", depth + 1, count) for n, v in enumerate(value)
            )
            parts.append(Group(key[1:], subs))
        elif key.startswith("$"):
            raise FilterError(
                f"{where}: unknown operator {key!r} at the top of a filter (use $and or $or, "
                "or a metadata key)"
            )
        else:
            parts.extend(_conditions(key, value, f"{where}.{key}", count))
    return parts[0] if len(parts) == 1 else Group("and", tuple(parts))


def _conditions(key: str, value: Any, where: str, count: list[int]) -> list[Cond]:
    if not isinstance(value, dict):
        return [_cond(key, "$eq", value, where, count)]
    if not value:
        raise FilterError(f"{where}: an empty condition")
    return [_cond(key, op, v, f"{where}.{op}", count) for op, v in value.items()]


def _cond(key: str, op: Any, value: Any, where: str, count: list[int]) -> Cond:
    count[0] += 1
    if count[0] > MAX_CONDITIONS:
        raise FilterError(f"a filter holds at most {MAX_CONDITIONS} conditions")
    if op not in OPERATORS:
        raise FilterError(f"{where}: unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    if op in ("$eq", "$ne"):
        _scalar(value, where)
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        _scalar(value, where)
        if isinstance(value, bool):
            raise FilterError(f"{where}: {op} compares numbers or text, not true/false")
    elif op in ("$in", "$nin"):
        if not isinstance(value, list):
            raise FilterError(f"{where}: {op} takes a list of values, not {_kind(value)}")
        if len(value) > MAX_IN:
            raise FilterError(f"{where}: {op} takes at most {MAX_IN} values")
        for n, v in enumerate(value):
            _scalar(v, f"{where}[{n}]")
        value = tuple(value)
    elif op == "$contains":
        if not isinstance(value, str) or not value:
            raise FilterError(f"{where}: $contains takes a non-empty text, not {_kind(value)}")
        _scalar(value, where)
    elif op == "$exists" and not isinstance(value, bool):
        raise FilterError(f"{where}: $exists takes true or false, not {_kind(value)}")
    return Cond(key, op[1:], value)


def _scalar(v: Any, where: str) -> None:
    if isinstance(v, str) and "\x00" in v:
        # metadata never holds NUL (a build refuses it), and PostgreSQL cannot take it
        raise FilterError(f"{where}: a text value may not contain NUL")
    if isinstance(v, str) and has_lone_surrogate(v):
        raise FilterError(f"{where}: a text value {_SURROGATE}")
    if isinstance(v, bool) or isinstance(v, str):
        return
    if isinstance(v, int):
        if not -(2**63) <= v < 2**63:
            raise FilterError(f"{where}: {v} is outside the 64-bit integer range")
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise FilterError(f"{where}: {v!r} is not a number that can be compared")
        return
    raise FilterError(f"{where}: a value is a number, a text or true/false, not {_kind(v)}")


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a text", bool: "true/false"}
    names.update({int: "a number", float: "a number"})
    return names.get(type(v), f"a value of type {type(v).__name__}")


# -- the short form ----------------------------------------------------------------------
_SHORT = re.compile(
    r"""^\s*(?P<key>"(?:[^"\\]|\\.)+"|[^\s<>=!~?()"]+)\s*
        (?P<op><=|>=|!=|==|=|<|>|~|\bnot\s+in\b|\bin\b)\s*(?P<value>.*?)\s*$""",
    re.X | re.S,
)
_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
_SHORT_OPS = {
    "=": "$eq",
    "==": "$eq",
    "!=": "$ne",
    "<": "$lt",
    "<=": "$lte",
    ">": "$gt",
    ">=": "$gte",
    "~": "$contains",
    "in": "$in",
    "not in": "$nin",
}


def parse_short(expr: str) -> dict[str, Any]:
    """One short condition (``kcal<200``) as the JSON form; a JSON object is taken as is."""
    text = expr.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise FilterError(f"{_snippet(expr)}: not valid JSON ({exc})") from None
        except RecursionError:  # nested past what a filter may hold anyway
            raise FilterError(
                f"{_snippet(expr)}: filters nest deeper than {MAX_DEPTH} levels"
            ) from None
    if text.endswith("?") and _plain_key(text[:-1]):
        return {_key(text[:-1].strip()): {"$exists": True}}
    if text.startswith("!") and _plain_key(text[1:]):
        return {_key(text[1:].strip()): {"$exists": False}}
    m = _SHORT.match(text)
    if not m:
        raise FilterError(
            f"{expr!r}: not a condition; write KEY OP VALUE with OP one of = != < <= > >= ~ "
            "in, not in (for example kcal<200 or 'category in (과일,채소)')"
        )
    key, value = _key(m["key"]), m["value"]
    op = _SHORT_OPS[" ".join(m["op"].lower().split())]
    if op in ("$in", "$nin"):
        if not (value.startswith("(") and value.endswith(")")):
            raise FilterError(f"{expr!r}: {op[1:]} takes a list in parentheses: (a, b)")
        inner = value[1:-1].strip()
        raw = _split_list(inner) if inner else []
        for v in raw:
            _no_joiner(expr, v)
        return {key: {op: [parse_value(v) for v in raw]}}
    _no_joiner(expr, value)
    if not value:
        raise FilterError(f"{expr!r}: no value after {m['op']}")
    if value[0] in "<>=!~":
        raise FilterError(
            f"{expr!r}: {m['op']}{value[0]} is not an operator; quote a value that starts with it"
        )
    parsed = parse_value(value)
    if op == "$contains" and not isinstance(parsed, str):
        parsed = value  # containment is of text: `~ 12` looks for the characters 12
    return {key: {op: parsed}}


def _snippet(expr: str, n: int = 80) -> str:
    return repr(expr if len(expr) <= n else expr[:n] + "…")


_JOINER = re.compile(r"(?:^|\s)(or|and)(?=\s|$)", re.I)


def _no_joiner(expr: str, value: str) -> None:
    """The short form has one condition: an unquoted value with the word ``or`` or
    ``and`` in it (``a=x or a=y``) is refused rather than read as that whole text."""
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] == '"':
        return
    m = _JOINER.search(v)
    if m is None:
        return
    word = m[1].lower()
    how = (
        'a JSON filter joins conditions with or: {"$or": [{"a": "x"}, {"a": "y"}]}, or a in (x, y)'
        if word == "or"
        else "repeat --where for each condition (all must hold)"
    )
    raise FilterError(
        f"{expr!r}: `{m[1]}` is not supported in the short form ({how}); quote the value "
        f'to mean the text itself: "{v}"'
    )


_QUOTED_KEY = re.compile(r'"(?:[^"\\]|\\.)+"')
_BARE_KEY = re.compile(r"[^\s<>=!~?()\"]+")


def _plain_key(s: str) -> bool:
    s = s.strip()
    return bool(_QUOTED_KEY.fullmatch(s) or _BARE_KEY.fullmatch(s))


def _key(raw: str) -> str:
    return json.loads(raw) if raw.startswith('"') else raw


def parse_value(raw: str) -> Any:
    """A value as typed: a quoted one is JSON text, true/false booleans, a plain numeral
    a number, anything else the text itself."""
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            return json.loads(raw)
        except ValueError:
            return raw[1:-1]
    if raw in ("true", "false"):
        return raw == "true"
    if _NUMBER.match(raw):
        return typed_number(raw)
    return raw


def _split_list(inner: str) -> list[str]:
    out, cur, quoted = [], [], False
    for ch in inner:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [v.strip() for v in out]


def typed_number(raw: str) -> int | float | str:
    """A numeral as a number; anything else (leading zeros, a plus sign, spaces,
    thousands separators, NaN) stays the text it was."""
    if not _NUMBER.match(raw):
        return raw
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", raw):
        n = int(raw)
        return n if -(2**63) <= n < 2**63 else raw
    f = float(raw)
    return f if math.isfinite(f) else raw
