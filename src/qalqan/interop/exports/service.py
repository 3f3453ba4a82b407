"""Running an export: read and check its options, select what the caller may export, stream the
format's chunks, fingerprint it for ETags, write it to files or a tar archive, audit it.

The CLI and the REST API both go through :func:`parse_request` and :func:`prepare`, so an
option means the same, and fails the same way, whichever door it came through.
"""

from __future__ import annotations

import io
import re
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection

from qalqan.audit import record
from qalqan.domain.handling import TLP
from qalqan.domain.observables import KIND_ALIASES, KINDS
from qalqan.domain.principal import Principal
from qalqan.domain.stix import parse_timestamp
from qalqan.errors import InvalidInput, NotFound, parse_field
from qalqan.interop.exports.base import (
    KIND,
    MAIN,
    VALUE,
    Chunk,
    ExportFormat,
    Indicator,
    RenderContext,
)
from qalqan.interop.exports.registry import get_format
from qalqan.policy import export_ceiling, may_name_feed
from qalqan.store import accounts as accounts_store
from qalqan.store import exports as store
from qalqan.store import feeds as feeds_store
from qalqan.store.clock import now_us
from qalqan.store.exports import IndicatorSelection, VersionSelection

__all__ = [
    "Export",
    "ExportRequest",
    "archive",
    "object_link",
    "parse_request",
    "prepare",
    "write_files",
]

# Bumped when a format's output changes shape, so cached copies are not served as current.
_RENDER_VERSION = 1
_STIX_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,249}")
_MAX_LABELS = 50
_MAX_FEEDS = 50


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """The options of one export, checked and normalized (see :func:`parse_request`)."""

    format: ExportFormat
    kinds: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    max_tlp: TLP | None = None
    min_confidence: int | None = None
    since: int | None = None
    feeds: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """The options as JSON-able data (for the audit log and the fingerprint)."""
        return {
            "format": self.format.name,
            "kinds": list(self.kinds) if self.kinds else None,
            "types": list(self.types) if self.types else None,
            "max_tlp": self.max_tlp.label if self.max_tlp is not None else None,
            "min_confidence": self.min_confidence,
            "since": self.since,
            "feeds": list(self.feeds),
            "labels": list(self.labels),
        }


def _split(values: Iterable[str] | None) -> list[str]:
    """Repeated options and comma lists alike: ``["a,b", "c"]`` → ``["a", "b", "c"]``."""
    return [part.strip() for v in values or () for part in v.split(",") if part.strip()]


def _kind(text: str) -> str:
    kind = KIND_ALIASES.get(text.lower(), text.lower())
    if kind not in KINDS:
        raise ValueError(f"unknown observable kind {text!r}; use one of {', '.join(KINDS)}")
    return kind


def _confidence(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()) or not 0 <= int(text) <= 100:
        raise ValueError(f"{text!r} is not a number from 0 to 100")
    return int(text)


def _stix_type(text: str) -> str:
    if _STIX_TYPE_RE.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a STIX type name")
    return text


def _label(text: str) -> str:
    if len(text) > 200 or not text.isprintable():
        raise ValueError("a label is at most 200 printable characters")
    return text


def parse_request(
    format: str,
    *,
    kinds: Sequence[str] | None = None,
    types: Sequence[str] | None = None,
    max_tlp: str | None = None,
    min_confidence: str | None = None,
    since: str | None = None,
    feeds: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
) -> ExportRequest:
    """Read an export's options as given on a command line or in a query string.

    Raises ``InvalidInput`` naming the field: an unknown format or kind, a bad TLP (RED is
    refused for detection exports), a confidence outside 0 to 100, a malformed timestamp.
    ``types`` are STIX types for the ``stix`` format and, like ``kinds``, observable kinds
    (or their STIX names, ``ipv4-addr``, ``domain-name``) for the others.
    """
    fmt = parse_field("format", get_format, format.strip().lower())
    ceiling = parse_field("max_tlp", TLP.parse, max_tlp)
    detection = fmt.kinds is not None
    if detection and ceiling is not None:
        try:
            export_ceiling(ceiling)
        except ValueError as exc:
            raise InvalidInput(f"max_tlp: {exc}", field="max_tlp") from None
    chosen_kinds: tuple[str, ...] | None = None
    stix_types: tuple[str, ...] | None = None
    if detection:
        named = [parse_field("kind", _kind, k) for k in _split(kinds) + _split(types)]
        supported = fmt.kinds or ()
        for kind in named:
            if kind not in supported:
                raise InvalidInput(
                    f"kind: {fmt.name} cannot express {kind}; it exports {', '.join(supported)}",
                    field="kind",
                )
        chosen_kinds = tuple(dict.fromkeys(named)) or None
    else:
        if _split(kinds):
            raise InvalidInput(
                "kind: the stix format exports objects; choose them with type", field="kind"
            )
        stix_types = tuple(dict.fromkeys(parse_field("type", _stix_type, t) for t in _split(types)))
    feed_names = tuple(dict.fromkeys(_split(feeds)))
    label_names = tuple(dict.fromkeys(parse_field("label", _label, x) for x in _split(labels)))
    if len(feed_names) > _MAX_FEEDS:
        raise InvalidInput(f"feed: at most {_MAX_FEEDS} feeds", field="feed")
    if len(label_names) > _MAX_LABELS:
        raise InvalidInput(f"label: at most {_MAX_LABELS} labels", field="label")
    return ExportRequest(
        format=fmt,
        kinds=chosen_kinds,
        types=stix_types or None,
        max_tlp=ceiling,
        min_confidence=parse_field("min_confidence", _confidence, min_confidence),
        since=parse_field("since", parse_timestamp, since),
        feeds=feed_names,
        labels=label_names,
    )


@dataclass
class Export:
    """One export, ready to fingerprint and to stream (see :func:`prepare`)."""

    principal: Principal
    request: ExportRequest
    context: RenderContext
    sources: tuple[str, ...]
    min_confidence: int | None
    now: int
    selected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    complete: bool = False

    @property
    def format(self) -> ExportFormat:
        return self.request.format

    def etag(self, conn: Connection) -> str:
        """A weak ETag: equal for two requests whose exports hold the same things."""
        material = [
            _RENDER_VERSION,
            self.request.describe(),
            self.min_confidence,
            self.context.object_url,
            self.context.stem,
        ]
        digest = store.fingerprint(
            conn,
            self.principal,
            material,
            now=self.now,
            indicators_only=self.format.kinds is not None,
        )
        return f'W/"{digest}"'

    def chunks(self, conn: Connection) -> Iterator[Chunk]:
        """The export's bytes, tagged by file; ``complete`` turns true after the last one."""
        yield from self.format.render(_Reader(conn, self), self.context)
        self.complete = True

    def summary(self) -> dict[str, Any]:
        """Counts and options, as the audit log and ``--json`` show them."""
        written = sum(self.selected.values()) - sum(self.context.skipped.values())
        return {
            "format": self.format.name,
            "written": written,
            "by_kind": dict(sorted(self.selected.items())),
            "skipped": dict(sorted(self.context.skipped.items())),
            "duplicates": self.duplicates,
            "complete": self.complete,
            "filters": {**self.request.describe(), "min_confidence": self.min_confidence},
        }

    def audit(self, conn: Connection) -> None:
        """Record the export in the audit log: who, which format and filters, how many."""
        record(conn, self.principal, f"export.{self.format.name}", detail=self.summary())


class _Reader:
    """The :class:`~qalqan.interop.exports.base.Source` of one export."""

    def __init__(self, conn: Connection, export: Export) -> None:
        self._conn = conn
        self._export = export

    def indicators(self) -> Iterator[list[Indicator]]:
        export = self._export
        request = export.request
        export.context.org_names.update(store.org_names(self._conn))
        selection = IndicatorSelection(
            now=export.now,
            ceiling=export.context.ceiling,
            min_confidence=export.min_confidence,
            kinds=request.kinds or request.format.kinds,
            since=request.since,
            sources=export.sources or None,
            labels=request.labels or None,
        )
        # One set per kind: a value goes out once, with the first indicator that names it.
        seen: dict[str, set[str]] = {kind: set() for kind in KINDS}
        try:
            batches = store.iter_indicator_observables(self._conn, export.principal, selection)
            for batch in batches:
                out: list[Indicator] = []
                keep = out.append
                for row in batch:
                    values = seen[row[KIND]]
                    value = row[VALUE]
                    if value not in values:
                        values.add(value)
                        keep(row)
                export.duplicates += len(batch) - len(out)
                yield out
        finally:
            export.selected.update({k: len(v) for k, v in seen.items() if v})

    def versions(self) -> Iterator[list[tuple[int, str]]]:
        export = self._export
        request = export.request
        selection = VersionSelection(
            types=request.types,
            max_tlp=request.max_tlp,
            since=request.since,
            sources=export.sources or None,
            labels=request.labels or None,
        )
        for batch in store.iter_versions(self._conn, export.principal, selection):
            export.selected["objects"] += len(batch)
            yield batch


_STEM_RE = re.compile(r"[^A-Za-z0-9_-]+")


def _stem(name: str | None) -> str:
    """A safe stem for side-file and dataset names, from the output file's name."""
    if not name:
        return "qalqan"
    stem = _STEM_RE.sub("-", Path(name).stem).strip("-")[:60]
    return stem or "qalqan"


def prepare(
    conn: Connection,
    principal: Principal,
    request: ExportRequest,
    *,
    default_min_confidence: int | None = None,
    object_url: str | None = None,
    output_name: str | None = None,
) -> Export:
    """An export of ``request`` for ``principal``: feed names resolved (a feed the principal
    may not name is as unknown as a missing one), defaults applied."""
    sources = []
    for ref in request.feeds:
        try:
            feed: feeds_store.FeedRecord | None = feeds_store.get_feed(conn, ref)
        except NotFound:
            feed = None
        if feed is None or not may_name_feed(principal, feed.owner_org_id):
            raise InvalidInput(f"feed: no feed {ref!r}", field="feed")
        sources.append(f"feed:{feed.id}")
    detection = request.format.kinds is not None
    ceiling = export_ceiling(request.max_tlp) if detection else (request.max_tlp or TLP.RED)
    min_confidence = request.min_confidence
    if min_confidence is None and detection:
        min_confidence = default_min_confidence
    org = accounts_store.get_org(conn, principal.org_id)
    context = RenderContext(
        org=org.name,
        generated=now_us(),
        ceiling=ceiling,
        stem=_stem(output_name),
        object_url=object_url,
    )
    return Export(
        principal=principal,
        request=request,
        context=context,
        sources=tuple(sources),
        min_confidence=min_confidence if detection else None,
        now=context.generated,
    )


def object_link(base: str | None) -> str | None:
    """The prefix of a link to one object of this node's API, from its public address."""
    return f"{base.rstrip('/')}/api/v1/objects/" if base else None


def write_files(
    export: Export,
    conn: Connection,
    output: Path,
    progress: Callable[[], object] | None = None,
) -> list[Path]:
    """Write the export to ``output`` (side files beside it), each first as ``<name>.part``
    and renamed when everything is written: a reader never sees half an export.
    ``progress`` is called after each chunk."""
    directory = output.parent
    handles: dict[str, IO[bytes]] = {}
    targets: dict[str, Path] = {}
    try:
        for name, data in export.chunks(conn):
            handle = handles.get(name)
            if handle is None:
                target = output if name == MAIN else directory / name
                targets[name] = target
                handle = handles[name] = target.with_name(target.name + ".part").open("wb")
            handle.write(data)
            if progress is not None:
                progress()
        if MAIN not in handles:
            targets[MAIN] = output
            handles[MAIN] = output.with_name(output.name + ".part").open("wb")
        for handle in handles.values():
            handle.close()
        for name, target in targets.items():
            target.with_name(target.name + ".part").replace(target)
            del handles[name]
    finally:
        for name, handle in handles.items():
            handle.close()
            part = targets[name].with_name(targets[name].name + ".part")
            part.unlink(missing_ok=True)
    # The main file last in the list, side files first, in the order they were made.
    return [t for n, t in targets.items() if n != MAIN] + [targets[MAIN]]


class _Pipe(io.RawIOBase):
    """A write-only file that hands what is written to the caller (for streaming a tar)."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.pending.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.pending)
        self.pending.clear()
        return out


def archive(export: Export, conn: Connection, main_name: str) -> Iterator[bytes]:
    """The export as a gzip-compressed tar of its files (the main one named ``main_name``).

    Members must announce their size first, so every file is spooled to a temporary file
    (disk, not memory) before the archive streams out.
    """
    spools: dict[str, IO[bytes]] = {}
    try:
        for name, data in export.chunks(conn):
            spool = spools.get(name)
            if spool is None:
                spool = spools[name] = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
            spool.write(data)
        pipe = _Pipe()
        stamp = int(time.time())
        with tarfile.open(fileobj=pipe, mode="w|gz") as tar:
            for name in sorted(spools, key=lambda n: (n == MAIN, n)):
                spool = spools[name]
                info = tarfile.TarInfo(main_name if name == MAIN else name)
                info.size = spool.tell()
                info.mtime = stamp
                info.mode = 0o644
                spool.seek(0)
                tar.addfile(info, spool)
                yield pipe.take()
        yield pipe.take()
    finally:
        for spool in spools.values():
            spool.close()
