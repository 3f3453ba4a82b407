"""SQL of indicator scores: what a score is derived from (the latest indicator version, its
first observable, the sightings of it), the ``indicator_scores`` rows themselves (bulk upserts,
keyset chunks for a refresh, bulk updates), and the reads of the API, filtered by
``policy.visible_to``.

Every statement takes lists in chunks small enough for the bound-parameter limits of both
databases; bulk writes use the dialect's own fast path (``executemany`` on SQLite, arrays
unnested by the server on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    func,
    literal_column,
    not_,
    or_,
    select,
    text,
    tuple_,
    update,
)

from qalqan.domain.principal import Principal
from qalqan.policy import readable_by_org, sweep_predicate, visible_to
from qalqan.store.tables import feed_values
from qalqan.store.tables import indicator_scores as scores
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import observables as obs
from qalqan.store.tables import sightings as sightings_table

__all__ = [
    "MISSING",
    "IndicatorHead",
    "ScoreChunk",
    "ScoreFilter",
    "ScoreRow",
    "SightingTotals",
    "VisibleScore",
    "count_scores",
    "first_kinds",
    "first_kinds_between",
    "get_visible_score",
    "iter_score_chunks",
    "keep_listed",
    "latest_indicators",
    "list_visible_scores",
    "listed_times",
    "sighted_between",
    "sighting_totals",
    "update_scores",
    "upsert_scores",
]

_IN_CHUNK: Final = 2000
_COLUMNS: Final = (
    "stix_id",
    "kind",
    "base",
    "false_positives",
    "reset_at",
    "expired_at",
    "decays_at",
    "score",
    "refreshed_at",
)

# (stix_id, kind, base, false_positives, reset_at, expired_at, decays_at, score, refreshed_at)
ScoreRow = tuple[str, str, int, int, int, int | None, int | None, int, int]


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True, slots=True)
class IndicatorHead:
    """The latest version of an indicator, as far as its score needs it."""

    stix_id: str
    date_added: int
    confidence: int | None


@dataclass(frozen=True, slots=True)
class SightingTotals:
    """What the sightings of one indicator add up to (current sighting versions only)."""

    sightings: int = 0
    false_positives: int = 0
    last_seen: int | None = None
    expired_at: int | None = None


def listed_times(conn: Connection, stix_ids: Sequence[str]) -> dict[str, int]:
    """When a feed last listed each of ``stix_ids`` (those that have a time)."""
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(set(stix_ids))):
        stmt = select(scores.c.stix_id, scores.c.listed_at).where(
            scores.c.stix_id.in_(list(chunk)), scores.c.listed_at.is_not(None)
        )
        found.update((str(r[0]), int(r[1])) for r in conn.execute(stmt))
    return found


def keep_listed(conn: Connection, feed_id: str, since: int, now: int) -> int:
    """The indicators of the values ``feed_id`` still listed at ``since`` or later start their
    decay again at ``now``; returns how many. The moment a score falls below its cut-off only
    depends on how long it has decayed, so it moves by as much as the start does."""
    listed = select(feed_values.c.stix_id).where(
        feed_values.c.feed_id == feed_id,
        feed_values.c.last_seen >= since,
        feed_values.c.expired.is_(False),
    )
    moved = case(
        (or_(scores.c.decays_at.is_(None), scores.c.expired_at.is_not(None)), scores.c.decays_at),
        else_=scores.c.decays_at + (now - scores.c.reset_at),
    )
    result = conn.execute(
        update(scores)
        .where(scores.c.stix_id.in_(listed), scores.c.reset_at < now)
        .values(decays_at=moved, reset_at=now, listed_at=now)
    )
    return int(result.rowcount)


def latest_indicators(conn: Connection, stix_ids: Sequence[str]) -> list[IndicatorHead]:
    """The latest version of each of ``stix_ids`` that is an indicator."""
    found: list[IndicatorHead] = []
    for chunk in _chunks(sorted(set(stix_ids))):
        stmt = select(ov.c.stix_id, ov.c.date_added, ov.c.confidence).where(
            ov.c.stix_id.in_(list(chunk)), ov.c.is_latest.is_(True), ov.c.type == "indicator"
        )
        found.extend(IndicatorHead(str(r[0]), int(r[1]), r[2]) for r in conn.execute(stmt))
    return found


def first_kinds(conn: Connection, version_ids: Sequence[int]) -> dict[int, str]:
    """The kind of the first observable (in index order) of each version that has one."""
    kinds: dict[int, str] = {}
    for chunk in _chunks(sorted(set(version_ids))):
        first = (
            select(obs.c.version_id, func.min(obs.c.id).label("first"))
            .where(obs.c.version_id.in_(list(chunk)))
            .group_by(obs.c.version_id)
            .subquery()
        )
        stmt = select(first.c.version_id, obs.c.kind).join(obs, obs.c.id == first.c.first)
        kinds.update((int(r[0]), str(r[1])) for r in conn.execute(stmt))
    return kinds


def first_kinds_between(conn: Connection, first: int, last: int) -> dict[int, str]:
    """:func:`first_kinds` of every version ``first``..``last`` (date_added): one range read
    of the observable index instead of a list of keys."""
    stmt = (
        select(obs.c.id, obs.c.version_id, obs.c.kind)
        .where(obs.c.version_id.between(first, last))
        .order_by(obs.c.id.desc())
    )
    # Newest entry first, so the last one written for a version is its first observable.
    return {int(r[1]): str(r[2]) for r in conn.execute(stmt)}


def sighted_between(conn: Connection, first: int, last: int) -> list[str]:
    """What the sightings stored as versions ``first``..``last`` (date_added) are about."""
    stmt = (
        select(sightings_table.c.sighting_of_ref)
        .where(sightings_table.c.version_id.between(first, last))
        .distinct()
    )
    return [str(r[0]) for r in conn.execute(stmt)]


def sighting_totals(conn: Connection, stix_ids: Sequence[str]) -> dict[str, SightingTotals]:
    """The sightings of each of ``stix_ids`` by kind, counting each sighting once (its latest
    version, unless revoked or withdrawn): how many reports of each kind, the latest moment a
    ``sighting`` saw it (its ``last_seen``, never later than the report arrived) and when an
    ``expiration`` was first reported."""
    s = sightings_table
    # A report cannot have seen anything after it reached the node: a last_seen in the future
    # counts as the moment of arrival.
    seen = case(
        (and_(s.c.last_seen.is_not(None), s.c.last_seen < s.c.version_id), s.c.last_seen),
        else_=s.c.version_id,
    )
    totals: dict[str, dict[str, tuple[int, int | None, int | None]]] = {}
    sighted = ov.alias("sighted")
    for chunk in _chunks(sorted(set(stix_ids))):
        stmt = (
            select(
                s.c.sighting_of_ref,
                s.c.kind,
                func.count(),
                func.max(seen),
                func.min(s.c.version_id),
            )
            .select_from(
                s.join(ov, ov.c.date_added == s.c.version_id).join(
                    sighted,
                    and_(sighted.c.stix_id == s.c.sighting_of_ref, sighted.c.is_latest.is_(True)),
                )
            )
            .where(
                s.c.sighting_of_ref.in_(list(chunk)),
                ov.c.is_latest.is_(True),
                ov.c.revoked.is_(False),
                ov.c.withdrawn.is_(False),
                # Only reports the indicator's owner may read count: an org cannot take another
                # org's indicator out of detection with a report its owner never sees.
                readable_by_org(ov, sighted.c.owner_org_id),
            )
            .group_by(s.c.sighting_of_ref, s.c.kind)
        )
        for ref, kind, count, last, first in conn.execute(stmt):
            totals.setdefault(str(ref), {})[str(kind)] = (int(count), last, first)
    out: dict[str, SightingTotals] = {}
    for ref, kinds in totals.items():
        seen_count, last_seen, _ = kinds.get("sighting", (0, None, None))
        fp_count = kinds.get("false-positive", (0, None, None))[0]
        expired = kinds.get("expiration", (0, None, None))[2]
        out[ref] = SightingTotals(
            sightings=seen_count,
            false_positives=fp_count,
            last_seen=None if last_seen is None else int(last_seen),
            expired_at=None if expired is None else int(expired),
        )
    return out


def upsert_scores(conn: Connection, rows: Sequence[ScoreRow]) -> None:
    """Insert or replace ``indicator_scores`` rows."""
    if not rows:
        return
    # The same ON CONFLICT clause on both databases; only the parameter marks differ.
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    names = ", ".join(_COLUMNS)
    marks = ", ".join([mark] * len(_COLUMNS))
    changes = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
    sql = (
        f"INSERT INTO indicator_scores ({names}) VALUES ({marks}) "  # noqa: S608 - our names
        f"ON CONFLICT (stix_id) DO UPDATE SET {changes}"
    )
    conn.exec_driver_sql(sql, list(rows))


@dataclass(frozen=True, slots=True)
class ScoreChunk:
    """Consecutive ``indicator_scores`` rows as arrays: ``keys`` find them again for
    :func:`update_scores` (the row id on SQLite, the STIX id elsewhere); ``values`` has one
    int64 row each — the index of its kind in the ``kinds`` asked for (``len(kinds)`` for
    any other), base, false_positives, reset_at, expired_at, decays_at, score — with
    :data:`MISSING` for null."""

    keys: list[Any]
    values: npt.NDArray[np.int64]


MISSING: Final = 2**63 - 1


def count_scores(conn: Connection) -> int:
    """How many indicators have a score."""
    return int(conn.execute(select(func.count()).select_from(scores)).scalar() or 0)


def iter_score_chunks(conn: Connection, kinds: Sequence[str], size: int) -> Iterator[ScoreChunk]:
    """Every ``indicator_scores`` row, in keyset chunks of at most ``size``. Each chunk is
    read whole before it is yielded, so the caller may update those rows."""
    # SQLite walks its row ids, the table's own order, rather than the index of the text key.
    key: Any = literal_column("rowid") if conn.dialect.name == "sqlite" else scores.c.stix_id
    code = case(
        *((scores.c.kind == kind, index) for index, kind in enumerate(kinds)), else_=len(kinds)
    )
    base = (
        select(
            key,
            code,
            scores.c.base,
            scores.c.false_positives,
            scores.c.reset_at,
            func.coalesce(scores.c.expired_at, MISSING),
            func.coalesce(scores.c.decays_at, MISSING),
            scores.c.score,
        )
        .order_by(key)
        .limit(size)
    )
    after: Any = None
    while True:
        stmt = base if after is None else base.where(key > after)
        result = conn.execute(stmt)
        # Plain tuples from the driver: a million Row objects cost more than the arithmetic.
        rows = list(result.cursor.fetchall()) if result.cursor else []
        result.close()
        if not rows:
            return
        if conn.dialect.name == "sqlite":
            matrix = np.array(rows, dtype=np.int64)
            keys: list[Any] = matrix[:, 0].tolist()
            values = matrix[:, 1:]
        else:
            keys = [r[0] for r in rows]
            values = np.array([r[1:] for r in rows], dtype=np.int64)
        yield ScoreChunk(keys, values)
        if len(rows) < size:
            return
        after = rows[-1][0]


def update_scores(
    conn: Connection,
    keys: Sequence[Any],
    score: Sequence[int],
    decays_at: Sequence[int | None],
    refreshed_at: int,
) -> None:
    """Set ``score`` and ``decays_at`` of the rows of ``keys`` (from a :class:`ScoreChunk`)."""
    if not keys:
        return
    if conn.dialect.name == "postgresql":
        # One statement per chunk: the server unnests the arrays and joins on the key.
        stmt = text(
            "UPDATE indicator_scores AS s SET score = v.score, decays_at = v.decays_at, "
            "refreshed_at = :at FROM unnest(CAST(:ids AS text[]), CAST(:scores AS smallint[]), "
            "CAST(:decays AS bigint[])) AS v(stix_id, score, decays_at) "
            "WHERE s.stix_id = v.stix_id"
        )
        for start in range(0, len(keys), 50_000):
            end = start + 50_000
            params = {
                "ids": list(keys[start:end]),
                "scores": list(score[start:end]),
                "decays": list(decays_at[start:end]),
            }
            conn.execute(stmt, {"at": refreshed_at, **params})
        return
    sql = "UPDATE indicator_scores SET score = ?, decays_at = ?, refreshed_at = ? WHERE rowid = ?"
    conn.exec_driver_sql(sql, list(zip(score, decays_at, repeat(refreshed_at), keys, strict=False)))


@dataclass(frozen=True, slots=True)
class VisibleScore:
    """A score row and what the reader needs of the indicator's latest version."""

    stix_id: str
    name: str | None
    kind: str | None
    base: int
    false_positives: int
    reset_at: int
    expired_at: int | None
    decays_at: int | None
    score: int
    refreshed_at: int
    confidence: int | None
    detection: bool


@dataclass(frozen=True, slots=True)
class ScoreFilter:
    """Which scores a listing holds; None means "any"."""

    min_score: int | None = None
    max_score: int | None = None
    kinds: Sequence[str] | None = None
    detection: bool | None = None
    descending: bool = False


def _visible(principal: Principal, now: int) -> Select[Any]:
    detection = sweep_predicate(ov, None, now=now)
    return (
        select(
            scores.c.stix_id,
            ov.c.name,
            scores.c.kind,
            scores.c.base,
            scores.c.false_positives,
            scores.c.reset_at,
            scores.c.expired_at,
            scores.c.decays_at,
            scores.c.score,
            scores.c.refreshed_at,
            ov.c.confidence,
            case((detection, True), else_=False).label("detection"),
        )
        .select_from(
            scores.join(ov, and_(ov.c.stix_id == scores.c.stix_id, ov.c.is_latest.is_(True)))
        )
        .where(visible_to(principal, ov), ov.c.withdrawn.is_(False), ov.c.type == "indicator")
    )


def _row(row: Any) -> VisibleScore:
    return VisibleScore(
        stix_id=str(row.stix_id),
        name=row.name,
        kind=row.kind,
        base=int(row.base),
        false_positives=int(row.false_positives),
        reset_at=int(row.reset_at),
        expired_at=row.expired_at,
        decays_at=row.decays_at,
        score=int(row.score),
        refreshed_at=int(row.refreshed_at),
        confidence=row.confidence,
        detection=bool(row.detection),
    )


def get_visible_score(
    conn: Connection, principal: Principal, stix_id: str, now: int
) -> VisibleScore | None:
    """The score of one indicator whose latest version the principal may see, or None."""
    row = conn.execute(_visible(principal, now).where(scores.c.stix_id == stix_id)).first()
    return None if row is None else _row(row)


def list_visible_scores(
    conn: Connection,
    principal: Principal,
    f: ScoreFilter,
    *,
    now: int,
    after: tuple[int, str] | None,
    limit: int,
) -> list[VisibleScore]:
    """Scores of the latest indicators the principal may see, by ``(score, stix_id)``
    (descending if asked); ``after`` is the key of the last row of the previous page."""
    stmt = _visible(principal, now)
    if f.min_score is not None:
        stmt = stmt.where(scores.c.score >= f.min_score)
    if f.max_score is not None:
        stmt = stmt.where(scores.c.score <= f.max_score)
    if f.kinds:
        stmt = stmt.where(scores.c.kind.in_(list(f.kinds)))
    if f.detection is not None:
        active: ColumnElement[bool] = sweep_predicate(ov, None, now=now)
        stmt = stmt.where(active if f.detection else not_(active))
    key = tuple_(scores.c.score, scores.c.stix_id)
    if after is not None:
        stmt = stmt.where(key < tuple_(*after) if f.descending else key > tuple_(*after))
    if f.descending:
        stmt = stmt.order_by(scores.c.score.desc(), scores.c.stix_id.desc())
    else:
        stmt = stmt.order_by(scores.c.score, scores.c.stix_id)
    return [_row(r) for r in conn.execute(stmt.limit(limit))]
