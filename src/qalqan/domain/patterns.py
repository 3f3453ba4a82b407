"""STIX 2.1 patterns: whether they are valid, and which observables they name.

Nearly every indicator in the wild is one equality comparison, or a few joined by ``OR``, such as
``[ipv4-addr:value = '198.51.100.7']``. Those are recognised by a regular expression that accepts
a strict subset of the STIX pattern grammar, which takes microseconds. Anything outside that
subset goes to the reference parser of ``stix2-patterns``: correct, but a few hundred times
slower, so its answers are kept in a bounded cache.

Beyond the grammar, :func:`validate` also refuses an equality comparison whose value is not a
valid observable of its path (``ipv4-addr:value = '999.1.1.1'``), since such an indicator could
never match anything.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from stix2patterns.exceptions import ParseException
from stix2patterns.v21.pattern import Pattern
from stix2patterns.validator import run_validator

from qalqan.domain.observables import InvalidObservable, Observable, from_sco_property, hash_kind

__all__ = ["PatternInfo", "analyze", "pattern_of", "validate"]


@dataclass(frozen=True, slots=True)
class PatternInfo:
    """What a pattern says about observables.

    ``observables`` are the canonical values the pattern compares with ``=`` on an indexed path
    (``ipv4-addr:value``, ``ipv6-addr:value``, ``domain-name:value``, ``url:value``,
    ``email-addr:value``, ``file:hashes.<MD5|SHA-1|SHA-256|SHA-512>``), without repeats; in
    pattern order when ``simple``. ``simple`` is true when that list is the whole pattern:
    nothing but such comparisons joined by ``OR`` or ``AND`` inside observations, observations
    joined by ``OR``, and every value valid.
    """

    observables: tuple[Observable, ...]
    simple: bool


_NOTHING: Final = PatternInfo((), simple=False)

# The simple subset. Whitespace is the ASCII kind only and paths are written without spaces;
# anything else is still valid STIX, it just takes the slow road.
_WS = "[ \t\r\n]"
_STRING_BODY = r"[^'\\]*(?:\\['\\][^'\\]*)*"  # unrolled: far faster than an alternation
_STRING = f"'{_STRING_BODY}'"
_VALUE_TYPES = "ipv4-addr|ipv6-addr|domain-name|url|email-addr"
_PATH = rf"(?:{_VALUE_TYPES}):value|file:hashes\.(?:[A-Za-z_][A-Za-z0-9_]*|'[A-Za-z0-9_-]+')"
_COMPARISON = rf"(?:{_PATH}){_WS}*==?{_WS}*{_STRING}"
_OBSERVATION = rf"\[{_WS}*{_COMPARISON}(?:{_WS}*(?:AND|OR){_WS}+{_COMPARISON})*{_WS}*\]"
_SIMPLE_PATTERN_RE: Final = re.compile(
    rf"{_WS}*{_OBSERVATION}(?:{_WS}*OR{_WS}*{_OBSERVATION})*{_WS}*"
)
# Applied only to text the expression above accepted, where each match is one comparison.
_COMPARISON_RE: Final = re.compile(
    rf"(?P<path>(?P<type>{_VALUE_TYPES}):value|file:hashes\.'?(?P<key>[A-Za-z0-9_-]+)'?)"
    rf"{_WS}*==?{_WS}*'(?P<literal>{_STRING_BODY})'"
)
_ESCAPE_RE: Final = re.compile(r"\\(['\\])")
_IDENTIFIER_RE: Final = re.compile("[A-Za-z_][A-Za-z0-9_]*")
_VALUE_PATH: Final[tuple[str, ...]] = ("value",)


def _unescape(literal: str) -> str:
    """The text of a string literal's body: ``\\'`` and ``\\\\`` undone."""
    return _ESCAPE_RE.sub(r"\1", literal) if "\\" in literal else literal


def _examine_simple(pattern: str) -> tuple[str | None, PatternInfo] | None:
    """Reason and info for a pattern in the simple subset; ``None`` if a hash key is not indexed."""
    found: list[Observable] = []
    reason: str | None = None
    for path_text, sco_type, key, literal in _COMPARISON_RE.findall(pattern):
        path: tuple[str, ...] = _VALUE_PATH
        if not sco_type:
            if hash_kind(key) is None:
                return None
            sco_type, path = "file", ("hashes", key)
        try:
            observable = from_sco_property(sco_type, path, _unescape(literal))
        except InvalidObservable as exc:
            reason = reason or f"{path_text} {exc}"
            continue
        if observable is not None:
            found.append(observable)
    observables = tuple(dict.fromkeys(found)) if len(found) > 1 else tuple(found)
    return reason, PatternInfo(observables, simple=reason is None)


def _path_text(sco_type: str, path: Sequence[str]) -> str:
    """An object path written back as STIX does, e.g. ``file:hashes.'SHA-256'``."""
    steps = (step if _IDENTIFIER_RE.fullmatch(step) else f"'{step}'" for step in path)
    return f"{sco_type}:{'.'.join(steps)}"


def _one_line(message: str) -> str:
    return " ".join(message.removeprefix("FAIL: ").split())


@functools.lru_cache(maxsize=65536)
def _examine_slowly(pattern: str) -> tuple[str | None, PatternInfo]:
    """Reason and info from the reference parser, for any pattern."""
    if not pattern.strip():
        return "pattern is empty", _NOTHING
    try:
        errors = run_validator(pattern, stix_version="2.1")
        reason = _one_line(errors[0]) if errors else None
        comparisons = Pattern(pattern).inspect().comparisons
    except ParseException as exc:
        return reason or _one_line(str(exc)), _NOTHING
    except RecursionError:
        # The reference parser recurses once per nesting level and per chained operator.
        return "pattern is nested or chained too deeply to check", _NOTHING
    # A pattern can parse and still fail the reference checks (a malformed hash): its other
    # values are reported all the same, as the fast road does.
    found: list[Observable] = []
    for sco_type, tests in comparisons.items():
        for path, operator, literal in tests:
            if operator not in ("=", "==") or not literal.startswith("'"):
                continue
            if not all(isinstance(step, str) for step in path):
                continue
            try:
                observable = from_sco_property(sco_type, path, _unescape(literal[1:-1]))
            except InvalidObservable as exc:
                reason = reason or f"{_path_text(sco_type, path)} {exc}"
                continue
            if observable is not None:
                found.append(observable)
    return reason, PatternInfo(tuple(dict.fromkeys(found)), simple=False)


# Small: it is there so that validate() and analyze() of the same pattern share one reading.
@functools.lru_cache(maxsize=256)
def _examine(pattern: str) -> tuple[str | None, PatternInfo]:
    if _SIMPLE_PATTERN_RE.fullmatch(pattern) is not None:
        result = _examine_simple(pattern)
        if result is not None:
            return result
    return _examine_slowly(pattern)


def validate(pattern: str) -> str | None:
    """``None`` if ``pattern`` is a valid STIX 2.1 pattern, else a one-line reason.

    Valid means the reference grammar accepts it and every ``=`` comparison on an indexed path
    (see :class:`PatternInfo`) holds a value that normalizes, of the right IP version.
    """
    return _examine(pattern)[0]


def analyze(pattern: str) -> PatternInfo:
    """The observables ``pattern`` names by equality, and whether they are all it says.

    Values that do not normalize are left out (and make ``simple`` false). A pattern the grammar
    refuses gives no observables; use :func:`validate` to learn why.
    """
    return _examine(pattern)[1]


_PATH_OF_KIND: Final[dict[str, str]] = {
    "domain": "domain-name:value",
    "url": "url:value",
    "email": "email-addr:value",
    "md5": "file:hashes.MD5",
    "sha1": "file:hashes.'SHA-1'",
    "sha256": "file:hashes.'SHA-256'",
    "sha512": "file:hashes.'SHA-512'",
}


def pattern_of(observable: Observable) -> str:
    """The one-comparison STIX pattern that matches ``observable`` (a canonical value), e.g.
    ``[ipv4-addr:value = '203.0.113.0/24']``; :func:`analyze` reads it back to the same value."""
    if observable.kind in ("ip", "cidr"):
        path = "ipv6-addr:value" if ":" in observable.value else "ipv4-addr:value"
    else:
        path = _PATH_OF_KIND[observable.kind]
    literal = observable.value.replace("\\", "\\\\").replace("'", "\\'")
    return f"[{path} = '{literal}']"
