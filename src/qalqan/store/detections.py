"""SQL of detection: what a sweep looks for, its runs and hits, and sightings released back.

What a sweep reads is filtered with ``policy.visible_to`` and ``policy.sweep_predicate`` in the
WHERE clause; runs and hits with ``policy.runs_visible_to``. Listings are keyset pages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Select, insert, or_, select, update

from qalqan.domain.principal import Principal
from qalqan.policy import runs_visible_to, sweep_predicate, visible_to
from qalqan.store.exports import indicator_window, observable_windows
from qalqan.store.tables import detection_hits as hits
from qalqan.store.tables import detection_runs as runs
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import observables as obs

__all__ = [
    "HIT_COLUMNS",
    "RunRow",
    "SweepValueRow",
    "create_run",
    "finish_run",
    "get_run",
    "insert_hits",
    "iter_search_indicators",
    "iter_sweep_values",
    "list_hits",
    "list_runs",
    "release_sightings",
    "start_run",
]

_BATCH = 50_000
_IN_CHUNK = 5_000  # ids per IN list: well under the bound-parameter limits of both databases

# (kind, value, stix id, name, confidence, tlp, owner org id, ip_start, ip_end)
SweepValueRow = tuple[str, str, str, str | None, int | None, int, str, str | None, str | None]

HIT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "kind",
    "file",
    "line",
    "offset",
    "event_time",
    "match_id",
    "value",
    "field",
    "title",
    "level",
    "owner_org_id",
    "tlp",
    "confidence",
    "tags",
    "event",
)


@dataclass(frozen=True, slots=True)
class RunRow:
    """A detection run as stored (JSON columns decoded)."""

    id: str
    org_id: str
    user_id: str | None
    origin: str
    status: str
    created_at: int
    finished_at: int | None
    files: list[str]
    options: dict[str, Any]
    summary: dict[str, Any]
    hit_count: int
    error: str | None


def iter_sweep_values(
    conn: Connection, principal: Principal, *, now: int, min_confidence: int | None = None
) -> Iterator[list[SweepValueRow]]:
    """The observables of the indicators a sweep by the principal uses, in batches of at most
    ``_BATCH`` observable ids (keyset windows on the observable key, as exports read them)."""

    active = sweep_predicate(ov, obs, now=now, min_confidence=min_confidence)

    def window(low: int, high: int) -> Select[Any]:
        return indicator_window(principal, active, low, high, (obs.c.ip_start, obs.c.ip_end))

    return observable_windows(conn, window, _BATCH)


def iter_search_indicators(
    conn: Connection, principal: Principal, *, now: int, min_confidence: int | None = None
) -> Iterator[tuple[str, str | None, int | None, int, str, str]]:
    """``(stix id, name, confidence, tlp, owner org id, content)`` of the sweep's indicators
    whose pattern may hold a ``LIKE`` or ``MATCHES`` comparison (a text sieve; the caller
    parses the pattern)."""
    stmt = select(
        ov.c.stix_id, ov.c.name, ov.c.confidence, ov.c.tlp, ov.c.owner_org_id, ov.c.content
    ).where(
        visible_to(principal, ov),
        sweep_predicate(ov, None, now=now, min_confidence=min_confidence),
        or_(ov.c.content.like("% LIKE %"), ov.c.content.like("% MATCHES %")),
    )
    for row in conn.execute(stmt):
        yield (str(row[0]), row[1], row[2], int(row[3]), str(row[4]), str(row[5]))


def create_run(
    conn: Connection,
    *,
    run_id: str,
    principal: Principal,
    origin: str,
    files: Sequence[str],
    options: dict[str, Any],
    at: int,
    status: str = "running",
) -> None:
    """Record a new run of the principal's org."""
    conn.execute(
        insert(runs).values(
            id=run_id,
            org_id=principal.org_id,
            user_id=principal.user_id,
            origin=origin,
            status=status,
            created_at=at,
            files=orjson.dumps(list(files)).decode(),
            options=orjson.dumps(options).decode(),
            summary="{}",
            hit_count=0,
        )
    )


def start_run(conn: Connection, run_id: str) -> None:
    """Mark a queued run as running."""
    conn.execute(update(runs).where(runs.c.id == run_id).values(status="running"))


def finish_run(
    conn: Connection,
    run_id: str,
    *,
    status: str,
    at: int,
    summary: dict[str, Any],
    hit_count: int,
    error: str | None = None,
) -> None:
    """Record how a run ended."""
    conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            status=status,
            finished_at=at,
            summary=orjson.dumps(summary).decode(),
            hit_count=hit_count,
            error=error,
        )
    )


def _run_row(row: Any) -> RunRow:
    return RunRow(
        id=row.id,
        org_id=row.org_id,
        user_id=row.user_id,
        origin=row.origin,
        status=row.status,
        created_at=int(row.created_at),
        finished_at=None if row.finished_at is None else int(row.finished_at),
        files=orjson.loads(row.files),
        options=orjson.loads(row.options),
        summary=orjson.loads(row.summary),
        hit_count=int(row.hit_count),
        error=row.error,
    )


def get_run(conn: Connection, principal: Principal, run_id: str) -> RunRow | None:
    """A run the principal may read, or None."""
    row = conn.execute(
        select(runs).where(runs.c.id == run_id, runs_visible_to(principal, runs))
    ).first()
    return None if row is None else _run_row(row)


def list_runs(
    conn: Connection,
    principal: Principal,
    *,
    limit: int,
    before: tuple[int, str] | None = None,
    status: str | None = None,
) -> list[RunRow]:
    """The principal's org's runs, newest first; ``before`` is the ``(created_at, id)`` of the
    last run of the previous page."""
    stmt = select(runs).where(runs_visible_to(principal, runs))
    if status is not None:
        stmt = stmt.where(runs.c.status == status)
    if before is not None:
        at, run_id = before
        stmt = stmt.where(
            or_(runs.c.created_at < at, (runs.c.created_at == at) & (runs.c.id < run_id))
        )
    stmt = stmt.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
    return [_run_row(r) for r in conn.execute(stmt)]


def insert_hits(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store hits, each a dict of some of :data:`HIT_COLUMNS` (the others are null)."""
    if rows:
        conn.execute(insert(hits), [{c: r.get(c) for c in HIT_COLUMNS} for r in rows])


def list_hits(
    conn: Connection,
    principal: Principal,
    *,
    limit: int,
    after: int | None = None,
    run_id: str | None = None,
    kind: str | None = None,
    match_id: str | None = None,
    since: int | None = None,
) -> list[dict[str, Any]]:
    """Hits of the principal's org's runs, oldest first, as dicts; ``after`` is the last hit
    id of the previous page; ``since`` keeps hits of runs created at or after it (µs)."""
    stmt = (
        select(hits, runs.c.created_at.label("run_created_at"))
        .select_from(hits.join(runs, runs.c.id == hits.c.run_id))
        .where(runs_visible_to(principal, runs))
    )
    if run_id is not None:
        stmt = stmt.where(hits.c.run_id == run_id)
    if kind is not None:
        stmt = stmt.where(hits.c.kind == kind)
    if match_id is not None:
        stmt = stmt.where(hits.c.match_id == match_id)
    if since is not None:
        stmt = stmt.where(runs.c.created_at >= since)
    if after is not None:
        stmt = stmt.where(hits.c.id > after)
    stmt = stmt.order_by(hits.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def release_sightings(conn: Connection, owner_org_id: str, recipients: dict[str, str]) -> None:
    """Let each sighting ``stix id → org id`` of ``recipients`` (owned by ``owner_org_id``) be
    read by that org too."""
    by_recipient: dict[str, list[str]] = {}
    for stix_id, org_id in recipients.items():
        by_recipient.setdefault(org_id, []).append(stix_id)
    for org_id, stix_ids in by_recipient.items():
        for start in range(0, len(stix_ids), _IN_CHUNK):
            conn.execute(
                update(ov)
                .where(
                    ov.c.stix_id.in_(stix_ids[start : start + _IN_CHUNK]),
                    ov.c.owner_org_id == owner_org_id,
                )
                .values(recipient_org_id=org_id)
            )
