"""Zeek logs: the tab-separated ASCII logs (``zeek``) and the JSON ones (``zeek-json``).

A TSV log says how to read it in its header: ``#separator`` (written escaped, ``\\x09``),
``#set_separator``, ``#empty_field`` (``(empty)``), ``#unset_field`` (``-``), ``#path``,
``#fields`` and ``#types``; ``#close`` ends it, and a concatenated or rotated file may start a
new header further on. Data lines are read by Polars' CSV reader; unset values become null,
empty ones empty text (``[]`` for sets and vectors), sets and vectors JSON arrays, and the
``\\xHH`` escapes Zeek writes for separators and control bytes are undone. Each record gets a
``_path`` field from the header (``conn``, ``dns``, ...), as Zeek's JSON logs may carry.

The JSON logs are read by the JSON-lines machinery, their field names (``id.orig_h``) as
Zeek writes them. Both readers take ``@time`` from ``ts`` and add ``@url`` for HTTP records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from qalqan.detect.events import LineProblem
from qalqan.detect.readers._base import (
    LineIndex,
    LogReader,
    Parsed,
    RecordMismatch,
    register,
    with_url,
)
from qalqan.detect.readers._frames import json_text, parse_time
from qalqan.detect.readers._stream import Chunk
from qalqan.detect.readers.jsonl import JsonLinesReader, first_json_object, text_fields

__all__ = ["ZEEK_FIELDS", "ZeekJsonReader", "ZeekReader"]

ZEEK_FIELDS: Final = MappingProxyType(
    {
        "id.orig_h": "ip",
        "id.resp_h": "ip",
        "query": "domain",
        "answers": "host",
        "host": "host",
        "@url": "url",
        "referrer": "url",
        "server_name": "domain",
        "san.dns": "domain",
        "san.ip": "ip",
        "md5": "md5",
        "sha1": "sha1",
        "sha256": "sha256",
        "tx_hosts": "ip",
        "rx_hosts": "ip",
        "mailfrom": "email",
        "rcptto": "email",
        "from": "email",
        "to": "email",
    }
)
"""Where Zeek's logs keep observables: conn, dns, http, ssl, x509, files and smtp fields."""

_URL_SOURCES: Final = MappingProxyType({"@url": ("host", "uri")})
_PATH: Final = "_path"
# Zeek escapes a separator, a backslash and any unprintable byte as \xHH.
_ESCAPES: Final = [f"\\x{b:02x}" for b in (*range(0x20), 0x7F, 0x2C, 0x5C, 0x7C)]
_UNESCAPED: Final = [chr(b) for b in (*range(0x20), 0x7F, 0x2C, 0x5C, 0x7C)]


def _unescape(value: str) -> str:
    """A header value written with ``\\xHH`` escapes, as text."""
    return value.encode().decode("unicode_escape") if "\\x" in value else value


@dataclass
class _Header:
    """What a TSV log's header lines have said so far."""

    separator: str = "\t"
    set_separator: str = ","
    empty: str = "(empty)"
    unset: str = "-"
    path: str | None = None
    fields: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    def learn(self, line: str) -> _Header:
        """The header after ``line`` (a ``#`` line); ``#separator`` starts a new header."""
        if line.startswith("#separator"):
            return _Header(separator=_unescape(line[len("#separator") :].strip()) or "\t")
        key, _, value = line.partition(self.separator)
        if key == "#fields":
            self.fields = value.split(self.separator)
        elif key == "#types":
            self.types = value.split(self.separator)
        elif key == "#set_separator":
            self.set_separator = _unescape(value)
        elif key == "#empty_field":
            self.empty = value
        elif key == "#unset_field":
            self.unset = value
        elif key == "#path":
            self.path = value
        return self

    def is_container(self, name: str) -> bool:
        """Whether a field holds a set or vector (written joined by the set separator)."""
        types = dict(zip(self.fields, self.types, strict=False))
        return types.get(name, "").startswith(("set[", "vector["))


def _fields_fit(data: bytes, index: LineIndex, run: npt.NDArray[np.int64], header: _Header) -> bool:
    """Whether every line of the run has as many fields as the header names."""
    separator = header.separator.encode()
    if len(separator) != 1:
        return False
    positions = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == separator[0])
    counts = np.searchsorted(positions, index.ends[run]) - np.searchsorted(
        positions, index.starts[run]
    )
    return bool((counts == len(header.fields) - 1).all())


@register
class ZeekReader(LogReader):
    """Zeek's tab-separated logs, any of them (conn, dns, http, ssl, files, x509, ...)."""

    name = "zeek"
    description = "Zeek TSV logs (#separator/#fields header; conn, dns, http, ssl, files, ...)"
    sniff_order = 10
    default_fields = ZEEK_FIELDS
    derived_sources = _URL_SOURCES

    def __init__(self) -> None:
        self._header: _Header | None = None

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        start = head.lstrip(b"\xef\xbb\xbf")
        return start.startswith(b"#separator") or (start.startswith(b"#") and b"\n#fields" in start)

    def derived_fields(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``@url`` from ``host`` and ``uri`` (http.log)."""
        return with_url(frame, "host", "uri")

    def parse(self, chunk: Chunk, file: str, columns: Sequence[str] | None) -> Parsed:
        index = LineIndex.of(chunk.data, chunk.newlines)
        lines = index.nonempty()
        raw = np.frombuffer(chunk.data, dtype=np.uint8)
        is_header = raw[index.starts[lines]] == ord("#")
        frames: list[pl.DataFrame] = []
        records: list[npt.NDArray[np.int64]] = []
        problems: list[LineProblem] = []
        run_start = 0
        for position in [*np.flatnonzero(is_header).tolist(), len(lines)]:
            if position > run_start:
                run = lines[run_start:position]
                frame, kept, trouble = self._read_run(chunk, index, run, file)
                frames.append(frame)
                records.append(kept)
                problems.extend(trouble)
            if position < len(lines):
                i = int(lines[position])
                text = chunk.data[index.starts[i] : index.ends[i]].decode(errors="replace")
                self._header = (self._header or _Header()).learn(text)
            run_start = position + 1
        fields = pl.concat(frames, how="diagonal") if frames else pl.DataFrame()
        kept_lines = np.concatenate(records) if records else np.empty(0, dtype=np.int64)
        return Parsed(
            fields=fields,
            lines=chunk.first_line + kept_lines,
            offsets=chunk.offset + index.starts[kept_lines],
            time=parse_time(fields["ts"]) if "ts" in fields.columns else None,
            problems=tuple(problems),
        )

    def _read_run(
        self,
        chunk: Chunk,
        index: LineIndex,
        run: npt.NDArray[np.int64],
        file: str,
    ) -> tuple[pl.DataFrame, npt.NDArray[np.int64], list[LineProblem]]:
        """Read a run of data lines (no header line among them) with the current header."""
        header = self._header
        if header is None or not header.fields:
            first = chunk.first_line + int(run[0])
            reason = f"{len(run)} data lines before any #fields header were skipped"
            return pl.DataFrame(), np.empty(0, dtype=np.int64), [LineProblem(file, first, reason)]
        data = chunk.data[index.starts[run[0]] : index.ends[run[-1]]]
        problems: list[LineProblem] = []
        try:
            if not _fields_fit(chunk.data, index, run, header):
                raise RecordMismatch("some lines do not have the header's fields")
            frame = pl.read_csv(
                data,
                has_header=False,
                separator=header.separator,
                quote_char=None,
                new_columns=header.fields,
                schema=dict.fromkeys(header.fields, pl.String()),
                encoding="utf8-lossy",
                empty_string_is_null=False,
            )
            if frame.height != len(run):
                raise RecordMismatch(f"read {frame.height} records from {len(run)} lines")
            kept = run
        except (pl.exceptions.PolarsError, RecordMismatch):
            frame, kept, problems = self._split_lines(chunk, index, run, file, header)
        return self._clean(frame, header, escaped=b"\\x" in data), kept, problems

    def _split_lines(
        self,
        chunk: Chunk,
        index: LineIndex,
        run: npt.NDArray[np.int64],
        file: str,
        header: _Header,
    ) -> tuple[pl.DataFrame, npt.NDArray[np.int64], list[LineProblem]]:
        rows: list[dict[str, str | None]] = []
        kept: list[int] = []
        problems: list[LineProblem] = []
        for i in run.tolist():
            text = chunk.data[index.starts[i] : index.ends[i]].decode(errors="replace")
            values = text.split(header.separator)
            if len(values) != len(header.fields):
                reason = f"{len(values)} fields where the header names {len(header.fields)}"
                problems.append(LineProblem(file, chunk.first_line + i, reason))
                continue
            rows.append(dict(zip(header.fields, values, strict=True)))
            kept.append(i)
        frame = text_fields(rows) if rows else pl.DataFrame()
        frame = frame.with_columns(
            pl.lit(None, pl.String).alias(f) for f in header.fields if f not in frame.columns
        )
        return frame, np.array(kept, dtype=np.int64), problems

    @staticmethod
    def _clean(frame: pl.DataFrame, header: _Header, *, escaped: bool) -> pl.DataFrame:
        def unescape(expr: pl.Expr) -> pl.Expr:
            return expr.str.replace_many(_ESCAPES, _UNESCAPED) if escaped else expr

        exprs: list[pl.Expr] = []
        for name in frame.columns:
            value = pl.col(name)
            if header.is_container(name):
                items = unescape(pl.element())
                text = json_text(value.str.split(header.set_separator).list.eval(items))
                empty: pl.Expr = pl.lit("[]")
            else:
                text, empty = unescape(value), pl.lit("")
            exprs.append(
                pl.when(value == header.unset)
                .then(None)
                .when(value == header.empty)
                .then(empty)
                .otherwise(text)
                .alias(name)
            )
        if header.path is not None:
            exprs.append(pl.lit(header.path, pl.String).alias(_PATH))
        return frame.select(exprs)


@register
class ZeekJsonReader(JsonLinesReader):
    """Zeek's JSON logs: one object per line, ``id.orig_h``-style names as Zeek writes them."""

    name = "zeek-json"
    description = "Zeek JSON logs (ts, uid, id.orig_h, ...; conn, dns, http, ssl, files, ...)"
    sniff_order = 50
    time_fields: ClassVar[tuple[str, ...]] = ("ts",)
    default_fields = ZEEK_FIELDS
    derived_sources = _URL_SOURCES

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        record = first_json_object(head)
        if record is None or "ts" not in record:
            return False
        return any(key in record for key in ("uid", "fuid", "id.orig_h", _PATH))

    def derived_fields(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``@url`` from ``host`` and ``uri`` (http.log)."""
        return with_url(frame, "host", "uri")
