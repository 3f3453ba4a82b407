"""SQL of notification delivery: webhooks, users' e-mail choices, and the delivery log.

A notification is fanned out once (``notifications.dispatched_at``) into delivery rows, one per
webhook and per user to e-mail; senders claim due rows with a short lease, so several workers
never send the same row at once, and write each attempt's outcome back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from qalqan.store.clock import lock_writes
from qalqan.store.tables import notification_deliveries as dt
from qalqan.store.tables import notification_preferences as pt
from qalqan.store.tables import notifications as nt
from qalqan.store.tables import orgs, users
from qalqan.store.tables import webhooks as wt

__all__ = [
    "DeliveryRow",
    "PendingNotification",
    "WebhookRow",
    "claim_due",
    "delete_webhook",
    "delivery_page",
    "get_delivery",
    "get_webhook",
    "insert_deliveries",
    "insert_webhook",
    "list_webhooks",
    "mark_dispatched",
    "notification_for",
    "org_recipients",
    "pending_count",
    "preferences_of",
    "record_attempt",
    "requeue",
    "set_preferences",
    "undispatched",
    "update_webhook",
    "webhooks_of_orgs",
]

_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class WebhookRow:
    """A stored webhook, columns in table order (``kinds`` is JSON text)."""

    id: str
    org_id: str
    url: str
    description: str
    kinds: str
    active: bool
    salt: str
    created_by: str | None
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One entry of the delivery log, columns in table order."""

    id: int
    notification_id: int
    org_id: str
    channel: str
    webhook_id: str | None
    user_id: str | None
    status: str
    attempts: int
    next_attempt_at: int | None
    last_attempt_at: int | None
    last_code: int | None
    last_error: str | None
    created_at: int
    delivered_at: int | None
    lease_until: int | None


@dataclass(frozen=True, slots=True)
class PendingNotification:
    """A notification not yet fanned out to webhooks and e-mail."""

    id: int
    org_id: str
    user_id: str | None
    kind: str


# --- webhooks ---------------------------------------------------------------------------------


def insert_webhook(conn: Connection, row: WebhookRow) -> None:
    conn.execute(wt.insert().values(**{c.name: getattr(row, c.name) for c in wt.c}))


def get_webhook(conn: Connection, webhook_id: str) -> WebhookRow | None:
    found = conn.execute(select(*wt.c).where(wt.c.id == webhook_id)).first()
    return WebhookRow(*found) if found else None


def list_webhooks(conn: Connection, org_id: str) -> list[WebhookRow]:
    stmt = select(*wt.c).where(wt.c.org_id == org_id).order_by(wt.c.created_at, wt.c.id)
    return [WebhookRow(*r) for r in conn.execute(stmt)]


def update_webhook(conn: Connection, webhook_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(wt).where(wt.c.id == webhook_id).values(**values))


def delete_webhook(conn: Connection, webhook_id: str) -> None:
    """Remove the webhook and its delivery log."""
    conn.execute(delete(dt).where(dt.c.webhook_id == webhook_id))
    conn.execute(delete(wt).where(wt.c.id == webhook_id))


def webhooks_of_orgs(conn: Connection, org_ids: Sequence[str]) -> list[WebhookRow]:
    """The active webhooks of the orgs."""
    unique = sorted(set(org_ids))
    found: list[WebhookRow] = []
    for i in range(0, len(unique), _CHUNK):
        stmt = select(*wt.c).where(wt.c.org_id.in_(unique[i : i + _CHUNK]), wt.c.active)
        found.extend(WebhookRow(*r) for r in conn.execute(stmt))
    return found


# --- preferences ------------------------------------------------------------------------------


def preferences_of(conn: Connection, user_ids: Sequence[str]) -> dict[str, dict[str, bool]]:
    """Each user's explicit choices: {user id: {kind: e-mail or not}}."""
    unique = sorted(set(user_ids))
    chosen: dict[str, dict[str, bool]] = {}
    for i in range(0, len(unique), _CHUNK):
        stmt = select(pt.c.user_id, pt.c.kind, pt.c.email).where(
            pt.c.user_id.in_(unique[i : i + _CHUNK])
        )
        for user_id, kind, email in conn.execute(stmt):
            chosen.setdefault(str(user_id), {})[str(kind)] = bool(email)
    return chosen


def set_preferences(conn: Connection, user_id: str, choices: dict[str, bool]) -> None:
    """Replace the user's choices for the kinds named."""
    if not choices:
        return
    conn.execute(delete(pt).where(pt.c.user_id == user_id, pt.c.kind.in_(sorted(choices))))
    conn.execute(
        pt.insert(), [{"user_id": user_id, "kind": k, "email": v} for k, v in choices.items()]
    )


def org_recipients(
    conn: Connection, org_ids: Sequence[str], roles: Sequence[str]
) -> list[tuple[str, str, str]]:
    """(user id, org id, e-mail) of the enabled users of the orgs with one of ``roles``."""
    unique = sorted(set(org_ids))
    found: list[tuple[str, str, str]] = []
    for i in range(0, len(unique), _CHUNK):
        stmt = select(users.c.id, users.c.org_id, users.c.email).where(
            users.c.org_id.in_(unique[i : i + _CHUNK]),
            users.c.disabled.is_(False),
            users.c.role.in_(list(roles)),
        )
        found.extend((str(u), str(o), str(e)) for u, o, e in conn.execute(stmt))
    return found


# --- fan-out ----------------------------------------------------------------------------------


def _claiming(conn: Connection) -> None:
    """Make the select-then-update of a claim exclusive. PostgreSQL locks the rows selected
    (``FOR UPDATE SKIP LOCKED``: others skip them); SQLite has no row locks, so the claim takes
    the node's write turn before it reads."""
    if conn.dialect.name == "sqlite":
        lock_writes(conn)


def undispatched(conn: Connection, limit: int) -> list[PendingNotification]:
    """The oldest notifications not yet fanned out, held against other dispatchers until the
    transaction ends."""
    waiting = select(nt.c.id).where(nt.c.dispatched_at.is_(None)).limit(1)
    if conn.execute(waiting).first() is None:  # the usual case: no write turn taken
        return []
    _claiming(conn)
    stmt = (
        select(nt.c.id, nt.c.org_id, nt.c.user_id, nt.c.kind)
        .where(nt.c.dispatched_at.is_(None))
        .order_by(nt.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [PendingNotification(*r) for r in conn.execute(stmt)]


def mark_dispatched(conn: Connection, ids: Sequence[int], at: int) -> None:
    for i in range(0, len(ids), _CHUNK):
        conn.execute(
            update(nt).where(nt.c.id.in_(list(ids[i : i + _CHUNK]))).values(dispatched_at=at)
        )


def insert_deliveries(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Rows with notification_id, org_id, channel, webhook_id, user_id, created_at: pending and
    due now."""
    if rows:
        conn.execute(
            dt.insert(),
            [{**r, "status": "pending", "attempts": 0, "next_attempt_at": r["created_at"]}
             for r in rows],
        )  # fmt: skip


# --- sending ----------------------------------------------------------------------------------


def claim_due(conn: Connection, now: int, lease_until: int, limit: int) -> list[DeliveryRow]:
    """Lease up to ``limit`` pending deliveries due by ``now`` (oldest first) until
    ``lease_until``; rows leased by another sender are skipped until their lease ends."""
    waiting = select(dt.c.id).where(dt.c.status == "pending", dt.c.next_attempt_at <= now)
    if conn.execute(waiting.limit(1)).first() is None:
        return []
    _claiming(conn)
    stmt = (
        select(*dt.c)
        .where(
            dt.c.status == "pending",
            dt.c.next_attempt_at <= now,
            or_(dt.c.lease_until.is_(None), dt.c.lease_until < now),
        )
        .order_by(dt.c.next_attempt_at, dt.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = [DeliveryRow(*r) for r in conn.execute(stmt)]
    ids = [r.id for r in rows]
    if ids:
        conn.execute(update(dt).where(dt.c.id.in_(ids)).values(lease_until=lease_until))
    return rows


def notification_for(conn: Connection, notification_id: int) -> dict[str, Any] | None:
    """The notification a delivery carries, with its org's name."""
    stmt = (
        select(*nt.c, orgs.c.name.label("org_name"))
        .join(orgs, orgs.c.id == nt.c.org_id)
        .where(nt.c.id == notification_id)
    )
    found = conn.execute(stmt).mappings().first()
    return dict(found) if found else None


def record_attempt(
    conn: Connection,
    delivery_id: int,
    *,
    at: int,
    status: str,
    code: int | None,
    error: str | None,
    next_attempt_at: int | None,
) -> None:
    """Write one attempt's outcome and release the lease."""
    values: dict[str, Any] = {
        "status": status,
        "attempts": dt.c.attempts + 1,
        "last_attempt_at": at,
        "last_code": code,
        "last_error": error,
        "next_attempt_at": next_attempt_at,
        "lease_until": None,
    }
    if status == "delivered":
        values["delivered_at"] = at
    conn.execute(update(dt).where(dt.c.id == delivery_id).values(**values))


def requeue(conn: Connection, delivery_id: int, now: int) -> None:
    """Make a given-up delivery pending again, due now."""
    conn.execute(
        update(dt)
        .where(dt.c.id == delivery_id)
        .values(status="pending", next_attempt_at=now, lease_until=None)
    )


# --- the log ----------------------------------------------------------------------------------


def get_delivery(conn: Connection, delivery_id: int) -> tuple[DeliveryRow, str] | None:
    """A delivery and its notification's kind."""
    stmt = (
        select(*dt.c, nt.c.kind)
        .join(nt, nt.c.id == dt.c.notification_id)
        .where(dt.c.id == delivery_id)
    )
    found = conn.execute(stmt).first()
    return (DeliveryRow(*found[:-1]), str(found[-1])) if found else None


def delivery_page(
    conn: Connection,
    org_id: str,
    *,
    webhook_id: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    before: int | None = None,
    limit: int,
) -> list[tuple[DeliveryRow, str]]:
    """One keyset page of the org's delivery log, newest first, each with its notification's
    kind."""
    conds = [dt.c.org_id == org_id]
    if webhook_id is not None:
        conds.append(dt.c.webhook_id == webhook_id)
    if channel is not None:
        conds.append(dt.c.channel == channel)
    if status is not None:
        conds.append(dt.c.status == status)
    if before is not None:
        conds.append(dt.c.id < before)
    stmt = (
        select(*dt.c, nt.c.kind)
        .join(nt, nt.c.id == dt.c.notification_id)
        .where(and_(*conds))
        .order_by(dt.c.id.desc())
        .limit(limit)
    )
    return [(DeliveryRow(*r[:-1]), str(r[-1])) for r in conn.execute(stmt)]


def pending_count(conn: Connection) -> int:
    """How many deliveries wait to be sent (for the health of the sender)."""
    return int(conn.execute(select(func.count()).where(dt.c.status == "pending")).scalar_one())
