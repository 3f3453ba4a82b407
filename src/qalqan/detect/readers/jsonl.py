"""JSON lines: one JSON object per line, of any schema.

The fast path hands a whole chunk to Polars' NDJSON reader with a schema that reads every
wanted field as text (only the fields asked for when the caller names them, which is what
makes a sweep fast; otherwise the schema Polars infers from the chunk, every leaf turned to
text). Where each record starts comes from the chunk's newline positions, so blank lines never
shift ``@line``.

A chunk Polars refuses (a malformed line, a field that is a number on one line and an object on
another, bytes that are not UTF-8) is read again line by line to find the culprits: each bad
line becomes a :class:`~qalqan.detect.events.LineProblem`, invalid UTF-8 is replaced rather
than refused, and the good lines are still read by Polars, with a schema merged from their
actual shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import orjson
import polars as pl

from qalqan.detect.events import LineProblem
from qalqan.detect.readers._base import LineIndex, LogReader, Parsed, RecordMismatch, register
from qalqan.detect.readers._frames import (
    TIME_FIELDS,
    Tree,
    first_time,
    flatten,
    schema_of,
    tree_from_columns,
    tree_from_objects,
    tree_from_schema,
)
from qalqan.detect.readers._stream import HEAD_BYTES, Chunk

__all__ = [
    "JsonLinesReader",
    "first_json_object",
    "first_line",
    "flatten_record",
    "text_fields",
    "value_text",
]

_POLARS_FAILURES: Final = (pl.exceptions.PolarsError, pl.exceptions.PanicException)


_PROBE: Final = "\x00"
"""A key no log uses, read when no field is wanted, so Polars still counts the records."""


def first_line(head: bytes) -> bytes:
    """The first line of ``head`` that is not blank, stripped (possibly cut off by the head)."""
    for line in head.split(b"\n"):
        stripped = line.strip()
        if stripped:
            return stripped
    return b""


def first_json_object(head: bytes) -> dict[str, Any] | None:
    """The first line of ``head`` as a JSON object, or None if it is not one (or is cut off)."""
    try:
        value = orjson.loads(first_line(head))
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def value_text(value: Any) -> str | None:
    """A parsed JSON value as a field's text: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def flatten_record(obj: Mapping[str, Any], prefix: str, out: dict[str, str | None]) -> None:
    """Add the leaves of a parsed JSON object to ``out`` by dotted name, as text."""
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flatten_record(value, f"{name}.", out)
        elif out.get(name) is None:
            out[name] = value_text(value)


def text_fields(rows: Sequence[Mapping[str, str | None]]) -> pl.DataFrame:
    """A frame of text fields from records already flattened in Python (slow paths only)."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    return pl.DataFrame(
        {name: [row.get(name) for row in rows] for name in names},
        schema=dict.fromkeys(names, pl.String()),
    )


def _decode_line(raw: bytes) -> tuple[Any, bytes, str | None]:
    """A line parsed as JSON, the line as read (repaired if its UTF-8 was not valid), and why it
    could not be read if it could not."""
    try:
        raw.decode()
    except UnicodeDecodeError:
        # A log that mixes encodings should not lose the record: the bad bytes become U+FFFD.
        raw = raw.decode(errors="replace").encode()
    try:
        return orjson.loads(raw), raw, None
    except orjson.JSONDecodeError as exc:
        return None, raw, f"not valid JSON ({exc})"


@register
class JsonLinesReader(LogReader):
    """JSON lines of any schema; ``@time`` from the first of :data:`TIME_FIELDS` present."""

    name = "jsonl"
    description = "JSON lines, one object per line, any fields (nested objects joined with '.')"
    sniff_order = 60
    time_fields: ClassVar[tuple[str, ...]] = TIME_FIELDS

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        line = first_line(head)
        cut_off = b"\n" not in head.lstrip()
        return line.startswith(b"{") and (line.endswith(b"}") or cut_off)

    def parse(self, chunk: Chunk, file: str, columns: Sequence[str] | None) -> Parsed:
        index = LineIndex.of(chunk.data, chunk.newlines)
        problems: tuple[LineProblem, ...] = ()
        try:
            fields, rows = self.fast_fields(chunk.data, columns)
            records = index.records_for(rows)
        except (*_POLARS_FAILURES, RecordMismatch):
            fields, records, problems = self._slow_fields(chunk, index, file, columns)
        return Parsed(
            fields=fields,
            lines=chunk.first_line + records,
            offsets=chunk.offset + index.starts[records],
            time=self.time_of(fields),
            problems=problems,
        )

    def tree_for(self, data: bytes, columns: Sequence[str] | None) -> Tree:
        """The shape to read ``data`` with: the wanted columns (and the time fields the chunk's
        first lines show), or every field Polars finds in the chunk."""
        if columns is None:
            return tree_from_schema(pl.scan_ndjson(data, infer_schema_length=None).collect_schema())
        sample = data[:HEAD_BYTES]
        # A schema key costs even when absent, so only the time fields the log uses are read.
        times = [f for f in self.time_fields if b'"%s"' % f.encode() in sample]
        return tree_from_columns([*columns, *times])

    def fast_fields(self, data: bytes, columns: Sequence[str] | None) -> tuple[pl.DataFrame, int]:
        """The fields of a chunk read by Polars in one go, and how many records it read; raises
        if Polars cannot read the chunk."""
        tree = self.tree_for(data, columns) or {_PROBE: None}
        frame = pl.read_ndjson(data, schema=schema_of(tree))
        if _PROBE in tree:
            return frame.drop(_PROBE), frame.height
        return self.project(flatten(frame, tree)), frame.height

    def project(self, fields: pl.DataFrame) -> pl.DataFrame:
        """Name the flattened fields as this format presents them; as they are by default."""
        return fields

    def time_of(self, fields: pl.DataFrame) -> pl.Series | None:
        """``@time`` for each row of the (projected) fields."""
        return first_time(fields, self.time_fields)

    def fields_from_objects(
        self, lines: list[bytes], objects: list[dict[str, Any]]
    ) -> pl.DataFrame:
        """The fields of records that each parse on their own but not together: read by Polars
        with a schema merged from their shapes, which no record contradicts, or in Python if
        even that fails."""
        tree = tree_from_objects(objects)
        if not tree:
            return pl.DataFrame()
        try:
            frame = pl.read_ndjson(b"\n".join(lines), schema=schema_of(tree))
            if frame.height != len(objects):
                raise RecordMismatch(f"read {frame.height} records from {len(objects)}")
            return self.project(flatten(frame, tree))
        except (*_POLARS_FAILURES, RecordMismatch):
            rows: list[dict[str, str | None]] = []
            for obj in objects:
                row: dict[str, str | None] = {}
                flatten_record(obj, "", row)
                rows.append(row)
            return self.project(text_fields(rows))

    def _slow_fields(
        self, chunk: Chunk, index: LineIndex, file: str, columns: Sequence[str] | None
    ) -> tuple[pl.DataFrame, npt.NDArray[np.int64], tuple[LineProblem, ...]]:
        """Parse line by line to find the lines that are not JSON objects, then read the rest:
        in one go if it was only those lines that stopped Polars, else record by record."""
        good: list[int] = []
        lines: list[bytes] = []
        objects: list[dict[str, Any]] = []
        problems: list[LineProblem] = []
        for i in index.content_lines().tolist():
            value, raw, reason = _decode_line(chunk.data[index.starts[i] : index.ends[i]])
            if reason is None and not isinstance(value, dict):
                reason = f"not a JSON object but {type(value).__name__}"
            if reason is not None:
                problems.append(LineProblem(file=file, line=chunk.first_line + i, reason=reason))
                continue
            good.append(i)
            lines.append(raw)
            objects.append(value)
        kept = np.array(good, dtype=np.int64)
        try:
            fields, rows = self.fast_fields(b"\n".join(lines), columns)
            if rows == len(objects):
                return fields, kept, tuple(problems)
        except (*_POLARS_FAILURES, RecordMismatch):
            pass
        return self.fields_from_objects(lines, objects), kept, tuple(problems)
