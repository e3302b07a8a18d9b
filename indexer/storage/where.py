"""Filters (``indexer.filters``) as SQL over the items' JSON metadata (SQLite JSON1)."""

from __future__ import annotations

from typing import Any

from ..filters import Cond, Group, Node

_NUMERIC = "('integer','real')"


class _Params:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"w{len(self.values)}"
        self.values[name] = value
        return f":{name}"


def compile_where(node: Node) -> tuple[str, dict[str, Any]]:
    """(an SQL condition on ``items``, its parameters)."""
    params = _Params()
    return _sql(node, params), params.values


def _sql(node: Node, p: _Params) -> str:
    if isinstance(node, Group):
        joiner = " AND " if node.op == "and" else " OR "
        return "(" + joiner.join(_sql(n, p) for n in node.parts) + ")"
    return _cond(node, p)


def _paths(key: str, p: _Params) -> tuple[str, str]:
    """(the value, its JSON type) of a metadata key, NULL when the key is missing."""
    if '"' in key or "\\" in key or any(ord(ch) < 32 for ch in key):
        # A JSON path cannot quote these; json_each compares the key as a plain string.
        k = p.add(key)
        return (
            f"(SELECT value FROM json_each(items.metadata) WHERE key = {k})",
            f"(SELECT type FROM json_each(items.metadata) WHERE key = {k})",
        )
    path = p.add(f'$."{key}"')
    return f"json_extract(items.metadata, {path})", f"json_type(items.metadata, {path})"


def _typed_eq(value_sql: str, type_sql: str, v: Any, p: _Params) -> str:
    if isinstance(v, bool):
        return f"({type_sql} = '{'true' if v else 'false'}')"
    if isinstance(v, (int, float)):
        return f"({type_sql} IN {_NUMERIC} AND {value_sql} = {p.add(v)})"
    return f"({type_sql} = 'text' AND {value_sql} = {p.add(v)})"


def _typed_in(value_sql: str, type_sql: str, values: tuple, p: _Params) -> str:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    texts = [v for v in values if isinstance(v, str)]
    bools = {v for v in values if isinstance(v, bool)}
    alts = []
    if numbers:
        marks = ",".join(p.add(v) for v in numbers)
        alts.append(f"({type_sql} IN {_NUMERIC} AND {value_sql} IN ({marks}))")
    if texts:
        marks = ",".join(p.add(v) for v in texts)
        alts.append(f"({type_sql} = 'text' AND {value_sql} IN ({marks}))")
    for b in sorted(bools):
        alts.append(f"({type_sql} = '{'true' if b else 'false'}')")
    return "(" + " OR ".join(alts) + ")" if alts else "0"


_CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _cond(c: Cond, p: _Params) -> str:
    v_sql, t_sql = _paths(c.key, p)
    if c.op == "text":  # the legacy key=value filter: any value, compared as text
        return f"(CAST({v_sql} AS TEXT) = {p.add(c.value)})"
    if c.op == "eq":
        return _typed_eq(v_sql, t_sql, c.value, p)
    if c.op == "ne":
        return f"({t_sql} IS NULL OR NOT {_typed_eq(v_sql, t_sql, c.value, p)})"
    if c.op in _CMP:
        kind = f"IN {_NUMERIC}" if isinstance(c.value, (int, float)) else "= 'text'"
        return f"({t_sql} {kind} AND {v_sql} {_CMP[c.op]} {p.add(c.value)})"
    if c.op == "in":
        return _typed_in(v_sql, t_sql, c.value, p)
    if c.op == "nin":
        return f"({t_sql} IS NULL OR NOT {_typed_in(v_sql, t_sql, c.value, p)})"
    if c.op == "contains":
        return f"({t_sql} = 'text' AND instr({v_sql}, {p.add(c.value)}) > 0)"
    if c.op == "exists":
        present = f"({t_sql} IS NOT NULL AND {t_sql} != 'null')"
        return present if c.value else f"NOT {present}"
    raise ValueError(f"unknown filter operator {c.op!r}")  # parse() admits none
