"""The analysis index: what correlation, search, ATT&CK context and statistics read besides the
observable index, derived from stored versions after they are written.

:func:`catch_up` walks the versions added since its cursor, in ``date_added`` order, and hands
each batch to every indexer :func:`indexers` lists. It runs in the writer's transaction at the end
of an import and of a feed run, so whatever wrote a version (the REST API, TAXII, a feed) the
index follows; a node upgraded to this schema indexes
what it already holds on its first run. Indexers only ever see each version once.

Derived here:

- ``object_links``: relationships (source, target, type), a sighting's ``sighting_of_ref``,
  ``where_sighted_refs`` and ``observed_data_refs``, and a container's ``object_refs``;
- ``sightings``: one row per sighting version, with its kind (``x_qalqan_sighting_kind``:
  ``sighting``, ``false-positive`` or ``expiration``), count and first/last seen;
- ``object_labels`` and the full-text index (names, descriptions, labels, aliases, ATT&CK ids);
- ``observables.rvalue``: domains reversed, so "everything under example.com" is a range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from sqlalchemy import Connection

from qalqan.domain.stix import object_kind, parse_timestamp
from qalqan.store import analysis as store
from qalqan.store.analysis import LinkRow, SightingRow, StoredRow
from qalqan.store.clock import lock_writes

__all__ = [
    "CURSOR",
    "SIGHTING_KINDS",
    "IndexBatch",
    "IndexedVersion",
    "Indexer",
    "catch_up",
    "indexers",
    "sighting_kind",
    "text_of",
]

CURSOR: Final = "analysis"
SIGHTING_KINDS: Final = ("sighting", "false-positive", "expiration")
_BATCH: Final = 2000
_MAX_LABEL: Final = 250
_MAX_TEXT: Final = 100_000
# Lists of references that tie one object to others, with the link type each becomes.
_REF_LISTS: Final = {
    "object_refs": "object-ref",
    "where_sighted_refs": "where-sighted",
    "observed_data_refs": "observed-data",
    "sample_refs": "sample",
}


class IndexedVersion:
    """A stored version with its parsed content, as indexers receive it."""

    __slots__ = ("date_added", "is_latest", "obj", "owner_org_id", "stix_id", "type")

    def __init__(self, row: StoredRow, obj: dict[str, Any]) -> None:
        self.date_added = row.date_added
        self.stix_id = row.stix_id
        self.type = row.type
        self.owner_org_id = row.owner_org_id
        self.is_latest = row.is_latest
        self.obj = obj


@dataclass(frozen=True, slots=True)
class IndexBatch:
    """Consecutive stored versions: ``first``..``last`` (date_added) and, parsed, those that are
    not cyber observables (their values are in the observable index already)."""

    first: int
    last: int
    versions: Sequence[IndexedVersion]


Indexer = Callable[[Connection, IndexBatch], None]


def sighting_kind(obj: dict[str, Any]) -> str:
    """What a sighting reports: ``sighting`` (default), ``false-positive`` or ``expiration``."""
    kind = obj.get("x_qalqan_sighting_kind")
    return kind if isinstance(kind, str) and kind in SIGHTING_KINDS else "sighting"


def _time(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _index_links(conn: Connection, batch: IndexBatch) -> None:
    links: list[LinkRow] = []
    sightings: list[SightingRow] = []
    for v in batch.versions:
        obj = v.obj
        if v.type == "relationship":
            source, target, kind = (
                obj.get("source_ref"),
                obj.get("target_ref"),
                obj.get("relationship_type"),
            )
            if isinstance(source, str) and isinstance(target, str) and isinstance(kind, str):
                links.append((v.date_added, source, target, kind[:100]))
        elif v.type == "sighting":
            of = obj.get("sighting_of_ref")
            if isinstance(of, str):
                links.append((v.date_added, v.stix_id, of, "sighting-of"))
                count = obj.get("count", 1)
                sightings.append(
                    (
                        v.date_added,
                        of,
                        sighting_kind(obj),
                        count if isinstance(count, int) and count >= 0 else 1,
                        _time(obj.get("first_seen")),
                        _time(obj.get("last_seen")),
                    )
                )
        for key, link_type in _REF_LISTS.items():
            refs = obj.get(key)
            if isinstance(refs, list):
                links.extend(
                    (v.date_added, v.stix_id, ref, link_type)
                    for ref in refs
                    if isinstance(ref, str)
                )
    store.insert_links(conn, links)
    store.insert_sightings(conn, sightings)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield from (item for item in value if isinstance(item, str))


def text_of(obj: dict[str, Any]) -> str:
    """The words an object is found by in a full-text search: names, descriptions, labels,
    aliases and the ids of external references (ATT&CK technique ids, CVEs)."""
    parts: list[str] = []
    for key in ("name", "description", "abstract", "content", "explanation", "context"):
        parts.extend(_strings(obj.get(key)))
    for key in ("labels", "aliases", "x_mitre_aliases", "roles", "sectors", "goals"):
        parts.extend(_strings(obj.get(key)))
    refs = obj.get("external_references")
    if isinstance(refs, list):
        for ref in refs:
            if isinstance(ref, dict):
                parts.extend(_strings(ref.get("external_id")))
    # PostgreSQL text cannot hold NUL; the stored content keeps the object exactly as sent.
    return "\n".join(parts).replace("\x00", "")[:_MAX_TEXT]


def _index_text(conn: Connection, batch: IndexBatch) -> None:
    labels: list[tuple[int, str]] = []
    texts: list[tuple[int, str]] = []
    for v in batch.versions:
        labels.extend(
            (v.date_added, label.replace("\x00", "")[:_MAX_LABEL])
            for label in _strings(v.obj.get("labels"))
            if label
        )
        text = text_of(v.obj)
        if text.strip():
            texts.append((v.date_added, text))
    store.insert_labels(conn, labels)
    store.insert_text(conn, texts)


def _index_domains(conn: Connection, batch: IndexBatch) -> None:
    store.reverse_domains(conn, batch.first, batch.last)


def indexers() -> tuple[Indexer, ...]:
    """Every indexer, in order: later ones may read what earlier ones wrote for a batch."""
    # Imported here, not at the top: scoring and sightings read intelligence through modules
    # that import the importer, which calls catch_up.
    from qalqan.intel import scoring, sightings

    return (
        _index_links,
        _index_text,
        _index_domains,
        scoring.index_scores,
        sightings.notify_owners,
    )


def catch_up(conn: Connection, *, limit: int | None = None) -> int:
    """Index the versions stored since the last call, inside the caller's transaction; returns
    how many were indexed. ``limit`` bounds the work of one call (the rest waits for the next).

    Takes the node's write turn, so no version with a smaller ``date_added`` can commit after
    the cursor has passed it.
    """
    lock_writes(conn)
    position = store.cursor_position(conn, CURSOR)
    done = 0
    while limit is None or done < limit:
        size = _BATCH if limit is None else min(_BATCH, limit - done)
        rows = store.versions_after(conn, position, size)
        if not rows:
            break
        versions: list[IndexedVersion] = []
        for row in rows:
            if object_kind(row.type) == "sco":
                continue
            obj = orjson.loads(row.content)
            if isinstance(obj, dict):
                versions.append(IndexedVersion(row, obj))
        batch = IndexBatch(rows[0].date_added, rows[-1].date_added, versions)
        for indexer in indexers():
            indexer(conn, batch)
        position = rows[-1].date_added
        done += len(rows)
    store.move_cursor(conn, CURSOR, position)
    return done
