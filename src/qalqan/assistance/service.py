"""The use cases of requests for assistance: draft, edit, send and move a request through its
workflow, attach evidence of the request's case to the answer, read one or a page of them, and
tell orgs what happened.

Text fields are stored exactly as given (HTML in them is text, for clients to escape). Ids and
numbers of requests the caller may not see get the same 404 as ones that do not exist.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from qalqan import audit
from qalqan.cases.base import parse_moment
from qalqan.domain.observables import InvalidObservable, parse_value
from qalqan.domain.principal import Principal
from qalqan.errors import Conflict, Forbidden, InvalidInput, NotFound
from qalqan.evidence import service as evidence_service
from qalqan.intel.reading import decode_key_cursor, encode_key_cursor
from qalqan.policy.rfas import (
    ATTACHING_STATUSES,
    OPEN_STATUSES,
    STATUSES,
    allowed_next,
    may_attach_to_rfa,
    may_create_rfa,
    may_edit_rfa,
    may_move_rfa,
    side_of,
)
from qalqan.store import accounts as accounts_store
from qalqan.store import cases as cases_store
from qalqan.store import notifications as notifications_store
from qalqan.store import rfas as store
from qalqan.store.clock import now_us
from qalqan.store.evidence import EvidenceRecord
from qalqan.store.rfas import AttachmentRow, EventRow, ListQuery, RfaRow

__all__ = [
    "EDITABLE_FIELDS",
    "KINDS",
    "MAX_ATTACHMENTS",
    "MAX_OBSERVABLES",
    "PRIORITIES",
    "SORTS",
    "TEXT_MAX",
    "TITLE_MAX",
    "RfaPage",
    "RfaSpec",
    "attach_evidence",
    "create_rfa",
    "describe",
    "iso",
    "list_rfas",
    "load_rfa",
    "notify_overdue",
    "transition",
    "update_draft",
]

KINDS: tuple[str, ...] = (
    "information-request",
    "data-preservation",
    "takedown",
    "blocking",
    "attribution-support",
    "other",
)
PRIORITIES: Mapping[str, int] = {"low": 1, "medium": 2, "high": 3, "urgent": 4}
_PRIORITY_NAMES = {v: k for k, v in PRIORITIES.items()}
SORTS: tuple[str, ...] = tuple(f"{sign}{key}" for key in store.SORT_KEYS for sign in ("-", ""))
TITLE_MAX = 300
TEXT_MAX = 20_000
MAX_OBSERVABLES = 200
MAX_ATTACHMENTS = 100
_OBSERVABLE_MAX = 2048
EDITABLE_FIELDS = frozenset(
    {"to", "kind", "title", "body", "legal_basis", "due", "priority", "case", "observables"}
)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MAX_NUMBER = 2**31 - 1
KIND_RECEIVED, KIND_ANSWERED, KIND_DECLINED, KIND_WITHDRAWN, KIND_OVERDUE = (
    "rfa.received",
    "rfa.answered",
    "rfa.declined",
    "rfa.withdrawn",
    "rfa.overdue",
)


@dataclass(frozen=True, slots=True)
class RfaSpec:
    """What a new request asks: ``to`` is the recipient org (id or name), ``due`` an RFC 3339
    time or date, ``priority`` low|medium|high|urgent, ``case`` a case id, ``observables``
    values as typed or pasted (defanged ones too)."""

    to: str
    kind: str
    title: str
    body: str = ""
    legal_basis: str = ""
    due: str | None = None
    priority: str = "medium"
    case: str | None = None
    observables: Sequence[str] = ()
    send: bool = False


@dataclass(frozen=True, slots=True)
class RfaPage:
    """One page of requests and the cursor of the next (None on the last page)."""

    items: list[dict[str, Any]]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next": self.next_cursor}


# --- reading input ---------------------------------------------------------------------------


def iso(us: int | None) -> str | None:
    """µs since the epoch as an RFC 3339 UTC string."""
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def _text(field_name: str, value: str, limit: int, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field_name}: must be text", field=field_name)
    if len(value) > limit:
        raise InvalidInput(
            f"{field_name}: longer than {limit} characters ({len(value)})", field=field_name
        )
    if "\x00" in value:
        raise InvalidInput(f"{field_name}: must not contain NUL characters", field=field_name)
    if required and not value.strip():
        raise InvalidInput(f"{field_name}: must not be empty", field=field_name)
    return value


def _kind(value: str) -> str:
    text = value.strip().lower()
    if text not in KINDS:
        raise InvalidInput(f"kind {value[:40]!r}: use one of {', '.join(KINDS)}", field="kind")
    return text


def _priority(value: str | int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value in _PRIORITY_NAMES:
        return value
    text = str(value).strip().lower()
    if text in PRIORITIES:
        return PRIORITIES[text]
    if text.isdigit() and int(text) in _PRIORITY_NAMES:
        return int(text)
    names = ", ".join(PRIORITIES)
    raise InvalidInput(f"priority {str(value)[:40]!r}: use one of {names}", field="priority")


def _due(value: str | None, now: int) -> int | None:
    if value is None:
        return None
    moment = parse_moment("due", _text("due", value, 100))
    if moment <= now:
        raise InvalidInput(f"due: {value[:40]!r} is not in the future", field="due")
    return moment


def _recipient(conn: Connection, principal: Principal, ref: str) -> str:
    ref = _text("to", ref, 300, required=True)
    try:
        org = accounts_store.get_org(conn, ref.strip())
    except NotFound:
        raise InvalidInput(f"to: no organization {ref[:80]!r}", field="to") from None
    if org.id == principal.org_id:
        raise InvalidInput("to: an org cannot send a request to itself", field="to")
    return org.id


def _case(conn: Connection, principal: Principal, ref: str | None) -> str | None:
    if ref is None:
        return None
    text = ref.strip().lower()
    if not (_UUID.match(text) and cases_store.visible_role(conn, principal, text) is not None):
        # The same answer for a case that does not exist and one the org takes no part in.
        raise NotFound(f"case: no case {ref[:80]!r}", id=ref[:80], field="case")
    return text


def _observables(values: Sequence[str]) -> list[tuple[str, str]]:
    if len(values) > MAX_OBSERVABLES:
        raise InvalidInput(
            f"observables: at most {MAX_OBSERVABLES} per request", field="observables"
        )
    parsed: list[tuple[str, str]] = []
    for index, raw in enumerate(values):
        text = _text("observables", raw, _OBSERVABLE_MAX)
        try:
            observable = parse_value(text)
        except InvalidObservable as exc:
            raise InvalidInput(
                f"observables[{index}]: {exc}", field="observables", index=index
            ) from None
        parsed.append((observable.kind, observable.value))
    return list(dict.fromkeys(parsed))


def _attachment_refs(values: Sequence[str]) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidInput("attachments: must be a list of evidence ids", field="attachments")
    if len(values) > MAX_ATTACHMENTS:
        raise InvalidInput(
            f"attachments: at most {MAX_ATTACHMENTS} per request ({len(values)})",
            field="attachments",
        )
    refs: list[str] = []
    for index, raw in enumerate(values):
        text = raw.strip().lower() if isinstance(raw, str) else ""
        if not _UUID.match(text):
            shown = raw[:80] if isinstance(raw, str) else raw
            raise InvalidInput(
                f"attachments[{index}]: {shown!r} is not an evidence id",
                field="attachments",
                index=index,
            )
        refs.append(text)
    return list(dict.fromkeys(refs))


def _attachment_items(
    conn: Connection, principal: Principal, row: RfaRow, values: Sequence[str]
) -> list[EvidenceRecord]:
    """The evidence items ``values`` names, each one of the request's case and readable by the
    principal; InvalidInput naming the first that is not, in the same words whether it does not
    exist, belongs to another case or may not be read."""
    refs = _attachment_refs(values)
    if not refs:
        return []
    if row.case_id is None:
        raise InvalidInput(
            f"attachments: request {row.number} is not linked to a case, and evidence belongs "
            "to a case: link the request to the case whose evidence answers it",
            field="attachments",
        )
    found = evidence_service.items_of_case(conn, principal, row.case_id, refs)
    for index, ref in enumerate(values):
        key = ref.strip().lower()
        if key not in found:
            raise InvalidInput(
                f"attachments[{index}]: {ref[:80]!r} is not an evidence item of the request's case",
                field="attachments",
                index=index,
                id=ref[:80],
            )
    return [found[ref] for ref in refs]


# --- finding a request -----------------------------------------------------------------------


def load_rfa(conn: Connection, principal: Principal, ref: str) -> RfaRow:
    """The request whose id or number is ``ref``, if the principal may see it; NotFound with
    the same words otherwise."""
    text = ref.strip().lower()
    row: RfaRow | None = None
    if text.isascii() and text.isdigit() and 0 < len(text) <= 10 and int(text) <= _MAX_NUMBER:
        row = store.get_rfa(conn, principal, number=int(text))
    elif _UUID.match(text):
        row = store.get_rfa(conn, principal, rfa_id=text)
    if row is None:
        raise NotFound(f"no request for assistance {ref[:80]!r}", id=ref[:80])
    return row


# --- writing ---------------------------------------------------------------------------------


def create_rfa(
    conn: Connection, principal: Principal, spec: RfaSpec, *, now: int | None = None
) -> RfaRow:
    """Draft a request from the principal's org (and send it at once with ``spec.send``)."""
    if not may_create_rfa(principal):
        raise Forbidden("your role does not allow you to make requests for assistance")
    now = now_us() if now is None else now
    values: dict[str, Any] = {
        "kind": _kind(spec.kind),
        "title": _text("title", spec.title, TITLE_MAX, required=True),
        "body": _text("body", spec.body, TEXT_MAX),
        "legal_basis": _text("legal_basis", spec.legal_basis, TEXT_MAX),
        "priority": _priority(spec.priority),
        "due_at": _due(spec.due, now),
        "recipient_org_id": _recipient(conn, principal, spec.to),
        "case_id": _case(conn, principal, spec.case),
    }
    observables = _observables(spec.observables)
    rfa_id = str(uuid.uuid4())
    number = store.next_number(conn)
    store.insert_rfa(
        conn,
        {
            **values,
            "id": rfa_id,
            "number": number,
            "requester_org_id": principal.org_id,
            "status": "draft",
            "created_at": now,
            "created_by": principal.user_id,
            "updated_at": now,
        },
    )
    store.replace_observables(conn, rfa_id, observables)
    store.add_event(conn, rfa_id, at=now, actor=principal, from_status=None, to_status="draft")
    audit.record(
        conn,
        principal,
        "rfa.create",
        target=rfa_id,
        detail={"number": number, "to": values["recipient_org_id"], "kind": values["kind"]},
    )
    if spec.send:
        return transition(conn, principal, rfa_id, "sent", now=now)
    return load_rfa(conn, principal, rfa_id)


def update_draft(
    conn: Connection,
    principal: Principal,
    ref: str,
    changes: Mapping[str, Any],
    *,
    now: int | None = None,
) -> RfaRow:
    """Change fields of a draft (keys of :data:`EDITABLE_FIELDS`; ``due`` and ``case`` None
    clear them). 409 once the request has been sent."""
    row = load_rfa(conn, principal, ref)
    side = side_of(principal, row.requester_org_id, row.recipient_org_id)
    if row.status != "draft":
        raise Conflict(
            f"request {row.number} is {row.status}: only drafts can be edited", current=row.status
        )
    if not may_edit_rfa(principal, side, row.status):
        raise Forbidden("your role does not allow you to edit this request")
    unknown = sorted(set(changes) - EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a field of a request", field=unknown[0])
    now = now_us() if now is None else now
    readers: dict[str, tuple[str, Any]] = {
        "to": ("recipient_org_id", lambda v: _recipient(conn, principal, v)),
        "kind": ("kind", _kind),
        "title": ("title", lambda v: _text("title", v, TITLE_MAX, required=True)),
        "body": ("body", lambda v: _text("body", v, TEXT_MAX)),
        "legal_basis": ("legal_basis", lambda v: _text("legal_basis", v, TEXT_MAX)),
        "due": ("due_at", lambda v: _due(v, now)),
        "priority": ("priority", _priority),
        "case": ("case_id", lambda v: _case(conn, principal, v)),
    }
    values: dict[str, Any] = {}
    for name, (column, read) in readers.items():
        if name in changes:
            if changes[name] is None and name not in ("due", "case"):
                raise InvalidInput(f"{name}: must not be null", field=name)
            values[column] = read(changes[name])
    if "observables" in changes:
        store.replace_observables(conn, row.id, _observables(changes["observables"] or ()))
    store.update_rfa(conn, row.id, {**values, "updated_at": now})
    audit.record(conn, principal, "rfa.update", target=row.id, detail={"fields": sorted(changes)})
    return load_rfa(conn, principal, row.id)


def transition(
    conn: Connection,
    principal: Principal,
    ref: str,
    to: str,
    *,
    note: str = "",
    answer: str | None = None,
    attachments: Sequence[str] = (),
    now: int | None = None,
) -> RfaRow:
    """Move a request to status ``to``: 409 listing the allowed next statuses when the
    workflow has no such step, 403 when the step belongs to the other side or the principal
    does not work requests. Answering needs ``answer`` and may attach evidence of the
    request's case (``attachments``: evidence ids, see :func:`attach_evidence`); declining
    needs ``note`` (the reason). Nothing is written unless every part is valid."""
    row = load_rfa(conn, principal, ref)
    target = to.strip().lower() if isinstance(to, str) else ""
    if target not in STATUSES:
        raise InvalidInput(f"to {to[:40]!r}: use one of {', '.join(STATUSES)}", field="to")
    allowed = allowed_next(row.status)
    if target not in allowed:
        raise Conflict(
            f"request {row.number} is {row.status} and cannot become {target}",
            current=row.status,
            allowed=allowed,
        )
    side = side_of(principal, row.requester_org_id, row.recipient_org_id)
    if not may_move_rfa(principal, side, row.status, target):
        raise Forbidden(f"your org or role may not make this request {target}")
    note = _text("note", note, TEXT_MAX)
    now = now_us() if now is None else now
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if target == "answered":
        values["answer"] = _text("answer", answer or "", TEXT_MAX, required=True)
        values["answered_at"] = now
    elif answer is not None:
        raise InvalidInput("answer: only an answered request has an answer", field="answer")
    if target == "declined":
        _text("note", note, TEXT_MAX, required=True)
    items: list[EvidenceRecord] = []
    if attachments:
        if target != "answered":
            raise InvalidInput(
                "attachments: only an answer carries attachments", field="attachments"
            )
        items = _attachment_items(conn, principal, row, attachments)
    if target == "sent":
        values["sent_at"] = now
    elif target == "acknowledged":
        values["acknowledged_at"] = now
    if target in ("answered", "declined", "withdrawn"):
        values["closed_at"] = now
    store.update_rfa(conn, row.id, values)
    attached = _attach(conn, principal, row, items, now)
    store.add_event(
        conn,
        row.id,
        at=now,
        actor=principal,
        from_status=row.status,
        to_status=target,
        note="\n".join(part for part in (note, _attached_note(attached)) if part),
    )
    detail: dict[str, Any] = {"number": row.number, "from": row.status, "to": target}
    if attached:
        detail["attachments"] = [item.id for item in attached]
    audit.record(conn, principal, "rfa.transition", target=row.id, detail=detail)
    _notify(conn, row, target, note, now, attachments=len(store.attachments_of(conn, row.id)))
    return load_rfa(conn, principal, row.id)


def attach_evidence(
    conn: Connection,
    principal: Principal,
    ref: str,
    evidence_ids: Sequence[str],
    *,
    now: int | None = None,
) -> RfaRow:
    """Attach evidence items of the request's case to its answer ahead of answering it (the
    recipient's writers, while the request is acknowledged or in progress; the step to
    answered attaches too). Each id must name an evidence item of the case that the principal
    may read; items attached already are skipped. The requester may then read and download
    them. Each new attachment is in the item's custody (``attached``), the case's timeline,
    the request's timeline and the audit log; nothing is written unless every id is good."""
    row = load_rfa(conn, principal, ref)
    side = side_of(principal, row.requester_org_id, row.recipient_org_id)
    if row.status not in ATTACHING_STATUSES:
        raise Conflict(
            f"request {row.number} is {row.status}: evidence is attached while it is "
            f"{' or '.join(ATTACHING_STATUSES)}, or with its answer",
            current=row.status,
        )
    if not may_attach_to_rfa(principal, side, row.status):
        raise Forbidden("only writers of the recipient org attach evidence to the answer")
    if not _attachment_refs(evidence_ids):
        raise InvalidInput("attachments: name at least one evidence id", field="attachments")
    items = _attachment_items(conn, principal, row, evidence_ids)
    now = now_us() if now is None else now
    attached = _attach(conn, principal, row, items, now)
    if attached:
        store.update_rfa(conn, row.id, {"updated_at": now})
        store.add_event(
            conn,
            row.id,
            at=now,
            actor=principal,
            from_status=row.status,
            to_status=row.status,
            note=_attached_note(attached),
        )
        audit.record(
            conn,
            principal,
            "rfa.attach",
            target=row.id,
            detail={"number": row.number, "attachments": [item.id for item in attached]},
        )
    return load_rfa(conn, principal, row.id)


def _attach(
    conn: Connection, principal: Principal, row: RfaRow, items: Sequence[EvidenceRecord], now: int
) -> list[EvidenceRecord]:
    """Store the attachments not there yet and note each in the item's custody; the items
    newly attached."""
    if not items:
        return []
    new = set(store.add_attachments(conn, row.id, [i.id for i in items], actor=principal, at=now))
    attached = [item for item in items if item.id in new]
    for item in attached:
        evidence_service.record_attachment(
            conn,
            principal,
            item,
            rfa_id=row.id,
            rfa_number=row.number,
            requester_org_id=row.requester_org_id,
            at=now,
        )
    return attached


def _attached_note(items: Sequence[EvidenceRecord]) -> str:
    if not items:
        return ""
    named = ", ".join(f"{item.name} (sha256 {item.sha256})" for item in items)
    return f"attached evidence: {named}"


def _notify(
    conn: Connection, row: RfaRow, status: str, note: str, now: int, *, attachments: int = 0
) -> None:
    told: list[tuple[str, str]] = []
    if status == "sent":
        told.append((row.recipient_org_id, KIND_RECEIVED))
    elif status == "answered":
        told.append((row.requester_org_id, KIND_ANSWERED))
    elif status == "declined":
        told.append((row.requester_org_id, KIND_DECLINED))
    elif status == "withdrawn" and row.status != "draft":
        # The recipient knew of it: tell it the work is no longer needed.
        told.append((row.recipient_org_id, KIND_WITHDRAWN))
    if told:
        extra = {"attachments": attachments} if status == "answered" else {}
        detail = _notice(conn, row, status=status, note=note, **extra)
        notifications_store.insert_notifications(
            conn, [(org, kind, row.id, detail, now) for org, kind in told]
        )


def _notice(conn: Connection, row: RfaRow, **extra: Any) -> str:
    names = store.org_names(conn, [row.requester_org_id, row.recipient_org_id])
    return orjson.dumps(
        {
            "rfa": row.id,
            "number": row.number,
            "title": row.title,
            "requester": names.get(row.requester_org_id),
            "recipient": names.get(row.recipient_org_id),
            "due": iso(row.due_at),
            **extra,
        }
    ).decode()


def notify_overdue(conn: Connection, *, now: int | None = None) -> int:
    """Tell requesters, once per request, about requests past their deadline and still
    awaiting an answer; how many notifications were made. Meant to run periodically."""
    now = now_us() if now is None else now
    rows = store.overdue_rfas(conn, now, not_notified_kind=KIND_OVERDUE)
    notifications_store.insert_notifications(
        conn,
        [
            (r.requester_org_id, KIND_OVERDUE, r.id, _notice(conn, r, status=r.status), now)
            for r in rows
        ],
    )
    return len(rows)


# --- reading ---------------------------------------------------------------------------------


def _is_overdue(row: RfaRow, now: int) -> bool:
    return row.due_at is not None and row.due_at < now and row.status in OPEN_STATUSES


def describe(
    conn: Connection,
    principal: Principal,
    row: RfaRow,
    *,
    detail: bool = False,
    names: Mapping[str, str] | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """A request as the API and CLI show it; ``detail`` adds its timeline, observables and the
    evidence attached to its answer. ``allowed`` lists the statuses the principal may move it
    to."""
    now = now_us() if now is None else now
    if names is None:
        names = store.org_names(conn, [row.requester_org_id, row.recipient_org_id])
    side = side_of(principal, row.requester_org_id, row.recipient_org_id)
    out: dict[str, Any] = {
        "id": row.id,
        "number": row.number,
        "kind": row.kind,
        "title": row.title,
        "body": row.body,
        "legal_basis": row.legal_basis,
        "priority": _PRIORITY_NAMES.get(row.priority, str(row.priority)),
        "status": row.status,
        "overdue": _is_overdue(row, now),
        "requester": {"id": row.requester_org_id, "name": names.get(row.requester_org_id)},
        "recipient": {"id": row.recipient_org_id, "name": names.get(row.recipient_org_id)},
        "side": side.value if side else None,
        "case": row.case_id,
        "due": iso(row.due_at),
        "answer": row.answer,
        "created": iso(row.created_at),
        "updated": iso(row.updated_at),
        "sent": iso(row.sent_at),
        "acknowledged": iso(row.acknowledged_at),
        "answered": iso(row.answered_at),
        "closed": iso(row.closed_at),
        "allowed": [
            s for s in allowed_next(row.status) if may_move_rfa(principal, side, row.status, s)
        ],
        "links": {"self": f"/api/v1/rfas/{row.id}"},
    }
    if detail:
        out["observables"] = [
            {"kind": k, "value": v} for k, v in store.observables_of(conn, row.id)
        ]
        out["events"] = [_event(e) for e in store.events_of(conn, row.id)]
        attachments = store.attachments_of(conn, row.id)
        attachers = store.org_names(conn, [a.attached_org_id for a in attachments])
        out["attachments"] = [_attachment(a, attachers) for a in attachments]
    return out


def _attachment(row: AttachmentRow, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "evidence": row.evidence_id,
        "name": row.name,
        "sha256": row.sha256,
        "size": row.size,
        "attached_at": iso(row.attached_at),
        "attached_org": {"id": row.attached_org_id, "name": names.get(row.attached_org_id)},
        "links": {
            "evidence": f"/api/v1/evidence/{row.evidence_id}",
            "content": f"/api/v1/evidence/{row.evidence_id}/content",
        },
    }


def _event(event: EventRow) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "from": event.from_status,
        "to": event.to_status,
        "actor_org": event.actor_org_id,
        "actor_user": event.actor_user_id,
        "note": event.note,
    }


def list_rfas(
    conn: Connection,
    principal: Principal,
    *,
    role: str | None = None,
    status: str | None = None,
    overdue: bool | None = None,
    org: str | None = None,
    text: str | None = None,
    sort: str = "-updated",
    cursor: str | None = None,
    limit: int = 100,
    now: int | None = None,
) -> RfaPage:
    """One page of the requests the principal may see. ``role`` sent|received, ``org`` the
    other org (id or name), ``text`` a substring of title, body or legal basis (any case),
    ``sort`` one of :data:`SORTS` (``-`` for descending); ``cursor`` the ``next`` of the page
    before."""
    now = now_us() if now is None else now
    if role is not None and role not in ("sent", "received"):
        raise InvalidInput(f"role {role[:40]!r}: use sent or received", field="role")
    if status is not None and status not in STATUSES:
        raise InvalidInput(
            f"status {status[:40]!r}: use one of {', '.join(STATUSES)}", field="status"
        )
    if sort not in SORTS:
        raise InvalidInput(f"sort {sort[:40]!r}: use one of {', '.join(SORTS)}", field="sort")
    org_id = None
    if org is not None:
        try:
            org_id = accounts_store.get_org(conn, _text("org", org, 300)).id
        except NotFound:
            raise InvalidInput(f"org: no organization {org[:80]!r}", field="org") from None
    if text is not None:
        text = _text("text", text, TITLE_MAX) or None
    key = sort.lstrip("-")
    query = ListQuery(
        role=role,
        status=status,
        overdue=overdue,
        org_id=org_id,
        text=text,
        sort=key,
        descending=sort.startswith("-"),
        after=_decode_cursor(cursor) if cursor else None,
    )
    rows = store.list_rfas(conn, principal, query, now=now, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    names = store.org_names(
        conn, [o for r in rows for o in (r.requester_org_id, r.recipient_org_id)]
    )
    items = [describe(conn, principal, r, names=names, now=now) for r in rows]
    token = encode_key_cursor((_sort_value(rows[-1], key), rows[-1].id)) if more else None
    return RfaPage(items, token)


def _sort_value(row: RfaRow, key: str) -> int:
    if key == "due":
        return row.due_at if row.due_at is not None else store.NO_DUE
    value: int = getattr(row, {"updated": "updated_at", "created": "created_at"}.get(key, key))
    return value


def _decode_cursor(cursor: str) -> tuple[int, str]:
    value, rfa_id = decode_key_cursor(cursor, (int, str))
    if not _UUID.match(rfa_id):
        raise InvalidInput("cursor is not one this API gave out", field="cursor")
    return value, rfa_id
