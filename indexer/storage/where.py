"""Filters (``indexer.filters``) as SQL over the items' JSON metadata: SQLite's JSON1
functions, or PostgreSQL's jsonb operators. Both give the same answers (a test runs
the same filters on both): numbers compare with numbers, text with text in code-point
order, true and false only with themselves."""

from __future__ import annotations

from typing import Any

from ..filters import Cond, Group, Node


class _Params:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"w{len(self.values)}"
        self.values[name] = value
        return f":{name}"


class _Key:
    """How one metadata key reads in SQL: its value as a number, as text, its JSON
    type, and tests on them."""

    def __init__(self, key: str, p: _Params, dialect: str):
        self.pg = dialect == "postgresql"
        if self.pg:
            k = p.add(key)
            self.json = f"(items.metadata::jsonb -> CAST({k} AS TEXT))"
            self.type = f"jsonb_typeof({self.json})"
            self.num = f"(CASE WHEN {self.type} = 'number' THEN ({self.json})::numeric END)"
            # code-point order, as SQLite compares text
            self.text = f'((items.metadata::jsonb ->> CAST({k} AS TEXT)) COLLATE "C")'
        elif '"' in key or "\\" in key or any(ord(ch) < 32 for ch in key):
            # A JSON path cannot quote these; json_each compares the key as a plain string.
            k = p.add(key)
            self.num = self.text = f"(SELECT value FROM json_each(items.metadata) WHERE key = {k})"
            self.type = f"(SELECT type FROM json_each(items.metadata) WHERE key = {k})"
        else:
            path = p.add(f'$."{key}"')
            self.num = self.text = f"json_extract(items.metadata, {path})"
            self.type = f"json_type(items.metadata, {path})"

    def is_num(self) -> str:
        return f"{self.type} = 'number'" if self.pg else f"{self.type} IN ('integer','real')"

    def is_text(self) -> str:
        return f"{self.type} = '{'string' if self.pg else 'text'}'"

    def is_bool(self, b: bool) -> str:
        word = "true" if b else "false"
        return f"{self.json} = '{word}'::jsonb" if self.pg else f"{self.type} = '{word}'"

    def present(self) -> str:
        return f"({self.type} IS NOT NULL AND {self.type} != 'null')"

    def contains(self, mark: str) -> str:
        return f"strpos({self.text}, {mark}) > 0" if self.pg else f"instr({self.text}, {mark}) > 0"

    def as_text(self) -> str:
        """The value as SQLite's CAST(json_extract(...) AS TEXT) gives it: true and
        false as 1 and 0 (the legacy key=value filter)."""
        if not self.pg:
            return f"CAST({self.num} AS TEXT)"
        return (
            f"(CASE WHEN {self.type} = 'boolean' THEN (CASE WHEN {self.is_bool(True)} "
            f"THEN '1' ELSE '0' END) ELSE {self.text} END)"
        )


def compile_where(node: Node, dialect: str = "sqlite") -> tuple[str, dict[str, Any]]:
    """(an SQL condition on ``items``, its parameters) for the database ``dialect``
    (SQLAlchemy's name: sqlite or postgresql)."""
    params = _Params()
    return _sql(node, params, dialect), params.values


def _sql(node: Node, p: _Params, dialect: str) -> str:
    if isinstance(node, Group):
        joiner = " AND " if node.op == "and" else " OR "
        return "(" + joiner.join(_sql(n, p, dialect) for n in node.parts) + ")"
    return _cond(node, p, dialect)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _typed_eq(key: _Key, v: Any, p: _Params) -> str:
    if isinstance(v, bool):
        return f"({key.is_bool(v)})"
    if _is_number(v):
        return f"({key.is_num()} AND {key.num} = {p.add(v)})"
    return f"({key.is_text()} AND {key.text} = {p.add(v)})"


def _typed_in(key: _Key, values: tuple, p: _Params) -> str:
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


def _cond(c: Cond, p: _Params, dialect: str) -> str:
    key = _Key(c.key, p, dialect)
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
