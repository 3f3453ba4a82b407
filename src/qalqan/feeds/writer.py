"""The writer process of large feed runs (``python -m qalqan.feeds.writer``, started by the run).

A run of several batches prepares batch N+1 while this process writes batch N, so the Python
work and the database's work use both cores of a small machine. Threads cannot do that: the
database driver takes the interpreter lock back for every row it binds. The process speaks over
its standard input and output: length-prefixed pickles, first the run's setup, then one batch
per message, each answered with the counts it added or an error.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import event

from qalqan.errors import QalqanError, StoreError
from qalqan.feeds.values import Counts, PreparedBatch, ValueBatches
from qalqan.instance import Instance
from qalqan.settings import Settings
from qalqan.store.feeds import FeedRecord

__all__ = ["ProcessWriter"]

_HEADER = 8
_IN_FLIGHT = 2


def _send_frame(stream: IO[bytes], data: bytes) -> None:
    stream.write(len(data).to_bytes(_HEADER, "big"))
    stream.write(data)


def _receive_frame(stream: IO[bytes]) -> bytes:
    header = stream.read(_HEADER)
    if len(header) < _HEADER:
        raise EOFError
    size = int.from_bytes(header, "big")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return data


def _send(stream: IO[bytes], message: Any) -> None:
    _send_frame(stream, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    return pickle.loads(_receive_frame(stream))  # noqa: S301 - our own parent or child


_SPOOL_ROOM = 512 << 20  # two batches in flight with room to spare


def _spool_dir() -> str | None:
    """Where batches wait for the writer: memory-backed when the system has such a place with
    room for them (containers often give it only 64 MB), else the temporary directory."""
    shm = Path("/dev/shm")  # noqa: S108 - a private directory is made inside it
    try:
        roomy = shutil.disk_usage(shm).free >= _SPOOL_ROOM and os.access(shm, os.W_OK)
    except OSError:
        return None
    return str(shm) if roomy else None


def _dump_batch(path: Path, prepared: PreparedBatch) -> None:
    # Through a file and not the pipe: the run never waits for the writer to read, and a pipe
    # read in small chunks would wait for the interpreter lock at each chunk while the writer
    # binds rows.
    with path.open("wb") as out:
        pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
        # No memo: a batch is plain rows without cycles, and remembering each of its million
        # objects takes most of the pickling time.
        pickler.fast = True
        pickler.dump(prepared)


def _load_batch(path: Path) -> PreparedBatch:
    data = path.read_bytes()
    path.unlink()
    prepared: PreparedBatch = pickle.loads(data)  # noqa: S301 - written by our own parent
    return prepared


@dataclass(frozen=True, slots=True)
class _Setup:
    settings: dict[str, Any]
    feed: FeedRecord
    identity: str
    now: int


def _no_reject(line: int, reason: str, fld: str | None, raw: str | None) -> None:
    raise AssertionError("the writer process does not prepare batches")


def _read_ahead(source: IO[bytes], inbox: queue.Queue[Any]) -> None:
    """Receive the next batch while the last one is written (pipe reads let go of the
    interpreter lock, and unpickling takes a fraction of a write)."""
    while True:
        try:
            inbox.put(_load_batch(Path(_receive(source))))
        except EOFError:
            inbox.put(None)
            return


def _checkpoint_rarely(dbapi_conn: Any, _record: Any) -> None:
    # Copying the write-ahead log into the database after every batch writes each page twice
    # per batch; the run's writer lets the log grow to 256 MB first, and the next ordinary
    # commit after the run checkpoints it once.
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=65536")


def main() -> None:
    """Write the batches the parent sends until it closes the pipe."""
    source, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers may reach the parent's pipe
    gc.disable()  # as in the run itself: many short-lived objects and no cycles
    setup: _Setup = _receive(source)
    instance = Instance(Settings(**setup.settings))
    if instance.engine.dialect.name == "sqlite":
        event.listen(instance.engine, "connect", _checkpoint_rarely)
    batches = ValueBatches(
        instance, setup.feed, setup.identity, setup.now, None, Counts({}), _no_reject
    )
    inbox: queue.Queue[Any] = queue.Queue(maxsize=1)
    threading.Thread(target=_read_ahead, args=(source, inbox), daemon=True).start()
    try:
        while (prepared := inbox.get()) is not None:
            try:
                _send(answers, ("ok", batches.write(prepared)))
            except QalqanError as exc:
                _send(answers, ("error", exc.detail))
            except Exception as exc:
                _send(answers, ("error", f"the feed writer failed: {type(exc).__name__}: {exc}"))
    finally:
        instance.close()


class ProcessWriter:
    """Writes a run's batches in a child process, with up to two batches in flight: one being
    written, the next one received and waiting."""

    def __init__(self, batches: ValueBatches):
        self.batches = batches
        self._process = subprocess.Popen(
            [sys.executable, "-m", "qalqan.feeds.writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._to, self._from = self._process.stdin, self._process.stdout
        self._pending = 0
        self._sent = 0
        self._spool = tempfile.TemporaryDirectory(prefix="qalqan-feed-", dir=_spool_dir())
        settings = batches.instance.settings.model_dump()
        self._call(_send, self._to, _Setup(settings, batches.feed, batches.identity, batches.now))

    def _call(self, step: Any, *args: Any) -> Any:
        try:
            return step(*args)
        except (EOFError, BrokenPipeError) as exc:
            code = self._process.poll()
            raise StoreError(f"the feed writer process stopped (exit code {code})") from exc

    def _collect(self) -> None:
        self._pending -= 1
        status, result = self._call(_receive, self._from)
        if status != "ok":
            raise StoreError(str(result))
        self.batches.counts.add(**result)

    def submit(self, prepared: PreparedBatch) -> None:
        """Send a batch, once at most one other is still being written."""
        if self._pending >= _IN_FLIGHT:
            self._collect()
        self._sent += 1
        path = Path(self._spool.name) / f"batch-{self._sent}"
        try:
            _dump_batch(path, prepared)
        except OSError as exc:
            raise StoreError(f"cannot hand a batch to the feed writer: {exc}") from exc
        self._call(_send, self._to, str(path))
        self._pending += 1

    def drain(self) -> None:
        """Wait until the batches in flight are written."""
        while self._pending:
            self._collect()

    def close(self) -> None:
        """Stop the writer process (after the batch in flight)."""
        try:
            self.drain()
        finally:
            with contextlib.suppress(OSError):
                self._to.close()
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._from.close()
            self._spool.cleanup()


if __name__ == "__main__":
    main()
