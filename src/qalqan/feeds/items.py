"""What a feed source yields: values, STIX objects, rejects, and "this part has not changed".

Sources only parse; the pipeline normalizes, checks warninglists, deduplicates and stores. A
source yields items in the order it reads them, each carrying the line (or item number) it came
from so that a reject can say where it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qalqan.domain.handling import TLP

__all__ = [
    "NO_CONTEXT",
    "Context",
    "Document",
    "Item",
    "Reject",
    "StixObject",
    "Unchanged",
    "Value",
]


@dataclass(frozen=True, slots=True)
class Context:
    """What a feed says about a value besides the value itself.

    ``tlp`` can only raise the feed's TLP (a MISP event tagged ``tlp:amber`` in a GREEN feed stays
    AMBER); ``detect`` is False for values the feed marks as not for detection (MISP ``to_ids``).
    """

    labels: tuple[str, ...] = ()
    description: str | None = None
    first_seen: int | None = None  # microseconds since the epoch
    confidence: int | None = None
    tlp: TLP | None = None
    detect: bool = True
    extra: tuple[tuple[str, str], ...] = ()  # other columns kept as context, e.g. malware family


NO_CONTEXT = Context()


@dataclass(slots=True)
class Value:
    """One atomic value found at ``line``; ``kind`` is None when the pipeline must detect it."""

    line: int
    raw: str
    kind: str | None = None
    context: Context = NO_CONTEXT
    origin: str | None = None  # the part of the feed it came from: a MISP event, a report


@dataclass(slots=True)
class Reject:
    """A part of the feed that could not be read, and why."""

    line: int
    reason: str
    field: str | None = None
    raw: str | None = None


@dataclass(slots=True)
class StixObject:
    """A STIX object to store as it is (STIX and TAXII sources)."""

    line: int
    obj: Any


@dataclass(slots=True)
class Unchanged:
    """A part of the feed the source did not read again because it has not changed since the
    last run (``origin`` None: the whole feed, e.g. HTTP 304): its values are still present."""

    origin: str | None = None


@dataclass(slots=True)
class Document:
    """A document the values of ``origin`` were found in (a threat report): the pipeline stores
    it as a STIX ``report`` whose ``object_refs`` are those values' indicators."""

    origin: str
    name: str
    description: str | None = None
    published: int | None = None  # microseconds since the epoch
    url: str | None = None
    labels: tuple[str, ...] = field(default_factory=tuple)


Item = Value | Reject | StixObject | Unchanged | Document
