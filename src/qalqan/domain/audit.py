"""The audit log's hash chain: what an entry's hash covers.

Each entry's hash is the SHA-256 of a canonical JSON array of its fields and the hash of the
entry before it, so changing, removing or reordering any entry breaks every link after it. The
first entry follows :data:`GENESIS`.
"""

from __future__ import annotations

import hashlib
from typing import Final

import orjson

__all__ = ["GENESIS", "entry_hash"]

GENESIS: Final = "0" * 64


def entry_hash(
    prev_hash: str,
    entry_id: int,
    at: int,
    actor_user_id: str | None,
    actor_org_id: str | None,
    action: str,
    target: str | None,
    detail: str,
) -> str:
    """The hex SHA-256 that chains one entry to ``prev_hash``."""
    payload = orjson.dumps(
        [prev_hash, entry_id, at, actor_user_id, actor_org_id, action, target, detail]
    )
    return hashlib.sha256(payload).hexdigest()
