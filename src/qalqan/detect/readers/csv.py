"""Delimited text with a header row: ``csv`` (commas) and ``tsv`` (tabs).

Every column is read as text by Polars' CSV reader. A quoted field may hold newlines: chunks
are cut only where the count of quotes is even, and ``@line`` is the line where each record
starts, so it stays true across such fields. Blank lines are skipped. A row with fewer fields
than the header gets nulls; extra fields are dropped. A chunk Polars refuses (stray quotes) is
read again with Python's lenient CSV parser. ``@time`` comes from the first of the usual time
columns (``@timestamp``, ``timestamp``, ``ts``, ``time``, ...) the header has.
"""

from __future__ import annotations

import csv as stdlib_csv
import io
from collections.abc import Sequence
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from qalqan.detect.events import LineProblem
from qalqan.detect.readers._base import LogReader, Parsed, RecordMismatch, register
from qalqan.detect.readers._frames import TIME_FIELDS, first_time
from qalqan.detect.readers._stream import Chunk

__all__ = ["CsvReader", "TsvReader"]

_QUOTE: Final = 0x22
_CARRIAGE: Final = 0x0D


def _record_ends(data: bytes, newlines: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Where each record of ``data`` ends: at a newline after an even number of quotes (``""``
    inside a quoted field counts twice, so it never flips the parity), or at the end."""
    ends = newlines
    if b'"' in data:
        quotes = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _QUOTE)
        ends = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
    if data and (not len(ends) or ends[-1] != len(data) - 1):
        ends = np.append(ends, len(data))
    return ends.astype(np.int64, copy=False)


def _unique(names: list[str]) -> list[str]:
    """Header names usable as columns: blanks named by position, repeats numbered."""
    seen: dict[str, int] = {}
    unique: list[str] = []
    for i, raw in enumerate(names):
        name = raw.strip() or f"column_{i + 1}"
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(f"{name}_{count + 1}" if count else name)
    return unique


class _DelimitedReader(LogReader):
    """A header row, then one record per row, fields split by :attr:`separator`."""

    separator: ClassVar[str]
    multiline_records = True

    def __init__(self) -> None:
        self._header: list[str] | None = None

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """The first record has the separator, and as many as the next one, if complete."""
        whole = head if head.endswith(b"\n") or b"\n" not in head else head[: head.rfind(b"\n")]
        text = io.StringIO(whole.decode(errors="replace"), newline="")
        try:
            rows = [row for row in stdlib_csv.reader(text, delimiter=cls.separator) if row]
        except stdlib_csv.Error:
            return False
        return bool(rows) and len(rows[0]) > 1 and (len(rows) < 2 or len(rows[1]) == len(rows[0]))

    def cut(self, data: bytes) -> int:
        """Just after the last newline that is not inside a quoted field."""
        end = data.rfind(b"\n") + 1
        while end and data.count(b'"', 0, end) % 2:
            end = data.rfind(b"\n", 0, end - 1) + 1
        return end

    def _learn_header(
        self, data: bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
    ) -> int:
        """Read the header from the first record with content; the number of records it took."""
        for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            text = data[start:end].decode(errors="replace").lstrip("\ufeff").rstrip("\r")
            if text.strip():
                row = next(stdlib_csv.reader([text], delimiter=self.separator), [])
                self._header = _unique(row)
                return i + 1
        return len(starts)

    def parse(self, chunk: Chunk, file: str, columns: Sequence[str] | None) -> Parsed:
        data = chunk.data
        ends = _record_ends(data, chunk.newlines)
        starts = np.empty_like(ends)
        if len(ends):
            starts[0] = 0
            starts[1:] = ends[:-1] + 1
        if self._header is None:
            skip = self._learn_header(data, starts, ends)
            starts, ends = starts[skip:], ends[skip:]
        if self._header is None or not len(starts):
            return Parsed(pl.DataFrame(), np.empty(0, dtype=np.int64), None, None)
        body = data[starts[0] :] if starts[0] else data
        first_lines = chunk.first_line + np.searchsorted(chunk.newlines, starts)
        try:
            fields = self._read(body, len(starts))
        except (pl.exceptions.PolarsError, RecordMismatch):
            return self._read_leniently(chunk, int(starts[0]), file)
        raw = np.frombuffer(data, dtype=np.uint8)
        lengths = ends - starts
        blank = (lengths == 0) | (
            (lengths == 1) & (raw[np.minimum(starts, len(raw) - 1)] == _CARRIAGE)
        )
        if blank.any():
            fields = fields.filter(pl.Series(~blank))
            starts, first_lines = starts[~blank], first_lines[~blank]
        return Parsed(
            fields=fields,
            lines=first_lines.astype(np.int64),
            offsets=chunk.offset + starts,
            time=first_time(fields, TIME_FIELDS),
        )

    def _read(self, body: bytes, records: int) -> pl.DataFrame:
        assert self._header is not None
        frame = pl.read_csv(
            body,
            has_header=False,
            separator=self.separator,
            schema=dict.fromkeys(self._header, pl.String()),
            encoding="utf8-lossy",
            truncate_ragged_lines=True,
            missing_columns="insert",
            extra_columns="ignore",
        )
        if frame.height != records:
            raise RecordMismatch(f"read {frame.height} records from {records}")
        return frame

    def _read_leniently(self, chunk: Chunk, body_start: int, file: str) -> Parsed:
        """Python's CSV parser, which takes stray quotes as text, for a chunk Polars refused."""
        assert self._header is not None
        text = chunk.data[body_start:].decode(errors="replace")
        line_starts = np.concatenate(([0], chunk.newlines + 1))
        first_body_line = int(np.searchsorted(chunk.newlines, body_start))
        reader = stdlib_csv.reader(io.StringIO(text, newline=""), delimiter=self.separator)
        rows: list[list[str]] = []
        lines: list[int] = []
        problems: list[LineProblem] = []
        before = 0
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append(row)
                    lines.append(first_body_line + before)
                before = reader.line_num
        except stdlib_csv.Error as exc:
            line = chunk.first_line + first_body_line + reader.line_num
            problems.append(
                LineProblem(file, line, f"the rest of this stretch is unreadable: {exc}")
            )
        width = len(self._header)
        columns = list(zip(*(row[:width] + [""] * (width - len(row)) for row in rows), strict=True))
        fields = pl.DataFrame(
            {name: list(values) for name, values in zip(self._header, columns, strict=False)}
            if rows
            else {name: [] for name in self._header},
            schema=dict.fromkeys(self._header, pl.String()),
        ).with_columns(pl.all().replace("", None))
        index = np.array(lines, dtype=np.int64)
        return Parsed(
            fields=fields,
            lines=chunk.first_line + index,
            offsets=chunk.offset + line_starts[index],
            time=first_time(fields, TIME_FIELDS),
            problems=tuple(problems),
        )


@register
class CsvReader(_DelimitedReader):
    """Comma-separated values with a header row."""

    name = "csv"
    description = "comma-separated values with a header row (RFC 4180 quoting)"
    separator = ","
    sniff_order = 95


@register
class TsvReader(_DelimitedReader):
    """Tab-separated values with a header row."""

    name = "tsv"
    description = "tab-separated values with a header row"
    separator = "\t"
    sniff_order = 90
