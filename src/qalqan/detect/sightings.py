"""Sightings from sweeps: "org X saw indicator Y, N times, between t1 and t2".

A sweep tallies its indicator hits per indicator; at the end each indicator gets one STIX
``sighting`` owned by the sweeping org, stored through the importer (so it is validated,
versioned and audited like any object). Its TLP is the indicator's or the org's default,
whichever is stricter; its distribution is the org alone. Shared back (``--share``), it is
also released to the indicator's owner (``intel.sightings.share_back``), and to no one else;
the owner is notified.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import polars as pl
from sqlalchemy import Connection

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal
from qalqan.intel.importer import HandlingRequest, import_objects
from qalqan.intel.sightings import share_back
from qalqan.policy import may_write
from qalqan.store import accounts as accounts_store

__all__ = ["SightingTally", "record_sightings"]

# Sightings of one run and indicator get the same id, so a retried write is "unchanged".
_NAMESPACE: Final = uuid.UUID("5b0d8c62-3a55-4b7e-9a43-0d1e6f1b7c21")
_MAX_COUNT: Final = 999_999_999  # STIX 2.1 caps sighting.count


@dataclass(slots=True)
class _Seen:
    count: int
    first: datetime | None
    last: datetime | None
    tlp: int
    owner_org_id: str


class SightingTally:
    """Hits per indicator: how many, first and last event time, the indicator's TLP and
    owner."""

    def __init__(self) -> None:
        self.seen: dict[str, _Seen] = {}

    def __len__(self) -> int:
        return len(self.seen)

    def add(
        self, stix_ids: pl.Series, tlps: pl.Series, owners: pl.Series, times: pl.Series
    ) -> None:
        """Count one batch's hits (one entry per event and indicator), grouped in one pass."""
        grouped = (
            pl.DataFrame({"id": stix_ids, "tlp": tlps, "owner": owners, "t": times})
            .group_by("id")
            .agg(
                pl.len().alias("n"),
                pl.col("t").min().alias("first"),
                pl.col("t").max().alias("last"),
                pl.col("tlp").first(),
                pl.col("owner").first(),
            )
        )
        for stix_id, n, first, last, tlp, owner in grouped.iter_rows():
            known = self.seen.get(stix_id)
            if known is None:
                self.seen[stix_id] = _Seen(int(n), first, last, int(tlp), owner)
                continue
            known.count += int(n)
            if first is not None and (known.first is None or first < known.first):
                known.first = first
            if last is not None and (known.last is None or last > known.last):
                known.last = last


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sighting(run_id: str, org_id: str, stix_id: str, seen: _Seen, now: datetime) -> dict[str, Any]:
    identity = f"identity--{org_id}"
    first = seen.first or now
    last = seen.last or now
    return {
        "type": "sighting",
        "spec_version": "2.1",
        "id": f"sighting--{uuid.uuid5(_NAMESPACE, f'{run_id}/{stix_id}')}",
        "created": _stamp(now),
        "modified": _stamp(now),
        "created_by_ref": identity,
        "sighting_of_ref": stix_id,
        "where_sighted_refs": [identity],
        "count": min(seen.count, _MAX_COUNT),
        "first_seen": _stamp(first),
        "last_seen": _stamp(max(first, last)),
        "description": f"Seen in logs swept by detection run {run_id}.",
    }


def record_sightings(
    conn: Connection, principal: Principal, tally: SightingTally, run_id: str, share: bool
) -> tuple[int, int, str | None]:
    """Store one sighting per indicator of ``tally``; ``(stored, shared, note)``, the note
    saying why nothing was stored when the principal may not write."""
    if not tally.seen:
        return 0, 0, None
    if not may_write(principal, None):
        return 0, 0, f"role {principal.role} may not record sightings"
    org = accounts_store.get_org(conn, principal.org_id)
    floor = TLP(org.default_tlp)
    now = datetime.now(UTC)
    by_level: dict[TLP, list[dict[str, Any]]] = {}
    owners: dict[str, str] = {}
    for stix_id, seen in tally.seen.items():
        obj = _sighting(run_id, principal.org_id, stix_id, seen, now)
        by_level.setdefault(max(TLP(seen.tlp), floor), []).append(obj)
        owners[obj["id"]] = seen.owner_org_id
    stored: list[str] = []
    for level, objects in sorted(by_level.items()):
        report = import_objects(
            conn,
            principal,
            objects,
            HandlingRequest(tlp=level, distribution=Distribution.ORGANIZATION),
            source=f"sweep:{run_id}",
        )
        stored.extend(a.id for a in report.accepted)
    shared = share_back(conn, principal.org_id, {s: owners[s] for s in stored}, share)
    return len(stored), len(shared), None
