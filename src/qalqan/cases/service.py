"""Cases: open (blank or from a template), read, list, change fields, move through the status
workflow, and manage the orgs taking part and the people assigned.

Every write records an audit entry and an automatic timeline entry (:func:`note_change`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import Connection

from qalqan.cases.base import (
    LONG_TEXT_MAX,
    TITLE_MAX,
    CaseAccess,
    check_text,
    load_case,
    new_id,
    note_change,
    optional_text,
    parse_or_invalid,
    require,
)
from qalqan.cases.templates import template_named
from qalqan.domain.handling import TLP
from qalqan.domain.principal import Principal
from qalqan.errors import Conflict, InvalidInput, NotFound
from qalqan.notify import events as case_events
from qalqan.policy import may_add_participant, may_edit_case, may_reopen_case
from qalqan.store import accounts as accounts_store
from qalqan.store import cases as store
from qalqan.store.clock import lock_writes, now_us

__all__ = [
    "PAP_LEVELS",
    "PARTICIPANT_ROLES",
    "SEVERITIES",
    "STATUSES",
    "TRANSITIONS",
    "CaseChanges",
    "CaseSpec",
    "CaseSummary",
    "add_participant",
    "change_participant_role",
    "change_status",
    "create_case",
    "list_cases",
    "parse_pap",
    "parse_severity",
    "remove_participant",
    "resolve_org",
    "summary_of",
    "update_case",
]

STATUSES: Final = ("new", "in-progress", "on-hold", "resolved", "closed")
TRANSITIONS: Final[dict[str, tuple[str, ...]]] = {
    "new": ("in-progress", "on-hold", "resolved", "closed"),
    "in-progress": ("on-hold", "resolved", "closed"),
    "on-hold": ("in-progress", "resolved", "closed"),
    "resolved": ("closed", "in-progress"),
    "closed": ("in-progress",),
}
_NEEDS_RESOLUTION: Final = ("resolved", "closed")
SEVERITIES: Final = {"low": 1, "medium": 2, "high": 3, "critical": 4}
PAP_LEVELS: Final = {"clear": 0, "green": 1, "amber": 2, "red": 3}
PARTICIPANT_ROLES: Final = ("lead", "contributor", "observer")
_LABEL_MAX = 100
_LABELS_MAX = 50
_TECHNIQUES_MAX = 200
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
_FIELDS_MAX = 50
_FIELD_NAME_MAX = 100
_FIELD_VALUE_MAX = 2000


def parse_severity(text: str) -> int:
    """``'high'`` or ``'3'`` → 3; ValueError naming the valid ones."""
    key = text.strip().lower()
    if key in SEVERITIES:
        return SEVERITIES[key]
    if key in ("1", "2", "3", "4"):
        return int(key)
    raise ValueError(f"unknown severity {text!r}; use one of {', '.join(SEVERITIES)}")


def parse_pap(text: str) -> int:
    """``'amber'`` or ``'PAP:AMBER'`` → 2; ValueError naming the valid ones."""
    key = text.strip().lower().removeprefix("pap:")
    if key == "white":
        key = "clear"
    if key not in PAP_LEVELS:
        raise ValueError(f"unknown PAP level {text!r}; use one of {', '.join(PAP_LEVELS)}")
    return PAP_LEVELS[key]


@dataclass(frozen=True, slots=True)
class CaseSpec:
    """A case to open; None fields take the template's (or the defaults: medium, AMBER)."""

    title: str
    description: str = ""
    severity: str | int | None = None
    tlp: str | None = None
    pap: str | None = None
    template: str | None = None
    labels: Sequence[str] = ()
    techniques: Sequence[str] = ()
    custom_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaseChanges:
    """Fields to change; None leaves a field as it is. ``labels`` and ``assignees`` replace
    the whole set."""

    title: str | None = None
    description: str | None = None
    severity: str | int | None = None
    tlp: str | None = None
    pap: str | None = None
    labels: Sequence[str] | None = None
    techniques: Sequence[str] | None = None
    custom_fields: Mapping[str, Any] | None = None
    assignees: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """A case as lists show it."""

    row: store.CaseRow
    labels: list[str]


def _severity(value: str | int) -> int:
    if isinstance(value, int):
        if value not in (1, 2, 3, 4):
            raise InvalidInput("severity: use 1-4 or low, medium, high, critical", field="severity")
        return value
    return int(parse_or_invalid("severity", parse_severity, value))


def _labels(values: Sequence[str]) -> list[str]:
    found: list[str] = []
    for value in values:
        label = check_text("labels", value.strip(), _LABEL_MAX, required=True)
        if label not in found:
            found.append(label)
    if len(found) > _LABELS_MAX:
        raise InvalidInput(f"labels: at most {_LABELS_MAX}", field="labels")
    return found


def _techniques(values: Sequence[str]) -> list[str]:
    found: list[str] = []
    for value in values:
        technique = value.strip().upper()
        if not _TECHNIQUE.match(technique):
            raise InvalidInput(
                f"techniques: {value[:40]!r} is not an ATT&CK technique id like T1486 or T1566.001",
                field="techniques",
            )
        if technique not in found:
            found.append(technique)
    if len(found) > _TECHNIQUES_MAX:
        raise InvalidInput(f"techniques: at most {_TECHNIQUES_MAX}", field="techniques")
    return found


def _custom_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    if len(values) > _FIELDS_MAX:
        raise InvalidInput(f"custom_fields: at most {_FIELDS_MAX}", field="custom_fields")
    found: dict[str, Any] = {}
    for name, value in values.items():
        check_text("custom_fields", name, _FIELD_NAME_MAX, required=True)
        if isinstance(value, str):
            check_text(f"custom_fields.{name[:40]}", value, _FIELD_VALUE_MAX)
        elif value is not None and not isinstance(value, bool | int | float):
            raise InvalidInput(
                f"custom_fields.{name[:40]}: a string, number, true/false or null",
                field="custom_fields",
            )
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
            raise InvalidInput(
                f"custom_fields.{name[:40]}: number too large", field="custom_fields"
            )
        found[name] = value
    return found


def _tlp(value: str) -> int:
    return int(parse_or_invalid("tlp", TLP.parse, value))


def resolve_org(conn: Connection, ref: str) -> accounts_store.OrgRecord:
    """The org whose id or name is ``ref``; InvalidInput naming the ``org`` field otherwise."""
    if "\x00" not in ref and len(ref) <= 300:
        try:
            return accounts_store.get_org(conn, ref)
        except NotFound:
            pass
    raise InvalidInput(f"org: no organization {ref[:80]!r}", field="org")


def create_case(conn: Connection, principal: Principal, spec: CaseSpec) -> store.CaseRow:
    """Open a case owned by the principal's org (its lead), blank or from ``spec.template``
    (whose preset tasks and labels it gets)."""
    require(may_edit_case(principal, "lead"), "open cases")
    template = (
        parse_or_invalid("template", template_named, spec.template) if spec.template else None
    )
    title = check_text("title", spec.title.strip(), TITLE_MAX, required=True)
    description = check_text("description", spec.description, LONG_TEXT_MAX)
    severity = (
        _severity(spec.severity)
        if spec.severity is not None
        else (template.severity if template else 2)
    )
    tlp = _tlp(spec.tlp) if spec.tlp is not None else int(TLP.AMBER)
    pap = int(parse_or_invalid("pap", parse_pap, spec.pap)) if spec.pap is not None else 2
    labels = _labels([*(template.labels if template else ()), *spec.labels])
    techniques = _techniques(spec.techniques)
    fields = _custom_fields(spec.custom_fields)
    lock_writes(conn)  # numbers are handed out one writer at a time
    at = now_us()
    case_id = new_id()
    number = store.next_number(conn)
    store.insert_case(
        conn,
        {
            "id": case_id,
            "number": number,
            "title": title,
            "description": description,
            "severity": severity,
            "tlp": tlp,
            "pap": pap,
            "status": "new",
            "resolution": None,
            "owner_org_id": principal.org_id,
            "template": template.name if template else None,
            "attack_techniques": orjson.dumps(techniques).decode(),
            "custom_fields": orjson.dumps(fields).decode(),
            "created_at": at,
            "created_by": principal.user_id,
            "updated_at": at,
            "closed_at": None,
        },
    )
    store.add_participant(conn, case_id, principal.org_id, "lead", at, principal.user_id)
    store.add_labels(conn, case_id, labels)
    for position, task_title in enumerate(template.tasks if template else ()):
        store.add_task(
            conn,
            {
                "id": new_id(),
                "case_id": case_id,
                "title": task_title,
                "description": "",
                "status": "open",
                "org_id": None,
                "assignee_user_id": None,
                "due_at": None,
                "position": position,
                "created_at": at,
                "created_by": principal.user_id,
                "updated_at": at,
                "closed_at": None,
            },
        )
    note_change(
        conn,
        principal,
        case_id,
        "case.create",
        f"case #{number} opened" + (f" from template {template.name}" if template else ""),
        {"number": number, "template": template.name if template else None},
        at=at,
    )
    return store.written_case(conn, case_id)


def summary_of(conn: Connection, rows: Sequence[store.CaseRow]) -> list[CaseSummary]:
    labels = store.case_labels_of(conn, [r.id for r in rows])
    return [CaseSummary(r, labels[r.id]) for r in rows]


def list_cases(
    conn: Connection,
    principal: Principal,
    f: store.CaseFilter,
    *,
    limit: int,
    before: tuple[int, str] | None = None,
) -> list[CaseSummary]:
    """One keyset page of the cases the principal's org takes part in."""
    for name, value in (("label", f.label), ("text", f.text)):
        if value is not None:
            check_text(name, value, 300)
    for status in f.statuses or ():
        if status not in STATUSES:
            raise InvalidInput(
                f"status {status[:40]!r}: use one of {', '.join(STATUSES)}", field="status"
            )
    return summary_of(conn, store.list_cases(conn, principal, f, limit=limit, before=before))


def _assignees(
    conn: Connection, case_id: str, refs: Sequence[str]
) -> dict[str, tuple[str, str, str]]:
    participating = {p.org_id for p in store.list_participants(conn, case_id)}
    found: dict[str, tuple[str, str, str]] = {}
    for ref in refs:
        user = store.user_of(conn, ref) if "\x00" not in ref and len(ref) <= 320 else None
        if user is None or user[2] not in participating:
            raise InvalidInput(
                f"assignees: {ref[:80]!r} is no user of an org taking part in the case",
                field="assignees",
            )
        found[user[0]] = user
    return found


def update_case(
    conn: Connection, principal: Principal, ref: str, changes: CaseChanges
) -> store.CaseRow:
    """Change fields of a case; each changed field is named on the timeline."""
    access = load_case(conn, principal, ref)
    require(may_edit_case(principal, access.role), "edit this case")
    case = access.case
    values: dict[str, Any] = {}
    if changes.title is not None:
        values["title"] = check_text("title", changes.title.strip(), TITLE_MAX, required=True)
    description = optional_text("description", changes.description, LONG_TEXT_MAX)
    if description is not None:
        values["description"] = description
    if changes.severity is not None:
        values["severity"] = _severity(changes.severity)
    if changes.tlp is not None:
        values["tlp"] = _tlp(changes.tlp)
    if changes.pap is not None:
        values["pap"] = int(parse_or_invalid("pap", parse_pap, changes.pap))
    if changes.techniques is not None:
        values["attack_techniques"] = orjson.dumps(_techniques(changes.techniques)).decode()
    if changes.custom_fields is not None:
        values["custom_fields"] = orjson.dumps(_custom_fields(changes.custom_fields)).decode()
    changed = sorted(k for k, v in values.items() if getattr(case, k) != v)
    if changed:
        store.update_case(conn, case.id, {k: values[k] for k in changed})
    detail: dict[str, Any] = {"fields": changed}
    if changes.labels is not None:
        wanted = _labels(changes.labels)
        have = store.case_labels_of(conn, [case.id])[case.id]
        added = [lb for lb in wanted if lb not in have]
        removed = [lb for lb in have if lb not in wanted]
        store.remove_labels(conn, case.id, removed)
        store.add_labels(conn, case.id, added)
        if added or removed:
            changed.append("labels")
            detail.update(labels_added=added, labels_removed=removed)
    if changes.assignees is not None:
        wanted_users = _assignees(conn, case.id, changes.assignees)
        current = {a[0]: a for a in store.list_assignees(conn, case.id)}
        for user_id in current.keys() - wanted_users.keys():
            store.remove_assignee(conn, case.id, user_id)
        newly = sorted(wanted_users.keys() - current.keys())
        for user_id in newly:
            store.add_assignee(conn, case.id, user_id)
        case_events.case_assigned(conn, case.id, [u for u in newly if u != principal.user_id])
        if current.keys() != wanted_users.keys():
            changed.append("assignees")
            detail["assignees"] = sorted(u[1] for u in wanted_users.values())
    if changed:
        detail["fields"] = changed
        note_change(
            conn, principal, case.id, "case.update", f"changed {', '.join(changed)}", detail
        )
    return store.written_case(conn, case.id)


def change_status(
    conn: Connection, principal: Principal, ref: str, status: str, resolution: str | None = None
) -> store.CaseRow:
    """Move the case to ``status``. Conflict (409) naming the allowed next states when the
    workflow does not lead there; ``resolved`` and ``closed`` need a resolution; only leads
    reopen a closed case."""
    access = load_case(conn, principal, ref)
    case = access.case
    require(may_edit_case(principal, access.role), "change the status of this case")
    if status not in STATUSES:
        raise InvalidInput(
            f"status {status[:40]!r}: use one of {', '.join(STATUSES)}", field="status"
        )
    allowed = TRANSITIONS[case.status]
    if status not in allowed:
        raise Conflict(
            f"a case that is {case.status} cannot become {status}; "
            f"allowed next: {', '.join(allowed)}",
            current=case.status,
            allowed=list(allowed),
        )
    if case.status == "closed":
        require(may_reopen_case(principal, access.role), "reopen a closed case")
    text = optional_text("resolution", resolution, LONG_TEXT_MAX)
    values: dict[str, Any] = {"status": status}
    if status in _NEEDS_RESOLUTION:
        text = (text or "").strip() or (case.resolution or "")
        if not text.strip():
            raise InvalidInput(
                f"a case becomes {status} only with a resolution", field="resolution"
            )
        values["resolution"] = text
    at = now_us()
    values["closed_at"] = at if status == "closed" else None
    store.update_case(conn, case.id, values)
    note_change(
        conn,
        principal,
        case.id,
        "case.status",
        f"status {case.status} → {status}",
        {"from": case.status, "to": status},
        at=at,
    )
    return store.written_case(conn, case.id)


def _role(role: str) -> str:
    value = role.strip().lower()
    if value not in PARTICIPANT_ROLES:
        raise InvalidInput(
            f"role {role[:40]!r}: use one of {', '.join(PARTICIPANT_ROLES)}", field="role"
        )
    return value


def add_participant(
    conn: Connection, principal: Principal, ref: str, org_ref: str, role: str
) -> store.ParticipantRow:
    """Invite an org into the case (leads only): an explicit, audited act."""
    access = load_case(conn, principal, ref)
    require(may_add_participant(principal, access.role), "add organizations to this case")
    wanted = _role(role)
    org = resolve_org(conn, org_ref)
    if store.participant_role(conn, access.case.id, org.id) is not None:
        raise Conflict(f"{org.name} already takes part in this case", org=org.name)
    at = now_us()
    store.add_participant(conn, access.case.id, org.id, wanted, at, principal.user_id)
    case_events.case_invited(conn, access.case.id, org.id, wanted)
    note_change(
        conn,
        principal,
        access.case.id,
        "case.participant.add",
        f"{org.name} joined as {wanted}",
        {"org": org.id, "org_name": org.name, "role": wanted},
        at=at,
    )
    return next(p for p in store.list_participants(conn, access.case.id) if p.org_id == org.id)


def _participant(conn: Connection, access: CaseAccess, org_ref: str) -> accounts_store.OrgRecord:
    org = resolve_org(conn, org_ref)
    if store.participant_role(conn, access.case.id, org.id) is None:
        raise NotFound(f"{org.name} takes no part in this case", org=org.name)
    if org.id == access.case.owner_org_id:
        raise Conflict("the owner org always takes part as lead", org=org.name)
    return org


def change_participant_role(
    conn: Connection, principal: Principal, ref: str, org_ref: str, role: str
) -> store.ParticipantRow:
    """Change an org's role in the case (leads only; the owner org stays lead)."""
    access = load_case(conn, principal, ref)
    require(may_add_participant(principal, access.role), "change roles in this case")
    wanted = _role(role)
    org = _participant(conn, access, org_ref)
    store.set_participant_role(conn, access.case.id, org.id, wanted)
    note_change(
        conn,
        principal,
        access.case.id,
        "case.participant.role",
        f"{org.name} is now {wanted}",
        {"org": org.id, "org_name": org.name, "role": wanted},
    )
    return next(p for p in store.list_participants(conn, access.case.id) if p.org_id == org.id)


def remove_participant(conn: Connection, principal: Principal, ref: str, org_ref: str) -> None:
    """Remove an org from the case (leads only; never the owner org). Its users lose their
    assignments in the case."""
    access = load_case(conn, principal, ref)
    require(may_add_participant(principal, access.role), "remove organizations from this case")
    org = _participant(conn, access, org_ref)
    store.remove_participant(conn, access.case.id, org.id)
    note_change(
        conn,
        principal,
        access.case.id,
        "case.participant.remove",
        f"{org.name} left the case",
        {"org": org.id, "org_name": org.name},
    )
