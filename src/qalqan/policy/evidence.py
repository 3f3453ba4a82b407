"""Who may touch a case's evidence: the orgs taking part in the case, and the org an item was
released to as an attachment to the answer of its request for assistance; no one else.

An org outside the case is told nothing (its requests are answered as if the item did not
exist); inside, every member except machine accounts may read and download, and writers of a
lead or contributor org may add evidence and record transfers. Observers read only. An org
that requested assistance and got an item attached to the answer may read and download that
item (not the rest of the case's evidence), whether or not it takes part in the case.
"""

from __future__ import annotations

from qalqan.domain.principal import Principal, Role

__all__ = ["may_add_evidence", "may_read_attached_evidence", "may_read_evidence"]

_READERS = frozenset({Role.NODE_ADMIN, Role.ORG_ADMIN, Role.ANALYST, Role.READER})
_WRITERS = frozenset({Role.NODE_ADMIN, Role.ORG_ADMIN, Role.ANALYST})
_WRITING_PARTICIPANTS = frozenset({"lead", "contributor"})


def may_read_evidence(principal: Principal, participant_role: str | None) -> bool:
    """May the principal see and download evidence of a case its org takes part in as
    ``participant_role`` (None: not at all)?"""
    return participant_role is not None and principal.role in _READERS


def may_read_attached_evidence(principal: Principal, attached_for_org: bool) -> bool:
    """May the principal see and download an item that, as ``attached_for_org`` says, is
    attached to the answer of a request for assistance the principal's org made?"""
    return attached_for_org and principal.role in _READERS


def may_add_evidence(principal: Principal, participant_role: str | None) -> bool:
    """May the principal add evidence to such a case, or record its custody?"""
    return participant_role in _WRITING_PARTICIPANTS and principal.role in _WRITERS
