"""Request and response bodies of ``/api/v1/cases``, ``/tasks`` and ``/case-templates``.

Text fields come back exactly as they were sent: HTML in them is text, for clients to escape.
Times are RFC 3339 UTC strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from qalqan.cases.activity import CasePage
from qalqan.cases.service import PAP_LEVELS, SEVERITIES, CaseSummary
from qalqan.cases.templates import CaseTemplate
from qalqan.domain.handling import TLP
from qalqan.store.cases import OPEN_TASK_STATUSES, ParticipantRow, TaskRow

__all__ = [
    "AssigneePublic",
    "CaseCommentCreate",
    "CaseCommentPage",
    "CaseCommentPublic",
    "CaseCreate",
    "CaseDetail",
    "CaseListPage",
    "CaseObservableAdd",
    "CaseObservablePage",
    "CaseObservablePublic",
    "CasePublic",
    "CaseStatusChange",
    "CaseTaskCreate",
    "CaseTaskPage",
    "CaseTaskPublic",
    "CaseTaskUpdate",
    "CaseTemplatePublic",
    "CaseTimelineCreate",
    "CaseTimelinePage",
    "CaseTimelinePublic",
    "CaseUpdate",
    "CorrelationSummary",
    "ParticipantAdd",
    "ParticipantPublic",
    "TaskLogCreate",
    "TaskLogPublic",
    "iso",
]

_TITLE = 300
_TEXT = 20_000
_SEVERITY_NAMES = {v: k for k, v in SEVERITIES.items()}
_PAP_NAMES = {v: k for k, v in PAP_LEVELS.items()}


def iso(us: int | None) -> str | None:
    """µs since the epoch as an RFC 3339 UTC string."""
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseCreate(_Body):
    title: str = Field(min_length=1, max_length=_TITLE)
    description: str = Field(default="", max_length=_TEXT)
    template: str | None = Field(
        default=None,
        max_length=50,
        description="ransomware, phishing-campaign, ddos, data-leak or online-fraud",
    )
    severity: str | None = Field(default=None, max_length=20, description="low … critical, 1-4")
    tlp: str | None = Field(default=None, max_length=20, description="default amber")
    pap: str | None = Field(default=None, max_length=20, description="default amber")
    labels: list[str] = Field(default_factory=list, max_length=50)
    techniques: list[str] = Field(default_factory=list, max_length=200)
    custom_fields: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, max_length=50
    )


class CaseUpdate(_Body):
    """Fields to change; absent ones stay. ``labels`` and ``assignees`` replace the set."""

    title: str | None = Field(default=None, min_length=1, max_length=_TITLE)
    description: str | None = Field(default=None, max_length=_TEXT)
    severity: str | None = Field(default=None, max_length=20)
    tlp: str | None = Field(default=None, max_length=20)
    pap: str | None = Field(default=None, max_length=20)
    labels: list[str] | None = Field(default=None, max_length=50)
    techniques: list[str] | None = Field(default=None, max_length=200)
    custom_fields: dict[str, str | int | float | bool | None] | None = Field(
        default=None, max_length=50
    )
    assignees: list[str] | None = Field(
        default=None, max_length=100, description="user ids or emails of participating orgs"
    )


class CaseStatusChange(_Body):
    status: str = Field(max_length=20, description="new, in-progress, on-hold, resolved, closed")
    resolution: str | None = Field(
        default=None, max_length=_TEXT, description="needed for resolved and closed"
    )


class ParticipantAdd(_Body):
    org: str = Field(min_length=1, max_length=300, description="org id or name")
    role: str = Field(
        default="contributor", max_length=20, description="lead, contributor, observer"
    )


class CaseTaskCreate(_Body):
    title: str = Field(min_length=1, max_length=_TITLE)
    description: str = Field(default="", max_length=_TEXT)
    assignee: str | None = Field(default=None, max_length=320, description="user id or email")
    org: str | None = Field(default=None, max_length=300, description="org id or name")
    due: str | None = Field(default=None, max_length=40, description="RFC 3339 time or date")


class CaseTaskUpdate(_Body):
    """Fields to change; ``""`` clears ``assignee``, ``org`` or ``due``."""

    title: str | None = Field(default=None, min_length=1, max_length=_TITLE)
    description: str | None = Field(default=None, max_length=_TEXT)
    status: str | None = Field(
        default=None, max_length=20, description="open, in-progress, done, cancelled"
    )
    assignee: str | None = Field(default=None, max_length=320)
    org: str | None = Field(default=None, max_length=300)
    due: str | None = Field(default=None, max_length=40)


class TaskLogCreate(_Body):
    text: str = Field(min_length=1, max_length=_TEXT)


class CaseTimelineCreate(_Body):
    text: str = Field(min_length=1, max_length=_TEXT)
    event_time: str | None = Field(
        default=None, max_length=40, description="when it happened (RFC 3339)"
    )


class CaseCommentCreate(_Body):
    body: str = Field(min_length=1, max_length=_TEXT, description="may mention @<org name>")


class CaseObservableAdd(_Body):
    value: str = Field(min_length=1, max_length=2000)
    kind: str | None = Field(default=None, max_length=40, description="guessed when absent")
    stix_id: str | None = Field(default=None, max_length=300, description="object it came from")
    note: str = Field(default="", max_length=2000)


class CasePublic(BaseModel):
    id: str
    number: int
    title: str
    description: str
    severity: str
    tlp: str
    pap: str
    status: str
    resolution: str | None
    owner_org_id: str
    template: str | None
    labels: list[str]
    techniques: list[str]
    custom_fields: dict[str, Any]
    created: str
    created_by: str | None
    updated: str
    closed: str | None

    @classmethod
    def of(cls, summary: CaseSummary) -> CasePublic:
        row = summary.row
        return cls(
            id=row.id,
            number=row.number,
            title=row.title,
            description=row.description,
            severity=_SEVERITY_NAMES.get(row.severity, str(row.severity)),
            tlp=TLP(row.tlp).label.lower(),
            pap=_PAP_NAMES.get(row.pap, str(row.pap)),
            status=row.status,
            resolution=row.resolution,
            owner_org_id=row.owner_org_id,
            template=row.template,
            labels=summary.labels,
            techniques=orjson.loads(row.attack_techniques),
            custom_fields=orjson.loads(row.custom_fields),
            created=iso(row.created_at) or "",
            created_by=row.created_by,
            updated=iso(row.updated_at) or "",
            closed=iso(row.closed_at),
        )


class CaseListPage(BaseModel):
    items: list[CasePublic]
    next: str | None = Field(description="cursor of the following page, if any")


class ParticipantPublic(BaseModel):
    org_id: str
    org_name: str
    role: str
    added: str

    @classmethod
    def of(cls, p: ParticipantRow) -> ParticipantPublic:
        return cls(org_id=p.org_id, org_name=p.org_name, role=p.role, added=iso(p.added_at) or "")


class AssigneePublic(BaseModel):
    user_id: str
    email: str
    org_id: str


class CaseTaskPublic(BaseModel):
    id: str
    case_id: str
    title: str
    description: str
    status: str
    org_id: str | None
    assignee_user_id: str | None
    due: str | None
    overdue: bool
    position: int
    created: str
    updated: str
    closed: str | None

    @classmethod
    def of(cls, t: TaskRow, now: int) -> CaseTaskPublic:
        return cls(
            id=t.id,
            case_id=t.case_id,
            title=t.title,
            description=t.description,
            status=t.status,
            org_id=t.org_id,
            assignee_user_id=t.assignee_user_id,
            due=iso(t.due_at),
            overdue=t.status in OPEN_TASK_STATUSES and t.due_at is not None and t.due_at < now,
            position=t.position,
            created=iso(t.created_at) or "",
            updated=iso(t.updated_at) or "",
            closed=iso(t.closed_at),
        )


class CaseTaskPage(BaseModel):
    items: list[CaseTaskPublic]
    next: str | None


class TaskLogPublic(BaseModel):
    id: int
    task_id: str
    at: str
    user_id: str | None
    org_id: str | None
    text: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> TaskLogPublic:
        return cls(**{**row, "at": iso(row["at"]) or ""})


class CaseTimelinePublic(BaseModel):
    id: int
    at: str
    event_time: str | None
    kind: str = Field(description="auto or manual")
    action: str
    actor_user_id: str | None
    actor_org_id: str | None
    text: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: dict[str, Any]) -> CaseTimelinePublic:
        return cls(
            id=row["id"],
            at=iso(row["at"]) or "",
            event_time=iso(row["event_time"]),
            kind=row["kind"],
            action=row["action"],
            actor_user_id=row["actor_user_id"],
            actor_org_id=row["actor_org_id"],
            text=row["text"],
            detail=orjson.loads(row["detail"] or "{}"),
        )


class CaseTimelinePage(BaseModel):
    items: list[CaseTimelinePublic]
    next: str | None


class CaseCommentPublic(BaseModel):
    id: int
    at: str
    author_user_id: str | None
    author_org_id: str
    body: str
    mentions: list[str] = Field(description="ids of the participating orgs mentioned")

    @classmethod
    def of(cls, row: dict[str, Any]) -> CaseCommentPublic:
        return cls(
            id=row["id"],
            at=iso(row["at"]) or "",
            author_user_id=row["author_user_id"],
            author_org_id=row["author_org_id"],
            body=row["body"],
            mentions=orjson.loads(row["mentions"] or "[]"),
        )


class CaseCommentPage(BaseModel):
    items: list[CaseCommentPublic]
    next: str | None


class CorrelationSummary(BaseModel):
    """What the caller may know about the value beyond the case."""

    objects: int
    orgs: int
    countries: list[str]
    over_correlating: bool
    sightings: int
    sighting_orgs: int


class CaseObservablePublic(BaseModel):
    kind: str
    value: str
    stix_id: str | None
    note: str
    added: str
    added_by: str | None
    added_by_org: str | None
    correlation: CorrelationSummary | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> CaseObservablePublic:
        found = row.get("correlation")
        return cls(
            kind=row["kind"],
            value=row["value"],
            stix_id=row["stix_id"],
            note=row["note"],
            added=iso(row["added_at"]) or "",
            added_by=row["added_by"],
            added_by_org=row["added_by_org"],
            correlation=CorrelationSummary(**found) if found else None,
        )


class CaseObservablePage(BaseModel):
    items: list[CaseObservablePublic]
    next: str | None


class CaseDetail(BaseModel):
    """The case page: the case, who takes part, tasks, latest timeline, observables."""

    case: CasePublic
    your_role: str = Field(description="your org's role in the case")
    participants: list[ParticipantPublic]
    assignees: list[AssigneePublic]
    tasks: list[CaseTaskPublic]
    timeline: list[CaseTimelinePublic] = Field(description="the latest entries, newest first")
    observables: list[CaseObservablePublic] = Field(description="the first 50")

    @classmethod
    def of(cls, page: CasePage, now: int) -> CaseDetail:
        return cls(
            case=CasePublic.of(CaseSummary(page.case, page.labels)),
            your_role=page.role,
            participants=[ParticipantPublic.of(p) for p in page.participants],
            assignees=[AssigneePublic(user_id=u, email=e, org_id=o) for u, e, o in page.assignees],
            tasks=[CaseTaskPublic.of(t, now) for t in page.tasks],
            timeline=[CaseTimelinePublic.of(r) for r in page.timeline],
            observables=[CaseObservablePublic.of(r) for r in page.observables],
        )


class CaseTemplatePublic(BaseModel):
    name: str
    title: str
    description: str
    severity: str
    labels: list[str]
    tasks: list[str]

    @classmethod
    def of(cls, t: CaseTemplate) -> CaseTemplatePublic:
        return cls(
            name=t.name,
            title=t.title,
            description=t.description,
            severity=_SEVERITY_NAMES[t.severity],
            labels=list(t.labels),
            tasks=list(t.tasks),
        )
