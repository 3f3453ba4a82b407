"""What every export format shares: the records it renders, the context it renders in, and
the text hygiene that keeps a value or a description from breaking out of its place.

A format is a small class with a ``name``, the observable ``kinds`` it can express (``None``
for formats of whole STIX objects), a media type, and :meth:`ExportFormat.render`, which turns
the selected records into chunks of bytes, each tagged with the file it belongs to: ``MAIN``
for the export itself, a plain file name for a side file (Suricata's dataset files).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Final, Protocol

from qalqan.domain.handling import TLP

__all__ = [
    "CONFIDENCE",
    "KIND",
    "MAIN",
    "NAME",
    "OWNER",
    "STIX_ID",
    "TLP_LEVEL",
    "VALUE",
    "Chunk",
    "ExportFormat",
    "Indicator",
    "RenderContext",
    "Source",
    "one_line",
]

MAIN = ""

# (file name, bytes): MAIN or the name of a side file.
Chunk = tuple[str, bytes]


# One active observable to export, with the indicator that names it: a plain tuple, read by
# position (KIND, VALUE, ...), because a million of them are made per export.
Indicator = tuple[str, str, str, str | None, int | None, int, str]
KIND: Final = 0
VALUE: Final = 1
STIX_ID: Final = 2
NAME: Final = 3
CONFIDENCE: Final = 4
TLP_LEVEL: Final = 5
OWNER: Final = 6


class Source(Protocol):
    """What a format reads: indicator observables, or whole STIX objects."""

    def indicators(self) -> Iterator[list[Indicator]]:
        """Active observables in batches, each value once per kind; ``OWNER`` is an org id
        (see ``RenderContext.org_names``)."""
        ...

    def versions(self) -> Iterator[list[tuple[int, str]]]:
        """``(date_added, content)`` of latest versions, in batches."""
        ...


@dataclass
class RenderContext:
    """Where and for whom an export is rendered, and what a format had to leave out.

    ``stem`` names side files (``<stem>-domains.lst``) and is safe in a file name; ``org`` is
    the exporting org's name (user text: formats must escape it); ``generated`` is in µs.
    """

    org: str
    generated: int
    ceiling: TLP
    stem: str = "qalqan"
    # The prefix of a link to one object, e.g. https://node/api/v1/objects/
    object_url: str | None = None
    org_names: dict[str, str] = field(default_factory=dict)  # every org's name, by id
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str, count: int = 1) -> None:
        """Count values left out, by reason."""
        self.skipped[reason] += count


class ExportFormat:
    """Base of the export formats; subclasses register by being a module's ``FORMAT``."""

    name: ClassVar[str]
    description: ClassVar[str]
    media_type: ClassVar[str]
    suffix: ClassVar[str]
    # Observable kinds the format can express; None: it exports STIX objects, not observables.
    kinds: ClassVar[tuple[str, ...] | None]
    # True when it writes side files beside the main one.
    has_side_files: ClassVar[bool] = False

    def render(self, source: Source, ctx: RenderContext) -> Iterator[Chunk]:
        """The export's bytes, in chunks tagged with the file they belong to."""
        raise NotImplementedError


# Control and format characters (C0, C1, DEL, bidi overrides, line and paragraph separators):
# none may reach a line-oriented output.
_UNPRINTABLE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+"
)


def one_line(text: str | None, limit: int = 200) -> str:
    """``text`` as one printable line: control characters become a space, runs of space one,
    at most ``limit`` characters. Empty for None."""
    if not text:
        return ""
    if text.isprintable() and "  " not in text and len(text) <= limit:
        # The common case: nothing to clean (isprintable is false for every control, format
        # and separator character but the plain space).
        return text.strip()
    cleaned = _UNPRINTABLE_RE.sub(" ", text)
    if not cleaned.isprintable():
        cleaned = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in cleaned)
    cleaned = " ".join(cleaned.split())
    return cleaned[:limit].rstrip()
