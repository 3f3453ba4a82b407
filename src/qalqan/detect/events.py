"""The shape of events between log readers and matchers.

A reader turns a log into :class:`EventBatch` objects: a Polars frame with one row per event,
a column per field, and four reserved columns that say where each event came from. Matchers
read the fields and keep the reserved columns to name the event in a hit. Batches are bounded
in size, so a sweep's memory does not grow with the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import polars as pl

__all__ = [
    "FILE",
    "LINE",
    "OFFSET",
    "RESERVED",
    "TIME",
    "EventBatch",
    "LineProblem",
    "empty_frame",
]

FILE: Final = "@file"
"""The name of the file the event was read from, as given (``-`` for standard input)."""
LINE: Final = "@line"
"""The 1-based line where the event starts (the record number for formats without lines)."""
OFFSET: Final = "@offset"
"""The byte offset where the event starts in the decompressed stream, or null if unknown."""
TIME: Final = "@time"
"""When the event happened, as ``Datetime("us", "UTC")``, or null if the log does not say."""
RESERVED: Final[tuple[str, ...]] = (FILE, LINE, OFFSET, TIME)

RESERVED_SCHEMA: Final[dict[str, pl.DataType]] = {
    FILE: pl.String(),
    LINE: pl.Int64(),
    OFFSET: pl.Int64(),
    TIME: pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A record a reader could not read: where it is and why. The rest of the file is still
    read."""

    file: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class EventBatch:
    """A bounded batch of events from one file.

    ``frame`` has the reserved columns (:data:`RESERVED`) and one column per field; nested
    objects are flattened with ``.`` between the keys (``id.orig_h``, ``dns.rrname``). A field
    a log leaves out of some records is null there. ``problems`` are the records of this
    stretch of the file that could not be read; ``bytes_read`` is how far the reader has got
    in the file as stored (compressed bytes for a compressed file), for progress reports.
    """

    frame: pl.DataFrame
    format: str
    problems: tuple[LineProblem, ...] = field(default=())
    bytes_read: int = 0

    @property
    def file(self) -> str:
        """The file this batch came from (empty batches may have no rows to say it)."""
        return str(self.frame[FILE][0]) if self.frame.height else ""


def empty_frame() -> pl.DataFrame:
    """A frame with the reserved columns and no rows."""
    return pl.DataFrame(schema=RESERVED_SCHEMA)
