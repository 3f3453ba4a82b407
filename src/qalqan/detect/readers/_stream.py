"""Opening a log as bytes, whatever it is stored in, and cutting it into chunks of whole records.

A log can be a plain file, standard input, or gzip or zstd data (told by its magic bytes, not its
name). A compressed file that ends early is not an error that stops a sweep: the stream simply
ends where the damage is and remembers why, and :func:`iter_chunks` turns that into a
:class:`~qalqan.detect.events.LineProblem` after the events that could be read.
"""

from __future__ import annotations

import io
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final, cast

import numpy as np
import numpy.typing as npt
import zstandard

from qalqan.detect.events import LineProblem

__all__ = [
    "HEAD_BYTES",
    "Chunk",
    "compression_of",
    "cut_at_last_newline",
    "damage_of",
    "iter_chunks",
    "newline_positions",
    "open_log",
    "peek_head",
    "stored_position",
]

HEAD_BYTES: Final = 64 << 10
"""How much of a log's start format detection looks at."""

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_BLOCK: Final = 1 << 20


class _Decoder:
    """Decompresses one codec's stream of concatenated members (gzip) or frames (zstd)."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self._obj: zstandard.ZstdDecompressionObj | zlib._Decompress | None = None
        self._pending = False

    def _new(self) -> zstandard.ZstdDecompressionObj | zlib._Decompress:
        if self.codec == "zstd":
            return zstandard.ZstdDecompressor().decompressobj()
        return zlib.decompressobj(wbits=31)

    def feed(self, data: bytes) -> bytes:
        """Decompress ``data``; a new member starts where the previous one ended."""
        out: list[bytes] = []
        magic = _ZSTD_MAGIC if self.codec == "zstd" else _GZIP_MAGIC
        while data:
            if self._obj is None:
                # Bytes after the last member that do not start another one (zero padding some
                # tools leave) are not data.
                if not self._pending and not magic.startswith(data[: len(magic)]):
                    return b"".join(out)
                self._obj = self._new()
            self._pending = True
            out.append(self._obj.decompress(data))
            if not self._obj.eof:
                break
            data = self._obj.unused_data
            self._obj = None
            self._pending = False
        return b"".join(out)

    @property
    def complete(self) -> bool:
        """Whether the last member seen was finished."""
        return not self._pending


class _LogSource(io.RawIOBase):
    """The decompressed bytes of a stored log, with where it got to in the stored bytes."""

    def __init__(self, source: BinaryIO, codec: str, pushback: bytes, *, owned: bool) -> None:
        super().__init__()
        self._source = source
        self._decoder = _Decoder(codec) if codec else None
        self._owned = owned
        self._stored = len(pushback)
        self._out = self._decoder.feed(pushback) if self._decoder else pushback
        self._pos = 0
        self._eof = False
        self.damage: str | None = None

    @property
    def stored_position(self) -> int:
        """How many bytes of the stored (possibly compressed) log have been read."""
        return self._stored

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if self._pos >= len(self._out):
                if self._eof:
                    break
                self._fill()
                continue
            n = min(len(view) - filled, len(self._out) - self._pos)
            view[filled : filled + n] = self._out[self._pos : self._pos + n]
            self._pos += n
            filled += n
        return filled

    def _fill(self) -> None:
        self._out, self._pos = b"", 0
        block = self._source.read(_BLOCK)
        self._stored += len(block)
        if not block:
            self._eof = True
            if self._decoder is not None and not self._decoder.complete:
                self.damage = f"the {self._decoder.codec} data ends early: the file is truncated"
            return
        if self._decoder is None:
            self._out = block
            return
        try:
            self._out = self._decoder.feed(block)
        except (zlib.error, zstandard.ZstdError) as exc:
            self._eof = True
            self.damage = (
                f"the {self._decoder.codec} data is damaged ({exc}): the file is truncated"
            )

    def close(self) -> None:
        if self._owned and not self.closed:
            self._source.close()
        super().close()


def _stdin() -> BinaryIO:
    # Standard input is text with a binary buffer, unless someone put a binary stream there.
    buffer = getattr(sys.stdin, "buffer", None)
    return cast(BinaryIO, sys.stdin if buffer is None else buffer)


def open_log(path: str) -> tuple[BinaryIO, str]:
    """Open a log for reading: ``-`` is standard input; gzip and zstd data is decompressed on
    the fly, told by magic bytes rather than by the name.

    Returns the stream of decompressed bytes and the compression found (``"gzip"``, ``"zstd"``
    or ``""``). The stream supports ``peek`` (see :func:`peek_head`). A compressed stream that
    ends early or is damaged does not raise: it ends there, and :func:`iter_chunks` reports it.
    """
    if path == "-":
        source, owned = _stdin(), False
    else:
        # A buffer as large as the head lets format detection peek at all of it.
        source, owned = open(path, "rb", buffering=HEAD_BYTES), True  # noqa: SIM115
    try:
        magic = source.read(4)
        codec = compression_of(magic)
        if not codec and owned and source.seekable():
            # A plain file needs no decoding layer: its own buffered reader is fastest.
            source.seek(0)
            return source, ""
        raw = _LogSource(source, codec, magic, owned=owned)
    except BaseException:
        if owned:
            source.close()
        raise
    return io.BufferedReader(raw, buffer_size=HEAD_BYTES), codec


def compression_of(magic: bytes) -> str:
    """The compression a stream's first bytes announce: ``"gzip"``, ``"zstd"`` or ``""``."""
    if magic.startswith(_GZIP_MAGIC):
        return "gzip"
    if magic.startswith(_ZSTD_MAGIC):
        return "zstd"
    return ""


def peek_head(stream: BinaryIO, size: int = HEAD_BYTES) -> bytes:
    """Up to ``size`` bytes from the stream's current position, without consuming them (on a
    stream from :func:`open_log`; other streams must be seekable)."""
    peek: Callable[[int], bytes] | None = getattr(stream, "peek", None)
    if peek is not None:
        return peek(size)[:size]
    start = stream.tell()
    head = stream.read(size)
    stream.seek(start)
    return head


def stored_position(stream: BinaryIO) -> int | None:
    """How far into the stored (possibly compressed) log the stream has got, if it can say."""
    raw = getattr(stream, "raw", None)
    if isinstance(raw, _LogSource):
        return raw.stored_position
    try:
        return stream.tell()
    except (OSError, ValueError):
        return None


def damage_of(stream: BinaryIO) -> str | None:
    """Why a stream from :func:`open_log` ended early (a truncated or damaged compressed file),
    or None if it did not."""
    raw = getattr(stream, "raw", None)
    return raw.damage if isinstance(raw, _LogSource) else None


def newline_positions(
    data: bytes, scratch: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.int64]:
    """The byte offsets of every ``\\n`` in ``data``; ``scratch``, a boolean array at least as
    long, saves allocating (and faulting in) a fresh one for every chunk."""
    raw = np.frombuffer(data, dtype=np.uint8)
    out = None if scratch is None or len(scratch) < len(raw) else scratch[: len(raw)]
    return np.flatnonzero(np.equal(raw, 0x0A, out=out)).astype(np.int64, copy=False)


def cut_at_last_newline(data: bytes) -> int:
    """Where a chunk of line records ends: just after its last newline (0 if it has none)."""
    return data.rfind(b"\n") + 1


@dataclass(frozen=True, slots=True)
class Chunk:
    """A run of whole records: where it starts in the (decompressed) log, and its newlines."""

    data: bytes
    newlines: npt.NDArray[np.int64]
    first_line: int
    offset: int
    bytes_read: int
    problems: tuple[LineProblem, ...] = ()


_WINDOW: Final = 64 << 10


def _record_end(stream: BinaryIO, start: int, size: int) -> int | None:
    """Where the last line that ends within ``size`` bytes of ``start`` ends (just after its
    newline), or where the first line after that ends if no line ends there; None at the end
    of the stream."""
    low = max(start, start + size - _WINDOW)
    stream.seek(low)
    window = stream.read(start + size - low)
    if len(window) < start + size - low:
        return None
    newline = window.rfind(b"\n")
    if newline >= 0:
        return low + newline + 1
    position = start + size
    while True:
        window = stream.read(_WINDOW)
        if not window:
            return None
        newline = window.find(b"\n")
        if newline >= 0:
            return position + newline + 1
        position += len(window)


def _aligned_pieces(stream: BinaryIO, batch_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Line-aligned pieces of a seekable stream, each read once: finding the cut first spares
    copying every chunk to join it to the partial line the previous read left over."""
    start = stream.tell()
    while True:
        end = _record_end(stream, start, batch_bytes)
        stream.seek(start)
        piece = stream.read() if end is None else stream.read(end - start)
        if piece:
            yield piece, stream.tell()
        if end is None:
            return
        start = end


def _carried_pieces(
    stream: BinaryIO, batch_bytes: int, cut: Callable[[bytes], int]
) -> Iterator[tuple[bytes, int] | str]:
    """Record-aligned pieces of any stream: what follows the last whole record of one read is
    carried to the next. Ends with the reason instead of the partial record if the stream was
    cut short (a truncated compressed file)."""
    carry = b""
    consumed = 0
    while True:
        try:
            block = stream.read(batch_bytes)
            damage = damage_of(stream)
        except EOFError as exc:
            # A stream not opened by open_log (a caller's own GzipFile) ends early this way.
            block, damage = b"", f"the data ends early ({exc}): the file is truncated"
        consumed += len(block)
        position = stored_position(stream)
        bytes_read = consumed if position is None else position
        if not block:
            if damage is not None:
                yield damage
            elif carry:
                yield carry, bytes_read
            return
        data = carry + block if carry else block
        end = cut(data)
        if end == 0:
            carry = data
            continue
        piece = data if end == len(data) else data[:end]
        carry = data[end:]
        yield piece, bytes_read


def iter_chunks(
    stream: BinaryIO,
    file: str,
    batch_bytes: int,
    cut: Callable[[bytes], int] | None = None,
) -> Iterator[Chunk]:
    """Cut a stream into chunks of about ``batch_bytes`` that end on a record boundary.

    Records are lines unless ``cut`` is given: ``cut(data)`` says where the last whole record
    in ``data`` ends (0 if none does yet). A record longer than ``batch_bytes`` makes one chunk
    that size. If the stream ends early (a truncated compressed file), the partial record at
    the end is dropped and the last chunk carries a problem saying so.
    """
    batch_bytes = max(1, batch_bytes)
    pieces: Iterator[tuple[bytes, int] | str]
    # Only real files and memory are cheap to seek: a decompressing stream seeks by rereading.
    if cut is None and isinstance(stream, io.BufferedReader | io.BytesIO) and stream.seekable():
        pieces = _aligned_pieces(stream, batch_bytes)
    else:
        pieces = _carried_pieces(stream, batch_bytes, cut or cut_at_last_newline)
    scratch = np.empty(0, dtype=np.bool_)
    line, offset, bytes_read = 1, 0, 0
    for piece in pieces:
        if isinstance(piece, str):
            problem = LineProblem(file=file, line=line, reason=piece)
            yield Chunk(b"", np.empty(0, dtype=np.int64), line, offset, bytes_read, (problem,))
            return
        data, bytes_read = piece
        if len(scratch) < len(data):
            scratch = np.empty(len(data), dtype=np.bool_)
        newlines = newline_positions(data, scratch)
        yield Chunk(data, newlines, line, offset, bytes_read)
        line += len(newlines)
        offset += len(data)
