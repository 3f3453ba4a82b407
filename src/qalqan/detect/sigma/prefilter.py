"""The literal prefilter: which rules cannot match a batch, learnt from one scan per column.

Most Sigma rules can only match an event that holds some literal text: ``Image|endswith:
'\\x.exe'`` needs ``\\x.exe`` in ``Image``. :func:`requirements` derives, for a rule, clauses
of such literals: every clause must have one of its literals somewhere in the batch for the
rule to match anything. A batch is scanned once per column, with every literal any rule needs
there (one Aho-Corasick pass), and only rules whose clauses all hold are evaluated. A rule
with no clause (only negations, regular expressions, numbers ...) always runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import polars as pl

from qalqan.detect.sigma.nodes import All, AnyOf, Leaf, Literal, Node, Not

__all__ = ["Clause", "patterns_by_column", "requirements", "satisfied", "scan"]

Clause = frozenset[Literal]
"""Literals, one of which must occur for a rule to match."""


def requirements(node: Node) -> tuple[Clause, ...]:
    """Clauses that all hold wherever ``node`` holds (none if nothing is certain)."""
    if isinstance(node, Leaf):
        literals = node.literals()
        return (literals,) if literals else ()
    if isinstance(node, Not):
        return ()
    if isinstance(node, All):
        return tuple(dict.fromkeys(c for child in node.children for c in requirements(child)))
    return _alternative(node)


def _alternative(node: AnyOf) -> tuple[Clause, ...]:
    # Each alternative has clauses of its own; the strongest of each, joined, holds for all.
    strongest = []
    for child in node.children:
        clauses = requirements(child)
        if not clauses:
            return ()
        strongest.append(max(clauses, key=_strength))
    return (frozenset().union(*strongest),)


def _strength(clause: Clause) -> tuple[int, int]:
    """Longer literals are rarer; fewer alternatives are rarer."""
    return min(len(text) for _, text in clause), -len(clause)


def patterns_by_column(clauses: Iterable[Clause]) -> dict[str, list[str]]:
    """Every literal of ``clauses``, by the column it must occur in."""
    by_column: dict[str, set[str]] = defaultdict(set)
    for clause in clauses:
        for column, text in clause:
            by_column[column].add(text)
    return {column: sorted(texts) for column, texts in by_column.items()}


def scan(column: str, texts: list[str]) -> pl.Expr:
    """Per value of ``column``, the ``texts`` that occur in it (one Aho-Corasick pass)."""
    return pl.col(column).str.extract_many(texts, overlapping=True)


def satisfied(clauses: tuple[Clause, ...], found: set[Literal]) -> bool:
    """Whether every clause has a literal that occurs."""
    return all(not found.isdisjoint(clause) for clause in clauses)
