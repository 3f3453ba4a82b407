"""Parquet files: read in batches of about a row group, nested structs flattened with ``.``,
every value turned to text as other formats' are (lists as JSON arrays, times as ISO 8601).

``@line`` is the row number (1-based) and ``@offset`` is null: a columnar file has no line to
point at. ``@time`` comes from the first time column present (``@timestamp``, ``timestamp``,
``ts``, ...), a datetime column as it is (taken as UTC when it has no zone) and numbers or text
as in JSON logs. Parquet needs to seek, so a file read from standard input or decompressed on
the fly is first copied to a temporary file.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Final

import numpy as np
import polars as pl

from qalqan.detect.events import EventBatch, LineProblem
from qalqan.detect.readers._base import DEFAULT_BATCH_BYTES, LogReader, Parsed, register
from qalqan.detect.readers._frames import TIME_FIELDS, parse_time, stringify
from qalqan.detect.readers._stream import Chunk

__all__ = ["ParquetReader"]

_ROW: Final = "\x00row"
_FAILURES: Final = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError)


def _time(frame: pl.DataFrame) -> pl.Series | None:
    """``@time`` from the first time column present, whatever its type."""
    result: pl.Series | None = None
    for name in TIME_FIELDS:
        if name not in frame.columns:
            continue
        column = frame[name]
        if isinstance(column.dtype, pl.Datetime):
            zoned = (
                column.dt.convert_time_zone("UTC")
                if column.dtype.time_zone
                else column.dt.replace_time_zone("UTC")
            )
            parsed = zoned.dt.cast_time_unit("us")
        else:
            parsed = parse_time(column.cast(pl.String, strict=False))
        result = parsed if result is None else result.fill_null(parsed)
    return result


def _wanted(schema: pl.Schema, columns: Sequence[str] | None) -> list[str]:
    """The top-level columns that hold the wanted fields (and the time)."""
    if columns is None:
        return list(schema.names())
    tops = {c.split(".")[0] for c in columns} | set(columns) | set(TIME_FIELDS)
    return [name for name in schema.names() if name in tops]


@register
class ParquetReader(LogReader):
    """Apache Parquet files of any schema."""

    name = "parquet"
    description = "Apache Parquet files (nested columns flattened with '.')"
    sniff_order = 0

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(b"PAR1")

    def read(
        self,
        stream: BinaryIO,
        file: str,
        *,
        columns: Sequence[str] | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> Iterator[EventBatch]:
        path = getattr(stream, "name", None)
        if isinstance(path, str) and os.path.isfile(path) and stream.seekable():
            yield from self._read_path(path, file, columns, batch_bytes)
            return
        with tempfile.NamedTemporaryFile(prefix="qalqan-", suffix=".parquet") as copy:
            shutil.copyfileobj(stream, copy, 1 << 20)
            copy.flush()
            yield from self._read_path(copy.name, file, columns, batch_bytes)

    def _read_path(
        self, path: str, file: str, columns: Sequence[str] | None, batch_bytes: int
    ) -> Iterator[EventBatch]:
        size = os.path.getsize(path)
        wanted = self.source_columns(columns)
        try:
            scan = pl.scan_parquet(path)
            names = _wanted(scan.collect_schema(), wanted)
            rows = scan.select(pl.len()).collect().item()
            per_row = max(1, size // max(1, rows))
            batches = (
                scan.select(names)
                .with_row_index(_ROW, offset=1)
                .collect_batches(chunk_size=max(1, batch_bytes // per_row))
            )
            done = 0
            for batch in batches:
                done += batch.height
                yield self._batch(batch, file, columns, size * done // max(1, rows))
        except _FAILURES as exc:
            problem = LineProblem(file, 1, f"not a readable Parquet file ({exc})")
            empty = Parsed(pl.DataFrame(), np.empty(0, np.int64), None, None)
            yield self.assemble(empty, file, columns, (problem,), size)

    def _batch(
        self, batch: pl.DataFrame, file: str, columns: Sequence[str] | None, bytes_read: int
    ) -> EventBatch:
        lines = batch[_ROW].cast(pl.Int64)
        data = batch.drop(_ROW)
        parsed = Parsed(stringify(data), lines, None, _time(data))
        return self.assemble(parsed, file, columns, (), bytes_read)

    def parse(self, chunk: Chunk, file: str, columns: Sequence[str] | None) -> Parsed:
        """A whole Parquet file held in memory (there is no following a growing one)."""
        try:
            frame = pl.read_parquet(io.BytesIO(chunk.data))
        except _FAILURES as exc:
            problem = LineProblem(file, 1, f"not a readable Parquet file ({exc})")
            return Parsed(pl.DataFrame(), np.empty(0, np.int64), None, None, (problem,))
        frame = frame.select(_wanted(frame.schema, columns))
        lines = pl.int_range(1, frame.height + 1, dtype=pl.Int64, eager=True)
        return Parsed(stringify(frame), lines, None, _time(frame))
