"""SQL of requests for assistance (RFAs): the requests, their status timeline, the
observables they name and the evidence attached to their answers. Every read of requests takes
the caller's visibility predicate from :mod:`qalqan.policy.rfas`, in the ``WHERE`` clause,
before paging."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, true

from qalqan.domain.principal import Principal
from qalqan.policy.rfas import OPEN_STATUSES, rfa_visible_to
from qalqan.store.clock import lock_writes
from qalqan.store.tables import (
    evidence,
    orgs,
    rfa_attachments,
    rfa_events,
    rfa_observables,
    rfas,
)
from qalqan.store.tables import notifications as nt

__all__ = [
    "NO_DUE",
    "SORT_KEYS",
    "AttachmentRow",
    "EventRow",
    "ListQuery",
    "RfaRow",
    "add_attachments",
    "add_event",
    "attached_for_requester",
    "attachments_of",
    "events_of",
    "get_rfa",
    "insert_rfa",
    "list_rfas",
    "next_number",
    "observables_of",
    "org_names",
    "overdue_rfas",
    "replace_observables",
    "update_rfa",
]

# Sort names → the column each orders by; ``due`` puts requests without a deadline last.
NO_DUE = 2**62
SORT_KEYS: Mapping[str, Any] = {
    "updated": rfas.c.updated_at,
    "created": rfas.c.created_at,
    "number": rfas.c.number,
    "due": func.coalesce(rfas.c.due_at, NO_DUE),
}


@dataclass(frozen=True, slots=True)
class RfaRow:
    """A stored request, with its columns in table order."""

    id: str
    number: int
    kind: str
    title: str
    body: str
    legal_basis: str
    priority: int
    requester_org_id: str
    recipient_org_id: str
    case_id: str | None
    status: str
    due_at: int | None
    answer: str | None
    created_at: int
    created_by: str | None
    updated_at: int
    sent_at: int | None
    acknowledged_at: int | None
    answered_at: int | None
    closed_at: int | None


@dataclass(frozen=True, slots=True)
class EventRow:
    """One step of a request's timeline."""

    id: int
    rfa_id: str
    at: int
    actor_user_id: str | None
    actor_org_id: str | None
    from_status: str | None
    to_status: str
    note: str


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    """An evidence item attached to a request's answer, with what a reader of the request sees
    of it."""

    evidence_id: str
    name: str
    sha256: str
    size: int
    attached_at: int
    attached_by: str | None
    attached_org_id: str


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Filters and order of a list: ``role`` sent|received|None, ``sort`` a :data:`SORT_KEYS`
    name, ``after`` the (sort key, id) the previous page ended on."""

    role: str | None = None
    status: str | None = None
    overdue: bool | None = None
    org_id: str | None = None
    text: str | None = None
    sort: str = "updated"
    descending: bool = True
    after: tuple[int, str] | None = None


def next_number(conn: Connection) -> int:
    """The next request number of this node; takes the node's write turn first, so two
    writers never get the same number."""
    lock_writes(conn)
    return int(conn.execute(select(func.coalesce(func.max(rfas.c.number), 0))).scalar_one()) + 1


def insert_rfa(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(rfas.insert().values(**values))


def update_rfa(conn: Connection, rfa_id: str, values: Mapping[str, Any]) -> None:
    conn.execute(rfas.update().where(rfas.c.id == rfa_id).values(**values))


def get_rfa(
    conn: Connection, principal: Principal, *, rfa_id: str | None = None, number: int | None = None
) -> RfaRow | None:
    """The request with this id or number, if the principal may see it."""
    key = rfas.c.id == rfa_id if rfa_id is not None else rfas.c.number == number
    row = conn.execute(select(*rfas.c).where(key, rfa_visible_to(principal, rfas))).first()
    return RfaRow(*row) if row is not None else None


def _overdue(now: int) -> ColumnElement[bool]:
    return and_(rfas.c.due_at < now, rfas.c.status.in_(OPEN_STATUSES))


def list_rfas(
    conn: Connection, principal: Principal, query: ListQuery, *, now: int, limit: int
) -> list[RfaRow]:
    """One keyset page of the requests the principal may see, filtered and ordered by ``query``
    (ties broken by id)."""
    stmt: Any = select(*rfas.c).where(rfa_visible_to(principal, rfas))
    if query.role == "sent":
        stmt = stmt.where(rfas.c.requester_org_id == principal.org_id)
    elif query.role == "received":
        stmt = stmt.where(rfas.c.recipient_org_id == principal.org_id)
    if query.status is not None:
        stmt = stmt.where(rfas.c.status == query.status)
    if query.overdue is True:
        stmt = stmt.where(_overdue(now))
    elif query.overdue is False:
        stmt = stmt.where(~_overdue(now) | rfas.c.due_at.is_(None))
    if query.org_id is not None:
        stmt = stmt.where(
            or_(rfas.c.requester_org_id == query.org_id, rfas.c.recipient_org_id == query.org_id)
        )
    if query.text:
        needle = query.text.lower()
        stmt = stmt.where(
            or_(
                func.lower(rfas.c.title).contains(needle, autoescape=True),
                func.lower(rfas.c.body).contains(needle, autoescape=True),
                func.lower(rfas.c.legal_basis).contains(needle, autoescape=True),
            )
        )
    key = SORT_KEYS[query.sort]
    if query.after is not None:
        value, last_id = query.after
        if query.descending:
            stmt = stmt.where(or_(key < value, and_(key == value, rfas.c.id < last_id)))
        else:
            stmt = stmt.where(or_(key > value, and_(key == value, rfas.c.id > last_id)))
    order = (key.desc(), rfas.c.id.desc()) if query.descending else (key.asc(), rfas.c.id.asc())
    stmt = stmt.order_by(*order).limit(limit)
    return [RfaRow(*row) for row in conn.execute(stmt)]


def overdue_rfas(conn: Connection, now: int, *, not_notified_kind: str) -> list[RfaRow]:
    """Requests past their deadline and still awaiting an answer whose requester has no
    notification of kind ``not_notified_kind`` about them yet."""
    told = (
        select(nt.c.id)
        .where(
            nt.c.kind == not_notified_kind,
            nt.c.subject == rfas.c.id,
            nt.c.org_id == rfas.c.requester_org_id,
        )
        .exists()
    )
    stmt = select(*rfas.c).where(_overdue(now), ~told).order_by(rfas.c.number)
    return [RfaRow(*row) for row in conn.execute(stmt)]


def add_event(
    conn: Connection,
    rfa_id: str,
    *,
    at: int,
    actor: Principal,
    from_status: str | None,
    to_status: str,
    note: str = "",
) -> None:
    conn.execute(
        rfa_events.insert().values(
            rfa_id=rfa_id,
            at=at,
            actor_user_id=actor.user_id,
            actor_org_id=actor.org_id,
            from_status=from_status,
            to_status=to_status,
            note=note,
        )
    )


def events_of(conn: Connection, rfa_id: str) -> list[EventRow]:
    """The request's timeline, oldest first."""
    stmt = select(*rfa_events.c).where(rfa_events.c.rfa_id == rfa_id).order_by(rfa_events.c.id)
    return [EventRow(*row) for row in conn.execute(stmt)]


def replace_observables(
    conn: Connection, rfa_id: str, observables: Iterable[tuple[str, str]]
) -> None:
    """Make ``observables`` (kind, value) the request's observables."""
    conn.execute(rfa_observables.delete().where(rfa_observables.c.rfa_id == rfa_id))
    rows = [{"rfa_id": rfa_id, "kind": k, "value": v} for k, v in dict.fromkeys(observables)]
    if rows:
        conn.execute(rfa_observables.insert(), rows)


def observables_of(conn: Connection, rfa_id: str) -> list[tuple[str, str]]:
    stmt = (
        select(rfa_observables.c.kind, rfa_observables.c.value)
        .where(rfa_observables.c.rfa_id == rfa_id)
        .order_by(rfa_observables.c.kind, rfa_observables.c.value)
    )
    return [(str(k), str(v)) for k, v in conn.execute(stmt)]


def org_names(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    """Names of the orgs ``ids``."""
    unique = sorted(set(ids))
    if not unique:
        return {}
    stmt = select(orgs.c.id, orgs.c.name).where(orgs.c.id.in_(unique))
    return {str(i): str(n) for i, n in conn.execute(stmt)}


def add_attachments(
    conn: Connection, rfa_id: str, evidence_ids: Sequence[str], *, actor: Principal, at: int
) -> list[str]:
    """Attach the evidence items ``evidence_ids`` to the request; those attached already are
    left as they are. Takes the node's write turn first, so two writers never attach the same
    item twice; returns the ids newly attached, in the order given."""
    lock_writes(conn)
    present = set(
        conn.execute(
            select(rfa_attachments.c.evidence_id).where(rfa_attachments.c.rfa_id == rfa_id)
        ).scalars()
    )
    new = [e for e in dict.fromkeys(evidence_ids) if e not in present]
    if new:
        conn.execute(
            rfa_attachments.insert(),
            [
                {
                    "rfa_id": rfa_id,
                    "evidence_id": e,
                    "attached_by": actor.user_id,
                    "attached_org_id": actor.org_id,
                    "attached_at": at,
                }
                for e in new
            ],
        )
    return new


def attachments_of(conn: Connection, rfa_id: str) -> list[AttachmentRow]:
    """The evidence attached to the request, in the order it was attached."""
    stmt = (
        select(
            rfa_attachments.c.evidence_id,
            evidence.c.name,
            evidence.c.sha256,
            evidence.c.size,
            rfa_attachments.c.attached_at,
            rfa_attachments.c.attached_by,
            rfa_attachments.c.attached_org_id,
        )
        .join(evidence, evidence.c.id == rfa_attachments.c.evidence_id)
        .where(rfa_attachments.c.rfa_id == rfa_id)
        .order_by(rfa_attachments.c.attached_at, evidence.c.name, evidence.c.id)
    )
    return [AttachmentRow(*row) for row in conn.execute(stmt)]


def attached_for_requester(conn: Connection, evidence_id: str, org_id: str) -> bool:
    """Whether the evidence item is attached to a request for assistance ``org_id`` made."""
    stmt = (
        select(true())
        .select_from(rfa_attachments.join(rfas, rfas.c.id == rfa_attachments.c.rfa_id))
        .where(rfa_attachments.c.evidence_id == evidence_id, rfas.c.requester_org_id == org_id)
        .limit(1)
    )
    return conn.execute(stmt).first() is not None
