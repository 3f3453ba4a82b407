"""TAXII collections: saved queries over the store, bound to the handling rules.

A collection never widens what a caller sees: it narrows what :func:`policy.visible_to`
already allows (by type, TLP ceiling or sharing group). Node admins define the stored
collections; every sharing group also has a collection of its own, shown only to its members,
whose writes are distributed to the group.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from qalqan.audit import record
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal
from qalqan.domain.stix import object_kind
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound
from qalqan.intel.importer import HandlingRequest
from qalqan.policy import can_administer_node, collection_access
from qalqan.store import accounts as accounts_store
from qalqan.store import taxii as store
from qalqan.store.clock import now_us
from qalqan.store.taxii import CollectionRecord, ObjectQuery

__all__ = [
    "Collection",
    "add_collection",
    "collections_for",
    "find_collection",
    "list_stored",
    "remove_collection",
]

# Names the ids of the collections every sharing group gets, so they stay the same.
_GROUP_NAMESPACE = uuid.UUID("3f5e7c1a-6a0b-4c47-9a53-2f7f6f0d9b11")
_ALIAS_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class Collection:
    """A collection as one caller sees it."""

    id: str
    alias: str | None
    title: str
    description: str
    types: tuple[str, ...] | None
    max_tlp: int | None
    sharing_group_id: str | None
    writable: bool
    can_read: bool
    can_write: bool
    stored: bool

    def query(self) -> ObjectQuery:
        """The saved query; requests narrow it further."""
        return ObjectQuery(
            types=self.types, max_tlp=self.max_tlp, sharing_group_id=self.sharing_group_id
        )

    def handling(self) -> HandlingRequest:
        """The handling of objects written to it: a group's collection shares with the group."""
        if self.sharing_group_id is not None:
            return HandlingRequest(None, Distribution.SHARING_GROUP, self.sharing_group_id)
        return HandlingRequest()

    def resource(self) -> dict[str, Any]:
        """The TAXII collection resource."""
        doc: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "can_read": self.can_read,
            "can_write": self.can_write,
            "media_types": ["application/stix+json;version=2.1"],
        }
        if self.description:
            doc["description"] = self.description
        if self.alias:
            doc["alias"] = self.alias
        return doc

    def to_dict(self) -> dict[str, Any]:
        """The collection's definition, for administrators."""
        return {
            "id": self.id,
            "alias": self.alias,
            "title": self.title,
            "description": self.description,
            "types": list(self.types) if self.types else None,
            "max_tlp": TLP(self.max_tlp).label if self.max_tlp is not None else None,
            "sharing_group": self.sharing_group_id,
            "writable": self.writable,
            "kind": "stored" if self.stored else "sharing-group",
        }


def _seen_as(principal: Principal, record_: CollectionRecord, *, stored: bool) -> Collection | None:
    access = collection_access(principal, record_.writable, record_.sharing_group_id)
    if access is None:
        return None
    return Collection(
        record_.id,
        record_.alias,
        record_.title,
        record_.description,
        record_.types,
        record_.max_tlp,
        record_.sharing_group_id,
        record_.writable,
        access[0],
        access[1],
        stored,
    )


def _group_collection_id(group_id: str) -> str:
    return str(uuid.uuid5(_GROUP_NAMESPACE, group_id))


def _group_collection(group: accounts_store.GroupRecord) -> CollectionRecord:
    return CollectionRecord(
        _group_collection_id(group.id),
        None,
        f"Sharing group {group.name}",
        f"Objects shared with the sharing group {group.name}; what you add is shared "
        "with its members.",
        None,
        None,
        group.id,
        True,
        group.created_at,
    )


def _group_collections(conn: Connection, principal: Principal) -> list[CollectionRecord]:
    return [
        _group_collection(group)
        for group in accounts_store.list_groups(conn, principal.org_id)
        if group.id in principal.group_ids
    ]


def collections_for(conn: Connection, principal: Principal) -> list[Collection]:
    """The collections the principal may know of: stored ones, then their groups' ones."""
    seen = [_seen_as(principal, r, stored=True) for r in store.list_collections(conn)]
    seen += [_seen_as(principal, r, stored=False) for r in _group_collections(conn, principal)]
    return [c for c in seen if c is not None]


def find_collection(conn: Connection, principal: Principal, ref: str) -> Collection:
    """The collection with this id or alias; NotFound when there is none the principal may
    know of."""
    found: Collection | None = None
    stored = store.find_collection(conn, ref)
    if stored is not None:
        found = _seen_as(principal, stored, stored=True)
    else:
        for group_id in principal.group_ids:
            if _group_collection_id(group_id) == ref:
                group = accounts_store.get_group(conn, group_id)
                found = _seen_as(principal, _group_collection(group), stored=False)
    if found is None:
        raise NotFound(f"no collection {ref[:100]!r}")
    return found


def _types(types: list[str] | None) -> tuple[str, ...] | None:
    if not types:
        return None
    cleaned = tuple(sorted({t.strip() for part in types for t in part.split(",") if t.strip()}))
    for t in cleaned:
        if object_kind(t) == "custom" and not _TYPE_RE.fullmatch(t):
            raise InvalidInput(f"{t!r} is not a STIX object type name", field="types")
    return cleaned or None


def add_collection(
    conn: Connection,
    actor: Principal | None,
    title: str,
    *,
    alias: str | None = None,
    description: str = "",
    types: list[str] | None = None,
    max_tlp: TLP | None = None,
    sharing_group: str | None = None,
    writable: bool = False,
) -> Collection:
    """Define a stored collection (node administrators)."""
    if actor is not None and not can_administer_node(actor):
        raise Forbidden("only node administrators define TAXII collections")
    title = title.strip()
    if not title or len(title) > 200:
        raise InvalidInput("a collection title must be 1 to 200 characters", field="title")
    if alias is not None and not _ALIAS_RE.fullmatch(alias):
        raise InvalidInput(
            "an alias is 1 to 100 lowercase letters, digits, '.', '_' or '-'", field="alias"
        )
    existing = store.list_collections(conn)
    if alias is not None and any(c.alias == alias for c in existing):
        raise Conflict(f"a collection with alias {alias!r} already exists", field="alias")
    group_id = accounts_store.get_group(conn, sharing_group).id if sharing_group else None
    new = CollectionRecord(
        str(uuid.uuid4()),
        alias,
        title,
        description.strip(),
        _types(types),
        int(max_tlp) if max_tlp is not None else None,
        group_id,
        writable,
        now_us(),
    )
    store.insert_collection(conn, new, actor.user_id if actor else None)
    record(conn, actor, "taxii.collection.add", target=new.id, detail={"title": title})
    return _definition(new)


def _definition(r: CollectionRecord) -> Collection:
    return Collection(
        r.id,
        r.alias,
        r.title,
        r.description,
        r.types,
        r.max_tlp,
        r.sharing_group_id,
        r.writable,
        True,
        r.writable,
        True,
    )


def list_stored(conn: Connection, actor: Principal | None) -> list[Collection]:
    """Every stored collection's definition (node administrators)."""
    if actor is not None and not can_administer_node(actor):
        raise Forbidden("only node administrators list every TAXII collection")
    return [_definition(r) for r in store.list_collections(conn)]


def remove_collection(conn: Connection, actor: Principal | None, ref: str) -> None:
    """Remove a stored collection (node administrators); the objects stay."""
    if actor is not None and not can_administer_node(actor):
        raise Forbidden("only node administrators remove TAXII collections")
    for c in store.list_collections(conn):
        if ref in (c.id, c.alias):
            store.delete_collection(conn, c.id)
            record(conn, actor, "taxii.collection.remove", target=c.id, detail={"title": c.title})
            return
    raise NotFound(f"no stored collection {ref!r}")
