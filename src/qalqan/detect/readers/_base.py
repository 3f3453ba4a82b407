"""The reader contract and the registry formats add themselves to.

A reader is a small class registered by name. Most readers are line based: the shared
:meth:`LogReader.read` cuts the stream into chunks of whole records (:func:`iter_chunks`) and
hands each to the format's :meth:`LogReader.parse`, which returns the fields as text columns
plus where each record starts; the base class then adds derived fields, keeps the wanted
columns and puts the reserved columns in front.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import BinaryIO, ClassVar, Final, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl

from qalqan.detect.events import EventBatch, LineProblem
from qalqan.detect.readers._frames import finish, select_columns
from qalqan.detect.readers._stream import (
    Chunk,
    cut_at_last_newline,
    iter_chunks,
    newline_positions,
)

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "KINDS",
    "READERS",
    "LineIndex",
    "LogReader",
    "Parsed",
    "RecordMismatch",
    "register",
    "with_url",
]

DEFAULT_BATCH_BYTES: Final = 32 << 20

KINDS: Final = frozenset({"ip", "domain", "url", "email", "md5", "sha1", "sha256", "hash", "host"})
"""The observable kinds a reader's ``default_fields`` may name (what the IOC matcher reads)."""


class RecordMismatch(Exception):
    """A parser read a different number of records than the chunk has lines with content."""


@dataclass(frozen=True, slots=True)
class LineIndex:
    """Where each line of a chunk starts and ends (the end excludes ``\\r\\n``)."""

    data: bytes
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]

    @classmethod
    def of(cls, data: bytes, newlines: npt.NDArray[np.int64]) -> LineIndex:
        """Index the lines of ``data`` from the positions of its newlines."""
        size = len(data)
        if not size:
            empty = np.empty(0, dtype=np.int64)
            return cls(data, empty, empty)
        ends = newlines if len(newlines) and newlines[-1] == size - 1 else np.append(newlines, size)
        starts = np.empty(len(ends), dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        if b"\r" in data:
            raw = np.frombuffer(data, dtype=np.uint8)
            nonempty = ends > starts
            ends = ends - (nonempty & (raw[np.where(nonempty, ends - 1, 0)] == 0x0D))
        return cls(data, starts, ends)

    def nonempty(self) -> npt.NDArray[np.int64]:
        """The lines with at least one byte."""
        return np.flatnonzero(self.ends > self.starts).astype(np.int64, copy=False)

    def content_lines(self) -> npt.NDArray[np.int64]:
        """The lines with something besides whitespace."""
        raw = np.frombuffer(self.data, dtype=np.uint8)
        nonempty = self.ends > self.starts
        first = np.zeros(len(self.starts), dtype=np.uint8)
        first[nonempty] = raw[self.starts[nonempty]]
        # Bytes up to the space are whitespace or controls: worth a look whether the line is blank.
        doubtful = first <= 0x20
        kept = nonempty & ~doubtful
        for i in np.flatnonzero(nonempty & doubtful):
            kept[i] = bool(self.data[self.starts[i] : self.ends[i]].strip())
        return np.flatnonzero(kept).astype(np.int64, copy=False)

    def records_for(self, rows: int) -> npt.NDArray[np.int64]:
        """The lines of the ``rows`` records a parser that skips blank lines read; raises
        :class:`RecordMismatch` if the chunk does not have that many."""
        nonempty = self.nonempty()
        if rows == len(nonempty):
            return nonempty
        # Finding whitespace-only lines costs a look at every line start, so only when needed.
        content = self.content_lines()
        if rows == len(content):
            return content
        raise RecordMismatch(f"read {rows} records from {len(content)} lines")


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a format's parser made of a chunk: the fields (text columns), and for each row its
    1-based line, its byte offset in the stream (or none), and its time (or none)."""

    fields: pl.DataFrame
    lines: npt.NDArray[np.int64] | pl.Series
    offsets: npt.NDArray[np.int64] | pl.Series | None
    time: pl.Series | None
    problems: tuple[LineProblem, ...] = ()


class LogReader(ABC):
    """Turns one log format into bounded :class:`~qalqan.detect.events.EventBatch` objects.

    An instance keeps what it learned of a file's layout (a Zeek or CSV header), so a follower
    that feeds newly written records to :meth:`parse_chunk` uses the instance that read the
    file's start.
    """

    name: ClassVar[str]
    """The format's name, as given to ``read_events(format=...)``."""
    description: ClassVar[str]
    """One line for people choosing a format."""
    default_fields: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """Field → observable kind an IOC sweep looks at when not told which fields to read."""
    derived_sources: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType({})
    """Field :meth:`derived_fields` computes → the fields it is computed from."""
    multiline_records: ClassVar[bool] = False
    """Whether a record may span lines (then :meth:`cut` finds where records end)."""
    sniff_order: ClassVar[int] = 100
    """Auto-detection asks readers in this order, lowest first: specific formats go before the
    general ones that would also accept them."""

    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes) -> bool:
        """Whether a log starting with ``head`` (decompressed, up to 64 KiB) is in this format."""

    def read(
        self,
        stream: BinaryIO,
        file: str,
        *,
        columns: Sequence[str] | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> Iterator[EventBatch]:
        """Read the whole stream as batches of about ``batch_bytes`` of log each.

        ``columns`` is a hint: only those fields are returned (absent ones as null ``String``
        columns), and formats that can skip the others while parsing do. Records that cannot
        be read are reported in each batch's ``problems`` and do not stop the rest.
        """
        cut = self.cut if self.multiline_records else None
        for chunk in iter_chunks(stream, file, batch_bytes, cut):
            yield self.batch_of(chunk, file, columns)

    def parse_chunk(
        self,
        data: bytes,
        *,
        file: str,
        first_line: int = 1,
        offset: int = 0,
        columns: Sequence[str] | None = None,
    ) -> EventBatch:
        """Parse ``data``, whole records starting at line ``first_line`` and byte ``offset`` of
        ``file`` (for following a log as it grows)."""
        chunk = Chunk(data, newline_positions(data), first_line, offset, offset + len(data))
        return self.batch_of(chunk, file, columns)

    def cut(self, data: bytes) -> int:
        """Where the last whole record in ``data`` ends (0 if none does yet); only asked when
        :attr:`multiline_records` says records are not simply lines."""
        return cut_at_last_newline(data)

    @abstractmethod
    def parse(self, chunk: Chunk, file: str, columns: Sequence[str] | None) -> Parsed:
        """Parse a chunk of whole records; ``columns`` (a hint) already includes what derived
        fields need."""

    def derived_fields(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add fields computed from others (see :attr:`derived_sources`); none by default."""
        return frame

    def source_columns(self, columns: Sequence[str] | None) -> list[str] | None:
        """The fields to read for ``columns``: derived fields are replaced by their sources."""
        if columns is None:
            return None
        wanted: list[str] = []
        for column in columns:
            wanted.extend(self.derived_sources.get(column, (column,)))
        return list(dict.fromkeys(wanted))

    def batch_of(self, chunk: Chunk, file: str, columns: Sequence[str] | None) -> EventBatch:
        """The batch for one chunk: parsed, derived fields added, the wanted columns kept."""
        if not chunk.data or chunk.data.isspace():
            parsed = Parsed(pl.DataFrame(), np.empty(0, np.int64), None, None)
        else:
            parsed = self.parse(chunk, file, self.source_columns(columns))
        return self.assemble(parsed, file, columns, chunk.problems, chunk.bytes_read)

    def assemble(
        self,
        parsed: Parsed,
        file: str,
        columns: Sequence[str] | None,
        problems: tuple[LineProblem, ...],
        bytes_read: int,
    ) -> EventBatch:
        """The batch a parser's output makes: derived fields added, the wanted columns kept,
        the reserved columns in front."""
        fields = select_columns(self.derived_fields(parsed.fields), columns)
        frame = finish(
            fields, file=file, lines=parsed.lines, offsets=parsed.offsets, time=parsed.time
        )
        return EventBatch(
            frame=frame,
            format=self.name,
            problems=problems + parsed.problems,
            bytes_read=bytes_read,
        )


def with_url(frame: pl.DataFrame, host: str, uri: str) -> pl.DataFrame:
    """Add ``@url``, the URL of an HTTP request logged as a host and a path: ``http://`` + host
    + path, or the path itself when the client sent an absolute URL (a proxy request)."""
    if host not in frame.columns or uri not in frame.columns:
        return frame
    path = pl.col(uri)
    absolute = path.str.contains(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
    url = (
        pl.when(absolute)
        .then(path)
        .when(pl.col(host).is_not_null() & path.is_not_null())
        .then(pl.concat_str(pl.lit("http://"), pl.col(host), path))
    )
    return frame.with_columns(url.alias("@url"))


_Reader = TypeVar("_Reader", bound=type[LogReader])
_REGISTRY: dict[str, type[LogReader]] = {}
READERS: Final[Mapping[str, type[LogReader]]] = MappingProxyType(_REGISTRY)
"""Every registered reader by format name."""


def register(cls: _Reader) -> _Reader:
    """Class decorator: make a reader known by its ``name``; a name is registered once."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"a log reader named {name!r} is already registered")
    unknown = set(cls.default_fields.values()) - KINDS
    if unknown:
        raise ValueError(f"{name}: unknown observable kinds {sorted(unknown)}")
    _REGISTRY[name] = cls
    return cls
