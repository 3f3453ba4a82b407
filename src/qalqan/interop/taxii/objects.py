"""The TAXII 2.1 object services: pages of objects, manifests and versions, adding objects
with a status resource, and deleting objects — on one collection, as one caller sees it.

Functions return data; :mod:`qalqan.interop.taxii.server` renders it as TAXII envelopes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import Connection

from qalqan.audit import record
from qalqan.domain.principal import Principal
from qalqan.domain.stix import ID_RE, format_timestamp, parse_timestamp
from qalqan.errors import Forbidden, InvalidInput, NotFound
from qalqan.intel.importer import import_objects
from qalqan.intel.reading import decode_cursor, encode_cursor
from qalqan.interop.taxii.collections import Collection
from qalqan.store import taxii as store
from qalqan.store.clock import now_us
from qalqan.store.taxii import ManifestRow, ObjectQuery, StatusRecord

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "Page",
    "add_objects",
    "delete_object",
    "get_manifest",
    "get_object",
    "get_objects",
    "get_status",
    "get_versions",
    "parse_filters",
    "status_resource",
    "version_of",
]

DEFAULT_PAGE = 1000
MAX_PAGE = 10_000
_VERSION_KEYWORDS = frozenset({"first", "last", "all"})
_SPEC_VERSIONS = frozenset({"2.0", "2.1"})
_MAX_LIST = 1000  # values of one match[...] filter


@dataclass(frozen=True, slots=True)
class Page:
    """One page: the rows, whether more follow, and the ``next`` token if so."""

    rows: list[Any]
    more: bool
    next: str | None
    first_added: int | None
    last_added: int | None


def _values(params: Mapping[str, list[str]], name: str) -> list[str] | None:
    raw = params.get(name)
    if raw is None:
        return None
    values = [v.strip() for part in raw for v in part.split(",")]
    if not values or any(not v for v in values):
        raise InvalidInput(f"{name} must be a comma-separated list of values", field=name)
    if len(values) > _MAX_LIST:
        raise InvalidInput(f"{name} lists more than {_MAX_LIST} values", field=name)
    return values


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    if len(raw) != 1:
        raise InvalidInput(f"{name} may be given once", field=name)
    return raw[0]


def _version(value: str) -> str | int:
    if value in _VERSION_KEYWORDS:
        return value
    try:
        return parse_timestamp(value)
    except ValueError:
        raise InvalidInput(
            f"match[version] value {value!r} is not first, last, all or a timestamp",
            field="match[version]",
        ) from None


def parse_filters(
    params: Mapping[str, list[str]],
    base: ObjectQuery,
    *,
    matches: frozenset[str] = frozenset({"id", "type", "version", "spec_version"}),
    default_version: str = "last",
) -> tuple[ObjectQuery, int]:
    """The query and page size a request asks for; InvalidInput naming the bad parameter."""
    limit_text = _single(params, "limit")
    limit = DEFAULT_PAGE
    if limit_text is not None:
        if not limit_text.isdigit() or int(limit_text) < 1:
            raise InvalidInput(
                f"limit must be a positive integer, got {limit_text[:40]!r}", field="limit"
            )
        limit = min(int(limit_text), MAX_PAGE)
    q = replace(base, versions=(default_version,))
    added_after = _single(params, "added_after")
    if added_after is not None:
        try:
            q = replace(q, added_after=parse_timestamp(added_after))
        except ValueError as exc:
            raise InvalidInput(f"added_after: {exc}", field="added_after") from None
    token = _single(params, "next")
    if token is not None:
        try:
            q = replace(q, after=decode_cursor(token))
        except InvalidInput:
            raise InvalidInput(
                f"next {token[:40]!r} is not a token of this server", field="next"
            ) from None
    if "id" in matches and (ids := _values(params, "match[id]")) is not None:
        q = replace(q, ids=ids)
    if "type" in matches and (types := _values(params, "match[type]")) is not None:
        q = replace(q, match_types=types)
    if "version" in matches and (versions := _values(params, "match[version]")) is not None:
        q = replace(q, versions=tuple(_version(v) for v in versions))
    if "spec_version" in matches:
        specs = _values(params, "match[spec_version]")
        if specs is not None:
            unknown = [s for s in specs if s not in _SPEC_VERSIONS]
            if unknown:
                raise InvalidInput(
                    f"match[spec_version] {unknown[0]!r} is not 2.0 or 2.1",
                    field="match[spec_version]",
                )
            q = replace(q, no_spec_version="2.1" not in specs)
    return q, limit


def _page(rows: list[Any], limit: int, added: list[int]) -> Page:
    more = len(rows) > limit
    rows, added = rows[:limit], added[:limit]
    return Page(
        rows,
        more,
        encode_cursor(added[-1]) if more else None,
        added[0] if added else None,
        added[-1] if added else None,
    )


def _readable(collection: Collection) -> None:
    if not collection.can_read:
        raise Forbidden(f"you may not read collection {collection.id}")


def get_objects(
    conn: Connection, principal: Principal, collection: Collection, q: ObjectQuery, limit: int
) -> Page:
    """A page of ``(date_added, content)`` rows."""
    _readable(collection)
    rows = store.object_page(conn, principal, q, limit + 1)
    return _page(rows, limit, [r[0] for r in rows])


def _of_one_object(
    conn: Connection,
    principal: Principal,
    collection: Collection,
    stix_id: str,
    pages: Callable[[ObjectQuery], Page],
    q: ObjectQuery,
) -> Page:
    """``pages`` narrowed to one object; NotFound when no version of it is visible at all."""
    _check_id(stix_id)
    page = pages(replace(q, ids=[stix_id]))
    if not page.rows and not _exists(conn, principal, collection, stix_id):
        raise NotFound(f"no object {stix_id} in collection {collection.id}")
    return page


def get_object(
    conn: Connection,
    principal: Principal,
    collection: Collection,
    stix_id: str,
    q: ObjectQuery,
    limit: int,
) -> Page:
    """A page of the versions of one object; NotFound when none is visible at all."""

    def pages(narrowed: ObjectQuery) -> Page:
        return get_objects(conn, principal, collection, narrowed, limit)

    return _of_one_object(conn, principal, collection, stix_id, pages, q)


def _check_id(stix_id: str) -> None:
    if not ID_RE.match(stix_id):
        raise NotFound(f"{stix_id[:100]!r} is not a STIX identifier")


def _exists(conn: Connection, principal: Principal, collection: Collection, stix_id: str) -> bool:
    probe = replace(collection.query(), ids=[stix_id], versions=("all",))
    return bool(store.manifest_page(conn, principal, probe, 1))


def get_manifest(
    conn: Connection, principal: Principal, collection: Collection, q: ObjectQuery, limit: int
) -> Page:
    """A page of :class:`ManifestRow`."""
    _readable(collection)
    rows = store.manifest_page(conn, principal, q, limit + 1)
    return _page(rows, limit, [r.date_added for r in rows])


def version_of(row: ManifestRow) -> str:
    """The version string of a stored version: its ``modified``, else ``created``, else the
    time it was added (objects without either, such as SCOs)."""
    return format_timestamp(row.modified or row.created or row.date_added)


def get_versions(
    conn: Connection,
    principal: Principal,
    collection: Collection,
    stix_id: str,
    q: ObjectQuery,
    limit: int,
) -> Page:
    """A page of the versions (manifest rows) of one object, oldest added first."""

    def pages(narrowed: ObjectQuery) -> Page:
        return get_manifest(conn, principal, collection, narrowed, limit)

    return _of_one_object(conn, principal, collection, stix_id, pages, q)


def delete_object(
    conn: Connection, principal: Principal, collection: Collection, stix_id: str, q: ObjectQuery
) -> int:
    """Withdraw the selected versions of an object on this node (its owner org only)."""
    if not collection.can_write:
        raise Forbidden(f"you may not write to collection {collection.id}")
    _check_id(stix_id)
    q = replace(q, ids=[stix_id])
    owners = store.owners_of(conn, principal, q)
    if not owners:
        raise NotFound(f"no object {stix_id} in collection {collection.id}")
    if owners != {principal.org_id}:
        raise Forbidden("only the owner organization may delete this object")
    count = store.withdraw_versions(conn, principal, q, principal.org_id)
    record(
        conn,
        principal,
        "taxii.object.delete",
        target=stix_id,
        detail={"collection": collection.id, "versions": count},
    )
    return count


def _identity(obj: Any) -> tuple[str, str]:
    if not isinstance(obj, dict):
        return "", ""
    stix_id = obj.get("id")
    version = obj.get("modified") or obj.get("created") or ""
    return (
        stix_id if isinstance(stix_id, str) else "",
        version if isinstance(version, str) else "",
    )


def add_objects(
    conn: Connection, principal: Principal, collection: Collection, envelope: Any
) -> StatusRecord:
    """Import the objects of a TAXII envelope through the importer; the status resource.

    Each object is accepted or refused on its own: the status lists the refused ones with
    their reason, and the good ones are stored.
    """
    if not collection.can_write:
        raise Forbidden(f"you may not write to collection {collection.id}")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("objects"), list):
        raise InvalidInput(
            "the body must be a TAXII envelope with an objects list", field="objects"
        )
    objects: list[Any] = envelope["objects"]
    report = import_objects(conn, principal, objects, collection.handling())
    successes = []
    for a in report.accepted:
        stix_id, version = _identity(objects[a.index])
        successes.append({"id": stix_id, "version": version})
    failures = []
    for r in report.rejected:
        stix_id, version = _identity(objects[r.index])
        reason = f"{r.field}: {r.reason}" if r.field else r.reason
        failures.append({"id": stix_id or f"(object {r.index})", "version": version,
                         "message": reason[:1000]})  # fmt: skip
    status = StatusRecord(
        id=str(uuid.uuid4()),
        org_id=principal.org_id,
        collection_id=collection.id,
        status="complete",
        request_timestamp=now_us(),
        total_count=len(objects),
        success_count=len(successes),
        failure_count=len(failures),
        pending_count=0,
        successes=orjson.dumps(successes).decode(),
        failures=orjson.dumps(failures).decode(),
        pendings="[]",
    )
    store.insert_status(conn, status)
    return status


def get_status(conn: Connection, principal: Principal, status_id: str) -> StatusRecord:
    """A status resource of the caller's org; NotFound for others'."""
    try:
        uuid.UUID(status_id)
    except ValueError:
        raise NotFound(f"no status {status_id[:100]!r}") from None
    found = store.get_status(conn, status_id, principal.org_id)
    if found is None:
        raise NotFound(f"no status {status_id}")
    return found


def status_resource(s: StatusRecord) -> dict[str, Any]:
    """The TAXII status resource of a stored status."""
    doc: dict[str, Any] = {
        "id": s.id,
        "status": s.status,
        "request_timestamp": format_timestamp(s.request_timestamp),
        "total_count": s.total_count,
        "success_count": s.success_count,
        "failure_count": s.failure_count,
        "pending_count": s.pending_count,
    }
    for name, text in (("successes", s.successes), ("failures", s.failures)):
        details = orjson.loads(text)
        if details:
            doc[name] = details
    return doc
