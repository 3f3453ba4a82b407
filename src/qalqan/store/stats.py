"""SQL of the dashboards' statistics: versions added and sightings per day, org, country, type,
TLP or kind; the values most objects name; the health of feeds.

Every read of intelligence puts ``policy.visible_to`` in its WHERE clause and reads one bounded
period of ``date_added`` (the primary key), so the work follows the period, not the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, FromClause, func, select

from qalqan.domain.principal import Principal
from qalqan.policy import visible_to
from qalqan.store.tables import feed_runs, orgs
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import observables as obs
from qalqan.store.tables import sightings as sightings_table

__all__ = [
    "OBJECT_DIMENSIONS",
    "SIGHTING_DIMENSIONS",
    "FeedRunState",
    "feed_run_states",
    "object_counts",
    "sighting_counts",
    "top_values",
]

DAY_US: Final = 86_400_000_000
OBJECT_DIMENSIONS: Final = ("day", "org", "country", "type", "tlp")
SIGHTING_DIMENSIONS: Final = ("day", "org", "country", "kind")


def _dimension(name: str, versions: FromClause, when: Any) -> ColumnElement[Any]:
    """The column a dimension groups by: ``day`` is the UTC day number of ``when``."""
    if name == "day":
        column: ColumnElement[Any] = when // DAY_US
    elif name == "org":
        column = versions.c.owner_org_id
    elif name == "country":
        column = orgs.c.country
    elif name == "type":
        column = versions.c.type
    elif name == "tlp":
        column = versions.c.tlp
    else:
        column = sightings_table.c.kind
    return column.label(name)


def object_counts(
    conn: Connection, principal: Principal, since: int, until: int, by: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Rows of the dimensions ``by`` (in that order), then distinct objects and versions: the
    visible versions added in ``since``..``until``, none withdrawn. With no dimension, one row
    of totals."""
    dims = [_dimension(name, ov, ov.c.date_added) for name in by]
    stmt = (
        select(*dims, func.count(func.distinct(ov.c.stix_id)), func.count())
        .select_from(ov.join(orgs, orgs.c.id == ov.c.owner_org_id))
        .where(
            ov.c.date_added >= since,
            ov.c.date_added < until,
            ov.c.withdrawn.is_(False),
            visible_to(principal, ov),
        )
    )
    if dims:
        stmt = stmt.group_by(*dims).order_by(*dims)
    return [tuple(row) for row in conn.execute(stmt)]


def sighting_counts(
    conn: Connection, principal: Principal, since: int, until: int, by: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Rows of the dimensions ``by``, then the number of sightings and the sum of their counts:
    the latest visible sighting versions, seen in ``since``..``until`` (``last_seen``, or when
    stored if they say nothing). ``org`` is the org that reports the sighting.

    Nothing is reported before it is seen, so sightings stored before ``since`` are not read.
    """
    seen = func.coalesce(sightings_table.c.last_seen, ov.c.date_added)
    dims = [_dimension(name, ov, seen) for name in by]
    stmt = (
        select(*dims, func.count(), func.coalesce(func.sum(sightings_table.c.count), 0))
        .select_from(
            sightings_table.join(ov, ov.c.date_added == sightings_table.c.version_id).join(
                orgs, orgs.c.id == ov.c.owner_org_id
            )
        )
        .where(
            ov.c.date_added >= since,
            seen >= since,
            seen < until,
            ov.c.is_latest.is_(True),
            ov.c.revoked.is_(False),
            ov.c.withdrawn.is_(False),
            visible_to(principal, ov),
        )
    )
    if dims:
        stmt = stmt.group_by(*dims).order_by(*dims)
    return [tuple(row) for row in conn.execute(stmt)]


def top_values(
    conn: Connection,
    principal: Principal,
    since: int,
    until: int,
    *,
    kinds: Sequence[str] | None,
    min_objects: int,
    include_warninglisted: bool,
    limit: int,
) -> list[tuple[str, str, int, int]]:
    """(kind, value, distinct objects, distinct owner orgs) of the observable index entries of
    the visible versions added in ``since``..``until`` (neither revoked nor withdrawn), named
    by at least ``min_objects`` objects; most objects first, then kind and value."""
    objects = func.count(func.distinct(ov.c.stix_id))
    stmt = (
        select(obs.c.kind, obs.c.value, objects, func.count(func.distinct(ov.c.owner_org_id)))
        .select_from(ov.join(obs, obs.c.version_id == ov.c.date_added))
        .where(
            ov.c.date_added >= since,
            ov.c.date_added < until,
            ov.c.revoked.is_(False),
            ov.c.withdrawn.is_(False),
            visible_to(principal, ov),
        )
        .group_by(obs.c.kind, obs.c.value)
        .having(objects >= min_objects)
        .order_by(objects.desc(), obs.c.kind, obs.c.value)
        .limit(limit)
    )
    if kinds:
        stmt = stmt.where(obs.c.kind.in_(list(kinds)))
    if not include_warninglisted:
        stmt = stmt.where(obs.c.warninglist.is_(None))
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in conn.execute(stmt)]


@dataclass(frozen=True, slots=True)
class FeedRunState:
    """How a feed's runs went: its last run, its last good one, the failures since."""

    feed_id: str
    last_run_id: int | None
    last_status: str | None
    last_started_at: int | None
    last_finished_at: int | None
    last_counts: dict[str, int]
    last_error: str | None
    last_success_at: int | None
    failures_in_a_row: int


_COUNT_COLUMNS: Final = ("new", "updated", "unchanged", "expired", "rejected")


def feed_run_states(conn: Connection, feed_ids: Sequence[str]) -> dict[str, FeedRunState]:
    """The run state of each feed of ``feed_ids`` that has run at least once."""
    if not feed_ids:
        return {}
    ids = sorted(set(feed_ids))
    last = (
        select(feed_runs.c.feed_id, func.max(feed_runs.c.id).label("run_id"))
        .where(feed_runs.c.feed_id.in_(ids))
        .group_by(feed_runs.c.feed_id)
        .subquery("last_run")
    )
    good = (
        select(
            feed_runs.c.feed_id,
            func.max(feed_runs.c.id).label("run_id"),
            func.max(feed_runs.c.finished_at).label("at"),
        )
        .where(feed_runs.c.feed_id.in_(ids), feed_runs.c.status == "ok")
        .group_by(feed_runs.c.feed_id)
        .subquery("last_good")
    )
    failed = (
        select(feed_runs.c.feed_id, func.count().label("failures"))
        .select_from(feed_runs.outerjoin(good, good.c.feed_id == feed_runs.c.feed_id))
        .where(
            feed_runs.c.feed_id.in_(ids),
            feed_runs.c.status == "failed",
            feed_runs.c.id > func.coalesce(good.c.run_id, 0),
        )
        .group_by(feed_runs.c.feed_id)
        .subquery("failed")
    )
    stmt = select(
        last.c.feed_id,
        feed_runs.c.id,
        feed_runs.c.status,
        feed_runs.c.started_at,
        feed_runs.c.finished_at,
        feed_runs.c.error,
        good.c.at,
        func.coalesce(failed.c.failures, 0),
        *(feed_runs.c[name] for name in _COUNT_COLUMNS),
    ).select_from(
        last.join(feed_runs, feed_runs.c.id == last.c.run_id)
        .outerjoin(good, good.c.feed_id == last.c.feed_id)
        .outerjoin(failed, failed.c.feed_id == last.c.feed_id)
    )
    states = {}
    for row in conn.execute(stmt):
        counts = dict(zip(_COUNT_COLUMNS, (int(v) for v in row[8:]), strict=True))
        states[row[0]] = FeedRunState(
            feed_id=row[0],
            last_run_id=row[1],
            last_status=row[2],
            last_started_at=row[3],
            last_finished_at=row[4],
            last_counts=counts,
            last_error=row[5],
            last_success_at=row[6],
            failures_in_a_row=int(row[7]),
        )
    return states
