"""Follow mode: match lines as they are written to a file or arrive on stdin.

The file is polled every ``poll`` seconds (a tenth by default) and read from where the last
read stopped; whatever complete lines arrived are parsed and matched at once, so a hit is
reported well within a second of its line being written. A file that shrinks or is replaced
(log rotation) is read again from its start.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import BinaryIO

from sqlalchemy import Engine

from qalqan.detect.readers import READERS, detect_format, known_formats
from qalqan.detect.sweep import (
    HitSink,
    SweepOptions,
    SweepSummary,
    close_run,
    fail_run,
    keep_hits,
    new_sweeper,
    open_run,
)
from qalqan.domain.principal import Principal
from qalqan.errors import InvalidInput

__all__ = ["follow"]

_READ_SIZE = 1 << 20


class _Tail:
    """New bytes of a file (or stdin) each time it is asked; None once stdin has ended."""

    def __init__(self, path: str, from_start: bool) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._inode: int | None = None
        self.restarts = 0  # times the file was truncated or replaced and read from its start
        if path == "-":
            return
        if not os.path.isfile(path):
            raise InvalidInput(f"{path}: no such file", field="path")
        self._open(from_start)

    def _open(self, from_start: bool) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open while following
        self._inode = os.fstat(self._handle.fileno()).st_ino
        if not from_start:
            self._handle.seek(0, os.SEEK_END)

    def read(self) -> bytes | None:
        if self.path == "-":
            data = os.read(sys.stdin.fileno(), _READ_SIZE)
            return data or None
        assert self._handle is not None
        data = self._handle.read(_READ_SIZE)
        if data:
            return data
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return b""
        if status.st_ino != self._inode or status.st_size < self._handle.tell():
            self._open(from_start=True)
            self.restarts += 1
        return b""

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def follow(
    engine: Engine,
    principal: Principal,
    options: SweepOptions,
    *,
    sink: HitSink,
    from_start: bool = False,
    stored_hits: int = 10_000,
    poll: float = 0.1,
    stop: threading.Event | None = None,
) -> SweepSummary:
    """Match ``options.paths[0]`` as it grows until ``stop`` is set, Ctrl-C, or the end of
    stdin; then record the run and its sightings like a sweep."""
    path = options.paths[0]
    if options.format != "auto" and options.format not in READERS:
        known = ", ".join(known_formats())
        raise InvalidInput(f"unknown log format {options.format!r}; known: {known}", field="format")
    tail = _Tail(path, from_start)
    started = time.perf_counter()
    run_id, plan = open_run(engine, principal, options, [path])
    sweeper = None
    try:
        sweeper = new_sweeper(run_id, plan, options, [path])
        reader = None if options.format == "auto" else READERS[options.format]()
        pending, line, offset, restarts = b"", 1, 0, 0
        try:
            while stop is None or not stop.is_set():
                data = tail.read()
                if data is None:
                    break
                if tail.restarts != restarts:
                    # A new file: its lines count from 1, and the old one's unfinished line is
                    # not glued to its first.
                    pending, line, offset, restarts = b"", 1, 0, tail.restarts
                if not data:
                    time.sleep(poll)
                    continue
                pending += data
                cut = pending.rfind(b"\n") + 1
                if cut == 0:
                    continue
                chunk, pending = pending[:cut], pending[cut:]
                if reader is None:
                    reader = READERS[detect_format(chunk[:65536], path)]()
                batch = reader.parse_chunk(chunk, file=path, first_line=line, offset=offset)
                line += chunk.count(b"\n")
                offset += len(chunk)
                sweeper.summary.bytes_read += len(chunk)
                records = sweeper.match(batch)
                if records:
                    sink(records)
                    keep_hits(engine, sweeper, records, stored_hits)
        except KeyboardInterrupt:
            pass
        return close_run(engine, principal, sweeper, started)
    except BaseException as exc:
        fail_run(engine, run_id, sweeper, exc)
        raise
    finally:
        tail.close()
