"""SQL for feeds, their runs, the values each feed holds, and custom warninglists."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from qalqan.errors import Conflict, NotFound
from qalqan.store.engine import sql_literal
from qalqan.store.tables import feed_runs, feed_values, feeds, warninglists

__all__ = [
    "FeedRecord",
    "FeedValue",
    "RunRecord",
    "WarninglistRecord",
    "claim",
    "claim_renew",
    "delete_feed",
    "delete_warninglist",
    "due_feed_ids",
    "expired_candidates",
    "finish_run",
    "get_feed",
    "insert_feed",
    "insert_values",
    "insert_warninglist",
    "iter_values",
    "list_feeds",
    "list_runs",
    "list_warninglists",
    "lookup_values",
    "mark_expired",
    "release",
    "start_run",
    "touch_all",
    "touch_origins",
    "touch_values",
    "update_feed",
    "update_values",
    "value_key",
    "values_of_origin",
]

_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class FeedRecord:
    id: str
    name: str
    source: str
    url: str
    options: dict[str, Any]
    owner_org_id: str
    tlp: int
    distribution: str
    sharing_group_id: str | None
    confidence: int | None
    schedule_seconds: int | None
    expire_after_seconds: int | None
    on_warninglist: str
    enabled: bool
    state: dict[str, Any]
    created_at: int
    created_by: str | None
    next_run_at: int | None


_JSON_FIELDS = ("options", "state")
_FEED_COLUMNS = tuple(feeds.c[f.name] for f in fields(FeedRecord))


def _feed(row: Sequence[Any]) -> FeedRecord:
    values = dict(zip((f.name for f in fields(FeedRecord)), row, strict=True))
    for name in _JSON_FIELDS:
        values[name] = orjson.loads(values[name] or "{}")
    return FeedRecord(**values)


def _dump(values: dict[str, Any]) -> dict[str, Any]:
    return {k: orjson.dumps(v).decode() if k in _JSON_FIELDS else v for k, v in values.items()}


def insert_feed(conn: Connection, feed: FeedRecord) -> None:
    """Store a new feed; Conflict if its name is taken."""
    values = _dump({f.name: getattr(feed, f.name) for f in fields(FeedRecord)})
    try:
        with conn.begin_nested():
            conn.execute(insert(feeds).values(**values))
    except IntegrityError as exc:
        raise Conflict(f"feed {feed.name!r} already exists", field="name") from exc


def get_feed(conn: Connection, ref: str) -> FeedRecord:
    """The feed whose name or id is ``ref``; NotFound otherwise."""
    row = conn.execute(
        select(*_FEED_COLUMNS).where(or_(feeds.c.name == ref, feeds.c.id == ref))
    ).first()
    if row is None:
        raise NotFound(f"no feed {ref!r}")
    return _feed(row)


def list_feeds(conn: Connection, owner_org_id: str | None = None) -> list[FeedRecord]:
    """Every feed (of one owner org if given), by name."""
    stmt = select(*_FEED_COLUMNS).order_by(feeds.c.name)
    if owner_org_id is not None:
        stmt = stmt.where(feeds.c.owner_org_id == owner_org_id)
    return [_feed(r) for r in conn.execute(stmt)]


def update_feed(conn: Connection, feed_id: str, **values: Any) -> None:
    """Change some columns of a feed."""
    conn.execute(update(feeds).where(feeds.c.id == feed_id).values(**_dump(values)))


def delete_feed(conn: Connection, feed_id: str) -> None:
    """Remove a feed with its runs and its value list (its stored objects stay)."""
    conn.execute(delete(feed_values).where(feed_values.c.feed_id == feed_id))
    conn.execute(delete(feed_runs).where(feed_runs.c.feed_id == feed_id))
    conn.execute(delete(feeds).where(feeds.c.id == feed_id))


def claim(conn: Connection, feed_id: str, owner: str, now: int, until: int) -> bool:
    """Take the feed's lease if nobody holds a live one; True if taken.

    One UPDATE decides, so of several workers claiming at once exactly one wins.
    """
    result = conn.execute(
        update(feeds)
        .where(
            feeds.c.id == feed_id,
            or_(feeds.c.lease_until.is_(None), feeds.c.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=until)
    )
    return result.rowcount == 1


def claim_renew(conn: Connection, feed_id: str, owner: str, until: int) -> None:
    """Extend a lease the owner holds (long runs renew it as they go)."""
    conn.execute(
        update(feeds)
        .where(feeds.c.id == feed_id, feeds.c.lease_owner == owner)
        .values(lease_until=until)
    )


def release(conn: Connection, feed_id: str, owner: str, next_run_at: int | None) -> None:
    """Give the lease back and set when the feed is due next."""
    conn.execute(
        update(feeds)
        .where(feeds.c.id == feed_id, feeds.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, next_run_at=next_run_at)
    )


def due_feed_ids(conn: Connection, now: int) -> list[str]:
    """Enabled, scheduled feeds whose next run time has come and that nobody is running."""
    stmt = (
        select(feeds.c.id)
        .where(
            feeds.c.enabled.is_(True),
            feeds.c.schedule_seconds.is_not(None),
            or_(feeds.c.next_run_at.is_(None), feeds.c.next_run_at <= now),
            or_(feeds.c.lease_until.is_(None), feeds.c.lease_until < now),
        )
        .order_by(feeds.c.next_run_at)
    )
    return list(conn.execute(stmt).scalars())


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    feed_id: str
    started_at: int
    finished_at: int | None
    status: str
    trigger: str
    new: int
    updated: int
    unchanged: int
    expired: int
    warninglisted: int
    dropped: int
    duplicates: int
    rejected: int
    errors: list[dict[str, Any]]
    error: str | None


_RUN_COLUMNS = tuple(feed_runs.c[f.name] for f in fields(RunRecord))
COUNTS = ("new", "updated", "unchanged", "expired", "warninglisted", "dropped", "duplicates",
          "rejected")  # fmt: skip


def start_run(conn: Connection, feed_id: str, trigger: str, at: int) -> int:
    """Record a run that begins; returns its id."""
    row = conn.execute(
        insert(feed_runs)
        .values(
            feed_id=feed_id,
            started_at=at,
            status="running",
            trigger=trigger,
            errors="[]",
            **dict.fromkeys(COUNTS, 0),
        )
        .returning(feed_runs.c.id)
    ).first()
    assert row is not None
    return int(row[0])


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    at: int,
    status: str,
    counts: dict[str, int],
    errors: list[dict[str, Any]],
    error: str | None,
) -> None:
    """Record how a run ended."""
    conn.execute(
        update(feed_runs)
        .where(feed_runs.c.id == run_id)
        .values(
            finished_at=at,
            status=status,
            errors=orjson.dumps(errors).decode(),
            error=error,
            **{k: counts.get(k, 0) for k in COUNTS},
        )
    )


def list_runs(conn: Connection, feed_id: str, limit: int = 10) -> list[RunRecord]:
    """The feed's latest runs, newest first."""
    stmt = (
        select(*_RUN_COLUMNS)
        .where(feed_runs.c.feed_id == feed_id)
        .order_by(feed_runs.c.id.desc())
        .limit(limit)
    )
    runs = []
    for row in conn.execute(stmt):
        values = list(row)
        values[-2] = orjson.loads(values[-2] or "[]")
        runs.append(RunRecord(*values))
    return runs


def value_key(feed_id: str, kind: str, value: str) -> int:
    """The 64-bit key of a value of a feed (signed, as both databases store BIGINT).

    Two different values meet on one key with a probability of about n²/2⁶⁵ (one in ten
    million for five million values); readers compare the value itself and treat a mismatch
    as a collision, never as the same value.
    """
    digest = hashlib.blake2b(
        f"{feed_id}\x00{kind}\x00{value}".encode(), digest_size=8, usedforsecurity=False
    )
    return int.from_bytes(digest.digest(), "big", signed=True)


@dataclass(frozen=True, slots=True)
class FeedValue:
    """What the store knows of one value of a feed."""

    key_hash: int
    value: str
    kind: str
    stix_id: str
    first_seen: int
    last_seen: int
    expired: bool
    warninglist: str | None
    digest: str
    origin: str | None


VALUE_COLUMNS = tuple(c.name for c in feed_values.c if c.name != "feed_id")
_VALUE_COLS = tuple(feed_values.c[name] for name in VALUE_COLUMNS)


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.name == "sqlite" else "%s"


def _in_list(conn: Connection, count: int) -> str:
    return ", ".join(_mark(conn) for _ in range(count))


def lookup_values(conn: Connection, keys: Sequence[int]) -> dict[int, FeedValue]:
    """The stored values with these keys, by key."""
    found: dict[int, FeedValue] = {}
    names = ", ".join(VALUE_COLUMNS)
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        # Plain SQL: compiling an expanding IN of thousands of parameters costs more than the
        # query itself.
        sql = f"SELECT {names} FROM feed_values WHERE key_hash IN ({_in_list(conn, len(chunk))})"  # noqa: S608
        for row in conn.exec_driver_sql(sql, tuple(chunk)):
            found[row[0]] = FeedValue(*row)
    return found


def insert_values(
    conn: Connection,
    feed_id: str,
    at: int,
    rows: Sequence[tuple[int, str, str, str, str | None, str, str | None]],
) -> None:
    """Store values a feed first held at ``at``, each ``(key_hash, value, kind, stix_id,
    warninglist, digest, origin)``, sorted by key so the key index grows page by page."""
    if not rows:
        return
    m = _mark(conn)
    # The columns the rows share go into the statement once rather than bound for each row.
    shared = ", ".join(sql_literal(v) for v in (feed_id, at, at, False))
    sql = (
        "INSERT INTO feed_values (feed_id, first_seen, last_seen, expired, key_hash, value, "  # noqa: S608
        f"kind, stix_id, warninglist, digest, origin) VALUES ({shared}, {m}, {m}, {m}, {m}, "
        f"{m}, {m}, {m})"
    )
    conn.exec_driver_sql(sql, sorted(rows))


def update_values(conn: Connection, rows: Sequence[FeedValue]) -> None:
    """Rewrite stored values of a feed (a new version of their indicator)."""
    if not rows:
        return
    m = _mark(conn)
    sql = (
        f"UPDATE feed_values SET last_seen = {m}, expired = {m}, warninglist = {m}, "  # noqa: S608
        f"digest = {m}, origin = {m} WHERE key_hash = {m}"
    )
    conn.exec_driver_sql(
        sql,
        [(r.last_seen, r.expired, r.warninglist, r.digest, r.origin, r.key_hash) for r in rows],
    )


def touch_values(conn: Connection, keys: Sequence[int], at: int) -> None:
    """These values are still in the feed at ``at``."""
    ordered = sorted(keys)
    for i in range(0, len(ordered), _CHUNK):
        chunk = ordered[i : i + _CHUNK]
        sql = (
            f"UPDATE feed_values SET last_seen = {_mark(conn)} "  # noqa: S608
            f"WHERE key_hash IN ({_in_list(conn, len(chunk))})"
        )
        conn.exec_driver_sql(sql, (at, *chunk))


def touch_origins(conn: Connection, feed_id: str, origins: Sequence[str], at: int) -> int:
    """The live values of these origins (events, reports) are still in the feed at ``at``;
    returns how many."""
    touched = 0
    for i in range(0, len(origins), _CHUNK):
        result = conn.execute(
            update(feed_values)
            .where(
                feed_values.c.feed_id == feed_id,
                feed_values.c.origin.in_(origins[i : i + _CHUNK]),
                feed_values.c.expired.is_(False),
            )
            .values(last_seen=at)
        )
        touched += int(result.rowcount)
    return touched


def touch_all(conn: Connection, feed_id: str, at: int) -> int:
    """Every live value of the feed is still in it at ``at``; returns how many."""
    result = conn.execute(
        update(feed_values)
        .where(feed_values.c.feed_id == feed_id, feed_values.c.expired.is_(False))
        .values(last_seen=at)
    )
    return int(result.rowcount)


def expired_candidates(conn: Connection, feed_id: str, cutoff: int, limit: int) -> list[FeedValue]:
    """Live values of the feed last seen before ``cutoff``: they are due to expire."""
    stmt = (
        select(*_VALUE_COLS)
        .where(
            feed_values.c.feed_id == feed_id,
            feed_values.c.expired.is_(False),
            feed_values.c.last_seen < cutoff,
        )
        .limit(limit)
    )
    return [FeedValue(*row) for row in conn.execute(stmt)]


def mark_expired(conn: Connection, keys: Sequence[int]) -> None:
    """The values with these keys have expired."""
    ordered = sorted(keys)
    for i in range(0, len(ordered), _CHUNK):
        conn.execute(
            update(feed_values)
            .where(feed_values.c.key_hash.in_(ordered[i : i + _CHUNK]))
            .values(expired=True)
        )


def values_of_origin(conn: Connection, feed_id: str, origin: str) -> list[str]:
    """The STIX ids of the live values of one origin of the feed."""
    stmt = select(feed_values.c.stix_id).where(
        feed_values.c.feed_id == feed_id,
        feed_values.c.origin == origin,
        feed_values.c.expired.is_(False),
    )
    return sorted(conn.execute(stmt).scalars())


def iter_values(conn: Connection, feed_id: str, batch: int = 5000) -> Iterator[FeedValue]:
    """Every value of the feed, in key order, in batches."""
    after: int | None = None
    while True:
        stmt = select(*_VALUE_COLS).where(feed_values.c.feed_id == feed_id)
        if after is not None:
            stmt = stmt.where(feed_values.c.key_hash > after)
        rows = [
            FeedValue(*r) for r in conn.execute(stmt.order_by(feed_values.c.key_hash).limit(batch))
        ]
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].key_hash


@dataclass(frozen=True, slots=True)
class WarninglistRecord:
    id: str
    name: str
    type: str
    kinds: tuple[str, ...]
    description: str
    entries: tuple[str, ...]
    created_at: int
    created_by: str | None


def insert_warninglist(conn: Connection, wl: WarninglistRecord) -> None:
    """Store a custom warninglist; Conflict if its name is taken."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(warninglists).values(
                    id=wl.id,
                    name=wl.name,
                    type=wl.type,
                    kinds=",".join(wl.kinds),
                    description=wl.description,
                    entries=orjson.dumps(list(wl.entries)).decode(),
                    created_at=wl.created_at,
                    created_by=wl.created_by,
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"warninglist {wl.name!r} already exists", field="name") from exc


def list_warninglists(conn: Connection) -> list[WarninglistRecord]:
    """Every custom warninglist, by name."""
    rows = conn.execute(select(warninglists).order_by(warninglists.c.name))
    return [
        WarninglistRecord(
            r.id,
            r.name,
            r.type,
            tuple(k for k in r.kinds.split(",") if k),
            r.description,
            tuple(orjson.loads(r.entries)),
            r.created_at,
            r.created_by,
        )
        for r in rows
    ]


def delete_warninglist(conn: Connection, ref: str) -> None:
    """Remove a custom warninglist by name or id; NotFound if there is none."""
    result = conn.execute(
        delete(warninglists).where(or_(warninglists.c.name == ref, warninglists.c.id == ref))
    )
    if result.rowcount == 0:
        raise NotFound(f"no custom warninglist {ref!r}")
