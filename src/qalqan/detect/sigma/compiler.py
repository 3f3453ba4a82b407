"""Compiling a parsed Sigma rule into a condition tree of Polars tests, once.

This is a small pySigma backend: it walks the condition pySigma parses from a rule (with the
modifiers already applied to the values: ``contains`` and the like become wildcards,
``windash``, ``base64offset`` and ``wide`` become lists of values) and builds a
:mod:`~qalqan.detect.sigma.nodes` tree. Sigma's semantics, as implemented:

- field names are column names, case-sensitive;
- strings compare without regard to case unless ``|cased``; ``*`` and ``?`` are wildcards
  (``\\*`` a plain star); values that are a plain prefix, suffix or substring use the plain
  string tests, other wildcard values a regular expression;
- ``|re`` searches the field (unanchored) with the Rust regex engine, flags ``|i``, ``|m``,
  ``|s`` inline; a pattern Rust cannot compile (look-around, back-references) runs with Python's
  ``re`` for that test only;
- numbers compare as text (``EventID: 4688`` is the string ``"4688"``), ``|gt`` and friends as
  numbers; ``|cidr`` tests IPv4 addresses numerically and IPv6 ones with :mod:`ipaddress`;
- ``field: null`` holds for a missing or empty field, ``|exists`` for a present one;
- a value without a field (a keyword) is searched in every field of the event (see
  :data:`~qalqan.detect.sigma.nodes.KEYWORDS`), as a substring;
- a list of conditions is their OR.

A rule using what is not supported (correlations, aggregations and ``near``, timestamp
modifiers, placeholders that need a pipeline) raises :class:`Unsupported` with the reason.
"""

from __future__ import annotations

import re
from typing import Final

import polars as pl
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaQueryExpression,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from qalqan.detect.sigma.nodes import (
    KEYWORDS,
    All,
    AnyOf,
    Cidr,
    Compare,
    Exists,
    FieldRef,
    Glob,
    Node,
    Not,
    Null,
    Regex,
    Text,
    escape,
    normalize,
)

__all__ = ["Unsupported", "compile_condition"]

_OPERATORS: Final = {
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
    CompareOperators.NEQ: "neq",
}
_FLAGS: Final = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}
_PROBE: Final = pl.Series([""], dtype=pl.String)
"""A value to compile regular expressions against, to learn whether Rust's engine takes them."""


class Unsupported(Exception):
    """The rule uses something this engine does not implement; the message says what."""


def compile_condition(rule: SigmaRule) -> Node:
    """The rule's condition as a tree of tests (several conditions are OR-ed)."""
    trees = []
    for condition in rule.detection.parsed_condition:
        if "|" in condition.condition:
            raise Unsupported(
                "aggregations and near are not supported (condition "
                f"{condition.condition!r}; Sigma correlations replace them)"
            )
        try:
            parsed = condition.parse()
        except SigmaError as exc:
            raise Unsupported(ValueError.__str__(exc)) from exc
        if parsed is None:
            raise Unsupported("the condition selects nothing")
        trees.append(_node(parsed))
    return normalize(AnyOf(tuple(trees)))


def _node(
    item: ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression,
) -> Node:
    if isinstance(item, ConditionFieldEqualsValueExpression):
        return _field_test(item.field, item.value)
    if isinstance(item, ConditionValueExpression):
        return _keyword_test(item.value)
    args = [_node(a) for a in item.args if a is not None]
    if isinstance(item, ConditionAND):
        return All(tuple(args))
    if isinstance(item, ConditionOR):
        return AnyOf(tuple(args))
    if isinstance(item, ConditionNOT):
        return Not(args[0])
    raise Unsupported(f"condition element {type(item).__name__} is not supported")


def _field_test(name: str, value: SigmaType) -> Node:
    # Order matters: cased strings are strings, timestamp parts are numbers.
    if isinstance(value, SigmaExpansion):
        return AnyOf(tuple(_field_test(name, v) for v in value.values))
    if isinstance(value, SigmaCasedString):
        return _text(name, value, cased=True)
    if isinstance(value, SigmaString):
        return _text(name, value, cased=False)
    if isinstance(value, SigmaTimestampPart):
        raise Unsupported("timestamp modifiers (|minute, |hour, |day ...) are not supported")
    if isinstance(value, SigmaNumber):
        return Text(name, cased=True, equals=(str(value.number),))
    if isinstance(value, SigmaBool):
        return Text(name, equals=(str(value.boolean).lower(),))
    if isinstance(value, SigmaNull):
        return Null(name)
    if isinstance(value, SigmaExists):
        return Exists(name, value.exists)
    if isinstance(value, SigmaRegularExpression):
        return _regex(name, value)
    if isinstance(value, SigmaCIDRExpression):
        return Cidr(name, (str(value.network),))
    if isinstance(value, SigmaCompareExpression):
        return Compare(name, _OPERATORS[value.op], float(value.number.number))
    if isinstance(value, SigmaFieldReference):
        return FieldRef(name, value.field, value.starts_with, value.ends_with)
    return _unsupported_value(value)


def _keyword_test(value: SigmaType) -> Node:
    if isinstance(value, SigmaExpansion):
        return AnyOf(tuple(_keyword_test(v) for v in value.values))
    if isinstance(value, SigmaString):
        return _keyword(value, cased=isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaNumber) and not isinstance(value, SigmaTimestampPart):
        return Text(KEYWORDS, cased=True, substrings=(str(value.number),))
    if isinstance(value, SigmaRegularExpression):
        return _regex(KEYWORDS, value)
    return _unsupported_value(value)


def _unsupported_value(value: SigmaType) -> Node:
    if isinstance(value, SigmaQueryExpression):
        raise Unsupported("query expressions (from placeholders) are not supported")
    raise Unsupported(f"values of type {type(value).__name__} are not supported")


def _parts(value: SigmaString, cased: bool) -> list[str | SpecialChars]:
    parts: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            raise Unsupported(f"placeholder %{part.name}% needs a processing pipeline to expand it")
        if isinstance(part, str):
            text = part if cased else part.lower()
            if parts and isinstance(parts[-1], str):
                parts[-1] += text
            else:
                parts.append(text)
        else:
            parts.append(part)
    return parts


def _text(name: str, value: SigmaString, *, cased: bool) -> Text:
    parts = _parts(value, cased)
    if not parts:
        return Text(name, cased, equals=("",))
    if all(p is SpecialChars.WILDCARD_MULTI for p in parts):
        return Text(name, cased, any_value=True)
    plain = [p for p in parts if isinstance(p, str)]
    specials = [p for p in parts if not isinstance(p, str)]
    if not specials:
        return Text(name, cased, equals=(plain[0],))
    if len(plain) == 1 and all(s is SpecialChars.WILDCARD_MULTI for s in specials):
        starred_start = parts[0] is SpecialChars.WILDCARD_MULTI
        starred_end = parts[-1] is SpecialChars.WILDCARD_MULTI
        if len(parts) == 3 and starred_start and starred_end:
            return Text(name, cased, substrings=(plain[0],))
        if len(parts) == 2 and starred_end:
            return Text(name, cased, prefixes=(plain[0],))
        if len(parts) == 2 and starred_start:
            return Text(name, cased, suffixes=(plain[0],))
    regex = "(?s)^" + _wildcards(parts, ".*", ".") + "$"
    return Text(name, cased, globs=(Glob(regex, max(plain, key=len, default="")),))


def _keyword(value: SigmaString, *, cased: bool) -> Text:
    parts = _parts(value, cased)
    while parts and parts[0] is SpecialChars.WILDCARD_MULTI:
        parts.pop(0)
    while parts and parts[-1] is SpecialChars.WILDCARD_MULTI:
        parts.pop()
    if not parts:
        return Text(KEYWORDS, cased, any_value=True)
    plain = [p for p in parts if isinstance(p, str)]
    if len(parts) == 1 and plain:
        return Text(KEYWORDS, cased, substrings=(plain[0],))
    # Keywords search fields joined by newlines: wildcards must not cross into the next field.
    regex = _wildcards(parts, "[^\n]*", "[^\n]")
    return Text(KEYWORDS, cased, globs=(Glob(regex, max(plain, key=len, default="")),))


def _wildcards(parts: list[str | SpecialChars], many: str, one: str) -> str:
    return "".join(
        escape(p) if isinstance(p, str) else many if p is SpecialChars.WILDCARD_MULTI else one
        for p in parts
    )


def _regex(name: str, value: SigmaRegularExpression) -> Regex:
    if any(isinstance(p, Placeholder) for p in value.regexp.s):
        raise Unsupported("placeholders in regular expressions need a processing pipeline")
    flags = "".join(sorted(_FLAGS[f] for f in value.flags))
    test = Regex(name, value.regexp.to_plain_regex(), flags)
    try:
        _PROBE.str.contains(test.regex)
    except pl.exceptions.PolarsError:
        try:
            re.compile(test.regex)
        except re.error as exc:
            raise Unsupported(f"regular expression {test.regex!r} is invalid: {exc}") from exc
        return Regex(name, test.pattern, flags, python=True)
    return test
