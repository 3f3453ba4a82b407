"""Request and response bodies of ``/api/v1/rfas``: requests for assistance between orgs.

Text fields come back exactly as they were sent: HTML in them is text, for clients to escape.
Times are RFC 3339 UTC strings.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qalqan.assistance.service import MAX_ATTACHMENTS, MAX_OBSERVABLES, TEXT_MAX, TITLE_MAX

__all__ = [
    "RfaAttach",
    "RfaAttachmentPublic",
    "RfaCreate",
    "RfaDetail",
    "RfaEventPublic",
    "RfaObservablePublic",
    "RfaOrgPublic",
    "RfaPage",
    "RfaPublic",
    "RfaTransition",
    "RfaUpdate",
]

_KINDS = "information-request, data-preservation, takedown, blocking, attribution-support, other"
_DUE = "answer requested by: an RFC 3339 time or a date, in the future"
_EVIDENCE_IDS = "ids of evidence items of the request's case (duplicates are ignored)"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RfaCreate(_Body):
    to: str = Field(min_length=1, max_length=300, description="the recipient org (id or name)")
    kind: str = Field(max_length=30, description=_KINDS)
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    body: str = Field(default="", max_length=TEXT_MAX, description="what is asked, in detail")
    legal_basis: str = Field(default="", max_length=TEXT_MAX)
    due: str | None = Field(default=None, max_length=100, description=_DUE)
    priority: str = Field(default="medium", max_length=20, description="low … urgent")
    case: str | None = Field(default=None, max_length=100, description="a case your org is in")
    observables: list[str] = Field(
        default_factory=list,
        max_length=MAX_OBSERVABLES,
        description="values as typed or pasted; defanged ones are read too",
    )
    send: bool = Field(default=False, description="send at once instead of keeping a draft")


class RfaUpdate(_Body):
    """Fields to change on a draft; ``due`` and ``case`` null clear them."""

    to: str | None = Field(default=None, min_length=1, max_length=300)
    kind: str | None = Field(default=None, max_length=30, description=_KINDS)
    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    body: str | None = Field(default=None, max_length=TEXT_MAX)
    legal_basis: str | None = Field(default=None, max_length=TEXT_MAX)
    due: str | None = Field(default=None, max_length=100, description=_DUE)
    priority: str | None = Field(default=None, max_length=20)
    case: str | None = Field(default=None, max_length=100)
    observables: list[str] | None = Field(default=None, max_length=MAX_OBSERVABLES)


class RfaTransition(_Body):
    to: str = Field(max_length=20, description="the next status")
    note: str = Field(default="", max_length=TEXT_MAX, description="why; required to decline")
    answer: str | None = Field(default=None, max_length=TEXT_MAX, description="to answer")
    attachments: list[str] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description=f"with the answer: {_EVIDENCE_IDS}",
    )


class RfaAttach(_Body):
    evidence: list[str] = Field(min_length=1, max_length=MAX_ATTACHMENTS, description=_EVIDENCE_IDS)


class RfaOrgPublic(BaseModel):
    id: str
    name: str | None


class RfaObservablePublic(BaseModel):
    kind: str
    value: str


class RfaEventPublic(BaseModel):
    at: str
    from_: str | None = Field(alias="from")
    to: str
    actor_org: str | None
    actor_user: str | None
    note: str


class RfaAttachmentPublic(BaseModel):
    evidence: str = Field(description="the evidence item's id")
    name: str
    sha256: str
    size: int
    attached_at: str
    attached_org: RfaOrgPublic
    links: dict[str, str] = Field(description="the item, and its content to download")


class RfaPublic(BaseModel):
    id: str
    number: int
    kind: str
    title: str
    body: str
    legal_basis: str
    priority: str
    status: str
    overdue: bool = Field(description="past its deadline and still awaiting an answer")
    requester: RfaOrgPublic
    recipient: RfaOrgPublic
    side: str | None = Field(description="requester or recipient: your org's side")
    case: str | None
    due: str | None
    answer: str | None
    created: str
    updated: str
    sent: str | None
    acknowledged: str | None
    answered: str | None
    closed: str | None
    allowed: list[str] = Field(description="the statuses you may move the request to")
    links: dict[str, str]


class RfaDetail(RfaPublic):
    observables: list[RfaObservablePublic]
    events: list[RfaEventPublic] = Field(
        description="every status change and attachment, oldest first"
    )
    attachments: list[RfaAttachmentPublic] = Field(
        description="evidence of the request's case attached to the answer"
    )


class RfaPage(BaseModel):
    items: list[RfaPublic]
    next: str | None = Field(description="pass as cursor for the next page")
