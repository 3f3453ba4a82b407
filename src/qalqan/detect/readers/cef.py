"""Line-oriented text logs: ``syslog`` (RFC 3164 and 5424), ``cef`` (ArcSight Common Event
Format) and ``leef`` (IBM QRadar's Log Event Extended Format).

Each line is matched against the format's shape with Polars regular expressions over the
whole chunk. CEF and LEEF extensions (``key=value`` pairs) are split into one long frame of
(record, key, value) and pivoted into a column per key, so no record is parsed in Python. A
CEF or LEEF record may sit behind a syslog header; the header's host and time are kept.

Syslog: ``host``, ``program``, ``pid``, ``message``, and for RFC 5424 ``msgid`` and
``structured_data``; a line of another shape is kept whole as ``message``. RFC 3164 times have
no year: the current one is assumed, or the previous one if that puts the time more than a
day ahead of now.

CEF: the header as ``cefVersion``, ``deviceVendor``, ``deviceProduct``, ``deviceVersion``,
``deviceEventClassId``, ``name``, ``severity`` (ArcSight's names), then each extension key as
written (``src``, ``dst``, ``request``, ...), escapes (``\\=``, ``\\|``, ``\\\\``, ``\\n``)
undone. ``@time`` from ``rt``, ``end`` or ``start``, else the syslog header.

LEEF: ``leefVersion``, ``deviceVendor``, ``deviceProduct``, ``deviceVersion``, ``eventId``, then
each attribute; attributes are split by tabs, or by the delimiter a LEEF 2.0 header names
(``^``, ``x09``, ...). ``@time`` from ``devTime``, else the syslog header.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from qalqan.detect.events import LineProblem
from qalqan.detect.readers._base import LineIndex, LogReader, Parsed, register
from qalqan.detect.readers._frames import parse_time
from qalqan.detect.readers._stream import Chunk
from qalqan.detect.readers.jsonl import first_line

__all__ = ["CefReader", "LeefReader", "SyslogReader"]

_RFC5424: Final = (
    r"^<(?P<pri>\d{1,3})>\d{1,2} (?P<ts>\S+) (?P<host>\S+) (?P<program>\S+) (?P<pid>\S+)"
    r" (?P<msgid>\S+) (?P<structured_data>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<message>.*))?$"
)
_BSD_TIME: Final = r"[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}"
_ISO_TIME: Final = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
_RFC3164: Final = (
    rf"^(?:<(?P<pri>\d{{1,3}})>)?(?P<ts>{_BSD_TIME}|{_ISO_TIME}) (?P<host>\S+)"
    r" (?:(?P<program>[^:\[\s]+)(?:\[(?P<pid>[^\]]*)\])?: ?)?(?P<message>.*)$"
)
_SYSLOG_HEAD: Final = re.compile(
    rf"^(?:<\d{{1,3}}>\d{{0,2}} ?)?(?:{_BSD_TIME}|{_ISO_TIME}) \S+".encode()
)
_SYSLOG_FIELDS: Final = ("host", "program", "pid", "message", "msgid", "structured_data")

_CEF_HEADER: Final = (
    "cefVersion",
    "deviceVendor",
    "deviceProduct",
    "deviceVersion",
    "deviceEventClassId",
    "name",
    "severity",
)
_LEEF_HEADER: Final = ("leefVersion", "deviceVendor", "deviceProduct", "deviceVersion", "eventId")
_LEEF2_DELIMITER: Final = r"^(?P<delimiter>0?[xX][0-9A-Fa-f]{2,4}|\\t|[^|])\|(?P<attributes>.*)$"
_KEY_MARK: Final = "\x1e"
# Escaped backslashes and pipes stand in as control characters while the header is split.
_SHIELDED: Final = ("\\\\", "\\|")
_SHIELDS: Final = ("\x01", "\x02")
_PREFIX: Final = rf"^(?:<\d{{1,3}}>(?:\d{{1,2}} )?)?(?P<ts>{_BSD_TIME}|\S+) (?P<host>\S+)"
_ROW: Final = "\x00row"


def _lines(chunk: Chunk) -> tuple[pl.Series, LineIndex, npt.NDArray[np.int64]]:
    """The chunk's lines with content as text (invalid UTF-8 replaced), with their index."""
    index = LineIndex.of(chunk.data, chunk.newlines)
    text = chunk.data.decode(errors="replace").split("\n")
    if chunk.data.endswith(b"\n"):
        text.pop()
    lines = pl.Series("line", text, dtype=pl.String).str.strip_chars_end("\r")
    content = np.flatnonzero(lines.str.strip_chars().str.len_bytes().to_numpy() > 0)
    return lines.gather(content), index, content.astype(np.int64)


def _nil(name: str) -> pl.Expr:
    """RFC 5424 writes an absent header field as ``-``."""
    return pl.when(pl.col(name) == "-").then(None).otherwise(pl.col(name)).alias(name)


def _year_less(text: pl.Series) -> pl.Series:
    """RFC 3164 times (``Nov  7 07:40:10``): this year, or last year if that is in the future."""
    now = datetime.now(UTC)
    normal = text.str.replace_all(r"\s+", " ")
    this_year = (str(now.year) + " " + normal).str.to_datetime(
        "%Y %b %d %H:%M:%S", time_unit="us", time_zone="UTC", strict=False
    )
    ahead = this_year > now + timedelta(days=1)
    last_year = this_year.dt.offset_by("-1y")
    return this_year.zip_with(~ahead.fill_null(False), last_year)


def _syslog_time(text: pl.Series) -> pl.Series:
    parsed = parse_time(text)
    if parsed.null_count() > text.null_count():
        parsed = parsed.fill_null(_year_less(text))
    return parsed


def _syslog_fields(lines: pl.Series) -> tuple[pl.DataFrame, pl.Series]:
    """Syslog header fields of each line (all null where a line has no syslog header) and its
    time."""
    frame = lines.to_frame("line").select(
        pl.col("line").str.extract_groups(_RFC5424).alias("new"),
        pl.col("line").str.extract_groups(_RFC3164).alias("old"),
    )
    new, old = frame["new"].struct.unnest(), frame["old"].struct.unnest()
    fields = pl.DataFrame(
        {
            name: new[name].fill_null(old[name]) if name in old.columns else new[name]
            for name in (*_SYSLOG_FIELDS, "ts")
        }
    ).with_columns(
        *(_nil(n) for n in ("host", "program", "pid", "msgid", "structured_data", "ts")),
        pl.col("message").str.strip_prefix("\ufeff"),
    )
    return fields.drop("ts"), _syslog_time(fields["ts"]).alias("@time")


def _unescape_cef(expr: pl.Expr, specials: Sequence[str]) -> pl.Expr:
    escaped = ["\\\\", *(f"\\{c}" for c in specials), "\\n", "\\r"]
    plain = ["\\", *specials, "\n", "\r"]
    return expr.str.replace_many(escaped, plain)


def _pairs_to_columns(
    pairs: pl.DataFrame, height: int, wanted: Sequence[str] | None, header: Sequence[str]
) -> pl.DataFrame:
    """A column per key from ``pairs`` (row, one ``key=value`` string per row), ``height`` rows
    long; the first value wins when a record repeats a key."""
    long = (
        pairs.explode("pair")
        .filter(pl.col("pair").str.contains("="))
        .with_columns(pl.col("pair").str.splitn("=", 2).struct.rename_fields(["key", "value"]))
        .unnest("pair")
        .with_columns(pl.col("key").str.strip_chars())
        .filter((pl.col("key") != "") & ~pl.col("key").is_in(list(header)))
    )
    if wanted is not None:
        long = long.filter(pl.col("key").is_in(list(wanted)))
    rows = pl.DataFrame({_ROW: np.arange(height, dtype=np.int64)})
    if long.is_empty():
        return rows.drop(_ROW)
    wide = long.pivot(on="key", index=_ROW, values="value", aggregate_function="first")
    return rows.join(wide, on=_ROW, how="left").drop(_ROW)


def _not_matching(
    matched: pl.Series,
    content: npt.NDArray[np.int64],
    chunk: Chunk,
    file: str,
    kind: str,
) -> tuple[LineProblem, ...]:
    """A problem for each line that is not a record of the format."""
    missing = np.flatnonzero(~matched.to_numpy())
    return tuple(
        LineProblem(file, chunk.first_line + int(content[i]), f"not a {kind} record")
        for i in missing.tolist()
    )


@register
class SyslogReader(LogReader):
    """Syslog lines, RFC 3164 (``Nov 27 07:40:10 host prog[pid]: msg``) or RFC 5424."""

    name = "syslog"
    description = "syslog lines (RFC 3164 or RFC 5424): host, program, pid, message"
    sniff_order = 80

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return _SYSLOG_HEAD.match(first_line(head)) is not None

    def parse(self, chunk: Chunk, file: str, columns: Sequence[str] | None) -> Parsed:
        lines, index, content = _lines(chunk)
        fields, time = _syslog_fields(lines)
        # A line of no syslog shape is kept whole as the message.
        shapeless = fields.select(pl.all().is_null()).select(pl.all_horizontal(pl.all()))
        fields = fields.with_columns(
            pl.when(shapeless.to_series()).then(lines).otherwise(pl.col("message")).alias("message")
        )
        return Parsed(
            fields, chunk.first_line + content, chunk.offset + index.starts[content], time
        )


class _KeyValueReader(LogReader):
    """A marker (``CEF:``), header fields split by ``|``, then ``key=value`` attributes; what
    precedes the marker is a syslog header, if anything."""

    marker: ClassVar[str]
    """What starts a record."""
    header: ClassVar[tuple[str, ...]]
    """The names of the header fields after the marker, the version first."""
    time_keys: ClassVar[tuple[str, ...]]
    """Attributes that may hold the event's time, the first readable wins."""
    shielded: ClassVar[bool] = False
    """Whether the header escapes ``|`` and ``\\`` with a backslash."""

    @abstractmethod
    def attribute_pairs(self, records: pl.DataFrame) -> pl.Series:
        """The ``key=value`` strings of each record (its ``rest`` after the header), as a list
        column."""

    def _records(self, lines: pl.Series) -> pl.DataFrame:
        """Each line cut into ``prefix``, the header fields and ``rest`` (null if no record)."""
        line = pl.col("line")
        start = line.str.find(self.marker, literal=True)
        body = line.str.slice(start + len(self.marker))
        if self.shielded:
            body = body.str.replace_many(list(_SHIELDED), list(_SHIELDS))
        parts = body.str.splitn("|", len(self.header) + 1)
        frame = lines.to_frame("line").select(
            line.str.slice(0, start).alias("prefix"),
            parts.struct.rename_fields([*self.header, "rest"]).alias("parts"),
        )
        frame = frame.unnest("parts")
        if self.shielded:
            frame = frame.with_columns(
                *(pl.col(n).str.replace_many(list(_SHIELDS), ["\\", "|"]) for n in self.header),
                pl.col("rest").str.replace_many(list(_SHIELDS), list(_SHIELDED)),
            )
        return frame

    def parse(self, chunk: Chunk, file: str, columns: Sequence[str] | None) -> Parsed:
        lines, index, content = _lines(chunk)
        records = self._records(lines)
        version = records[self.header[0]]
        matched = records["rest"].is_not_null() & version.str.contains(r"^[0-9]+(?:\.[0-9]+)?$")
        problems = _not_matching(matched.fill_null(False), content, chunk, file, self.marker[:-1])
        records, content = records.filter(matched), content[matched.fill_null(False).to_numpy()]
        pairs = pl.DataFrame(
            {_ROW: np.arange(records.height, dtype=np.int64), "pair": self.attribute_pairs(records)}
        )
        wanted = None if columns is None else [*columns, *self.time_keys]
        attributes = _pairs_to_columns(pairs, records.height, wanted, self.header)
        parts = [records.select(self.header), attributes]
        syslog = records["prefix"].str.extract_groups(_PREFIX).struct.unnest()
        if "host" not in attributes.columns:
            # The syslog header's host, unless the record names its own.
            parts.append(syslog.select("host"))
        fields = pl.concat(parts, how="horizontal")
        time = _syslog_time(syslog["ts"])
        for key in reversed(self.time_keys):
            if key in fields.columns:
                time = parse_time(fields[key]).fill_null(time)
        return Parsed(
            fields,
            chunk.first_line + content,
            chunk.offset + index.starts[content],
            time,
            problems,
        )


@register
class CefReader(_KeyValueReader):
    """ArcSight Common Event Format lines, alone or behind a syslog header."""

    name = "cef"
    description = "ArcSight CEF (CEF:0|vendor|product|version|id|name|severity|key=value ...)"
    sniff_order = 70
    marker = "CEF:"
    header = _CEF_HEADER
    time_keys = ("rt", "end", "start")
    shielded = True
    default_fields = MappingProxyType(
        {
            "src": "ip",
            "dst": "ip",
            "sourceAddress": "ip",
            "destinationAddress": "ip",
            "shost": "host",
            "dhost": "host",
            "sourceHostName": "host",
            "destinationHostName": "host",
            "sourceDnsDomain": "domain",
            "destinationDnsDomain": "domain",
            "request": "url",
            "requestUrl": "url",
            "fileHash": "hash",
            "oldFileHash": "hash",
            "suser": "email",
            "duser": "email",
        }
    )

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return re.search(rb"CEF:\d+\|", first_line(head)) is not None

    def attribute_pairs(self, records: pl.DataFrame) -> pl.Series:
        marked = (" " + records["rest"].str.strip_chars_end()).str.replace_all(
            r"[ \t]+([A-Za-z0-9_.\[\]-]+)=", f"{_KEY_MARK}${{1}}="
        )
        return marked.str.split(_KEY_MARK).list.eval(_unescape_cef(pl.element(), ["=", "|"]))


def _leef_delimiter(field: str) -> str:
    """A LEEF 2.0 delimiter field as the character it names (``^``, ``x09``, ``0x5E``)."""
    if field == "\\t":
        return "\t"
    if len(field) > 1:
        return chr(int(field.lstrip("0").lstrip("xX"), 16))
    return field


@register
class LeefReader(_KeyValueReader):
    """IBM QRadar LEEF 1.0 and 2.0 lines, alone or behind a syslog header."""

    name = "leef"
    description = "IBM LEEF 1.0/2.0 (LEEF:2.0|vendor|product|version|id|delim|key=value ...)"
    sniff_order = 71
    marker = "LEEF:"
    header = _LEEF_HEADER
    time_keys = ("devTime",)
    default_fields = MappingProxyType(
        {
            "src": "ip",
            "dst": "ip",
            "srcPreNAT": "ip",
            "dstPreNAT": "ip",
            "srcPostNAT": "ip",
            "dstPostNAT": "ip",
            "url": "url",
        }
    )

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return re.search(rb"LEEF:[12](?:\.\d)?\|", first_line(head)) is not None

    def attribute_pairs(self, records: pl.DataFrame) -> pl.Series:
        version_two = pl.col("leefVersion").str.starts_with("2") & pl.col("delimiter").is_not_null()
        table = records.select(
            pl.col("leefVersion"),
            pl.col("rest"),
            pl.col("rest").str.extract_groups(_LEEF2_DELIMITER).alias("split"),
        ).unnest("split")
        table = table.select(
            pl.when(version_two)
            .then(pl.col("delimiter"))
            .otherwise(pl.lit("\t"))
            .alias("delimiter"),
            pl.when(version_two).then(pl.col("attributes")).otherwise(pl.col("rest")).alias("text"),
        )
        # A file uses one delimiter or a few: one vectorised split per distinct delimiter.
        split: pl.Expr = pl.lit(None, pl.List(pl.String))
        for field in table["delimiter"].unique().to_list():
            split = (
                pl.when(pl.col("delimiter") == field)
                .then(pl.col("text").str.split(_leef_delimiter(field)))
                .otherwise(split)
            )
        return table.select(split.alias("pair")).to_series()
