"""Who sees and who moves a request for assistance (RFA).

An RFA concerns two orgs only: the *requester* that asks and the *recipient* that answers.

- Reading: users of the requester org see its RFAs from the first draft on; users of the
  recipient org see an RFA once it has been sent. Nobody else does: node admins of other orgs
  and machine accounts of peers (``sync``) included. Every read path filters with
  :func:`rfa_visible_to` in its SQL, so an RFA the caller may not see is indistinguishable from
  one that does not exist.
- Writing: only people who work requests (node admins, org admins and analysts of the org
  concerned; never readers, never ``sync``) create, edit or move an RFA, and only on their own
  side of the workflow (:data:`TRANSITIONS`):

  ====================  ==========================================  ===========
  from                  to                                          who
  ====================  ==========================================  ===========
  draft                 sent, withdrawn                             requester
  sent                  acknowledged, declined                      recipient
  sent                  withdrawn                                   requester
  acknowledged          in-progress, answered, declined             recipient
  acknowledged          withdrawn                                   requester
  in-progress           answered, declined                          recipient
  in-progress           withdrawn                                   requester
  answered, declined,   (none: final)
  withdrawn
  ====================  ==========================================  ===========

  Drafts are edited by the requester only (:func:`may_edit_rfa`).
- Attachments: the recipient's writers attach evidence of the request's case to their answer,
  while they work the request (acknowledged or in progress) or in the step to answered
  (:func:`may_attach_to_rfa`).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, FromClause, and_, false, or_

from qalqan.domain.principal import Principal, Role

__all__ = [
    "ATTACHING_STATUSES",
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "STATUSES",
    "TRANSITIONS",
    "RfaSide",
    "allowed_next",
    "may_attach_to_rfa",
    "may_create_rfa",
    "may_edit_rfa",
    "may_move_rfa",
    "rfa_visible_to",
    "side_of",
]


class RfaSide(StrEnum):
    """Which end of a request an org is on."""

    REQUESTER = "requester"
    RECIPIENT = "recipient"


STATUSES: tuple[str, ...] = (
    "draft",
    "sent",
    "acknowledged",
    "in-progress",
    "answered",
    "declined",
    "withdrawn",
)
# Awaiting an answer: the statuses in which a passed deadline makes a request overdue.
OPEN_STATUSES: tuple[str, ...] = ("sent", "acknowledged", "in-progress")
FINAL_STATUSES: tuple[str, ...] = ("answered", "declined", "withdrawn")
# Being worked by the recipient: the statuses in which evidence may be attached to the answer.
ATTACHING_STATUSES: tuple[str, ...] = ("acknowledged", "in-progress")

_R, _A = RfaSide.REQUESTER, RfaSide.RECIPIENT
TRANSITIONS: dict[str, dict[str, RfaSide]] = {
    "draft": {"sent": _R, "withdrawn": _R},
    "sent": {"acknowledged": _A, "declined": _A, "withdrawn": _R},
    "acknowledged": {"in-progress": _A, "answered": _A, "declined": _A, "withdrawn": _R},
    "in-progress": {"answered": _A, "declined": _A, "withdrawn": _R},
    "answered": {},
    "declined": {},
    "withdrawn": {},
}
_WORKER_ROLES = frozenset({Role.NODE_ADMIN, Role.ORG_ADMIN, Role.ANALYST})
_READER_ROLES = _WORKER_ROLES | {Role.READER}


def rfa_visible_to(principal: Principal, rfas: FromClause) -> ColumnElement[bool]:
    """SQL: the RFAs in ``rfas`` the principal may read (its org's, drafts only to their
    requester)."""
    if principal.role not in _READER_ROLES:
        return false()
    return or_(
        rfas.c.requester_org_id == principal.org_id,
        and_(rfas.c.recipient_org_id == principal.org_id, rfas.c.status != "draft"),
    )


def side_of(principal: Principal, requester_org_id: str, recipient_org_id: str) -> RfaSide | None:
    """The side the principal's org is on, or None when it is on neither."""
    if principal.org_id == requester_org_id:
        return RfaSide.REQUESTER
    if principal.org_id == recipient_org_id:
        return RfaSide.RECIPIENT
    return None


def may_create_rfa(principal: Principal) -> bool:
    """Whether the principal may draft a request on behalf of its org."""
    return principal.role in _WORKER_ROLES


def may_edit_rfa(principal: Principal, side: RfaSide | None, status: str) -> bool:
    """Whether the principal may change the content of a request: a draft of its own org."""
    return principal.role in _WORKER_ROLES and side is RfaSide.REQUESTER and status == "draft"


def allowed_next(status: str) -> list[str]:
    """The statuses a request in ``status`` may move to next, by anyone, in workflow order."""
    return [s for s in STATUSES if s in TRANSITIONS.get(status, {})]


def may_move_rfa(principal: Principal, side: RfaSide | None, status: str, to: str) -> bool:
    """Whether the principal may move a request from ``status`` to ``to`` (a legal step that
    belongs to its side, taken by someone who works requests)."""
    owner = TRANSITIONS.get(status, {}).get(to)
    return owner is not None and owner is side and principal.role in _WORKER_ROLES


def may_attach_to_rfa(principal: Principal, side: RfaSide | None, status: str) -> bool:
    """Whether the principal may attach evidence to the answer of a request in ``status``: a
    writer of the recipient org, while the request is being worked (the step to answered
    starts from such a status too)."""
    return (
        principal.role in _WORKER_ROLES
        and side is RfaSide.RECIPIENT
        and status in ATTACHING_STATUSES
    )
