"""Notifications: events an org is told about, read newest first and marked read.

Kinds are listed in :mod:`qalqan.notify.kinds`; e.g. ``sighting``: another org's sighting of an
object the org owns, once the org may read it (see :mod:`qalqan.intel.sightings`), whose
``subject`` is the sighted object's id and whose ``detail`` says who saw it, how often, when,
and what kind of report it is. A notification is for a whole org, or for one user of it (an
assignment); a user reads the org's and their own. Webhooks and e-mail carry the same rows
(:mod:`qalqan.notify.dispatch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from qalqan.domain.principal import Principal
from qalqan.domain.stix import format_timestamp
from qalqan.errors import InvalidInput
from qalqan.intel.reading import decode_cursor, encode_cursor
from qalqan.store import notifications as store
from qalqan.store.clock import now_us
from qalqan.store.notifications import NotificationRow

__all__ = ["NotificationPage", "describe", "list_notifications", "mark_read"]


def describe(row: NotificationRow) -> dict[str, Any]:
    """A notification as the API and CLI show it."""
    return {
        "id": row.id,
        "kind": row.kind,
        "subject": row.subject,
        "detail": orjson.loads(row.detail),
        "created": format_timestamp(row.created_at),
        "read": format_timestamp(row.read_at) if row.read_at is not None else None,
        "user": row.user_id,
    }


@dataclass(frozen=True, slots=True)
class NotificationPage:
    items: list[NotificationRow]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [describe(r) for r in self.items], "next": self.next_cursor}


def list_notifications(
    conn: Connection,
    principal: Principal,
    *,
    unread: bool | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> NotificationPage:
    """One page of the principal's org's notifications, newest first."""
    before = _position(cursor)
    rows = store.list_notifications(
        conn, principal.org_id, user_id=principal.user_id, unread=unread, before=before,
        limit=limit + 1,
    )  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    return NotificationPage(rows, encode_cursor(rows[-1].id) if more else None)


def mark_read(
    conn: Connection, principal: Principal, ids: Sequence[int] = (), up_to: int | None = None
) -> int:
    """Mark notifications of the principal's org read: ``ids``, and every one up to ``up_to``.
    Ids of other orgs' notifications change nothing. How many were marked."""
    if not ids and up_to is None:
        raise InvalidInput("name the notifications to mark: ids or up_to", field="ids")
    return store.mark_read(
        conn, principal.org_id, now_us(), user_id=principal.user_id, ids=ids, up_to=up_to
    )


def _position(cursor: str | None) -> int | None:
    """The keyset position of a page cursor; InvalidInput if it is not one this node gives."""
    if not cursor:
        return None
    position = decode_cursor(cursor)
    if not 0 < position < 2**63:
        raise InvalidInput(f"{cursor!r} is not a valid page cursor", field="cursor")
    return position
