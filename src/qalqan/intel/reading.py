"""Read intelligence as an org may see it: listings, versions, observables, bundles; revocation."""

from __future__ import annotations

import base64
import binascii
import itertools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from qalqan.audit import record
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.observables import InvalidObservable, parse_value
from qalqan.domain.principal import Principal
from qalqan.domain.stix import ID_RE, format_timestamp, parse_timestamp
from qalqan.errors import Forbidden, InvalidInput, NotFound
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.policy import may_write
from qalqan.store import accounts as accounts_store
from qalqan.store import objects as store
from qalqan.store.clock import now_us
from qalqan.store.objects import ObjectFilter, ObservableHit, StoredVersion

__all__ = [
    "ObjectPage",
    "ObservablePage",
    "decode_cursor",
    "decode_key_cursor",
    "encode_cursor",
    "encode_key_cursor",
    "get_versions",
    "handling_of",
    "list_objects",
    "revoke_object",
    "search_observables",
    "stream_bundle",
]


def encode_cursor(position: int) -> str:
    """An opaque page cursor for a keyset position."""
    return base64.urlsafe_b64encode(str(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The keyset position in a cursor; InvalidInput if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = int(raw.decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        position = -1
    # Positions are keys of 64-bit columns: anything outside them was not made here.
    if not 0 <= position < 2**63:
        raise InvalidInput(f"{cursor[:100]!r} is not a valid page cursor", field="cursor")
    return position


_KEY_RANGE = range(-(2**63), 2**63)


def encode_key_cursor(parts: Sequence[int | str]) -> str:
    """An opaque page cursor for a composite keyset position (a sort value and a tiebreak)."""
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


def _part_fits(part: Any, kind: type) -> bool:
    if kind is int:
        return type(part) is int and part in _KEY_RANGE
    return isinstance(part, str) and len(part) <= 4000 and "\x00" not in part


def decode_key_cursor(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    """The parts of a cursor made by :func:`encode_key_cursor`, checked against ``shape``
    (``int`` parts within 64 bits, ``str`` parts short and without NUL); InvalidInput if it is
    not one of ours."""
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != len(shape)
        or not all(_part_fits(p, t) for p, t in zip(parts, shape, strict=True))
    ):
        raise InvalidInput("cursor is not one this API gave out", field="cursor")
    return parts


def handling_of(version: StoredVersion) -> dict[str, Any]:
    """The handling of a stored version, as the API shows it."""
    return {
        "owner_org": {
            "id": version.owner_org_id,
            "name": version.owner_org_name,
            "country": version.owner_country,
        },
        "tlp": TLP(version.tlp).label,
        "distribution": version.distribution,
        "sharing_group": version.sharing_group_id,
        "date_added": format_timestamp(version.date_added),
        "revoked": version.revoked,
        "withdrawn": version.withdrawn,
    }


@dataclass(frozen=True, slots=True)
class ObjectPage:
    items: list[StoredVersion]
    next_cursor: str | None


def list_objects(
    conn: Connection, principal: Principal, f: ObjectFilter, cursor: str | None, limit: int
) -> ObjectPage:
    """One page of the latest versions the principal may see, oldest ``date_added`` first."""
    after = decode_cursor(cursor) if cursor else None
    items = store.list_latest(conn, principal, f, after, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return ObjectPage(items, encode_cursor(items[-1].date_added) if more else None)


def get_versions(
    conn: Connection, principal: Principal, stix_id: str, version: str = "last"
) -> list[StoredVersion]:
    """Versions of one object: ``last`` (default), ``first``, ``all`` or a ``modified`` timestamp.

    NotFound when no version is visible: an org cannot tell an invisible object from a missing one.
    """
    if not ID_RE.match(stix_id):
        raise InvalidInput(f"{stix_id!r} is not a STIX identifier (type--uuid)", field="id")
    versions = store.versions_of(conn, principal, stix_id)
    # The newest version's handling governs the object: when its owner narrowed the
    # distribution, orgs outside it lose the older versions too.
    latest = [v for v in versions if v.is_latest]
    if not latest:
        raise NotFound(f"no object {stix_id}")
    if version == "all":
        return versions
    if version == "first":
        return versions[:1]
    if version in ("last", "latest"):
        return latest
    try:
        wanted = parse_timestamp(version)
    except ValueError as exc:
        raise InvalidInput(
            f"version must be first, last, all or a timestamp: {exc}", field="version"
        ) from None
    match = [v for v in versions if v.modified == wanted]
    if not match:
        raise NotFound(f"no version {version} of {stix_id}")
    return match


def revoke_object(conn: Connection, principal: Principal, stix_id: str) -> StoredVersion:
    """Revoke an object (owner org only).

    An object the org created gets a new version with ``revoked: true``; an object created by
    someone else (imported) is withdrawn on this node without touching its content.
    """
    latest = get_versions(conn, principal, stix_id, "last")[0]
    if not may_write(principal, latest.owner_org_id):
        raise Forbidden("only the owner organization may revoke this object")
    if latest.revoked or latest.withdrawn:
        return latest
    obj = orjson.loads(latest.content)
    org = accounts_store.get_org(conn, principal.org_id)
    if obj.get("created_by_ref") == org.identity_id and "modified" in obj:
        stamp = max(now_us(), latest.modified + 1000)
        obj = {**obj, "revoked": True, "modified": format_timestamp(stamp)}
        report = import_objects(
            conn,
            principal,
            [obj],
            HandlingRequest(
                TLP(latest.tlp), Distribution(latest.distribution), latest.sharing_group_id
            ),
            source=f"user:{principal.user_id}",
        )
        if report.rejected:
            raise InvalidInput(report.rejected[0].reason, id=stix_id)
    else:
        store.mark_withdrawn(conn, latest.date_added)
        record(conn, principal, "objects.withdraw", target=stix_id)
    return get_versions(conn, principal, stix_id, "last")[0]


@dataclass(frozen=True, slots=True)
class ObservablePage:
    kind: str
    value: str
    hits: list[ObservableHit]
    next_cursor: str | None


def search_observables(
    conn: Connection,
    principal: Principal,
    value: str,
    kind: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> ObservablePage:
    """Objects naming ``value`` (refanged and normalized); IPs and CIDRs match by containment."""
    try:
        wanted = parse_value(value, kind)
    except InvalidObservable as exc:
        raise InvalidInput(str(exc), field="value") from None
    after = decode_cursor(cursor) if cursor else None
    hits = store.find_observables(conn, principal, wanted, after=after, limit=limit + 1)
    more = len(hits) > limit
    hits = hits[:limit]
    return ObservablePage(
        wanted.kind, wanted.value, hits, encode_cursor(hits[-1].id) if more else None
    )


def stream_bundle(conn: Connection, principal: Principal, f: ObjectFilter) -> Iterator[bytes]:
    """A STIX 2.1 bundle of the latest versions the principal may see, as JSON chunks.

    Objects are written as stored, byte for byte; memory stays bounded whatever the count.
    The first query runs before the first chunk, so a filter the database refuses fails the
    request instead of cutting a bundle off midway.
    """
    versions = store.iter_latest(conn, principal, f)
    first = next(versions, None)
    yield b'{"type":"bundle","id":"bundle--' + str(uuid.uuid4()).encode() + b'","objects":['
    count = 0
    for version in itertools.chain(() if first is None else (first,), versions):
        yield (b"," if count else b"") + version.content.encode()
        count += 1
    yield b"]}"
    record(conn, principal, "export.stix", detail={"objects": count})
