"""Evidence items of a case and their chain of custody.

Every step is recorded twice: in the item's chain of custody (what a court asks for: who
collected it, who uploaded, transferred and downloaded it, when and how) and in the node's
audit log (which is a hash chain). A case's evidence exists only for the orgs taking part in
the case, and an item attached to the answer of a request for assistance also for the org that
made the request: anyone else gets NotFound, whether the item exists or not.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection

from qalqan.audit import record
from qalqan.domain.principal import Principal
from qalqan.errors import Forbidden, InvalidInput, NotFound
from qalqan.evidence.storage import EvidenceStorage, Received, safe_file_name
from qalqan.policy.evidence import (
    may_add_evidence,
    may_read_attached_evidence,
    may_read_evidence,
)
from qalqan.store import cases as cases_store
from qalqan.store import evidence as store
from qalqan.store import rfas as rfas_store
from qalqan.store.clock import now_us
from qalqan.store.evidence import CustodyEntry, EvidenceRecord

__all__ = [
    "CUSTODY_ACTIONS",
    "Download",
    "EvidenceDetails",
    "EvidenceMeta",
    "add_evidence",
    "case_evidence",
    "evidence_details",
    "items_of_case",
    "record_attachment",
    "record_custody",
    "start_download",
]

# What a person may add to the chain by hand; the others (collected, uploaded, downloaded,
# verification-failed, attached) are written by the service.
CUSTODY_ACTIONS: Final = ("transferred", "received", "sealed", "examined", "note")
_MAX_TEXT: Final = 10_000
_MAX_SHORT: Final = 300


@dataclass(frozen=True, slots=True)
class EvidenceMeta:
    """What the uploader says about an item."""

    name: str | None = None
    media_type: str | None = None
    description: str = ""
    collected_by: str = ""
    collected_at: int | None = None
    collection_method: str = ""


@dataclass(frozen=True, slots=True)
class EvidenceDetails:
    item: EvidenceRecord
    custody: list[CustodyEntry]


@dataclass(frozen=True, slots=True)
class Download:
    """An item about to be served: ``intact`` says whether the file still has its SHA-256."""

    item: EvidenceRecord
    intact: bool


def _text(field: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters", field=field)
    return value.replace("\x00", "")


def _participant(conn: Connection, principal: Principal, case_id: str) -> str | None:
    """The principal's org's role in the case, or None when the principal may not see the case
    (not taking part, or a TLP:RED case that does not name the user)."""
    return cases_store.visible_role(conn, principal, case_id)


def add_evidence(
    conn: Connection, principal: Principal, case_id: str, received: Received, meta: EvidenceMeta
) -> EvidenceRecord:
    """File an uploaded file as evidence of the case. NotFound if the principal's org does not
    take part in the case; Forbidden for observers and read-only roles."""
    role = _participant(conn, principal, case_id)
    if role is None:
        raise NotFound(f"no case {case_id}")
    if not may_add_evidence(principal, role):
        raise Forbidden("only writers of a lead or contributor org may add evidence")
    now = now_us()
    item = EvidenceRecord(
        id=str(uuid.uuid4()),
        case_id=case_id,
        sha256=received.sha256,
        name=safe_file_name(meta.name),
        media_type=_text("media_type", meta.media_type or "application/octet-stream", 100),
        size=received.size,
        description=_text("description", meta.description, _MAX_TEXT),
        collected_by=_text("collected_by", meta.collected_by, _MAX_SHORT),
        collected_at=meta.collected_at,
        collection_method=_text("collection_method", meta.collection_method, _MAX_TEXT),
        uploaded_by=principal.user_id,
        uploaded_org_id=principal.org_id,
        created_at=now,
    )
    store.add_file(conn, received.sha256, received.size, now)
    store.add_item(conn, item)
    actor = {"actor_user_id": principal.user_id, "actor_org_id": principal.org_id}
    if meta.collected_by or meta.collected_at is not None or meta.collection_method:
        store.add_custody(
            conn,
            item.id,
            at=meta.collected_at if meta.collected_at is not None else now,
            action="collected",
            detail={"by": item.collected_by, "how": item.collection_method},
            **actor,
        )
    store.add_custody(
        conn, item.id, at=now, action="uploaded",
        detail={"sha256": item.sha256, "size": item.size, "name": item.name}, **actor,
    )  # fmt: skip
    store.add_timeline_entry(
        conn, case_id, at=now, action="evidence.added", text=f"evidence {item.name} added",
        detail={"evidence": item.id, "sha256": item.sha256}, **actor,
    )  # fmt: skip
    record(conn, principal, "evidence.add", target=item.id,
           detail={"case": case_id, "sha256": item.sha256, "size": item.size})  # fmt: skip
    return item


def _readable(conn: Connection, principal: Principal, evidence_id: str) -> EvidenceRecord:
    item = store.get_item(conn, evidence_id)
    if item is not None:
        role = _participant(conn, principal, item.case_id)
        if may_read_evidence(principal, role):
            return item
        if role is None and may_read_attached_evidence(
            principal, rfas_store.attached_for_requester(conn, item.id, principal.org_id)
        ):
            return item
    raise NotFound(f"no evidence {evidence_id}")


def evidence_details(conn: Connection, principal: Principal, evidence_id: str) -> EvidenceDetails:
    """An item and its chain of custody; NotFound outside the case."""
    item = _readable(conn, principal, evidence_id)
    return EvidenceDetails(item, store.custody_of(conn, item.id))


def case_evidence(
    conn: Connection,
    principal: Principal,
    case_id: str,
    after: tuple[int, str] | None,
    limit: int,
) -> list[EvidenceRecord]:
    """A keyset page of the case's evidence; NotFound outside the case."""
    if not may_read_evidence(principal, _participant(conn, principal, case_id)):
        raise NotFound(f"no case {case_id}")
    return store.list_items(conn, case_id, after, limit)


def items_of_case(
    conn: Connection, principal: Principal, case_id: str, evidence_ids: Sequence[str]
) -> dict[str, EvidenceRecord]:
    """Those of ``evidence_ids`` that are evidence of the case and readable by the principal as
    a member of an org taking part in it, by id; the others are left out, whether they exist
    or not."""
    if not may_read_evidence(principal, _participant(conn, principal, case_id)):
        return {}
    found: dict[str, EvidenceRecord] = {}
    for evidence_id in dict.fromkeys(evidence_ids):
        item = store.get_item(conn, evidence_id)
        if item is not None and item.case_id == case_id:
            found[evidence_id] = item
    return found


def record_attachment(
    conn: Connection,
    principal: Principal,
    item: EvidenceRecord,
    *,
    rfa_id: str,
    rfa_number: int,
    requester_org_id: str,
    at: int,
) -> None:
    """Note in the item's custody, the case's timeline and the audit log that the item was
    attached to the answer of a request for assistance, which releases it to the requester."""
    actor = {"actor_user_id": principal.user_id, "actor_org_id": principal.org_id}
    detail = {"rfa": rfa_id, "number": rfa_number, "to": requester_org_id}
    store.add_custody(conn, item.id, at=at, action="attached", detail=detail, **actor)
    store.add_timeline_entry(
        conn, item.case_id, at=at, action="evidence.attached",
        text=f"evidence {item.name} attached to request for assistance {rfa_number}",
        detail={"evidence": item.id, **detail}, **actor,
    )  # fmt: skip
    record(conn, principal, "evidence.attached", target=item.id,
           detail={"case": item.case_id, **detail})  # fmt: skip


def start_download(
    conn: Connection, principal: Principal, evidence_id: str, storage: EvidenceStorage
) -> Download:
    """Check access and the file's SHA-256 before it is served; the custody chain records the
    download, or the failed verification (the caller commits either way)."""
    item = _readable(conn, principal, evidence_id)
    found = storage.hash_on_disk(item.sha256)
    intact = found == item.sha256
    now = now_us()
    action = "downloaded" if intact else "verification-failed"
    store.add_custody(
        conn, item.id, at=now, actor_user_id=principal.user_id, actor_org_id=principal.org_id,
        action=action, detail={"sha256": item.sha256, "found": found},
    )  # fmt: skip
    record(conn, principal, f"evidence.{action}", target=item.id, detail={"sha256": item.sha256})
    return Download(item, intact)


def record_custody(
    conn: Connection,
    principal: Principal,
    evidence_id: str,
    action: str,
    *,
    to: str = "",
    note: str = "",
    at: int | None = None,
) -> CustodyEntry:
    """Add a hand-made step to an item's custody (a transfer to a person or an org, sealing,
    an examination, a note)."""
    item = _readable(conn, principal, evidence_id)
    if not may_add_evidence(principal, _participant(conn, principal, item.case_id)):
        raise Forbidden("only writers of a lead or contributor org may record custody")
    if action not in CUSTODY_ACTIONS:
        raise InvalidInput(
            f"unknown custody action {action[:50]!r}; one of {', '.join(CUSTODY_ACTIONS)}",
            field="action",
        )
    detail = {"to": _text("to", to, _MAX_SHORT), "note": _text("note", note, _MAX_TEXT)}
    store.add_custody(
        conn, item.id, at=at if at is not None else now_us(), actor_user_id=principal.user_id,
        actor_org_id=principal.org_id, action=action, detail=detail,
    )  # fmt: skip
    record(conn, principal, f"evidence.{action}", target=item.id, detail={"to": detail["to"]})
    return store.custody_of(conn, item.id)[-1]
