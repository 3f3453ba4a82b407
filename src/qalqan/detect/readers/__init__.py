"""Log readers: files in, bounded batches of events out.

Each format is a :class:`LogReader` registered by name in :data:`READERS`; adding a format is one
module with one ``@register`` class. :func:`read_events` is the entry point a sweep uses: it
expands paths and globs, opens each file (standard input, gzip and zstd included), picks the
reader (by content, per file, when the format is ``auto``) and yields
:class:`~qalqan.detect.events.EventBatch` objects of about ``batch_bytes`` of log each.

Formats, in the order auto-detection tries them: ``parquet``, ``zeek`` (TSV), ``winevt``,
``eve``, ``zeek-json``, ``jsonl``, ``cef``, ``leef``, ``syslog``, ``tsv``, ``csv``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence

from qalqan.detect.events import EventBatch, LineProblem, empty_frame
from qalqan.detect.readers import cef, csv, eve, jsonl, parquet, winevt, zeek
from qalqan.detect.readers._base import (
    DEFAULT_BATCH_BYTES,
    KINDS,
    READERS,
    LogReader,
    register,
)
from qalqan.detect.readers._stream import open_log, peek_head
from qalqan.errors import InvalidInput

__all__ = [
    "KINDS",
    "READERS",
    "LogReader",
    "cef",
    "csv",
    "detect_format",
    "eve",
    "expand_paths",
    "jsonl",
    "known_formats",
    "open_log",
    "parquet",
    "read_events",
    "register",
    "winevt",
    "zeek",
]


def known_formats() -> list[str]:
    """The registered format names, in the order auto-detection tries them."""
    return [cls.name for cls in sorted(READERS.values(), key=lambda c: (c.sniff_order, c.name))]


def detect_format(head: bytes, file: str) -> str:
    """The format of a log that starts with ``head`` (decompressed): the first reader, in
    :func:`known_formats` order, whose ``sniff`` accepts it. Raises
    :class:`~qalqan.errors.InvalidInput` naming ``file`` when none does."""
    for name in known_formats():
        if READERS[name].sniff(head):
            return name
    raise InvalidInput(
        f"{file}: cannot tell the log format; name it (one of {', '.join(known_formats())})",
        field="format",
    )


def _has_magic(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def _files_under(directory: str) -> list[str]:
    found = [
        os.path.join(root, name) for root, _dirs, names in os.walk(directory) for name in names
    ]
    return sorted(found)


def expand_paths(paths: Sequence[str]) -> list[str]:
    """The files to read for ``paths``: globs (``logs/*.json.gz``, ``**`` for any depth),
    directories (every file inside, at any depth, sorted) and ``-`` (standard input), in the
    order given and each once. Raises :class:`~qalqan.errors.InvalidInput` naming a path that
    matches nothing."""
    files: list[str] = []
    for path in paths:
        if path == "-":
            files.append(path)
            continue
        if os.path.isdir(path):
            matched = _files_under(path)
        elif os.path.isfile(path):
            matched = [path]
        elif _has_magic(path):
            matched = []
            for hit in sorted(glob.glob(path, recursive=True)):
                matched.extend(_files_under(hit) if os.path.isdir(hit) else [hit])
        else:
            matched = []
        if not matched:
            raise InvalidInput(f"no log file matches {path!r}", field="paths", id=path)
        files.extend(matched)
    return list(dict.fromkeys(files))


def _reader_class(format: str) -> type[LogReader] | None:
    if format == "auto":
        return None
    try:
        return READERS[format]
    except KeyError:
        known = ", ".join(["auto", *known_formats()])
        raise InvalidInput(
            f"unknown log format {format!r}; known formats: {known}", field="format"
        ) from None


def read_events(
    paths: Sequence[str],
    format: str = "auto",
    *,
    columns: Sequence[str] | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> Iterator[EventBatch]:
    """Read every log that ``paths`` name (see :func:`expand_paths`) as batches of events.

    ``format`` is a name from :func:`known_formats`, or ``auto`` to tell each file's format by
    its content. ``columns`` is a hint (see :meth:`LogReader.read`); ``batch_bytes`` bounds how
    much of a log one batch holds. An unknown format or a path that matches nothing raises
    :class:`~qalqan.errors.InvalidInput` before anything is read; a file whose format cannot be
    told, and records that cannot be read, are reported in the batches' ``problems``.
    """
    chosen = _reader_class(format)
    for file in expand_paths(paths):
        stream, _compression = open_log(file)
        with stream:
            head = peek_head(stream)
            if not head.strip():
                continue
            try:
                cls = chosen or READERS[detect_format(head, file)]
            except InvalidInput as exc:
                # One file of an unknown kind in a directory should not stop the sweep.
                problem = LineProblem(file=file, line=1, reason=exc.detail)
                yield EventBatch(frame=empty_frame(), format="unknown", problems=(problem,))
                continue
            yield from cls().read(stream, file, columns=columns, batch_bytes=batch_bytes)
