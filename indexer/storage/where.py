"""Filters (``indexer.filters``) as SQL over the items' JSON metadata. How a metadata
key reads is the dialect's (``MetadataKey``: SQLite's JSON1 functions in ``sqlite``,
PostgreSQL's jsonb operators in ``postgres``); both give the same answers (a test runs
the same filters on both): numbers compare with numbers, text with text in code-point
order, true and false only with themselves."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ..filters import Cond, Group, Node


class Params:
    """The parameters of one compiled filter, named as they are added."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"w{len(self.values)}"
        self.values[name] = value
        return f":{name}"


class MetadataKey(ABC):
    """How one metadata key reads in SQL: its value as a number (``num``), as text
    (``text``), its JSON type (``type``), and tests on them. Each dialect's store names
    its own subclass (``Store.where_key``), which sets the three expressions and the
    tests that differ."""

    type: str  # the value's JSON type, NULL when the key is missing
    num: str  # the value as a number (compared only where ``is_num`` holds)
    text: str  # the value as text, compared in code-point order

    @abstractmethod
    def __init__(self, key: str, p: Params):
        """Set ``type``, ``num`` and ``text`` for ``key`` (a parameter of ``p``)."""

    @abstractmethod
    def is_num(self) -> str:
        """The value is a number."""

    @abstractmethod
    def is_text(self) -> str:
        """The value is a string."""

    @abstractmethod
    def is_bool(self, b: bool) -> str:
        """The value is ``b`` (true or false)."""

    @abstractmethod
    def contains(self, mark: str) -> str:
        """The text holds the parameter ``mark``."""

    @abstractmethod
    def as_text(self) -> str:
        """The value as SQLite's CAST(json_extract(...) AS TEXT) gives it: true and
        false as 1 and 0 (the legacy key=value filter)."""

    def present(self) -> str:
        return f"({self.type} IS NOT NULL AND {self.type} != 'null')"


def compile_where(node: Node, key: type[MetadataKey]) -> tuple[str, dict[str, Any]]:
    """(an SQL condition on ``items``, its parameters), metadata keys read as the
    dialect's ``key`` class reads them."""
    params = Params()
    return _sql(node, params, key), params.values


def _sql(node: Node, p: Params, key: type[MetadataKey]) -> str:
    if isinstance(node, Group):
        joiner = " AND " if node.op == "and" else " OR "
        return "(" + joiner.join(_sql(n, p, key) for n in node.parts) + ")"
    return _cond(node, p, key)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _typed_eq(key: MetadataKey, v: Any, p: Params) -> str:
    if isinstance(v, bool):
        return f"({key.is_bool(v)})"
    if _is_number(v):
        return f"({key.is_num()} AND {key.num} = {p.add(v)})"
    return f"({key.is_text()} AND {key.text} = {p.add(v)})"


def _typed_in(key: MetadataKey, values: tuple, p: Params) -> str:
    numbers = [v for v in values if _is_number(v)]
    texts = [v for v in values if isinstance(v, str)]
    bools = {v for v in values if isinstance(v, bool)}
    alts = []
    if numbers:
        marks = ",".join(p.add(v) for v in numbers)
        alts.append(f"({key.is_num()} AND {key.num} IN ({marks}))")
    if texts:
        marks = ",".join(p.add(v) for v in texts)
        alts.append(f"({key.is_text()} AND {key.text} IN ({marks}))")
    for b in sorted(bools):
        alts.append(f"({key.is_bool(b)})")
    return "(" + " OR ".join(alts) + ")" if alts else "(1 = 0)"


_CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _cond(c: Cond, p: Params, key_class: type[MetadataKey]) -> str:
    key = key_class(c.key, p)
    if c.op == "text":  # the legacy key=value filter: any value, compared as text
        return f"({key.as_text()} = {p.add(c.value)})"
    if c.op == "eq":
        return _typed_eq(key, c.value, p)
    if c.op == "ne":
        return f"({key.type} IS NULL OR NOT {_typed_eq(key, c.value, p)})"
    if c.op in _CMP:
        if _is_number(c.value):
            return f"({key.is_num()} AND {key.num} {_CMP[c.op]} {p.add(c.value)})"
        return f"({key.is_text()} AND {key.text} {_CMP[c.op]} {p.add(c.value)})"
    if c.op == "in":
        return _typed_in(key, c.value, p)
    if c.op == "nin":
        return f"({key.type} IS NULL OR NOT {_typed_in(key, c.value, p)})"
    if c.op == "contains":
        return f"({key.is_text()} AND {key.contains(p.add(c.value))})"
    if c.op == "exists":
        return key.present() if c.value else f"NOT {key.present()}"
    raise ValueError(f"unknown filter operator {c.op!r}")  # parse() admits none
