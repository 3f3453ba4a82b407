"""What happens around a case: its timeline (automatic entries and manual ones with the time the
event happened), comments with ``@org`` mentions, and observables linked to intelligence, each
shown with its correlations and sightings; and the case page that gathers it all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from qalqan import audit
from qalqan.cases.base import (
    LONG_TEXT_MAX,
    check_text,
    load_case,
    note_change,
    optional_text,
    require,
)
from qalqan.domain.observables import InvalidObservable, Observable, parse_value
from qalqan.domain.principal import Principal
from qalqan.errors import Conflict, InvalidInput, NotFound
from qalqan.intel import correlation
from qalqan.intel.reading import get_versions
from qalqan.policy import may_comment_on_case, may_edit_case
from qalqan.store import cases as store
from qalqan.store.clock import now_us

__all__ = [
    "CORRELATED_OBSERVABLES",
    "CasePage",
    "add_comment",
    "add_observable",
    "add_timeline_entry",
    "case_page",
    "comments",
    "mentioned_orgs",
    "observables",
    "remove_observable",
    "timeline",
]

# A case page shows correlations of its first observables only: each costs an index lookup.
CORRELATED_OBSERVABLES = 50
_PAGE_TASKS = 500
_PAGE_TIMELINE = 50
_NOTE_MAX = 2000
_VALUE_BYTES_MAX = 2000
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class CasePage:
    """Everything the page of one case shows."""

    case: store.CaseRow
    role: str
    labels: list[str]
    participants: list[store.ParticipantRow]
    assignees: list[tuple[str, str, str]]
    tasks: list[store.TaskRow]
    timeline: list[dict[str, Any]]
    observables: list[dict[str, Any]]


def _stored_observable(kind: str, value: str) -> Observable:
    return parse_value(value, kind)


def _with_correlation(
    conn: Connection, principal: Principal, rows: list[dict[str, Any]], list_limit: int
) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = []
    for position, row in enumerate(rows):
        entry = dict(row)
        entry["correlation"] = None
        if position < CORRELATED_OBSERVABLES:
            try:
                wanted = _stored_observable(row["kind"], row["value"])
            except InvalidObservable:
                wanted = None
            if wanted is not None:
                found = correlation.related(
                    conn, principal, wanted, list_limit=list_limit, with_items=False
                )
                entry["correlation"] = {
                    "objects": found.total,
                    "orgs": len(found.orgs),
                    "countries": [c.country for c in found.countries],
                    "over_correlating": found.over_correlating,
                    "sightings": sum(s.sightings for s in found.sightings),
                    "sighting_orgs": len({s.org_id for s in found.sightings}),
                }
        shown.append(entry)
    return shown


def case_page(
    conn: Connection, principal: Principal, ref: str, *, list_limit: int = 1000
) -> CasePage:
    """The case with its participants, assignees, tasks, latest timeline entries and
    observables (the first :data:`CORRELATED_OBSERVABLES` with their correlation summary)."""
    access = load_case(conn, principal, ref)
    case_id = access.case.id
    rows = store.list_observables(conn, case_id, limit=CORRELATED_OBSERVABLES)
    return CasePage(
        case=access.case,
        role=access.role,
        labels=store.case_labels_of(conn, [case_id])[case_id],
        participants=store.list_participants(conn, case_id),
        assignees=store.list_assignees(conn, case_id),
        tasks=store.tasks_of_case(conn, case_id, _PAGE_TASKS),
        timeline=store.list_timeline(conn, case_id, limit=_PAGE_TIMELINE),
        observables=_with_correlation(conn, principal, rows, list_limit),
    )


def timeline(
    conn: Connection, principal: Principal, ref: str, *, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    """Timeline entries of the case, newest first."""
    access = load_case(conn, principal, ref)
    return store.list_timeline(conn, access.case.id, limit=limit, before=before)


def add_timeline_entry(
    conn: Connection, principal: Principal, ref: str, text: str, event_time: int | None
) -> dict[str, Any]:
    """A manual timeline entry: something that happened at ``event_time`` (µs), told in
    ``text``. Participants that may comment may add them."""
    access = load_case(conn, principal, ref)
    require(may_comment_on_case(principal, access.role), "add to the timeline of this case")
    body = check_text("text", text, LONG_TEXT_MAX, required=True)
    at = now_us()
    values = {
        "case_id": access.case.id,
        "at": at,
        "event_time": event_time,
        "kind": "manual",
        "action": "case.timeline.add",
        "actor_user_id": principal.user_id,
        "actor_org_id": principal.org_id,
        "text": body,
        "detail": "{}",
    }
    entry_id = store.add_timeline(conn, values)
    audit.record(
        conn, principal, "case.timeline.add", target=access.case.id, detail={"entry": entry_id}
    )
    store.touch_case(conn, access.case.id, at)
    return {"id": entry_id, **values}


def mentioned_orgs(body: str, participants: list[store.ParticipantRow]) -> list[str]:
    """Ids of the participating orgs ``body`` mentions as ``@<org name>`` (any case; the name
    must end at a character that cannot continue it)."""
    folded = body.casefold()
    found: list[str] = []
    for p in sorted(participants, key=lambda p: -len(p.org_name)):
        needle = "@" + p.org_name.casefold()
        start = folded.find(needle)
        while start != -1:
            end = start + len(needle)
            if end == len(folded) or folded[end] not in _NAME_CHARS:
                found.append(p.org_id)
                break
            start = folded.find(needle, end)
    return sorted(set(found), key=found.index)


def add_comment(conn: Connection, principal: Principal, ref: str, body: str) -> dict[str, Any]:
    """Comment on the case; ``@org`` mentions of participating orgs are stored with it."""
    access = load_case(conn, principal, ref)
    require(may_comment_on_case(principal, access.role), "comment on this case")
    text = check_text("body", body, LONG_TEXT_MAX, required=True)
    mentions = mentioned_orgs(text, store.list_participants(conn, access.case.id))
    at = now_us()
    values = {
        "case_id": access.case.id,
        "at": at,
        "author_user_id": principal.user_id,
        "author_org_id": principal.org_id,
        "body": text,
        "mentions": orjson.dumps(mentions).decode(),
    }
    comment_id = store.add_comment(conn, values)
    note_change(
        conn,
        principal,
        access.case.id,
        "case.comment",
        "comment added",
        {"comment": comment_id, "mentions": mentions},
        at=at,
    )
    return {"id": comment_id, **values}


def comments(
    conn: Connection, principal: Principal, ref: str, *, limit: int, after: int | None = None
) -> list[dict[str, Any]]:
    """Comments on the case, oldest first."""
    access = load_case(conn, principal, ref)
    return store.list_comments(conn, access.case.id, limit=limit, after=after)


def _parse(value: str, kind: str | None) -> Observable:
    check_text("value", value, _VALUE_BYTES_MAX, required=True)
    if kind is not None:
        check_text("kind", kind, 40)
    try:
        observable = parse_value(value, kind)
    except (InvalidObservable, ValueError) as exc:
        raise InvalidInput(f"value: {exc}", field="value") from None
    # The value is part of an index key, whose size databases bound.
    if len(observable.value.encode()) > _VALUE_BYTES_MAX:
        raise InvalidInput(f"value: longer than {_VALUE_BYTES_MAX} bytes", field="value")
    return observable


def add_observable(
    conn: Connection,
    principal: Principal,
    ref: str,
    value: str,
    *,
    kind: str | None = None,
    stix_id: str | None = None,
    note: str = "",
    list_limit: int = 1000,
) -> dict[str, Any]:
    """Link an observable (normalized) to the case, optionally with the intelligence object it
    came from (which the caller must be able to see); returns it with its correlation
    summary. Conflict when the case already has it."""
    access = load_case(conn, principal, ref)
    require(may_edit_case(principal, access.role), "add observables to this case")
    observable = _parse(value, kind)
    if stix_id is not None:
        check_text("stix_id", stix_id, 300)
        try:
            get_versions(conn, principal, stix_id, "last")
        except (NotFound, InvalidInput):
            raise InvalidInput(
                f"stix_id: no intelligence object {stix_id[:80]!r}", field="stix_id"
            ) from None
    text = optional_text("note", note, _NOTE_MAX) or ""
    at = now_us()
    values = {
        "case_id": access.case.id,
        "kind": observable.kind,
        "value": observable.value,
        "stix_id": stix_id,
        "note": text,
        "added_at": at,
        "added_by": principal.user_id,
        "added_by_org": principal.org_id,
    }
    if not store.add_observable(conn, values):
        raise Conflict(
            f"the case already has {observable.kind} {observable.value[:80]}",
            kind=observable.kind,
            value=observable.value,
        )
    note_change(
        conn,
        principal,
        access.case.id,
        "case.observable.add",
        f"observable added: {observable.kind} {observable.value}",
        {"kind": observable.kind, "value": observable.value, "stix_id": stix_id},
        at=at,
    )
    return _with_correlation(conn, principal, [values], list_limit)[0]


def remove_observable(
    conn: Connection, principal: Principal, ref: str, value: str, kind: str | None = None
) -> None:
    """Unlink an observable from the case; NotFound when the case does not have it."""
    access = load_case(conn, principal, ref)
    require(may_edit_case(principal, access.role), "remove observables from this case")
    observable = _parse(value, kind)
    if not store.remove_observable(conn, access.case.id, observable.kind, observable.value):
        raise NotFound(f"the case has no {observable.kind} {observable.value[:80]}")
    note_change(
        conn,
        principal,
        access.case.id,
        "case.observable.remove",
        f"observable removed: {observable.kind} {observable.value}",
        {"kind": observable.kind, "value": observable.value},
    )


def observables(
    conn: Connection,
    principal: Principal,
    ref: str,
    *,
    limit: int,
    after: tuple[int, str, str] | None = None,
    list_limit: int = 1000,
) -> list[dict[str, Any]]:
    """The case's observables in the order they were added, each with its correlation summary
    (for the first :data:`CORRELATED_OBSERVABLES` of the page)."""
    access = load_case(conn, principal, ref)
    rows = store.list_observables(conn, access.case.id, limit=limit, after=after)
    return _with_correlation(conn, principal, rows, list_limit)
