"""The handling rules, decided in one place.

Distribution says *who receives* an object; TLP says what a receiver may *do* with it. Every
read path filters with :func:`visible_to` inside its SQL, before paging; writes ask
:func:`may_write`; federation asks :func:`releasable_to_peer`; exports ask :func:`exportable`
(one object) and filter with :func:`export_predicate` (active indicators, in SQL); sweeps use
:func:`sweep_predicate` (active indicators at any TLP: what is matched stays on the node) and
read only their own org's runs (:func:`runs_visible_to`). An indicator whose confidence score
has decayed below its cut-off (``intel.scoring``) is not active.

Besides its distribution, a version may name one *recipient* org that may also read it: a
sighting shared back goes to the owner of the indicator it is about, and to no one else.

Cases are read by their participating orgs only (:func:`case_visible_to`), node admins of other
orgs included; the owner org is always a participant with role ``lead``. A ``TLP:RED`` case is
narrower still: inside the participating orgs, only the users named in it (its creator, its
assignees, the assignees of its tasks) and the orgs' administrators read it. What a participant
may do follows its role in the case and the user's role: :func:`may_edit_case`,
:func:`may_comment_on_case`, :func:`may_add_participant`, :func:`may_reopen_case`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, FromClause, and_, exists, false, or_

from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Principal, Role
from qalqan.store.tables import (
    case_assignees,
    case_participants,
    case_tasks,
    indicator_scores,
    sharing_group_members,
)

__all__ = [
    "BROADCAST",
    "DEFAULT_EXPORT_CEILING",
    "Handling",
    "PeerLink",
    "can_administer_node",
    "can_administer_org",
    "case_visible_to",
    "collection_access",
    "export_ceiling",
    "export_predicate",
    "exportable",
    "handling_problem",
    "is_visible",
    "may_add_participant",
    "may_comment_on_case",
    "may_edit_case",
    "may_manage_feed",
    "may_name_feed",
    "may_read_server_files",
    "may_reopen_case",
    "may_run_feed",
    "may_write",
    "named_in_case",
    "readable_by_org",
    "releasable_to_peer",
    "runs_visible_to",
    "sighting_recipient",
    "sweep_predicate",
    "visible_to",
]

# Distributions every org on the node receives.
BROADCAST: tuple[str, ...] = (Distribution.NODE, Distribution.CONNECTED, Distribution.ALL)
DEFAULT_EXPORT_CEILING = TLP.GREEN
# The highest ceiling an export may ask for: RED never leaves by export.
_HIGHEST_EXPORT_CEILING = TLP.AMBER_STRICT
_RED_DISTRIBUTIONS = (Distribution.ORGANIZATION, Distribution.SHARING_GROUP)
_WRITER_ROLES = frozenset({Role.NODE_ADMIN, Role.ORG_ADMIN, Role.ANALYST, Role.SYNC})
# People who work cases: machine accounts of peers and readers do not.
_CASE_WORKER_ROLES = frozenset({Role.NODE_ADMIN, Role.ORG_ADMIN, Role.ANALYST})
# Who reads every TLP:RED case their org takes part in. A node admin administers every org's
# users and keys, so hiding a case from one would protect nothing; the local console acts as one.
_RED_CASE_ADMIN_ROLES = frozenset({Role.NODE_ADMIN, Role.ORG_ADMIN})


@dataclass(frozen=True, slots=True)
class Handling:
    """The handling stored beside an object version."""

    owner_org_id: str
    tlp: TLP
    distribution: Distribution
    sharing_group_id: str | None = None
    recipient_org_id: str | None = None


@dataclass(frozen=True, slots=True)
class PeerLink:
    """A federation link as the rules see it: the peer's orgs and the link's TLP ceiling."""

    org_ids: frozenset[str]
    max_tlp: TLP = TLP.AMBER


def handling_problem(
    tlp: TLP, distribution: Distribution, sharing_group_id: str | None
) -> str | None:
    """Why this combination is forbidden, or None if the rules allow it."""
    if distribution is Distribution.SHARING_GROUP and not sharing_group_id:
        return "distribution sharing_group needs a sharing group"
    if distribution is not Distribution.SHARING_GROUP and sharing_group_id:
        return f"a sharing group is only used with distribution sharing_group, not {distribution}"
    if tlp is TLP.RED and distribution not in (
        Distribution.ORGANIZATION,
        Distribution.SHARING_GROUP,
    ):
        return (
            "TLP:RED may only be distributed to the organization or a sharing group, "
            f"not {distribution}"
        )
    return None


def visible_to(principal: Principal, versions: FromClause) -> ColumnElement[bool]:
    """SQL predicate: the ``object_versions`` row (of the table or an alias of it) may be read
    by the principal's org."""
    clauses: list[ColumnElement[bool]] = [
        versions.c.owner_org_id == principal.org_id,
        versions.c.distribution.in_(BROADCAST),
        versions.c.recipient_org_id == principal.org_id,
    ]
    if principal.group_ids:
        clauses.append(
            and_(
                versions.c.distribution == Distribution.SHARING_GROUP.value,
                versions.c.sharing_group_id.in_(sorted(principal.group_ids)),
            )
        )
    return or_(*clauses)


def readable_by_org(versions: FromClause, org_id: ColumnElement[str]) -> ColumnElement[bool]:
    """SQL predicate: the ``object_versions`` row may be read by the org whose id ``org_id``
    holds — a column of another table, for rules about an org other than the caller's (the
    sightings that count toward an indicator's score are those its owner may read)."""
    members = sharing_group_members
    return or_(
        versions.c.owner_org_id == org_id,
        versions.c.distribution.in_(BROADCAST),
        versions.c.recipient_org_id == org_id,
        and_(
            versions.c.distribution == Distribution.SHARING_GROUP.value,
            exists().where(
                members.c.group_id == versions.c.sharing_group_id, members.c.org_id == org_id
            ),
        ),
    )


def is_visible(principal: Principal, handling: Handling) -> bool:
    """The same rule as :func:`visible_to`, for one object already in memory."""
    if handling.owner_org_id == principal.org_id or handling.distribution in BROADCAST:
        return True
    if handling.recipient_org_id is not None and handling.recipient_org_id == principal.org_id:
        return True
    return (
        handling.distribution is Distribution.SHARING_GROUP
        and handling.sharing_group_id in principal.group_ids
    )


def may_write(principal: Principal, owner_org_id: str | None) -> bool:
    """May the principal create intelligence (``owner_org_id`` None), or a new version of an
    object owned by ``owner_org_id``?"""
    if principal.role not in _WRITER_ROLES:
        return False
    return owner_org_id is None or owner_org_id == principal.org_id


def can_administer_node(principal: Principal) -> bool:
    """Node-wide administration: orgs, every user and key, sharing groups of any org."""
    return principal.role is Role.NODE_ADMIN


def can_administer_org(principal: Principal, org_id: str) -> bool:
    """Administration of one org's users, keys and sharing groups."""
    return principal.role is Role.NODE_ADMIN or (
        principal.role is Role.ORG_ADMIN and principal.org_id == org_id
    )


def collection_access(
    principal: Principal, writable: bool, sharing_group_id: str | None
) -> tuple[bool, bool] | None:
    """``(can_read, can_write)`` of a TAXII collection for the principal, or None when the
    collection is not theirs to know of (a sharing group's collection, for non-members).

    What a readable collection shows is still filtered by :func:`visible_to`; writing needs a
    writer role, and what is written gets the writer's org as owner.
    """
    if sharing_group_id is not None and sharing_group_id not in principal.group_ids:
        return None
    return True, writable and may_write(principal, None)


def may_manage_feed(principal: Principal, owner_org_id: str) -> bool:
    """May the principal add, change or remove a feed owned by ``owner_org_id``?"""
    return can_administer_org(principal, owner_org_id)


def may_run_feed(principal: Principal, owner_org_id: str) -> bool:
    """May the principal see a feed owned by ``owner_org_id`` and start a run of it?"""
    return principal.role is Role.NODE_ADMIN or (
        principal.org_id == owner_org_id and principal.role in (Role.ORG_ADMIN, Role.ANALYST)
    )


def may_read_server_files(principal: Principal) -> bool:
    """May the principal point a feed at a ``file://`` path of the server? Node admins only:
    the path is read with the server's rights."""
    return principal.role is Role.NODE_ADMIN


def releasable_to_peer(
    handling: Handling, link: PeerLink, group_org_ids: frozenset[str] = frozenset()
) -> Distribution | None:
    """The distribution an object arrives with at the peer, or None if it must not cross.

    ``group_org_ids`` are the members of the object's sharing group, if it has one.
    """
    if handling.tlp > link.max_tlp:
        return None
    if handling.distribution is Distribution.CONNECTED:
        return Distribution.NODE
    if handling.distribution is Distribution.ALL:
        return Distribution.ALL
    if handling.distribution is Distribution.SHARING_GROUP:
        return Distribution.SHARING_GROUP if link.org_ids & group_org_ids else None
    return None


def exportable(tlp: TLP, ceiling: TLP = DEFAULT_EXPORT_CEILING) -> bool:
    """May an object of ``tlp`` leave the system in an export whose ceiling is ``ceiling``?

    ``RED`` never leaves by export, whatever the ceiling.
    """
    return tlp is not TLP.RED and tlp <= ceiling


def export_ceiling(requested: TLP | None) -> TLP:
    """The TLP ceiling of a detection export: ``requested``, or :data:`DEFAULT_EXPORT_CEILING`.

    Raises ``ValueError`` for ``RED``: nothing at RED leaves by export, so asking for it is a
    mistake to report, not a request to quietly narrow.
    """
    if requested is None:
        return DEFAULT_EXPORT_CEILING
    if requested > _HIGHEST_EXPORT_CEILING:
        raise ValueError(
            "TLP:RED never leaves by export; the highest ceiling is "
            f"{_HIGHEST_EXPORT_CEILING.label.lower()}"
        )
    return requested


def export_predicate(
    versions: FromClause,
    observables: FromClause,
    *,
    now: int,
    ceiling: TLP = DEFAULT_EXPORT_CEILING,
    min_confidence: int | None = None,
) -> ColumnElement[bool]:
    """SQL predicate: the observable of this ``object_versions`` row may go into a detection
    export whose TLP ceiling is ``ceiling``, at time ``now`` (µs).

    Only *active* indicators qualify: the latest version, neither revoked nor withdrawn, meant
    for detection, not expired, not decayed, with a confidence that is unknown or at least
    ``min_confidence``, at a TLP within the ceiling and never RED, and an observable that is on
    no warninglist. Visibility is a separate rule: combine with :func:`visible_to`.
    """
    level = min(ceiling, _HIGHEST_EXPORT_CEILING)
    return and_(
        sweep_predicate(versions, observables, now=now, min_confidence=min_confidence),
        versions.c.tlp <= int(level),
    )


def sweep_predicate(
    versions: FromClause,
    observables: FromClause | None,
    *,
    now: int,
    min_confidence: int | None = None,
) -> ColumnElement[bool]:
    """SQL predicate: the indicator version (and its observable, if ``observables`` is given)
    takes part in a sweep at time ``now`` (µs): the latest version, neither revoked nor
    withdrawn, meant for detection, not expired, not decayed below its score's cut-off, with a
    confidence that is unknown or at least ``min_confidence``, and an observable on no
    warninglist. Any TLP: a sweep matches on the
    node, nothing leaves it. Visibility is a separate rule: combine with :func:`visible_to`.
    """
    clauses: list[ColumnElement[bool]] = [
        versions.c.type == "indicator",
        versions.c.is_latest.is_(True),
        versions.c.revoked.is_(False),
        versions.c.withdrawn.is_(False),
        versions.c.detect.is_(True),
        or_(versions.c.valid_until.is_(None), versions.c.valid_until > now),
    ]
    if observables is not None:
        clauses.append(observables.c.warninglist.is_(None))
    if min_confidence is not None:
        clauses.append(
            or_(versions.c.confidence.is_(None), versions.c.confidence >= min_confidence)
        )
    clauses.append(~_decayed(versions, now))
    return and_(*clauses)


def _decayed(versions: FromClause, now: int) -> ColumnElement[bool]:
    """The indicator's score has fallen below its cut-off by ``now`` (intel.scoring). One
    lookup of its key; an indicator without a score row yet is not decayed."""
    decayed = indicator_scores.alias("decayed")
    return (
        exists()
        .where(decayed.c.stix_id == versions.c.stix_id, decayed.c.decays_at <= now)
        .correlate_except(decayed)
    )


def runs_visible_to(principal: Principal, runs: FromClause) -> ColumnElement[bool]:
    """SQL predicate: a detection run (and its hits) may be read by the principal. Runs are
    about an org's own logs: only that org reads them, node admins of other orgs included."""
    return runs.c.org_id == principal.org_id


def sighting_recipient(
    share: bool, sighting_owner_org_id: str, indicator_owner_org_id: str
) -> str | None:
    """The org a sighting is released to besides its owner: the indicator's owner when the
    sweeping org shares it back, nobody otherwise (or when it sighted its own indicator)."""
    if not share or indicator_owner_org_id == sighting_owner_org_id:
        return None
    return indicator_owner_org_id


def may_name_feed(principal: Principal, owner_org_id: str) -> bool:
    """May the principal name a feed owned by ``owner_org_id`` (e.g. to filter an export by
    it)? Its own org's feeds, or any for node admins: other feeds are as if they did not
    exist."""
    return principal.role is Role.NODE_ADMIN or principal.org_id == owner_org_id


def case_visible_to(principal: Principal, cases_table: FromClause) -> ColumnElement[bool]:
    """SQL predicate: the ``cases`` row (of the table or an alias of it) may be read by the
    principal — its org is one of the case's participants and, if the case is ``TLP:RED``, the
    user is named in it (:func:`named_in_case`) or administers a participating org (org admins;
    node admins of a participating org). Nobody else, node admins of other orgs included, learns
    that the case exists."""
    participates = (
        exists()
        .where(
            case_participants.c.case_id == cases_table.c.id,
            case_participants.c.org_id == principal.org_id,
        )
        .correlate(cases_table)
    )
    if principal.role in _RED_CASE_ADMIN_ROLES:
        return participates
    return and_(
        participates,
        or_(cases_table.c.tlp != int(TLP.RED), named_in_case(principal, cases_table)),
    )


def named_in_case(principal: Principal, cases_table: FromClause) -> ColumnElement[bool]:
    """SQL predicate: the principal's user is named in the ``cases`` row — its creator, one of
    its assignees, or the assignee of one of its tasks. Never true for a principal without a
    user (a ``NULL`` creator names nobody)."""
    user_id = principal.user_id
    if user_id is None:
        return false()
    return or_(
        cases_table.c.created_by == user_id,
        exists()
        .where(case_assignees.c.case_id == cases_table.c.id, case_assignees.c.user_id == user_id)
        .correlate(cases_table),
        exists()
        .where(case_tasks.c.case_id == cases_table.c.id, case_tasks.c.assignee_user_id == user_id)
        .correlate(cases_table),
    )


def may_edit_case(principal: Principal, participant_role: str | None) -> bool:
    """May the principal change a case (fields, status, tasks, observables, assignees) in which
    its org takes part as ``participant_role`` (None: not at all)? Leads and contributors, and
    only users who work cases: readers and observers read."""
    return participant_role in ("lead", "contributor") and principal.role in _CASE_WORKER_ROLES


def may_comment_on_case(principal: Principal, participant_role: str | None) -> bool:
    """May the principal comment on a case (and add manual timeline entries)? Every
    participating org, observers included, but not readers."""
    return participant_role is not None and principal.role in _CASE_WORKER_ROLES


def may_add_participant(principal: Principal, participant_role: str | None) -> bool:
    """May the principal invite, remove or change the role of orgs in a case? Leads only (the
    owner org is always one): adding an org is an explicit act of those who run the case."""
    return participant_role == "lead" and principal.role in _CASE_WORKER_ROLES


def may_reopen_case(principal: Principal, participant_role: str | None) -> bool:
    """May the principal reopen a closed case? Leads only."""
    return participant_role == "lead" and principal.role in _CASE_WORKER_ROLES
