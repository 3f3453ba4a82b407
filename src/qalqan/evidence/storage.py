"""Content-addressed storage of evidence files under ``<data dir>/evidence``.

A file is written to a temporary name while it streams in (hashed on the way, cut off at the
size limit with nothing left behind), then renamed to ``ab/cd/<sha256>``: the same bytes are
stored once however many times they are uploaded. Files are written read-only and never
executed, rendered or served with their declared type.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from qalqan.errors import InvalidInput, PayloadTooLarge

__all__ = ["EvidenceStorage", "Received", "safe_file_name"]

_CHUNK: Final = 1 << 20
_SHA256_RE: Final = re.compile("[0-9a-f]{64}")
# Control characters, path separators and characters file systems or shells treat specially.
_UNSAFE: Final = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def safe_file_name(name: str | None) -> str:
    """A file name that names nothing but itself: no directories, no control characters, no
    leading dots, at most 255 bytes of UTF-8; ``evidence.bin`` when nothing is left."""
    text = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text).strip(" .")
    encoded = text.encode()[:255]
    text = encoded.decode(errors="ignore").strip(" .")
    return text or "evidence.bin"


@dataclass(frozen=True, slots=True)
class Received:
    """A file that has streamed in: its digest, size and where it now is."""

    sha256: str
    size: int
    path: Path


class EvidenceStorage:
    """The evidence files of one node."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        """Where the file of ``sha256`` lives (whether or not it exists)."""
        if not _SHA256_RE.fullmatch(sha256):
            raise InvalidInput(f"{sha256[:80]!r} is not a SHA-256 digest", field="sha256")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def receive(self, chunks: AsyncIterator[bytes], limit: int) -> Received:
        """Stream ``chunks`` to disk under ``limit`` bytes and file them by their SHA-256.

        PayloadTooLarge past the limit and InvalidInput for an empty body; either way, and on
        any other failure, nothing is left on disk.
        """
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        temporary = incoming / f"{uuid.uuid4()}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with temporary.open("wb") as handle:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(
                            f"the file is larger than the evidence limit of {limit} bytes"
                        )
                    digest.update(chunk)
                    handle.write(chunk)
            if size == 0:
                raise InvalidInput("the request body is empty: send the file", field="body")
            sha256 = digest.hexdigest()
            final = self.path_of(sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                temporary.unlink()
            else:
                os.chmod(temporary, 0o440)
                temporary.replace(final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return Received(sha256, size, final)

    def hash_on_disk(self, sha256: str) -> str | None:
        """The SHA-256 of the stored file as it is now, or None if it is gone."""
        path = self.path_of(sha256)
        digest = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                while block := handle.read(_CHUNK):
                    digest.update(block)
        except FileNotFoundError:
            return None
        return digest.hexdigest()

    def read(self, sha256: str) -> Iterator[bytes]:
        """The stored file, in chunks."""
        with self.path_of(sha256).open("rb") as handle:
            while block := handle.read(_CHUNK):
                yield block
