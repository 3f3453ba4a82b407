"""Reading a feed's resources: ``file://`` paths and HTTP(S) URLs, bounded in time and size.

HTTP responses are spooled to a temporary file before anything is parsed, so a download that
fails half-way fails the run before a single value is stored. Conditional requests (ETag,
Last-Modified) let an unchanged remote feed answer 304 and cost nothing. Text is read line by
line with its encoding sniffed (UTF-8, UTF-16 with or without BOM, Latin-1 per line as a last
resort); binary data is refused with a clear message.
"""

from __future__ import annotations

import codecs
import io
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

import httpx

from qalqan import __version__
from qalqan.errors import FetchError, InvalidInput

__all__ = [
    "FetchLimits",
    "Resource",
    "TextLines",
    "child_url",
    "fetch",
    "local_path",
]

_SNIFF = 4096


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How long and how much a fetch may take."""

    timeout: float = 60.0
    max_bytes: int = 1 << 30
    max_line: int = 64 * 1024


@dataclass(slots=True)
class Resource:
    """A fetched resource, readable as bytes; ``validators`` are what to send next time for a
    conditional request (``etag``, ``last_modified``)."""

    url: str
    stream: IO[bytes]
    validators: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> Resource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def local_path(url: str) -> Path | None:
    """The path of a ``file://`` URL, or None for any other URL."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput(f"file URL {url!r} names a host; use file:///path", field="url")
    return Path(unquote(parts.path))


def child_url(base: str, name: str) -> str:
    """``name`` (one path segment, e.g. ``manifest.json``) inside the directory URL ``base``."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise InvalidInput(f"{name!r} is not a plain file name", field="name")
    return base.rstrip("/") + "/" + name


def _check_url(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("file", "http", "https"):
        raise InvalidInput(
            f"URL {url!r} is not supported: use file://, http:// or https://", field="url"
        )
    return scheme


def _fetch_file(url: str, limits: FetchLimits) -> Resource:
    path = local_path(url)
    assert path is not None
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise FetchError(f"{path} is a directory, not a file", url=url)
        if size > limits.max_bytes:
            raise FetchError(f"{path} is {size} bytes; the limit is {limits.max_bytes}", url=url)
        stream = path.open("rb")
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}", url=url) from exc
    return Resource(url, stream)


def _fetch_http(
    url: str, limits: FetchLimits, validators: Mapping[str, str], headers: Mapping[str, str]
) -> Resource | None:
    sent = {"User-Agent": f"qalqan/{__version__}", **headers}
    if validators.get("etag"):
        sent["If-None-Match"] = validators["etag"]
    if validators.get("last_modified"):
        sent["If-Modified-Since"] = validators["last_modified"]
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - handed over to the Resource
    try:
        with (
            httpx.Client(timeout=limits.timeout, follow_redirects=True) as client,
            client.stream("GET", url, headers=sent) as response,
        ):
            if response.status_code == 304:
                spool.close()
                return None
            if response.status_code >= 400:
                raise FetchError(
                    f"{url} answered HTTP {response.status_code} {response.reason_phrase}",
                    url=url,
                )
            received = 0
            for chunk in response.iter_bytes(1 << 16):
                received += len(chunk)
                if received > limits.max_bytes:
                    raise FetchError(
                        f"{url} sent more than {limits.max_bytes} bytes; the limit is "
                        f"{limits.max_bytes}",
                        url=url,
                    )
                spool.write(chunk)
            kept = {
                name: response.headers[header]
                for name, header in (("etag", "ETag"), ("last_modified", "Last-Modified"))
                if header in response.headers
            }
    except httpx.TimeoutException as exc:
        spool.close()
        raise FetchError(f"{url} timed out after {limits.timeout:g} s", url=url) from exc
    except httpx.HTTPError as exc:
        spool.close()
        raise FetchError(f"cannot fetch {url}: {exc}", url=url) from exc
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return Resource(url, spool, kept)


def fetch(
    url: str,
    limits: FetchLimits,
    validators: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Resource | None:
    """Open ``url`` for reading; None when an HTTP server says it has not changed since the
    ``validators`` of the last fetch. Raises ``FetchError`` when it cannot be read."""
    if _check_url(url) == "file":
        return _fetch_file(url, limits)
    return _fetch_http(url, limits, validators or {}, headers or {})


def _sniff(head: bytes) -> str:
    """The encoding of a text stream from its first bytes; InvalidInput for binary data."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) > len(odd) * 0.4 and even.count(0) == 0:
            return "utf-16-le"
        if even.count(0) > len(even) * 0.4 and odd.count(0) == 0:
            return "utf-16-be"
        raise InvalidInput(
            f"binary data, not text (a NUL byte at offset {head.index(0)})", field="content"
        )
    return "utf-8"


class TextLines:
    """The lines of a text resource as ``(line number, text)``, without line ends.

    Lines longer than ``max_line`` bytes are skipped and listed in ``rejects``; a line that is
    not UTF-8 is read as Latin-1 (legacy feeds), so no line is lost to its encoding.
    """

    def __init__(self, stream: IO[bytes], max_line: int = 64 * 1024):
        self.rejects: list[tuple[int, str]] = []
        self.max_line = max_line
        self.line_no = 0
        buffered: io.BufferedReader = (
            stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
        )
        self._stream = buffered
        self.encoding = _sniff(buffered.peek(_SNIFF)[:_SNIFF])

    def __iter__(self) -> Iterator[tuple[int, str]]:
        if self.encoding.startswith("utf-16"):
            return self._wide()
        return self._narrow()

    def _too_long(self) -> None:
        self.rejects.append((self.line_no, f"the line is longer than {self.max_line} bytes"))

    def _narrow(self) -> Iterator[tuple[int, str]]:
        readline, limit = self._stream.readline, self.max_line + 1
        if self.encoding == "utf-8-sig":
            self._stream.read(len(codecs.BOM_UTF8))
        while True:
            raw = readline(limit)
            if not raw:
                return
            self.line_no += 1
            if len(raw) == limit and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):
                    raw = readline(1 << 16)
                self._too_long()
                continue
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            yield self.line_no, text.rstrip("\r\n")

    def _wide(self) -> Iterator[tuple[int, str]]:
        reader = io.TextIOWrapper(self._stream, encoding=self.encoding, errors="replace")
        try:
            yield from self._wide_lines(reader)
        finally:
            # The stream belongs to the resource, which closes it.
            reader.detach()

    def _wide_lines(self, reader: io.TextIOWrapper) -> Iterator[tuple[int, str]]:
        limit = self.max_line + 1
        while True:
            text = reader.readline(limit)
            if not text:
                return
            self.line_no += 1
            if len(text) == limit and not text.endswith("\n"):
                while text and not text.endswith("\n"):
                    text = reader.readline(1 << 16)
                self._too_long()
                continue
            yield self.line_no, text.lstrip("\ufeff").rstrip("\r\n")
