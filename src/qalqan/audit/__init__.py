"""The audit log: who did what, when. Every write and every export records one entry.

Entries carry ``prev_hash``/``hash`` columns for the hash chain; until the chain lands they are
left empty, and nothing else depends on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import Connection

from qalqan.domain.principal import Principal
from qalqan.store.audit import append_entry
from qalqan.store.clock import now_us

__all__ = ["record"]


def record(
    conn: Connection,
    actor: Principal | None,
    action: str,
    *,
    target: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry in the caller's transaction (so it commits or rolls back with the write).

    ``detail`` must never hold secrets: callers pass counts, ids and names only.
    """
    append_entry(
        conn,
        at=now_us(),
        actor_user_id=actor.user_id if actor else None,
        actor_org_id=actor.org_id if actor else None,
        action=action,
        target=target,
        detail=orjson.dumps(dict(detail or {})).decode(),
    )
