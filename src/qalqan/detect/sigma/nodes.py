"""The condition of a compiled rule: a small tree of tests on fields, each a Polars expression.

The compiler turns a pySigma condition into this tree; the engine evaluates its leaves once
per batch (a leaf shared by many rules is evaluated once) and combines them per rule.

Case-insensitive tests read a lowercase *shadow* of their field (:func:`lower`), which the
engine adds to a batch once for every rule that reads it. Keywords (values without a field)
read :data:`KEYWORDS`, the text of every field of a row joined with newlines. Every leaf is
true or false, never null: a test on a field the event lacks is false, so ``not`` of it is
true, as Sigma wants.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias, TypeVar

import polars as pl

__all__ = [
    "KEYWORDS",
    "All",
    "AnyOf",
    "Cidr",
    "Compare",
    "Exists",
    "FieldRef",
    "Glob",
    "Leaf",
    "Literal",
    "Node",
    "Not",
    "Null",
    "Regex",
    "Text",
    "escape",
    "is_lower",
    "leaves",
    "lower",
    "normalize",
]

KEYWORDS: Final = "@keywords"
"""The pseudo-field keywords are searched in: every field of the row, joined by newlines."""
_LOWER: Final = "@lower:"
_T = TypeVar("_T")
_META: Final = frozenset("\\.+*?()|[]{}^$#&-~")
_SHORT_LIST: Final = 2
"""Up to this many prefixes or suffixes are tested one by one; more go into one regex."""

Literal: TypeAlias = tuple[str, str]
"""A column and a text that must occur in it."""


def lower(name: str) -> str:
    """The lowercase shadow column of field ``name``."""
    return _LOWER + name


def is_lower(column: str) -> str | None:
    """The field a shadow column shadows, or None for a plain column."""
    return column[len(_LOWER) :] if column.startswith(_LOWER) else None


def escape(text: str) -> str:
    """``text`` as a regular expression matching exactly it (Rust regex syntax)."""
    out = []
    for char in text:
        if char in _META:
            out.append("\\" + char)
        elif ord(char) < 0x20 or char == "\x7f":
            out.append(f"\\x{{{ord(char):x}}}")
        else:
            out.append(char)
    return "".join(out)


def _regex_any(values: Iterable[str]) -> str:
    return "|".join(escape(v) for v in values)


@dataclass(frozen=True, slots=True)
class Glob:
    """A value with wildcards, as a regular expression, and its longest plain part."""

    regex: str
    literal: str


class Leaf:
    """A test on one field of the event."""

    field: str

    def expression(self) -> pl.Expr:
        """A boolean expression, never null."""
        raise NotImplementedError

    def columns(self) -> frozenset[str]:
        """The columns the expression reads (fields or their shadows)."""
        return frozenset({self.field})

    def literals(self) -> frozenset[Literal] | None:
        """Texts, one of which occurs in the event wherever the test holds; None if the test
        can hold without any (a negation, a regular expression, a number range ...)."""
        return None


@dataclass(frozen=True, slots=True)
class Text(Leaf):
    """Does the field equal, start with, end with, contain or match one of these values?

    Values are lowercase and compared with the field's shadow unless ``cased``. ``globs`` are
    whole-value patterns (``*`` and ``?`` wildcards) already written as regular expressions.
    """

    field: str
    cased: bool = False
    equals: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    substrings: tuple[str, ...] = ()
    globs: tuple[Glob, ...] = ()
    any_value: bool = False

    @property
    def column(self) -> str:
        """The column compared: the field, or its shadow."""
        return self.field if self.cased else lower(self.field)

    def columns(self) -> frozenset[str]:
        """See :meth:`Leaf.columns`."""
        return frozenset({self.column})

    def expression(self) -> pl.Expr:
        """See :meth:`Leaf.expression`."""
        col = pl.col(self.column)
        tests = []
        if self.any_value:
            tests.append(col.is_not_null())
        if self.equals:
            tests.append(col == self.equals[0] if len(self.equals) == 1 else col.is_in(self.equals))
        if 0 < len(self.prefixes) <= _SHORT_LIST:
            tests.extend(col.str.starts_with(p) for p in self.prefixes)
        elif self.prefixes:
            tests.append(col.str.contains(f"^(?:{_regex_any(self.prefixes)})"))
        if 0 < len(self.suffixes) <= _SHORT_LIST:
            tests.extend(col.str.ends_with(s) for s in self.suffixes)
        elif self.suffixes:
            tests.append(col.str.contains(f"(?:{_regex_any(self.suffixes)})$"))
        if len(self.substrings) == 1:
            tests.append(col.str.contains(self.substrings[0], literal=True))
        elif self.substrings:
            tests.append(col.str.contains(_regex_any(self.substrings)))
        if self.globs:
            tests.append(col.str.contains("|".join(f"(?:{g.regex})" for g in self.globs)))
        test = tests[0] if len(tests) == 1 else pl.any_horizontal(tests)
        return test.fill_null(False)

    def literals(self) -> frozenset[Literal] | None:
        """See :meth:`Leaf.literals`."""
        # The keyword text is built only for the rules that survive the prefilter.
        if self.any_value or self.field == KEYWORDS:
            return None
        texts = [*self.equals, *self.prefixes, *self.suffixes, *self.substrings]
        texts.extend(g.literal for g in self.globs)
        if not all(texts):
            return None
        return frozenset((self.column, t) for t in texts)

    @staticmethod
    def merge(tests: list[Text]) -> Text:
        """One test that holds where any of ``tests`` holds (all on one field and case)."""

        def union(values: Iterable[tuple[_T, ...]]) -> tuple[_T, ...]:
            return tuple(dict.fromkeys(v for group in values for v in group))

        return Text(
            tests[0].field,
            tests[0].cased,
            union(t.equals for t in tests),
            union(t.prefixes for t in tests),
            union(t.suffixes for t in tests),
            union(t.substrings for t in tests),
            union(t.globs for t in tests),
            any(t.any_value for t in tests),
        )


@dataclass(frozen=True, slots=True)
class Regex(Leaf):
    """Does a regular expression match somewhere in the field (``|re``)?

    ``flags`` are inline flag letters (``i``, ``m``, ``s``). A pattern the Rust engine cannot
    compile (look-around, back-references) runs with Python's ``re`` instead (``python``).
    """

    field: str
    pattern: str
    flags: str = ""
    python: bool = False

    @property
    def regex(self) -> str:
        """The pattern with its flags inline."""
        return f"(?{self.flags}){self.pattern}" if self.flags else self.pattern

    def expression(self) -> pl.Expr:
        """See :meth:`Leaf.expression`."""
        col = pl.col(self.field)
        if not self.python:
            return col.str.contains(self.regex).fill_null(False)
        compiled = re.compile(self.regex)
        return col.map_batches(
            lambda values: _matching(values, compiled.search), pl.Boolean, is_elementwise=True
        ).fill_null(False)


def _matching(values: pl.Series, test: Callable[[str], object]) -> pl.Series:
    """Rows whose value passes ``test``, testing each distinct value once."""
    distinct = values.drop_nulls().unique().to_list()
    return values.is_in([v for v in distinct if test(v)])


@dataclass(frozen=True, slots=True)
class Cidr(Leaf):
    """Is the field an IP address in one of these networks (``|cidr``)?"""

    field: str
    networks: tuple[str, ...]

    def _parsed(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n) for n in self.networks]

    def expression(self) -> pl.Expr:
        """See :meth:`Leaf.expression`."""
        col = pl.col(self.field)
        tests = []
        networks = self._parsed()
        v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
        if v4:
            octets = col.str.extract_groups(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
            parts = [octets.struct.field(str(i)).cast(pl.Int64) for i in range(1, 5)]
            number = parts[0] * (1 << 24) + parts[1] * (1 << 16) + parts[2] * (1 << 8) + parts[3]
            valid = pl.all_horizontal([p <= 255 for p in parts])
            ranges = [
                number.is_between(int(n.network_address), int(n.broadcast_address)) for n in v4
            ]
            tests.append(valid & pl.any_horizontal(ranges))
        v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
        if v6:
            tests.append(
                col.map_batches(
                    lambda values: _matching(values, lambda v: _in_v6(v, v6)),
                    pl.Boolean,
                    is_elementwise=True,
                )
            )
        test = tests[0] if len(tests) == 1 else pl.any_horizontal(tests)
        return test.fill_null(False)


def _in_v6(value: str, networks: list[ipaddress.IPv6Network]) -> bool:
    if ":" not in value:
        return False
    try:
        address = ipaddress.IPv6Address(value.split("%", 1)[0])
    except ValueError:
        return False
    return any(address in n for n in networks)


_COMPARE: Final[dict[str, Callable[[pl.Expr, float], pl.Expr]]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "neq": operator.ne,
}


@dataclass(frozen=True, slots=True)
class Compare(Leaf):
    """Is the field, read as a number, ``op`` (lt, lte, gt, gte, neq) ``number``?"""

    field: str
    op: str
    number: float

    def expression(self) -> pl.Expr:
        """See :meth:`Leaf.expression`."""
        value = pl.col(self.field).str.strip_chars().cast(pl.Float64, strict=False)
        return _COMPARE[self.op](value, self.number).fill_null(False)


@dataclass(frozen=True, slots=True)
class FieldRef(Leaf):
    """Does the field equal (start with, end with, contain) another field (``|fieldref``)?
    Compared without regard to case."""

    field: str
    other: str
    starts: bool = False
    ends: bool = False

    def columns(self) -> frozenset[str]:
        """See :meth:`Leaf.columns`."""
        return frozenset({lower(self.field), lower(self.other)})

    def expression(self) -> pl.Expr:
        """See :meth:`Leaf.expression`."""
        value, other = pl.col(lower(self.field)), pl.col(lower(self.other))
        if self.starts and self.ends:
            test = value.str.contains(other, literal=True)
        elif self.starts:
            test = value.str.starts_with(other)
        elif self.ends:
            test = value.str.ends_with(other)
        else:
            test = value == other
        return test.fill_null(False)


@dataclass(frozen=True, slots=True)
class Exists(Leaf):
    """Does the event have the field (``|exists``), or not?"""

    field: str
    present: bool = True

    def expression(self) -> pl.Expr:
        """See :meth:`Leaf.expression`."""
        col = pl.col(self.field)
        return col.is_not_null() if self.present else col.is_null()


@dataclass(frozen=True, slots=True)
class Null(Leaf):
    """Is the field missing or empty (``field: null``)?"""

    field: str

    def expression(self) -> pl.Expr:
        """See :meth:`Leaf.expression`."""
        col = pl.col(self.field)
        return col.is_null() | (col == "")


@dataclass(frozen=True, slots=True)
class All:
    """Every child holds."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one child holds."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not hold."""

    child: Node


Node: TypeAlias = Leaf | All | AnyOf | Not


def leaves(node: Node) -> Iterable[Leaf]:
    """Every leaf of the tree, depth first."""
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Not):
        yield from leaves(node.child)
    else:
        for child in node.children:
            yield from leaves(child)


def normalize(node: Node) -> Node:
    """The same condition, flattened, with tests of one field under an OR merged into one."""
    if isinstance(node, Leaf):
        return node
    if isinstance(node, Not):
        child = normalize(node.child)
        return child.child if isinstance(child, Not) else Not(child)
    kind = type(node)
    children: list[Node] = []
    for child in (normalize(c) for c in node.children):
        children.extend(child.children if isinstance(child, kind) else (child,))
    if kind is AnyOf:
        children = _merge_alternatives(children)
    unique = tuple(dict.fromkeys(children))
    return unique[0] if len(unique) == 1 else kind(unique)


def _merge_alternatives(children: list[Node]) -> list[Node]:
    """Alternatives with tests of one field (and case) merged into one test, in place of the
    first of them."""
    slots: list[Node | tuple[str, bool] | str] = []
    texts: dict[tuple[str, bool], list[Text]] = {}
    networks: dict[str, list[str]] = {}
    for child in children:
        if isinstance(child, Text):
            key = (child.field, child.cased)
            if key not in texts:
                texts[key] = []
                slots.append(key)
            texts[key].append(child)
        elif isinstance(child, Cidr):
            if child.field not in networks:
                networks[child.field] = []
                slots.append(child.field)
            networks[child.field].extend(child.networks)
        else:
            slots.append(child)
    merged: list[Node] = []
    for slot in slots:
        if isinstance(slot, tuple):
            group = texts[slot]
            merged.append(group[0] if len(group) == 1 else Text.merge(group))
        elif isinstance(slot, str):
            merged.append(Cidr(slot, tuple(dict.fromkeys(networks[slot]))))
        else:
            merged.append(slot)
    return merged
