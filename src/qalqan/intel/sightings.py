"""Sightings flow back to the owner of what they are about, and the owner is told.

Two moments make a sighting readable by the owner of the indicator (or other object) it is
about, and at each the owner gets a ``sighting`` notification (an event in the
``notifications`` table that webhooks or e-mail can later subscribe to):

- when it is indexed (:func:`notify_owners`, run by ``intel.indexing`` after every write,
  whoever wrote it: the API, the CLI, a detection run, a feed or a peer), if its handling
  already lets the owner read it (a broadcast distribution, a sharing group the owner is in);
- when it is shared back (:func:`share_back`): released to the owner as its one recipient
  (``policy.sighting_recipient``), if the owner could not read it before.

Nobody is told about a sighting of their own object, nor about one they may not read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Final

import orjson
from sqlalchemy import Connection

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal, Role
from qalqan.domain.stix import format_timestamp
from qalqan.policy import Handling, is_visible, sighting_recipient
from qalqan.store import accounts as accounts_store
from qalqan.store import detections as detections_store
from qalqan.store import notifications as notifications_store
from qalqan.store import sightings as store
from qalqan.store.clock import now_us

if TYPE_CHECKING:
    from qalqan.intel.indexing import IndexBatch

__all__ = ["NOTIFICATION_KIND", "notify_owners", "share_back"]

NOTIFICATION_KIND: Final = "sighting"


def _stamp(micros: int | None) -> str | None:
    return None if micros is None else format_timestamp(micros)


def _handling(event: store.SightingEvent) -> Handling:
    return Handling(
        owner_org_id=event.owner_org_id,
        tlp=TLP(event.tlp),
        distribution=Distribution(event.distribution),
        sharing_group_id=event.sharing_group_id,
        recipient_org_id=event.recipient_org_id,
    )


def _detail(event: store.SightingEvent) -> str:
    return orjson.dumps(
        {
            "sighting": event.stix_id,
            "modified": format_timestamp(event.modified),
            "sighting_of_ref": event.sighting_of_ref,
            "org": {
                "id": event.owner_org_id,
                "name": event.org_name,
                "country": event.org_country,
            },
            "kind": event.kind,
            "count": event.count,
            "first_seen": _stamp(event.first_seen),
            "last_seen": _stamp(event.last_seen),
            "tlp": TLP(event.tlp).label,
        }
    ).decode()


def _tell_owners(
    conn: Connection, events: Sequence[store.SightingEvent], *, just_released: bool
) -> int:
    """Notify the owner of each sighted object that may read the sighting; with
    ``just_released``, only owners who could not read it before it was released to them (the
    others were told when it was indexed). How many notifications were written."""
    readers: dict[str, Principal] = {}
    rows: list[tuple[str, str, str | None, str, int]] = []
    now = now_us()
    for event in events:
        owner = event.target_owner_org_id
        if owner is None or owner == event.owner_org_id:
            continue
        reader = readers.get(owner)
        if reader is None:
            groups = accounts_store.group_ids_of_org(conn, owner)
            reader = readers[owner] = Principal(None, owner, Role.READER, groups)
        handling = _handling(event)
        if not is_visible(reader, handling):
            continue
        if just_released and is_visible(reader, replace(handling, recipient_org_id=None)):
            continue
        rows.append((owner, NOTIFICATION_KIND, event.sighting_of_ref, _detail(event), now))
    notifications_store.insert_notifications(conn, rows)
    return len(rows)


def notify_owners(conn: Connection, batch: IndexBatch) -> None:
    """Tell the owners of sighted objects about the sightings in ``batch`` they may read."""
    version_ids = [v.date_added for v in batch.versions if v.type == "sighting"]
    if version_ids:
        _tell_owners(conn, store.events(conn, version_ids), just_released=False)


def share_back(
    conn: Connection, owner_org_id: str, sighted_owners: Mapping[str, str], share: bool
) -> dict[str, str]:
    """Release stored sightings to the owners of what they are about, and tell those owners.

    ``sighted_owners`` maps the id of each sighting owned by ``owner_org_id`` to the org owning
    the object it is about. With ``share`` false, or for a sighting of the org's own object,
    nothing is released. Returns ``sighting id → org`` of what was released; releasing again is
    harmless and tells nobody twice.
    """
    recipients = {
        sighting_id: recipient
        for sighting_id, sighted_owner in sighted_owners.items()
        if (recipient := sighting_recipient(share, owner_org_id, sighted_owner))
    }
    if not recipients:
        return {}
    pending = store.unreleased_versions(conn, owner_org_id, recipients)
    detections_store.release_sightings(conn, owner_org_id, recipients)
    if pending:
        _tell_owners(conn, store.events(conn, pending), just_released=True)
    return recipients
