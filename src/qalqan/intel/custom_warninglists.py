"""Warninglists of the node's own (its government's address ranges, its own domains), kept
beside the MISP ones, and the compiled index of both that feeds and searches check values with.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import Connection

from qalqan.audit import record
from qalqan.domain.principal import Principal
from qalqan.errors import Forbidden, InvalidInput
from qalqan.instance import Instance
from qalqan.intel.warninglists import Warninglist, WarninglistIndex, load_index, parse_list
from qalqan.policy import can_administer_node
from qalqan.store import feeds as store
from qalqan.store.clock import now_us

__all__ = ["add_list", "index_for", "lists", "remove_list"]

MAX_ENTRIES = 1_000_000

_lock = threading.Lock()
_compiled: dict[tuple[str, str], WarninglistIndex] = {}


def add_list(
    conn: Connection, principal: Principal | None, document: Mapping[str, Any]
) -> store.WarninglistRecord:
    """Add a custom list from a MISP-format document (name, type, list, matching_attributes,
    description). Node admins only (``principal`` None: the local console)."""
    if principal is not None and not can_administer_node(principal):
        raise Forbidden("only node administrators manage warninglists")
    entries = document.get("list")
    if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
        raise InvalidInput(f"a warninglist holds at most {MAX_ENTRIES} entries", field="list")
    parsed = parse_list(document, origin="custom")
    if len(parsed.name) > 200:
        raise InvalidInput("a warninglist name is at most 200 characters", field="name")
    wl = store.WarninglistRecord(
        id=str(uuid.uuid4()),
        name=parsed.name,
        type=parsed.type,
        kinds=tuple(sorted(parsed.kinds)),
        description=parsed.description,
        entries=parsed.entries,
        created_at=now_us(),
        created_by=principal.user_id if principal else None,
    )
    store.insert_warninglist(conn, wl)
    record(
        conn,
        principal,
        "warninglist.add",
        target=wl.id,
        detail={"name": wl.name, "type": wl.type, "entries": len(wl.entries)},
    )
    return wl


def lists(conn: Connection) -> list[store.WarninglistRecord]:
    """The node's custom lists."""
    return store.list_warninglists(conn)


def remove_list(conn: Connection, principal: Principal | None, ref: str) -> None:
    """Remove a custom list by name or id."""
    if principal is not None and not can_administer_node(principal):
        raise Forbidden("only node administrators manage warninglists")
    store.delete_warninglist(conn, ref)
    record(conn, principal, "warninglist.remove", target=ref)


def _custom(records: list[store.WarninglistRecord]) -> list[Warninglist]:
    return [
        Warninglist(
            name=r.name,
            description=r.description,
            type=r.type,
            kinds=frozenset(r.kinds),
            entries=r.entries,
            origin="custom",
        )
        for r in records
    ]


def index_for(instance: Instance) -> WarninglistIndex:
    """The compiled index of the MISP lists and the node's custom ones, built once per process
    and per change of the custom lists (and cached on disk in the data dir)."""
    with instance.begin() as conn:
        records = store.list_warninglists(conn)
    material = orjson.dumps([(r.id, r.name, r.type, r.kinds, r.entries) for r in records])
    cache_dir = instance.settings.resolved_warninglist_cache
    key = (str(cache_dir.resolve()), hashlib.sha256(material).hexdigest())
    with _lock:
        index = _compiled.get(key)
        if index is None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            index = load_index(cache_dir, _custom(records))
            _compiled.clear()
            _compiled[key] = index
        return index
