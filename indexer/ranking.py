"""Ranking that respects direction: foods judged against what a query asks for.

A query's targets (``indexer.understand.parse_query``) are checked against the facts
each candidate's description states (``read_facts``) through the knowledge table:

- a need wanted ``help`` is supported by a stated help for it (``혈압 조절``) or by a
  nutrient the table says helps it (``칼륨 풍부``, ``저염``); it is opposed by a stated
  harm (``혈압 상승 위험``) or a nutrient that harms it (``나트륨 과다``). A need wanted
  ``harm`` reads the same facts the other way round.
- a nutrient wanted ``high`` (or ``low``) is supported by the description saying so and
  opposed by the description saying the opposite (``카페인 없는 차`` is opposed by
  ``카페인 함유``).

Guarantees: a food whose description opposes any target of the query (and does not
state the wanted side for it outright) is never returned for that query, so a search
for foods good for blood pressure never lists one said to raise it; every judged hit
carries the clauses that decided it.

Each item also gets a health score in [0, 1]: until the model's own health head exists
it is a stand-in read from the same facts, ``(1 + helps) / (2 + helps + harms)`` over
the needs its stated facts help or harm (Laplace's rule of succession: 0.5 when the
description states nothing either way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .knowledge import Knowledge
from .understand import Fact, Lexicon, Parse, Target, lexicon, read_facts

# How much a nutrient link counts against a statement about the need itself.
STATED = 1.0
LINKED = 0.7
LINK_STEP = 0.15
LINK_FLOOR = 0.5
# Weights of the final score for a query with targets, chosen on the dev half of
# indexer/data/lookup (bench.lookup --tune-needs): support of the targets, the hybrid
# relevance of the query's words, the health score on the query's side.
W_SUPPORT = 0.55
W_BASE = 0.35
W_HEALTH = 0.10


@dataclass
class Judgement:
    """How one item answers a query's targets."""

    support: float  # in [0, 1]: the mean over targets of how well the item serves each
    against: bool  # the item opposes a target
    why: list[str] = field(default_factory=list)  # the clauses that decided it


def judge_target(target: Target, facts: list[Fact], kb: Knowledge) -> tuple[float, list[str]]:
    """The item's stance on one target in [-1, 1], and the clauses behind it."""
    if target.kind == "nutrient":
        agree = [
            f.clause
            for f in facts
            if f.kind == "nutrient" and f.id == target.id and f.direction == target.direction
        ]
        oppose = [
            f.clause
            for f in facts
            if f.kind == "nutrient" and f.id == target.id and f.direction != target.direction
        ]
        if agree:
            return STATED, agree
        if oppose:
            return -STATED, oppose
        return 0.0, []
    need = kb.needs[target.id]
    want = target.direction
    stated, linked_for, linked_against = 0.0, 0.0, False
    why_for: list[str] = []
    why_against: list[str] = []
    for f in facts:
        if f.kind == "need" and f.id == target.id:
            if f.direction == want:
                stated = max(stated, STATED) if stated >= 0 else stated
                why_for.append(f.clause)
            else:
                stated = -STATED
                why_against.append(f.clause)
        elif f.kind == "nutrient":
            pair = (f.id, f.direction)
            serve, oppose = (need.helps, need.harms) if want == "help" else (need.harms, need.helps)
            if pair in serve:
                linked_for = max(linked_for, link_weight(serve, pair))
                why_for.append(f.clause)
            if pair in oppose:
                linked_against = True
                why_against.append(f.clause)
    if stated > 0:
        return STATED, why_for
    if stated < 0 or linked_against:
        return -STATED if stated < 0 else -LINKED, why_against
    if linked_for:
        return linked_for, why_for
    return 0.0, []


def link_weight(links: tuple[tuple[str, str], ...], pair: tuple[str, str]) -> float:
    """How much a nutrient link counts: the table lists each need's links at one
    level strongest first, so the first counts ``LINKED`` and each later one less."""
    same = [p for p in links if p[1] == pair[1]]
    return LINKED * max(LINK_FLOOR, 1.0 - LINK_STEP * same.index(pair))


def judge(parse: Parse, facts: list[Fact], kb: Knowledge) -> Judgement:
    """The item's support for all of a query's targets together."""
    if not parse.targets:
        return Judgement(0.0, False)
    total, against = 0.0, False
    why: list[str] = []
    for t in parse.targets:
        s, w = judge_target(t, facts, kb)
        if s < 0:
            against = True
        total += max(s, 0.0)
        why.extend(c for c in w if c not in why)
    return Judgement(total / len(parse.targets), against, why)


def health_score(facts: list[Fact], kb: Knowledge) -> float:
    """The stand-in health score: the rule of succession over the helps and harms of
    the item's stated facts (0.5 when it states neither)."""
    good = bad = 0
    for f in facts:
        if f.kind == "need":
            good += f.direction == "help"
            bad += f.direction == "harm"
            continue
        pair = (f.id, f.direction)
        helps = any(pair in n.helps for n in kb.needs.values())
        harms = any(pair in n.harms for n in kb.needs.values())
        good += helps and not harms
        bad += harms and not helps
    return (1.0 + good) / (2.0 + good + bad)


@lru_cache(maxsize=4096)
def item_facts(text: str, lex: Lexicon | None = None) -> tuple[Fact, ...]:
    """The facts a description states (cached by text)."""
    return tuple(read_facts(text, lex or lexicon()))


def token_goodness(token: str, kb: Knowledge) -> int:
    """+1 for an indexed fact that is good for some need and bad for none, -1 for the
    reverse, else 0 (what the stand-in health score counts)."""
    kind, ident, side = token.split(":")
    if kind == "need":
        return 1 if side == "help" else -1
    pair = (ident, side)
    helps = any(pair in n.helps for n in kb.needs.values())
    harms = any(pair in n.harms for n in kb.needs.values())
    return int(helps) - int(harms)


def stand_in_health(good: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """The stand-in health score from counts of good and bad facts: the rule of
    succession, ``(1 + good) / (2 + good + bad)``."""
    return (1.0 + good) / (2.0 + good + bad)


@dataclass
class Plan:
    """What a query's targets ask of the facts an item states, as index fact tokens."""

    # Per target: (token, weight) of the facts that serve it, the one that states it
    # outright first (weight STATED), nutrient links after (link_weight).
    serve: list[list[tuple[str, float]]]
    # Per target: the tokens of the facts that oppose it.
    oppose: list[list[str]]

    @property
    def tokens(self) -> list[str]:
        out = [t for ts in self.serve for t, _ in ts] + [t for ts in self.oppose for t in ts]
        return list(dict.fromkeys(out))


def plan(parse: Parse, kb: Knowledge) -> Plan:
    """The fact tokens that serve and oppose each of a query's targets."""
    serve: list[list[tuple[str, float]]] = []
    oppose: list[list[str]] = []
    for t in parse.targets:
        if t.kind == "nutrient":
            other = "low" if t.direction == "high" else "high"
            serve.append([(f"nutrient:{t.id}:{t.direction}", STATED)])
            oppose.append([f"nutrient:{t.id}:{other}"])
            continue
        need = kb.needs[t.id]
        other = "harm" if t.direction == "help" else "help"
        good, bad = (need.helps, need.harms) if t.direction == "help" else (need.harms, need.helps)
        serve.append(
            [(f"need:{t.id}:{t.direction}", STATED)]
            + [(f"nutrient:{n}:{a}", link_weight(good, (n, a))) for n, a in good]
        )
        oppose.append([f"need:{t.id}:{other}"] + [f"nutrient:{n}:{a}" for n, a in bad])
    return Plan(serve, oppose)


def member(ids: np.ndarray, holders: np.ndarray | None) -> np.ndarray:
    """Which of ``ids`` are in ``holders`` (item ids, small non-negative integers): a
    mask over the id range, linear where ``np.isin`` sorts."""
    if holders is None or not len(holders) or not len(ids):
        return np.zeros(len(ids), bool)
    top = int(max(ids.max(), holders.max())) + 1
    mask = np.zeros(top, bool)
    mask[holders] = True
    return mask[ids]


def judge_many(
    p: Plan, ids: np.ndarray, holders: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(support in [0, 1], opposes a target) for each item of ``ids``, from the items
    that hold each fact token: the vectorised ``judge`` (a test keeps the two equal)."""
    n = max(len(p.serve), 1)
    support = np.zeros(len(ids))
    against = np.zeros(len(ids), bool)
    has = {t: member(ids, holders.get(t)) for t in p.tokens}
    for serve, oppose in zip(p.serve, p.oppose, strict=True):
        stated = has[serve[0][0]]
        best = np.zeros(len(ids))
        for token, w in serve:
            best = np.maximum(best, w * has[token])
        opposed = np.zeros(len(ids), bool)
        for token in oppose:
            opposed |= has[token]
        against |= opposed & ~stated
        support += np.where(opposed & ~stated, 0.0, best)
    return support / n, against


def query_side(parse: Parse) -> str | None:
    """``good`` or ``bad``: which side of health a query with needs asks for; None for
    a query with no need, or with needs on both sides."""
    sides = {t.direction for t in parse.targets if t.kind == "need"}
    if sides == {"help"}:
        return "good"
    if sides == {"harm"}:
        return "bad"
    return None


def final_score(
    support: np.ndarray, base: np.ndarray, health: np.ndarray, side: str | None
) -> np.ndarray:
    """The score of each item for a query with targets, in [0, 1]."""
    h = health if side == "good" else (1.0 - health if side == "bad" else np.full_like(health, 0.5))
    return W_SUPPORT * support + W_BASE * np.clip(base, 0.0, 1.0) + W_HEALTH * h
