"""Windows event logs rendered as JSON, with the field names Sigma rules use.

The usual rendering is ``{"Event": {"System": {...}, "EventData": {...}}}`` (what EVTX dumpers
write, with XML attributes under ``#attributes``). The output has every ``EventData`` (and
``UserData``) key as it is (``Image``, ``CommandLine``, ``TargetObject``, ...) and the System
fields ``EventID``, ``Channel``, ``Provider_Name``, ``Computer``, ``EventRecordID``, ``Level``,
``Task``, ``Keywords`` and ``UserID``; ``@time`` is ``TimeCreated``'s ``SystemTime``. Also
read: ``EventData`` as a list of ``Data`` entries (``{"@Name": ..., "#text": ...}`` or
``{"#attributes": {"Name": ...}, ...}``; unnamed entries become ``Data``), the same layout
without the ``Event`` wrapper, Winlogbeat's (``winlog.event_data.*`` as bare names,
``winlog.event_id`` as ``EventID``, ...), and records already flat (``EventID`` and
``Channel`` at the top).

A file may hold JSON lines, one pretty-printed object, several concatenated, or a JSON array.
JSON lines go through the JSON-lines machinery: Polars reads the nested records with a schema
of just the wanted fields and the result is renamed, with no Python per event. The other
layouts are parsed object by object in Python, which suits the small files they come in.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, BinaryIO, ClassVar, Final

import numpy as np
import polars as pl

from qalqan.detect.events import EventBatch, LineProblem
from qalqan.detect.readers._base import DEFAULT_BATCH_BYTES, Parsed, RecordMismatch, register
from qalqan.detect.readers._frames import (
    Tree,
    add_leaf,
    first_time,
    tree_from_columns,
)
from qalqan.detect.readers._stream import HEAD_BYTES, damage_of, peek_head
from qalqan.detect.readers.jsonl import (
    JsonLinesReader,
    first_json_object,
    flatten_record,
    text_fields,
    value_text,
)

__all__ = ["SYSTEM_FIELDS", "WinEventReader"]

SYSTEM_FIELDS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "EventID": ("EventID",),
        "Channel": ("Channel",),
        "Provider_Name": ("Provider", "#attributes", "Name"),
        "Computer": ("Computer",),
        "EventRecordID": ("EventRecordID",),
        "Level": ("Level",),
        "Task": ("Task",),
        "Keywords": ("Keywords",),
        "UserID": ("Security", "#attributes", "UserID"),
    }
)
"""Output field → its path under ``System``."""

_BEATS_FIELDS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "EventID": ("event_id",),
        "Channel": ("channel",),
        "Provider_Name": ("provider_name",),
        "Computer": ("computer_name",),
        "EventRecordID": ("record_id",),
        "Task": ("task",),
        "Keywords": ("keywords",),
        "UserID": ("user", "identifier"),
    }
)
_SYSTEM_TIME: Final = ("TimeCreated", "#attributes", "SystemTime")
_TIME_SOURCE: Final = "@time"
_SYSTEM_BY_PATH: Final = {path: name for name, path in SYSTEM_FIELDS.items()}
_BEATS_BY_PATH: Final = {path: name for name, path in _BEATS_FIELDS.items()}
_NATIVE_START: Final = re.compile(rb'^\s*\[?\s*\{\s*"(?:Event|System)"\s*:\s*\{')
_BOM: Final = b"\xef\xbb\xbf"
_MAX_DOCUMENT: Final = 64 << 20
_SEPARATORS: Final = " \t\r\n,[]"


def _rendering(record: Mapping[str, Any]) -> str:
    """``event`` (``{"Event": {"System": ...}}``), ``bare`` (``{"System": ...}``), ``beats``
    (Winlogbeat) or ``flat``."""
    event = record.get("Event")
    if isinstance(event, dict) and ("System" in event or "EventData" in event):
        return "event"
    if isinstance(record.get("System"), dict):
        return "bare"
    if isinstance(record.get("winlog"), dict):
        return "beats"
    return "flat"


def _dig(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _inner_text(value: Any) -> Any:
    """An XML element rendered with attributes (``{"#text": 7036, "#attributes": ...}``) as its
    text."""
    return value.get("#text") if isinstance(value, dict) and "#text" in value else value


def _data_entries(items: Sequence[Any], out: dict[str, str | None]) -> None:
    unnamed: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            name = item.get("@Name") or _dig(item, ("#attributes", "Name")) or item.get("Name")
            value = item.get("#text", item.get("Value"))
            if name:
                out[str(name)] = value_text(value)
                continue
            unnamed.append(value)
        else:
            unnamed.append(item)
    if unnamed:
        out["Data"] = value_text(unnamed[0] if len(unnamed) == 1 else unnamed)


def _event_data(data: Any, out: dict[str, str | None]) -> None:
    """Add the named values of an ``EventData``/``UserData`` element to ``out``."""
    if isinstance(data, list):
        _data_entries(data, out)
    elif isinstance(data, dict):
        for key, value in data.items():
            if key == "Data":
                _data_entries(value if isinstance(value, list) else [value], out)
            elif not key.startswith(("#", "@")):
                out[key] = value_text(_inner_text(value))


def event_fields(record: Mapping[str, Any]) -> dict[str, str | None]:
    """One event's output fields, from any rendering this module reads (the Python path)."""
    out: dict[str, str | None] = {}
    rendering = _rendering(record)
    if rendering == "flat":
        flatten_record(record, "", out)
        return out
    if rendering == "beats":
        winlog = record["winlog"]
        flatten_record({k: v for k, v in record.items() if k != "winlog"}, "", out)
        for name, path in _BEATS_FIELDS.items():
            out[name] = value_text(_dig(winlog, path))
        _event_data(winlog.get("event_data"), out)
        _event_data(winlog.get("user_data"), out)
        return out
    event = record["Event"] if rendering == "event" else record
    if rendering == "event":
        flatten_record({k: v for k, v in record.items() if k != "Event"}, "", out)
    system = event.get("System")
    for name, path in SYSTEM_FIELDS.items():
        out[name] = value_text(_inner_text(_dig(system, path)))
    out[_TIME_SOURCE] = value_text(_dig(system, _SYSTEM_TIME))
    _event_data(event.get("EventData"), out)
    user_data = event.get("UserData")
    if isinstance(user_data, dict):
        for root in user_data.values():
            _event_data(root, out)
    return out


def _output_name(path: str) -> str | None:
    """The output name of a flattened source field, or None for one that is not output."""
    parts = path.split(".")
    if parts[0] == "Event" and len(parts) > 1:
        parts = parts[1:]
        if parts[0] not in ("System", "EventData", "UserData"):
            return None
    if parts[0] == "System":
        rest = tuple(parts[1:])
        if rest == _SYSTEM_TIME:
            return _TIME_SOURCE
        if rest[-1:] == ("#text",):
            rest = rest[:-1]
        return _SYSTEM_BY_PATH.get(rest)
    if parts[0] == "EventData":
        named = parts[1:]
        return ".".join(named) if named and not named[0].startswith(("#", "@")) else None
    if parts[0] == "UserData":
        return ".".join(parts[2:]) or None
    if parts[0] == "winlog":
        rest = tuple(parts[1:])
        if rest[:1] in (("event_data",), ("user_data",)):
            return ".".join(rest[1:]) or None
        return _BEATS_BY_PATH.get(rest)
    return path


def _with_user_data(fields: pl.DataFrame) -> pl.DataFrame:
    """Fill the wanted event data from ``UserData`` (read whole, as JSON text), whose one
    child element is named after the event (``LogFileCleared``, ...)."""
    user_data = next((c for c in ("Event.UserData", "UserData") if c in fields.columns), None)
    if user_data is None or fields[user_data].null_count() == fields.height:
        return fields
    text = pl.col(user_data)
    return fields.with_columns(
        pl.col(c).fill_null(text.str.json_path_match(f"$.*['{c.split('EventData.', 1)[1]}']"))
        for c in fields.columns
        if c.startswith(("Event.EventData.", "EventData.")) and "'" not in c
    )


@register
class WinEventReader(JsonLinesReader):
    """Windows events as JSON (EVTX dumps, Winlogbeat, flat renderings)."""

    name = "winevt"
    description = "Windows events as JSON ({Event: {System, EventData}}, Winlogbeat, flat)"
    sniff_order = 30
    time_fields: ClassVar[tuple[str, ...]] = (
        _TIME_SOURCE,
        "@timestamp",
        "TimeCreated.SystemTime",
        "TimeCreated",
        "SystemTime",
        "UtcTime",
    )
    default_fields = MappingProxyType(
        {
            "SourceIp": "ip",
            "DestinationIp": "ip",
            "IpAddress": "ip",
            "DestinationHostname": "host",
            "QueryName": "domain",
            "Hashes": "hash",
        }
    )

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        head = head.removeprefix(_BOM)
        if _NATIVE_START.match(head):
            return True
        record = first_json_object(head)
        if record is None:
            return False
        if _rendering(record) in ("event", "bare"):
            return True
        winlog = record.get("winlog")
        if isinstance(winlog, dict):
            return "event_id" in winlog or "event_data" in winlog
        return "EventID" in record and ("Channel" in record or "Provider_Name" in record)

    def read(
        self,
        stream: BinaryIO,
        file: str,
        *,
        columns: Sequence[str] | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> Iterator[EventBatch]:
        if first_json_object(peek_head(stream).removeprefix(_BOM)) is not None:
            yield from super().read(stream, file, columns=columns, batch_bytes=batch_bytes)
        else:
            yield from self._documents(stream, file, columns, batch_bytes)

    def parse_chunk(
        self,
        data: bytes,
        *,
        file: str,
        first_line: int = 1,
        offset: int = 0,
        columns: Sequence[str] | None = None,
    ) -> EventBatch:
        if first_json_object(data[:HEAD_BYTES].removeprefix(_BOM)) is not None:
            return super().parse_chunk(
                data, file=file, first_line=first_line, offset=offset, columns=columns
            )
        stream = io.BytesIO(data)
        batches = list(
            self._documents(stream, file, columns, len(data) + 1, line=first_line, offset=offset)
        )
        return batches[0]

    def tree_for(self, data: bytes, columns: Sequence[str] | None) -> Tree:
        record = first_json_object(data[:HEAD_BYTES].removeprefix(_BOM)) or {}
        rendering = _rendering(record)
        base = ["Event"] if rendering == "event" else []
        if columns is None:
            tree = super().tree_for(data, None)
            event = _dig(tree, base) if base else tree
            if isinstance(event, dict) and "EventData" in event and event["EventData"] is None:
                # EventData written as a list of Data entries: named in Python, record by record.
                raise RecordMismatch("EventData is not an object")
            return tree
        tree = {}
        if rendering in ("event", "bare"):
            for column in columns:
                system = SYSTEM_FIELDS.get(column)
                add_leaf(
                    tree, [*base, "System", *system] if system else [*base, "EventData", column]
                )
            add_leaf(tree, [*base, "System", *_SYSTEM_TIME])
            # Read so that project() can tell the renderings the schema cannot express.
            add_leaf(tree, [*base, "EventData", "Data"])
            add_leaf(tree, [*base, "UserData"])
        elif rendering == "beats":
            for column in columns:
                beats = _BEATS_FIELDS.get(column)
                add_leaf(tree, ["winlog", *beats] if beats else ["winlog", "event_data", column])
            add_leaf(tree, ["@timestamp"])
        else:
            sample = data[:HEAD_BYTES]
            times = [f for f in self.time_fields if b'"%s"' % f.encode() in sample]
            tree = tree_from_columns([*columns, *times])
        return tree

    def project(self, fields: pl.DataFrame) -> pl.DataFrame:
        for data in ("Event.EventData.Data", "EventData.Data"):
            if data in fields.columns and fields[data].null_count() < fields.height:
                # Data entries name their values inside a list: named in Python, event by event.
                raise RecordMismatch("EventData holds Data entries")
        fields = _with_user_data(fields)
        sources: dict[str, list[str]] = {}
        for column in fields.columns:
            name = _output_name(column)
            if name is not None:
                sources.setdefault(name, []).append(column)
        frame = fields.select(
            pl.col(cols[0]).alias(name) if len(cols) == 1 else pl.coalesce(cols).alias(name)
            for name, cols in sources.items()
        )
        if "EventID" in frame.columns:
            # An EventID with qualifiers is an element with attributes; its number is the text.
            event_id = pl.col("EventID")
            frame = frame.with_columns(
                pl.when(event_id.str.starts_with("{"))
                .then(event_id.str.json_path_match("$['#text']"))
                .otherwise(event_id)
                .alias("EventID")
            )
        return frame

    def time_of(self, fields: pl.DataFrame) -> pl.Series | None:
        return first_time(fields, self.time_fields)

    def fields_from_objects(
        self, lines: list[bytes], objects: list[dict[str, Any]]
    ) -> pl.DataFrame:
        return text_fields([event_fields(obj) for obj in objects])

    def _documents(
        self,
        stream: BinaryIO,
        file: str,
        columns: Sequence[str] | None,
        batch_bytes: int,
        *,
        line: int = 1,
        offset: int = 0,
    ) -> Iterator[EventBatch]:
        """Pretty-printed, concatenated or arrayed objects, parsed one by one."""
        reader = _Documents(stream, file, line, offset)
        while True:
            rows, lines, offsets, problems, done = reader.take(batch_bytes)
            fields = text_fields(rows)
            parsed = Parsed(
                fields=fields,
                lines=np.array(lines, dtype=np.int64),
                offsets=np.array(offsets, dtype=np.int64),
                time=self.time_of(fields) if rows else None,
            )
            if rows or problems or done:
                yield self.assemble(parsed, file, columns, tuple(problems), reader.consumed)
            if done:
                return


class _Documents:
    """Pulls JSON objects one at a time from text that may hold them pretty-printed, one
    after another or in an array, and knows the line and byte offset each starts at."""

    def __init__(self, stream: BinaryIO, file: str, line: int, offset: int) -> None:
        self._stream = stream
        self._file = file
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._decoder = json.JSONDecoder()
        self._text = ""
        self._pos = 0
        self._line = line
        self._offset = offset
        self._eof = False
        self._damage: str | None = None
        self.consumed = 0

    def _locate(self, pos: int) -> tuple[int, int]:
        """Line and byte offset of ``pos``; moves the cursor there (positions only grow)."""
        passed = self._text[self._pos : pos]
        self._line += passed.count("\n")
        self._offset += len(passed.encode(errors="replace"))
        self._pos = pos
        return self._line, self._offset

    def _read_more(self, size: int) -> None:
        # Drop what has been parsed, so the text held is at most a block and one object.
        self._text = self._text[self._pos :]
        self._pos = 0
        try:
            block = self._stream.read(size)
        except EOFError as exc:
            # A stream not opened by open_log (a caller's own GzipFile) ends early this way.
            block, self._damage = b"", f"the data ends early ({exc}): the file is truncated"
        self.consumed += len(block)
        self._text += self._utf8.decode(block, final=not block)
        self._eof = not block

    def take(
        self, batch_bytes: int
    ) -> tuple[list[dict[str, str | None]], list[int], list[int], list[LineProblem], bool]:
        """The next batch of records of about ``batch_bytes``: their fields, lines, offsets,
        the problems met, and whether the stream is done."""
        rows: list[dict[str, str | None]] = []
        lines: list[int] = []
        offsets: list[int] = []
        problems: list[LineProblem] = []
        start = self._offset
        while self._offset - start < batch_bytes:
            pos = self._pos
            while pos < len(self._text) and self._text[pos] in _SEPARATORS:
                pos += 1
            if pos >= len(self._text):
                if self._eof:
                    damage = self._damage or damage_of(self._stream)
                    if damage is not None:
                        problems.append(LineProblem(self._file, self._locate(pos)[0], damage))
                    return rows, lines, offsets, problems, True
                self._locate(pos)
                self._read_more(batch_bytes)
                continue
            try:
                value, end = self._decoder.raw_decode(self._text, pos)
            except json.JSONDecodeError as exc:
                if not self._eof and len(self._text) - pos < _MAX_DOCUMENT:
                    self._locate(pos)
                    self._read_more(batch_bytes)
                    continue
                line, _ = self._locate(pos)
                problems.append(LineProblem(self._file, line, f"not valid JSON ({exc.msg})"))
                # Start again at the next line that opens an object.
                resume = self._text.find("\n{", pos + 1)
                self._locate(len(self._text) if resume < 0 else resume + 1)
                continue
            line, offset = self._locate(pos)
            if isinstance(value, dict):
                rows.append(event_fields(value))
                lines.append(line)
                offsets.append(offset)
            else:
                reason = f"not a JSON object but {type(value).__name__}"
                problems.append(LineProblem(self._file, line, reason))
            self._locate(end)
        return rows, lines, offsets, problems, False
