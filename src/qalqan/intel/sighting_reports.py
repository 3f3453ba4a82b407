"""Sightings reported by analysts and scripts, and what an org may read of an object's
sightings: totals by kind, org and country, and the sightings themselves.

A report is either a short form (``sighting_of_ref``, ``count``, ``first_seen``,
``last_seen``, ``kind``, ``where_sighted_refs``, ``description``, ``share``, ``tlp``, ...) that
becomes a STIX 2.1 ``sighting`` created by the org's identity, or a STIX ``sighting`` as is.
Each report of a batch is accepted or rejected on its own. A sighting is stored through the
importer, so it is validated, versioned, audited and indexed like any object; the kind travels
as the custom property ``x_qalqan_sighting_kind``.

Handling: TLP at least the sighted object's (the org's default unless asked otherwise),
distribution ``organization`` unless asked otherwise; shared back (the default) it is also
released to the sighted object's owner, who is notified (:mod:`qalqan.intel.sightings`).

This module is apart from :mod:`qalqan.intel.sightings` because it stores through the
importer, which runs the indexers, one of which lives there.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy import Connection

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal
from qalqan.domain.stix import (
    ID_RE,
    check_object,
    format_timestamp,
    object_kind,
    parse_timestamp,
)
from qalqan.errors import Forbidden, InvalidInput, NotFound
from qalqan.intel.importer import HandlingRequest, Rejection, import_objects
from qalqan.intel.indexing import SIGHTING_KINDS
from qalqan.intel.reading import decode_cursor, encode_cursor, get_versions, handling_of
from qalqan.intel.sightings import share_back
from qalqan.policy import may_write
from qalqan.store import accounts as accounts_store
from qalqan.store import sightings as store
from qalqan.store.clock import now_us
from qalqan.store.sightings import SightingVersion

__all__ = [
    "KIND_PROPERTY",
    "MAX_COUNT",
    "REPORT_FIELDS",
    "SightingDefaults",
    "SightingReport",
    "SightingTotals",
    "StoredSighting",
    "Tally",
    "describe",
    "sighting_totals",
    "submit_sightings",
]

MAX_COUNT: Final = 999_999_999  # STIX 2.1 caps sighting.count
KIND_PROPERTY: Final = "x_qalqan_sighting_kind"
REPORT_FIELDS: Final = (
    "sighting_of_ref",
    "count",
    "first_seen",
    "last_seen",
    "kind",
    "where_sighted_refs",
    "description",
    "share",
    "tlp",
    "distribution",
    "sharing_group",
)
_FUTURE_SLACK_US: Final = 86_400_000_000  # clocks drift; a day ahead is a mistake
_MAX_DESCRIPTION: Final = 10_000
_WHERE_TYPES: Final = ("identity", "location")


@dataclass(frozen=True, slots=True)
class SightingDefaults:
    """Handling for reports that do not say: None takes the rule's default (see module)."""

    tlp: TLP | None = None
    distribution: Distribution | None = None
    sharing_group: str | None = None
    share: bool = True


@dataclass(frozen=True, slots=True)
class StoredSighting:
    """A report the node stored (``created``) or already had (``unchanged``)."""

    index: int
    id: str
    status: str
    stored: SightingVersion | None = None


@dataclass(slots=True)
class SightingReport:
    """What happened to each report of a submission."""

    accepted: list[StoredSighting] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def created(self) -> int:
        return sum(1 for a in self.accepted if a.status == "created")

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": len(self.accepted),
            "created": self.created,
            "unchanged": len(self.accepted) - self.created,
            "rejected": len(self.rejected),
            "shared": sum(
                1 for a in self.accepted if a.stored and a.stored.recipient_org_id is not None
            ),
            "sightings": [
                {
                    "index": a.index,
                    "status": a.status,
                    **(describe(a.stored) if a.stored else {"id": a.id}),
                }
                for a in self.accepted
            ],
            "errors": [r.to_dict() for r in self.rejected],
        }


def describe(sighting: SightingVersion) -> dict[str, Any]:
    """A stored sighting as the API and CLI show it: id, handling (with the org it is shared
    with) and the STIX object."""
    version = sighting.version
    return {
        "id": version.stix_id,
        "handling": {**handling_of(version), "shared_with": sighting.recipient_org_id},
        "object": orjson.loads(version.content),
    }


class _Refused(Exception):
    def __init__(self, fld: str | None, reason: str, code: str = "invalid_input") -> None:
        super().__init__(reason)
        self.field = fld
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class _Prepared:
    index: int
    obj: dict[str, Any]
    target: str
    tlp: TLP | None
    distribution: Distribution | None
    sharing_group: str | None
    share: bool


def _show(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _time(fld: str, value: Any) -> int:
    """Microseconds of an RFC 3339 timestamp (``Z`` or an offset)."""
    if not isinstance(value, str):
        raise _Refused(fld, f"must be an RFC 3339 timestamp, got {_show(value)}")
    try:
        return parse_timestamp(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in value:
        raise _Refused(fld, f"must be an RFC 3339 timestamp with a time zone, got {_show(value)}")
    return int((moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)


def _parsed(fld: str, parse: Any, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Refused(fld, f"must be a string, got {_show(value)}")
    try:
        return parse(value)
    except ValueError as exc:
        raise _Refused(fld, str(exc)) from None


def _from_report(
    raw: dict[str, Any], identity: str, defaults: SightingDefaults, now: int
) -> tuple[dict[str, Any], SightingDefaults]:
    """The STIX sighting a short report stands for, and its handling."""
    unknown = sorted(str(k) for k in raw if k not in REPORT_FIELDS)
    if unknown:
        raise _Refused(
            unknown[0], f"is not a field of a sighting report; use {', '.join(REPORT_FIELDS)}"
        )
    target = raw.get("sighting_of_ref")
    if target is None:
        raise _Refused("sighting_of_ref", "is required")
    count = raw.get("count", 1)
    if type(count) is not int or not 0 <= count <= MAX_COUNT:
        raise _Refused("count", f"must be an integer from 0 to {MAX_COUNT}, got {_show(count)}")
    kind = raw.get("kind", "sighting")
    if kind not in SIGHTING_KINDS:
        raise _Refused("kind", f"must be one of {', '.join(SIGHTING_KINDS)}, got {_show(kind)}")
    first = _time("first_seen", raw["first_seen"]) if raw.get("first_seen") is not None else None
    last = _time("last_seen", raw["last_seen"]) if raw.get("last_seen") is not None else None
    if last is None:
        last = max(now, first) if first is not None else now
    if first is None:
        first = last
    where = raw.get("where_sighted_refs", [identity])
    if not isinstance(where, list) or not where:
        raise _Refused("where_sighted_refs", "must be a non-empty list of identity or location ids")
    for ref in where:
        if (
            not isinstance(ref, str)
            or not ID_RE.match(ref)
            or ref.split("--")[0] not in (_WHERE_TYPES)
        ):
            raise _Refused(
                "where_sighted_refs", f"must hold identity or location ids, got {_show(ref)}"
            )
    description = raw.get("description")
    if description is not None and (
        not isinstance(description, str) or len(description) > _MAX_DESCRIPTION
    ):
        raise _Refused("description", f"must be text of at most {_MAX_DESCRIPTION} characters")
    share = raw.get("share", defaults.share)
    if not isinstance(share, bool):
        raise _Refused("share", f"must be true or false, got {_show(share)}")
    group = raw.get("sharing_group", defaults.sharing_group)
    if group is not None and not isinstance(group, str):
        raise _Refused("sharing_group", f"must be a sharing group id or name, got {_show(group)}")
    handling = SightingDefaults(
        tlp=_parsed("tlp", TLP.parse, raw.get("tlp")) or defaults.tlp,
        distribution=_parsed("distribution", Distribution.parse, raw.get("distribution"))
        or defaults.distribution,
        sharing_group=group,
        share=share,
    )
    stamp = format_timestamp(now)
    obj: dict[str, Any] = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": f"sighting--{uuid.uuid4()}",
        "created": stamp,
        "modified": stamp,
        "created_by_ref": identity,
        "sighting_of_ref": target,
        "count": count,
        "first_seen": format_timestamp(first),
        "last_seen": format_timestamp(last),
        "where_sighted_refs": where,
        KIND_PROPERTY: kind,
    }
    if description is not None:
        obj["description"] = description
    return obj, handling


def _prepare(
    index: int, raw: Any, identity: str, defaults: SightingDefaults, now: int
) -> _Prepared:
    """Check one report in memory and turn it into a STIX sighting; ``_Refused`` if bad."""
    if not isinstance(raw, dict):
        raise _Refused(None, f"must be a JSON object, got {type(raw).__name__}")
    if "type" in raw:
        if raw["type"] != "sighting":
            raise _Refused("type", f"must be sighting, got {_show(raw['type'])}")
        obj = raw if "created_by_ref" in raw else {**raw, "created_by_ref": identity}
        handling = defaults
    else:
        obj, handling = _from_report(raw, identity, defaults, now)
    problems = check_object(obj)
    if problems:
        first = problems[0]
        raise _Refused(first.field, first.reason)
    kind = obj.get(KIND_PROPERTY, "sighting")
    if kind not in SIGHTING_KINDS:
        raise _Refused(
            KIND_PROPERTY, f"must be one of {', '.join(SIGHTING_KINDS)}, got {_show(kind)}"
        )
    for name in ("first_seen", "last_seen"):
        if name in obj and parse_timestamp(obj[name]) > now + _FUTURE_SLACK_US:
            raise _Refused(name, "must not be more than a day in the future")
    target: str = obj["sighting_of_ref"]
    target_kind = object_kind(target.split("--")[0])
    if target_kind not in ("sdo", "custom"):
        raise _Refused(
            "sighting_of_ref",
            f"must refer to a STIX domain object (indicator, malware, ...), not a {target_kind}",
        )
    return _Prepared(
        index,
        obj,
        target,
        handling.tlp,
        handling.distribution,
        handling.sharing_group,
        handling.share,
    )


def _store_group(
    conn: Connection,
    principal: Principal,
    items: list[_Prepared],
    handling: HandlingRequest,
    source: str | None,
    report: SightingReport,
) -> list[tuple[_Prepared, str]]:
    """Import one handling's sightings; the accepted ones with their status."""
    try:
        imported = import_objects(conn, principal, [p.obj for p in items], handling, source=source)
    except (InvalidInput, Forbidden, NotFound) as exc:
        # The handling itself is wrong (an unknown sharing group): every report asking for it.
        fld = getattr(exc, "field", None) or "sharing_group"
        for p in items:
            report.rejected.append(Rejection(p.index, p.obj.get("id"), fld, exc.detail, exc.code))
        return []
    for r in imported.rejected:
        p = items[r.index]
        report.rejected.append(Rejection(p.index, r.id, r.field, r.reason, r.code))
    return [(items[a.index], a.status) for a in imported.accepted]


def submit_sightings(
    conn: Connection,
    principal: Principal,
    reports: Sequence[Any],
    defaults: SightingDefaults | None = None,
    *,
    source: str | None = None,
) -> SightingReport:
    """Store sighting reports (short form or STIX) for the principal's org, inside the caller's
    transaction; each is accepted or rejected on its own.

    A report of an object the principal may not see is rejected with code ``not_found``, in
    the same words as one of an object that does not exist. Raises ``Forbidden`` if the
    principal may not write.
    """
    if not may_write(principal, None):
        raise Forbidden(f"role {principal.role} may not report sightings")
    defaults = defaults or SightingDefaults()
    org = accounts_store.get_org(conn, principal.org_id)
    now = now_us()
    report = SightingReport()
    prepared: list[_Prepared] = []
    for index, raw in enumerate(reports):
        try:
            prepared.append(_prepare(index, raw, org.identity_id, defaults, now))
        except _Refused as refused:
            stix_id = raw.get("id") if isinstance(raw, dict) else None
            report.rejected.append(
                Rejection(
                    index,
                    stix_id if isinstance(stix_id, str) else None,
                    refused.field,
                    refused.reason,
                    refused.code,
                )
            )
    targets = store.visible_objects(conn, principal, [p.target for p in prepared])
    groups: dict[tuple[TLP, Distribution, str | None], list[_Prepared]] = {}
    floor = TLP(org.default_tlp)
    for p in prepared:
        target = targets.get(p.target)
        if target is None:
            report.rejected.append(
                Rejection(
                    p.index, p.obj["id"], "sighting_of_ref", f"no object {p.target}", "not_found"
                )
            )
            continue
        level = max(p.tlp if p.tlp is not None else floor, TLP(target.tlp))
        distribution = p.distribution or (
            Distribution.SHARING_GROUP if p.sharing_group else Distribution.ORGANIZATION
        )
        groups.setdefault((level, distribution, p.sharing_group), []).append(p)
    stored: list[tuple[_Prepared, str]] = []
    for (level, distribution, group), items in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1].value, kv[0][2] or "")
    ):
        handling = HandlingRequest(level, distribution, group)
        stored.extend(_store_group(conn, principal, items, handling, source, report))
    for share in (True, False):
        share_back(
            conn,
            principal.org_id,
            {p.obj["id"]: targets[p.target].owner_org_id for p, _ in stored if p.share is share},
            share,
        )
    versions = store.latest_sightings(conn, principal, [p.obj["id"] for p, _ in stored])
    report.accepted = sorted(
        (
            StoredSighting(p.index, p.obj["id"], status, versions.get(p.obj["id"]))
            for p, status in stored
        ),
        key=lambda a: a.index,
    )
    report.rejected.sort(key=lambda r: r.index)
    return report


@dataclass(slots=True)
class Tally:
    """Sightings of one kind: how many reports, the sum of their counts, first and last seen."""

    reports: int = 0
    count: int = 0
    first_seen: int | None = None
    last_seen: int | None = None

    def add(self, row: store.OrgKindTotal) -> None:
        self.reports += row.reports
        self.count += row.count
        if row.first_seen is not None and (
            self.first_seen is None or row.first_seen < self.first_seen
        ):
            self.first_seen = row.first_seen
        if row.last_seen is not None and (self.last_seen is None or row.last_seen > self.last_seen):
            self.last_seen = row.last_seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "reports": self.reports,
            "count": self.count,
            "first_seen": format_timestamp(self.first_seen)
            if self.first_seen is not None
            else None,
            "last_seen": format_timestamp(self.last_seen) if self.last_seen is not None else None,
        }


def _tallies() -> dict[str, Tally]:
    return {kind: Tally() for kind in SIGHTING_KINDS}


def _kinds(tallies: dict[str, Tally]) -> dict[str, Any]:
    return {kind: t.to_dict() for kind, t in tallies.items()}


@dataclass(slots=True)
class SightingTotals:
    """The sightings of one object an org may read: totals per kind, per org and per country,
    and one page of the sightings, newest first."""

    stix_id: str
    totals: dict[str, Tally]
    by_org: dict[tuple[str, str, str], dict[str, Tally]]  # (id, name, country) → per kind
    by_country: dict[str, dict[str, Tally]]
    items: list[SightingVersion]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sighting_of_ref": self.stix_id,
            "totals": _kinds(self.totals),
            "by_org": [
                {"org": {"id": oid, "name": name, "country": country}, "totals": _kinds(kinds)}
                for (oid, name, country), kinds in self.by_org.items()
            ],
            "by_country": [
                {"country": country, "totals": _kinds(kinds)}
                for country, kinds in sorted(self.by_country.items())
            ],
            "items": [describe(s) for s in self.items],
            "next": self.next_cursor,
        }


def sighting_totals(
    conn: Connection,
    principal: Principal,
    stix_id: str,
    cursor: str | None = None,
    limit: int = 100,
) -> SightingTotals:
    """What the principal may read of the sightings of ``stix_id``: only sightings visible to
    it count (their latest version, neither revoked nor withdrawn). NotFound when the object
    itself is not visible, as if it did not exist."""
    get_versions(conn, principal, stix_id)
    before = _position(cursor)
    totals = _tallies()
    by_org: dict[tuple[str, str, str], dict[str, Tally]] = {}
    by_country: dict[str, dict[str, Tally]] = {}
    for row in store.totals_by_org(conn, principal, stix_id):
        if row.kind not in totals:
            continue
        totals[row.kind].add(row)
        by_org.setdefault((row.org_id, row.org_name, row.country), _tallies())[row.kind].add(row)
        by_country.setdefault(row.country, _tallies())[row.kind].add(row)
    page = store.page_of(conn, principal, stix_id, before, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return SightingTotals(
        stix_id,
        totals,
        by_org,
        by_country,
        page,
        encode_cursor(page[-1].version.date_added) if more else None,
    )


def _position(cursor: str | None) -> int | None:
    """The keyset position of a page cursor; InvalidInput if it is not one this node gives."""
    if not cursor:
        return None
    position = decode_cursor(cursor)
    if not 0 < position < 2**63:
        raise InvalidInput(f"{cursor!r} is not a valid page cursor", field="cursor")
    return position
