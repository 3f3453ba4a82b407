"""SQL of the analysis index: the tables derived from stored versions (links between objects,
sightings, labels, full text, reversed domains) and the cursor that says how far they reach.

Writes only; the reads that use these tables live with their use (correlation, search, ATT&CK,
statistics), each filtered by ``policy.visible_to``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from qalqan.store.tables import TEXT_INDEX, index_cursors, object_labels, object_links
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import observables as obs
from qalqan.store.tables import sightings as sightings_table

__all__ = [
    "LinkRow",
    "SightingRow",
    "StoredRow",
    "cursor_position",
    "insert_labels",
    "insert_links",
    "insert_sightings",
    "insert_text",
    "move_cursor",
    "reverse_domains",
    "versions_after",
]


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A stored version as the indexers read it."""

    date_added: int
    stix_id: str
    type: str
    content: str
    owner_org_id: str
    is_latest: bool


LinkRow = tuple[int, str, str, str]  # version_id, source_ref, target_ref, link_type
SightingRow = tuple[int, str, str, int, int | None, int | None]  # see tables.sightings


def cursor_position(conn: Connection, name: str) -> int:
    """The last ``date_added`` the named indexer has seen (0 when it has seen nothing)."""
    found = conn.execute(
        select(index_cursors.c.position).where(index_cursors.c.name == name)
    ).scalar()
    return int(found or 0)


def move_cursor(conn: Connection, name: str, position: int) -> None:
    """Record that the named indexer has seen every version up to ``position``."""
    values = {"name": name, "position": position}
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(index_cursors).values(values)
        conn.execute(pg.on_conflict_do_update(index_elements=["name"], set_={"position": position}))
    else:
        lite = sqlite.insert(index_cursors).values(values)
        conn.execute(
            lite.on_conflict_do_update(index_elements=["name"], set_={"position": position})
        )


def versions_after(conn: Connection, position: int, limit: int) -> list[StoredRow]:
    """The next ``limit`` stored versions after ``position``, oldest first."""
    stmt = (
        select(
            ov.c.date_added,
            ov.c.stix_id,
            ov.c.type,
            ov.c.content,
            ov.c.owner_org_id,
            ov.c.is_latest,
        )
        .where(ov.c.date_added > position)
        .order_by(ov.c.date_added)
        .limit(limit)
    )
    return [StoredRow(*row) for row in conn.execute(stmt)]


def _insert(conn: Connection, table: Any, rows: Sequence[Sequence[Any]]) -> None:
    if rows:
        names = [c.name for c in table.columns]
        conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])


def insert_links(conn: Connection, rows: Sequence[LinkRow]) -> None:
    """Rows of ``object_links``: (version_id, source_ref, target_ref, link_type)."""
    _insert(conn, object_links, sorted(set(rows)))


def insert_sightings(conn: Connection, rows: Sequence[SightingRow]) -> None:
    """Rows of ``sightings``: (version_id, sighting_of_ref, kind, count, first_seen, last_seen)."""
    _insert(conn, sightings_table, rows)


def insert_labels(conn: Connection, rows: Sequence[tuple[int, str]]) -> None:
    """Rows of ``object_labels``: (version_id, label)."""
    _insert(conn, object_labels, sorted(set(rows)))


def insert_text(conn: Connection, rows: Sequence[tuple[int, str]]) -> None:
    """Rows of the full-text index: (version_id, text)."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        sql = f"INSERT INTO {TEXT_INDEX} (rowid, body) VALUES (?, ?)"  # noqa: S608 - our name
    else:
        sql = f"INSERT INTO {TEXT_INDEX} (version_id, body) VALUES (%s, %s)"  # noqa: S608
    conn.exec_driver_sql(sql, [tuple(row) for row in rows])


def reverse_domains(conn: Connection, first: int, last: int) -> None:
    """Fill ``rvalue`` of the domain entries of versions ``first``..``last`` (date_added)."""
    stmt = select(obs.c.id, obs.c.value).where(
        obs.c.version_id.between(first, last), obs.c.kind == "domain"
    )
    rows = [{"key": key, "reversed": value[::-1]} for key, value in conn.execute(stmt)]
    if rows:
        conn.execute(
            update(obs).where(obs.c.id == bindparam("key")).values(rvalue=bindparam("reversed")),
            rows,
        )
