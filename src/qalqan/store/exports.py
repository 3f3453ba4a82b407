"""SQL of the exports: active indicator observables and STIX versions, streamed in keyset
batches, and a cheap fingerprint of what an export would hold.

Every read takes a ``Principal`` and filters with ``policy.visible_to`` in the WHERE clause, and
detection reads with ``policy.export_predicate``, before LIMIT: what the caller may not see or
not export is never read. Batches are keyset pages (``observables.id``, ``date_added``), so
memory stays bounded whatever the size of the export.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Text,
    and_,
    case,
    cast,
    exists,
    func,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Join

from qalqan.domain.handling import TLP
from qalqan.domain.principal import Principal
from qalqan.policy import export_predicate, visible_to
from qalqan.store.clock import local_clock
from qalqan.store.tables import indicator_scores, orgs
from qalqan.store.tables import object_versions as ov
from qalqan.store.tables import observables as obs

__all__ = [
    "IndicatorRow",
    "IndicatorSelection",
    "StraightJoin",
    "VersionSelection",
    "fingerprint",
    "indicator_window",
    "iter_indicator_observables",
    "iter_versions",
    "observable_windows",
    "org_names",
]

_BATCH = 50_000


@dataclass(frozen=True, slots=True)
class IndicatorSelection:
    """Which active indicator observables a detection export holds.

    ``kinds`` None means every kind; ``sources`` are ``object_versions.source`` values (one per
    feed named); ``labels`` match when an indicator carries any of them; ``since`` is a
    ``date_added`` in µs (inclusive); ``now`` is the time expiry is judged at.
    """

    now: int
    ceiling: TLP
    min_confidence: int | None = None
    kinds: Sequence[str] | None = None
    since: int | None = None
    sources: Sequence[str] | None = None
    labels: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class VersionSelection:
    """Which latest versions a STIX export holds; None means "any"."""

    types: Sequence[str] | None = None
    max_tlp: TLP | None = None
    since: int | None = None
    sources: Sequence[str] | None = None
    labels: Sequence[str] | None = None


# (kind, value, stix id, indicator name, confidence, tlp, owner org id)
IndicatorRow = tuple[str, str, str, str | None, int | None, int, str]


def _has_label(conn: Connection, labels: Sequence[str]) -> ColumnElement[bool]:
    """The version's content carries one of ``labels`` in its ``labels`` list.

    The LIKE is a cheap first sieve: only contents that mention labels at all are parsed.
    """
    mentions = ov.c.content.like('%"labels"%')
    if conn.dialect.name == "postgresql":
        listed = cast(ov.c.content, postgresql.JSONB)["labels"]
        return and_(mentions, listed.has_any(postgresql.array(list(labels), type_=Text)))
    entries = func.json_each(ov.c.content, "$.labels").table_valued("value")
    return and_(mentions, exists(select(1).select_from(entries).where(entries.c.value.in_(labels))))


def _narrowed(
    conn: Connection,
    stmt: Select[Any],
    since: int | None,
    sources: Sequence[str] | None,
    labels: Sequence[str] | None,
) -> Select[Any]:
    if since is not None:
        stmt = stmt.where(ov.c.date_added >= since)
    if sources:
        stmt = stmt.where(ov.c.source.in_(list(sources)))
    if labels:
        stmt = stmt.where(_has_label(conn, labels))
    return stmt


class StraightJoin(Join):
    """An inner join whose left side is read first. SQLite writes it ``CROSS JOIN``, the one
    hint its planner always follows; other databases get a plain join."""

    inherit_cache = True


@compiles(StraightJoin, "sqlite")
def _straight_join_sqlite(join: StraightJoin, compiler: Any, **kw: Any) -> str:
    plain: str = compiler.visit_join(join, **kw)
    left = join.left._compiler_dispatch(compiler, **{**kw, "asfrom": True})
    # visit_join writes "<left> JOIN <right> ON ...": name the join CROSS after the left side.
    return f"{left} CROSS{plain[len(left) :]}"


def indicator_window(
    principal: Principal,
    active: ColumnElement[bool],
    low: int,
    high: int,
    extra: Sequence[ColumnElement[Any]] = (),
) -> Select[Any]:
    """``(kind, value, stix id, name, confidence, tlp, owner org id, *extra)`` of the
    observables with ``low < id <= high`` whose indicator version the principal may see and
    ``active`` admits (an export's or a sweep's rule from the policy).

    The observables drive: the window of ids is a range of their key, and each one's version
    is looked up by its key. Left to itself, SQLite's planner (which has no statistics) would
    rather start from the versions' type index and sort every window, which turns a streamed
    read quadratic.
    """
    return (
        select(
            obs.c.kind,
            obs.c.value,
            ov.c.stix_id,
            ov.c.name,
            ov.c.confidence,
            ov.c.tlp,
            ov.c.owner_org_id,
            *extra,
        )
        .select_from(StraightJoin(obs, ov, ov.c.date_added == obs.c.version_id))
        .where(obs.c.id > low, obs.c.id <= high, visible_to(principal, ov), active)
        .order_by(obs.c.id)
    )


def _indicator_query(
    conn: Connection, principal: Principal, selection: IndicatorSelection, low: int, high: int
) -> Select[Any]:
    """The exportable observables with ``low < id <= high``."""
    active = export_predicate(
        ov,
        obs,
        now=selection.now,
        ceiling=selection.ceiling,
        min_confidence=selection.min_confidence,
    )
    stmt = indicator_window(principal, active, low, high)
    if selection.kinds is not None:
        # On the expression kind || '', not the column: an index on kind would make SQLite
        # walk every value of those kinds for each window instead of the window's ids.
        stmt = stmt.where(obs.c.kind.concat("").in_(list(selection.kinds)))
    return _narrowed(conn, stmt, selection.since, selection.sources, selection.labels)


def iter_indicator_observables(
    conn: Connection, principal: Principal, selection: IndicatorSelection, batch: int = _BATCH
) -> Iterator[list[IndicatorRow]]:
    """The observables of the active indicators the principal may see and export, by
    observable id, in batches of at most ``batch`` rows (one per window of ``batch`` ids;
    empty windows are skipped). A value named by several indicators comes once per indicator.
    Observables added after the export started are left for the next one."""
    return observable_windows(
        conn, lambda low, high: _indicator_query(conn, principal, selection, low, high), batch
    )


def observable_windows(
    conn: Connection, query: Callable[[int, int], Select[Any]], batch: int = _BATCH
) -> Iterator[list[Any]]:
    """The rows of ``query(low, high)`` (a query of the observables with ``low < id <=
    high``) for consecutive windows of ``batch`` observable ids; empty windows are skipped.
    The ids are the observables' key, so each window is a range scan; observables added after
    the first window was read are left for the next reader."""
    bounds = conn.execute(select(func.min(obs.c.id), func.max(obs.c.id))).one()
    if bounds[0] is None:
        return
    low, last = int(bounds[0]) - 1, int(bounds[1])
    while low < last:
        high = min(low + batch, last)
        result = conn.execute(query(low, high))
        # Plain tuples from the driver: these columns need no conversion, and a million
        # Row objects would cost a second or more.
        rows = list(result.cursor.fetchall()) if result.cursor else []
        result.close()
        if rows:
            yield rows
        low = high


def iter_versions(
    conn: Connection, principal: Principal, selection: VersionSelection, batch: int = 2000
) -> Iterator[list[tuple[int, str]]]:
    """``(date_added, content)`` of the latest versions the principal may see, oldest first,
    in batches. Revoked versions come along (a consumer learns of the revocation); versions
    withdrawn on this node do not."""
    stmt = select(ov.c.date_added, ov.c.content).where(
        visible_to(principal, ov), ov.c.is_latest.is_(True), ov.c.withdrawn.is_(False)
    )
    if selection.types:
        stmt = stmt.where(ov.c.type.in_(list(selection.types)))
    if selection.max_tlp is not None:
        stmt = stmt.where(ov.c.tlp <= int(selection.max_tlp))
    stmt = _narrowed(conn, stmt, selection.since, selection.sources, selection.labels)
    base = stmt.order_by(ov.c.date_added).limit(batch)
    after: int | None = None
    while True:
        page = base if after is None else base.where(ov.c.date_added > after)
        rows = [(int(r[0]), str(r[1])) for r in conn.execute(page)]
        if rows:
            yield rows
        if len(rows) < batch:
            return
        after = rows[-1][0]


def org_names(conn: Connection) -> dict[str, str]:
    """Every org's name by id (a small table, read once per export instead of joined)."""
    return {str(r[0]): str(r[1]) for r in conn.execute(select(orgs.c.id, orgs.c.name))}


def fingerprint(
    conn: Connection, principal: Principal, material: Any, *, now: int, indicators_only: bool
) -> str:
    """A digest that changes whenever the export described by ``material`` (the format and its
    normalized filters, as JSON-able data) could change for this principal.

    It is made of the node's clock (every stored version moves it), the principal's org and
    sharing groups, the number of withdrawn latest versions (a withdrawal does not move the
    clock) and the next moment an indicator expires (time alone changes what is active). Two
    aggregates and no content are read, so a poller's unchanged request costs a fraction of
    the export itself. The next moment an indicator's score decays below its cut-off counts
    like an expiry (one more lookup, in the index of ``decays_at``).
    """
    state = select(
        func.count(case((ov.c.withdrawn.is_(True), 1))),
        func.min(case((ov.c.valid_until > now, ov.c.valid_until))),
    ).where(ov.c.is_latest.is_(True))
    if indicators_only:
        state = state.where(ov.c.type == "indicator")
    withdrawn, next_expiry = conn.execute(state).one()
    # An indicator decaying below its score's cut-off leaves exports as time passes, too.
    next_decay = conn.execute(
        select(func.min(indicator_scores.c.decays_at)).where(indicator_scores.c.decays_at > now)
    ).scalar()
    parts = [
        material,
        principal.org_id,
        sorted(principal.group_ids),
        local_clock(conn),
        int(withdrawn or 0),
        next_expiry,
        next_decay,
    ]
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]
